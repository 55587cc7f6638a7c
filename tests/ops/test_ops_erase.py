"""chat-analytics erase: a request leaves the table, every lake object and the DLQ; nothing else changes.

The synthesized stack runs in an in-process moto (``stack``); the real processor stores requests through
the event-source-mapping emulator, so the table items and the lake's JSON-lines objects are the ones the
pipeline writes (moto's Firehose stand-in writes JSON lines); Parquet objects as Firehose writes them in
AWS (same columns, SNAPPY, or another codec) are added with DuckDB, as the lake tests do; dead letters come
from a processor that fails every record (``dead_letter``).
"""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import boto3
import botocore.client
import duckdb
import pytest
from botocore.exceptions import ClientError

import stacks.compaction
import stacks.erasure
from chat_analytics_ops import erase, lake
from chat_analytics_ops.errors import OpsError
from testkit.events import query_event, response_event
from tests.ops.conftest import REGION, STAGE, Processor, Stack, dead_letter
from tests.ops.test_ops_server import server_stack  # noqa: F401 - the moto server fixture

SECRET_QUESTION = "My number is 0170-5550199, does she know Rust?"
SECRET_TEXT = "0170-5550199"
REQUEST_ID = [name for name, _ in lake.COLUMNS].index("request_id")  # a row's position of its request id
ERASED = ("secret-1", "secret-2", "secret-3")


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def bucket_of(stack: Stack) -> str:
    return stack.outputs["LakeBucketName"]


def all_objects(stack: Stack, prefix: str = "") -> dict[str, bytes]:
    client = s3()
    keys = [
        entry["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket_of(stack), Prefix=prefix)
        for entry in page.get("Contents", [])
    ]
    return {key: client.get_object(Bucket=bucket_of(stack), Key=key)["Body"].read() for key in keys}


def lake_rows(stack: Stack, directory: Path) -> Counter:
    """Every row of every object under requests/ (all columns, as DuckDB reads them), as a multiset."""
    for key, body in all_objects(stack, lake.PREFIX).items():
        path = directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    columns = ", ".join(name for name, _ in lake.COLUMNS)
    connection = lake.DuckDBEngine(directory).connect()
    try:
        return Counter(connection.execute(f"SELECT {columns} FROM {lake.TABLE}").fetchall())
    finally:
        connection.close()


def json_lines(stack: Stack) -> Counter:
    """Every line of every JSON-lines object, byte for byte."""
    lines: Counter = Counter()
    for body in all_objects(stack, lake.PREFIX).values():
        if not body.startswith(lake.PARQUET_MAGIC):
            lines.update(line for line in body.splitlines(keepends=True) if line.strip())
    return lines


def row(request_id: str, day: str, query: str | None, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: None for name, _ in lake.COLUMNS}
    values |= {"request_id": request_id, "request_key": abs(hash(request_id)) % 2**62, "day": day, "query": query, "complete": True}
    values |= {"source": "cv-worker", "schema_version": 1, "query_timestamp": 1, "written_at": 2, "match_type": "none", "match_score": 1.5}
    return values | extra


def put_parquet(stack: Stack, key: str, rows: list[dict[str, Any]], tmp_path: Path, compression: str = "snappy") -> None:
    """A Parquet object as Firehose writes it: the Glue table's columns, types and order, one codec."""
    source = tmp_path / "rows.json"
    source.write_text("".join(json.dumps(values) + "\n" for values in rows))
    spec = "{" + ", ".join(f"'{name}': '{lake._DUCKDB_TYPES[kind]}'" for name, kind in lake.COLUMNS) + "}"
    target = tmp_path / "object.parquet"
    columns = ", ".join(name for name, _ in lake.COLUMNS)
    duckdb.execute(
        f"COPY (SELECT {columns} FROM read_json('{source}', format = 'newline_delimited', columns = {spec}))"
        f" TO '{target}' (FORMAT parquet, COMPRESSION {compression})"
    )
    s3().put_object(Bucket=bucket_of(stack), Key=key, Body=target.read_bytes())


def send_pair(stack: Stack, request_id: str, timestamp: int, question: str, match: str = "none") -> None:
    stack.send(query_event(request_id, timestamp, question, source="cv-worker", sessionId="s-1"))
    stack.send(response_event(request_id, timestamp + 20, match, 12.5, latencyMs=9))


def drain(stack: Stack) -> None:
    processor = Processor(stack)
    for _ in range(40):
        if processor.drain(rounds=3) == 0 and stack.depth(stack.events_url) == 0:
            break
    assert stack.depth(stack.events_url) == 0


@pytest.fixture
def filled(stack: Stack, tmp_path: Path) -> Stack:
    """secret-1 and secret-2 stored by the pipeline (table item, JSON-lines rows); secret-1 also in two Parquet
    objects (one SNAPPY with other rows, one holding only its rows), secret-3 only dead-lettered; five other
    requests stored, one other dead-lettered, and a ZSTD Parquet object of other requests only."""
    today = day_start(0) + 3_600_000
    day = lake_day(today)
    send_pair(stack, "secret-1", today, SECRET_QUESTION)
    send_pair(stack, "secret-2", today + 5_000, "And where does she live?", match="partial")
    for index in range(5):
        send_pair(stack, f"other-{index}", today + 10_000 + index * 1000, f"Other question {index}?", match="full")
    drain(stack)
    dead_letter(stack, query_event("secret-3", today + 30_000, SECRET_QUESTION), query_event("other-dlq", today + 31_000, "Kafka?"))
    assert stack.depth(stack.dlq_url) == 2
    others = [row(f"aws-{index}", day, f"Parquet question {index}?") for index in range(4)]
    put_parquet(
        stack,
        f"requests/dt={day}/ChatAnalytics-dev-requests-1-{day}-10-00-00-aaaa",
        [others[0], row("secret-1", day, SECRET_QUESTION, complete=False), others[1], row("secret-1", day, SECRET_QUESTION)],
        tmp_path,
    )
    put_parquet(
        stack, f"requests/dt={day}/ChatAnalytics-dev-requests-1-{day}-10-15-00-bbbb", [row("secret-1", day, SECRET_QUESTION)], tmp_path
    )
    put_parquet(stack, f"requests/dt={day}/ChatAnalytics-dev-requests-1-{day}-10-30-00-cccc", others[2:], tmp_path, compression="zstd")
    return stack


def day_start(days_ago: int) -> int:
    """Midnight UTC ``days_ago`` days ago, in milliseconds."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - timedelta(days=days_ago)).timestamp() * 1000)


def lake_day(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).date().isoformat()


def table_ids(stack: Stack) -> set[str]:
    return {item["requestId"]["S"] for item in stack.items()}


def dlq_ids(cli) -> list[str]:
    result = cli("dlq", "inspect", "--json")
    if result.code == 3:
        return []
    assert result.code == 0, result.err
    return [message["requestId"] for message in json.loads(result.out)["messages"]]


def audit_lines(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(body) for body in all_objects(stack, erase.AUDIT_PREFIX).values()]


def report_of(cli, engine: str, tmp_path: Path) -> dict[str, Any]:
    """The report of the last 7 days by ``engine`` (DuckDB: over a copy of the bucket kept in ``tmp_path``)."""
    result = cli("report", "--json", "--engine", engine, *(["--cache", str(tmp_path / "report")] if engine == "duckdb" else []))
    assert result.code == 0, result.err
    return json.loads(result.out)


def erase_args(*ids: str) -> list[str]:
    return ["erase", *(argument for request_id in ids for argument in ("--request-id", request_id))]


def test_erase_removes_the_requests_everywhere_and_changes_nothing_else(filled: Stack, cli, tmp_path: Path) -> None:
    stack = filled
    rows_before = lake_rows(stack, tmp_path / "before")
    lines_before = json_lines(stack)
    secret_rows = Counter({values: count for values, count in rows_before.items() if values[REQUEST_ID] in ERASED})
    assert sum(secret_rows.values()) == 5, "secret-1 and secret-2 have a JSON-lines row each, secret-1 three Parquet rows"
    assert {"secret-1", "secret-2"} <= table_ids(stack) and sorted(dlq_ids(cli)) == ["other-dlq", "secret-3"]
    reports_before = {engine: report_of(cli, engine, tmp_path) for engine in ("dynamodb", "duckdb")}
    for before in reports_before.values():
        assert any(SECRET_TEXT in entry["question"] for entry in before["topUnmatched"]), "the reports show the question before"
    zstd_key = next(key for key in all_objects(stack, lake.PREFIX) if key.endswith("cccc"))

    result = cli(*erase_args(*ERASED), "--yes", "--cache", str(tmp_path / "cache"))

    assert result.code == 0, result.err
    assert "3 requests to erase" in result.out and "table: 2 items to delete" in result.out
    assert "dead-letter queue: 1 message to delete" in result.out
    for secret in (*ERASED, SECRET_TEXT, "where does she live"):
        assert secret not in result.out and secret not in result.err, "never an id or a question on the screen"
    # Not in the table, the DLQ, the lake's objects (any prefix), nor any engine's report.
    assert not table_ids(stack) & set(ERASED) and table_ids(stack) >= {f"other-{index}" for index in range(5)}
    assert dlq_ids(cli) == ["other-dlq"]
    for key, body in all_objects(stack).items():
        for secret in ERASED:
            if not body.startswith(lake.PARQUET_MAGIC):
                assert secret.encode() not in body and SECRET_TEXT.encode() not in body, key
    rows_after = lake_rows(stack, tmp_path / "after")
    assert rows_after == rows_before - secret_rows, "every other row is unchanged, none doubled"
    assert json_lines(stack) == Counter({line: n for line, n in lines_before.items() if not any(s.encode() in line for s in ERASED)})
    # The table's two items go; the lake's Parquet rows of secret-1 carry a request_key of their own (a third request).
    for engine, gone in (("dynamodb", 2), ("duckdb", 3)):
        after = report_of(cli, engine, tmp_path)
        assert SECRET_TEXT not in json.dumps(after) and "where does she live" not in json.dumps(after)
        assert after["requests"] == reports_before[engine]["requests"] - gone
    # The Parquet objects: the one with other rows rewritten (new key, same schema and codec), the one with only
    # secret rows deleted, the ZSTD one of other requests untouched.
    keys = set(all_objects(stack, lake.PREFIX))
    assert zstd_key in keys
    [rewritten] = [key for key in keys if erase.ERASED_MARK in key and key.split(erase.ERASED_MARK)[0].endswith("aaaa")]
    assert erase.base_of(rewritten) == rewritten.split(erase.ERASED_MARK)[0]
    assert not any(key.endswith(("aaaa", "bbbb")) for key in keys)
    local = tmp_path / "cache" / rewritten
    assert erase.parquet_compression(local) == "snappy"
    # The audit line: counts and a hash, never the ids or the text; in the bucket and on stdout.
    [audit] = audit_lines(stack)
    assert audit["requestIds"] == 3 and audit["requestIdsSha256"] == erase.ids_hash(ERASED)
    assert audit["outcome"] == "completed" and audit["tableItems"] == 2 and audit["deadLetters"] == 1
    assert audit["lakeRows"] == sum(secret_rows.values()) and audit["lakeObjectsDeleted"] >= 3
    assert not any(secret in json.dumps(audit) for secret in (*ERASED, SECRET_TEXT))
    assert "audit: " + json.dumps(audit, separators=(",", ":")) in result.out

    # A second run changes nothing and says so (and leaves its own audit line).
    objects = all_objects(stack, lake.PREFIX)
    again = cli(*erase_args(*ERASED), "--cache", str(tmp_path / "cache"))
    assert again.code == 0, again.err
    assert "nothing to erase" in again.out and "nothing changed" in again.out
    assert all_objects(stack, lake.PREFIX) == objects and dlq_ids(cli) == ["other-dlq"]
    assert sorted(line["outcome"] for line in audit_lines(stack)) == ["completed", "nothing to erase"]


class FailOnce:
    """DeleteObject raises once (a crash between the write of the new object and the delete of the old)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, operation: str = "DeleteObject") -> None:
        self.calls = 0
        original = botocore.client.BaseClient._make_api_call

        def call(client: Any, name: str, params: dict[str, Any]) -> Any:
            if name == operation and self.calls == 0:
                self.calls += 1
                raise ClientError({"Error": {"Code": "InternalError", "Message": "simulated crash"}}, name)
            return original(client, name, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)


def test_a_crash_before_the_old_object_is_deleted_loses_nothing_and_a_rerun_completes(
    filled: Stack, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = filled
    rows_before = lake_rows(stack, tmp_path / "before")
    expected = Counter({values: n for values, n in rows_before.items() if values[REQUEST_ID] != "secret-1"})
    lake_report_before = report_of(cli, "duckdb", tmp_path)
    failing = FailOnce(monkeypatch)

    crashed = cli(*erase_args("secret-1"), "--yes", "--cache", str(tmp_path / "cache"))

    assert failing.calls == 1
    assert crashed.code == 1 and crashed.err.count("\n") == 1 and "Traceback" not in crashed.err
    keys = set(all_objects(stack, lake.PREFIX))
    pairs = [key for key in keys if erase.base_of(key) in keys]
    assert pairs, "the new object was written and the old one is still there"
    middle = lake_rows(stack, tmp_path / "middle")
    assert +(expected - middle) == Counter(), "no row lost: every row to keep is still in the lake"
    assert +(middle - rows_before), "the copied rows are read twice while both objects exist"
    assert report_of(cli, "duckdb", tmp_path) == {**lake_report_before, "engine": ANY}, "the report is unaffected by the copies"
    assert [line["outcome"] for line in audit_lines(stack)] == ["failed: ClientError"]

    rerun = cli(*erase_args("secret-1"), "--yes", "--cache", str(tmp_path / "cache"))

    assert rerun.code == 0, rerun.err
    assert "completes an interrupted erasure" in rerun.out
    keys = set(all_objects(stack, lake.PREFIX))
    assert not [key for key in keys if erase.base_of(key) in keys], "no object left beside its rewritten copy"
    assert lake_rows(stack, tmp_path / "after") == expected, "no duplicate, nothing lost, secret-1 gone"
    assert "nothing to erase" in cli(*erase_args("secret-1"), "--cache", str(tmp_path / "cache")).out


def test_an_interrupted_erasure_of_other_requests_is_completed_by_the_next_run(
    filled: Stack, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-run asks for other ids than the crashed run: it still recognizes the pair (K and K.erased-H),
    checks the copy is K without whole requests, and finishes it (no duplicate rows stay behind)."""
    stack = filled
    rows_before = lake_rows(stack, tmp_path / "before")
    FailOnce(monkeypatch)
    assert cli(*erase_args("secret-1"), "--yes", "--cache", str(tmp_path / "cache")).code == 1
    result = cli(*erase_args("other-0"), "--yes", "--cache", str(tmp_path / "cache"))
    assert result.code == 0, result.err
    assert "completes an interrupted erasure" in result.out
    keys = set(all_objects(stack, lake.PREFIX))
    assert not [key for key in keys if erase.base_of(key) in keys], "the pair is resolved"
    after = lake_rows(stack, tmp_path / "after")
    assert +(after - rows_before) == Counter(), "no row doubled"
    assert {values[REQUEST_ID] for values in rows_before - after} == {"secret-1", "other-0"}, "only the two requests' rows went"
    assert "other-0" not in {values[REQUEST_ID] for values in after}
    # The crashed run's own erasure is finished by running it again (its audit line says it failed).
    assert cli(*erase_args("secret-1"), "--yes", "--cache", str(tmp_path / "cache")).code == 0
    expected = Counter({values: n for values, n in rows_before.items() if values[REQUEST_ID] not in {"secret-1", "other-0"}})
    assert lake_rows(stack, tmp_path / "final") == expected


def test_a_copy_that_is_not_its_object_without_whole_requests_is_refused(filled: Stack, cli, tmp_path: Path) -> None:
    stack = filled
    objects = all_objects(stack, lake.PREFIX)
    key = next(key for key in objects if key.endswith("aaaa"))
    s3().put_object(Bucket=bucket_of(stack), Key=f"{key}.erased-0123456789ab", Body=objects[key][:-10])  # not even Parquet
    result = cli(*erase_args("secret-1"), "--yes", "--cache", str(tmp_path / "cache"))
    assert result.code == 1 and "is not" in result.err and "both left as they are" in result.err
    assert "secret-1" in table_ids(stack), "nothing changed"
    assert len(all_objects(stack, lake.PREFIX)) == len(objects) + 1


def test_question_contains_finds_by_substring_in_the_range_only(stack: Stack, cli, tmp_path: Path) -> None:
    today, three_days_ago, ten_days_ago = (day_start(days) + 3_600_000 for days in (0, 3, 10))
    send_pair(stack, "match-today", today, SECRET_QUESTION)
    send_pair(stack, "match-earlier", three_days_ago, SECRET_QUESTION.upper())
    send_pair(stack, "match-outside", ten_days_ago, SECRET_QUESTION)
    send_pair(stack, "no-match", today + 1000, "Does she know Go?")
    drain(stack)
    dead_letter(stack, query_event("match-dlq", today + 2000, f"call {SECRET_TEXT} please"))
    dead_letter(stack, f"not JSON: call {SECRET_TEXT}", group="g-raw", dedup="d-raw")  # no request id: the text decides
    dead_letter(stack, "not JSON, nothing to do with it", group="g-other", dedup="d-other")
    # A request only in the lake (its item expired from the table, say).
    put_parquet(stack, f"requests/dt={lake_day(today)}/lake-only-object", [row("match-lake", lake_day(today), SECRET_QUESTION)], tmp_path)

    result = cli(
        "erase",
        "--question-contains",
        SECRET_TEXT,
        "--from",
        lake_day(three_days_ago),
        "--to",
        lake_day(today),
        "--yes",
        "--cache",
        str(tmp_path),
    )

    assert result.code == 0, result.err
    assert "4 requests asked" in result.out and SECRET_TEXT not in result.out
    assert "dead-letter queue: 2 messages to delete" in result.out
    assert table_ids(stack) == {"match-outside", "no-match"}
    [left] = json.loads(cli("dlq", "inspect", "--json", "--show-text").out)["messages"]
    assert "nothing to do with it" in left["excerpt"]
    remaining = lake_rows(stack, tmp_path / "after")
    assert {values[REQUEST_ID] for values in remaining} == {"match-outside", "no-match"}
    [audit] = audit_lines(stack)
    assert audit["requestIds"] == 4 and audit["selectedBy"] == ["question-contains"]
    assert audit["requestIdsSha256"] == erase.ids_hash(["match-today", "match-earlier", "match-dlq", "match-lake"])
    assert SECRET_TEXT not in json.dumps(audit)


def test_without_yes_and_without_a_terminal_it_refuses_in_one_line(
    filled: Stack, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # piped input is not a confirmation
    objects = all_objects(filled, lake.PREFIX)
    result = cli(*erase_args("secret-1"), "--cache", str(tmp_path))
    assert result.code == 2
    assert result.err.count("\n") == 1 and "pass --yes" in result.err and "stdin is not a terminal" in result.err
    assert "secret-1" in table_ids(filled) and all_objects(filled, lake.PREFIX) == objects
    assert audit_lines(filled) == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_it_asks_and_only_yes_erases(filled: Stack, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("no\n"))
    result = cli(*erase_args("secret-2"), "--cache", str(tmp_path))
    assert result.code == 1 and "not confirmed: nothing changed" in result.err and "type yes" in result.out
    assert "secret-2" in table_ids(filled)
    monkeypatch.setattr("sys.stdin", Terminal("yes\n"))
    result = cli(*erase_args("secret-2"), "--cache", str(tmp_path))
    assert result.code == 0, result.err
    assert "secret-2" not in table_ids(filled)


def test_erase_through_the_endpoint_as_on_the_local_stack(server_stack, cli, tmp_path: Path) -> None:  # noqa: F811
    """``--endpoint-url`` alone, as against the local stack (a moto server on 127.0.0.1)."""
    endpoint, stack = server_stack
    now = day_start(0) + 3_600_000
    stack.send(query_event("local-1", now, SECRET_QUESTION))
    stack.send(query_event("local-2", now + 10, "Kept?"))
    Processor(stack, endpoint_url=endpoint).drain()
    dead_letter(stack, response_event("local-1", now + 20, "none", 4, latencyMs=11))
    argv = ("--endpoint-url", endpoint, "--stage", STAGE, *erase_args("local-1"), "--yes", "--cache", str(tmp_path))
    result = cli(*argv, stage=False)
    assert result.code == 0, result.err
    assert "table: 1 item to delete" in result.out and "dead-letter queue: 1 message to delete" in result.out
    assert {item["requestId"]["S"] for item in stack.items()} == {"local-2"} and stack.depth(stack.dlq_url) == 0
    server_s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    bucket = stack.outputs["LakeBucketName"]
    keys = [entry["Key"] for entry in server_s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    bodies = [server_s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys if key.startswith(lake.PREFIX)]
    assert bodies and not any(b"local-1" in body for body in bodies) and any(b"local-2" in body for body in bodies)
    assert sum(key.startswith(erase.AUDIT_PREFIX) for key in keys) == 1
    assert "nothing to erase" in cli(*argv, stage=False).out


def test_dead_letters_held_by_another_reader_are_reported_not_skipped(stack: Stack, cli, tmp_path: Path) -> None:
    """A message another reader holds cannot be looked at: the run says how many and ends with status 1."""
    dead_letter(stack, query_event("held-1", day_start(0), SECRET_QUESTION))
    held = stack.sqs.receive_message(QueueUrl=stack.dlq_url, VisibilityTimeout=600, MaxNumberOfMessages=10)["Messages"]
    assert len(held) == 1
    result = cli(*erase_args("held-1"), "--yes", "--cache", str(tmp_path))
    assert result.code == 1
    assert "1 dead-letter message could not be checked" in result.err and result.err.count("\n") == 1
    assert "or the dead-letter messages that could be checked" in result.out
    [audit] = audit_lines(stack)
    assert audit["deadLettersUnchecked"] == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["erase"], "give --request-id ID"),
        (["erase", "--request-id", "a", "--from", "2026-01-01"], "--from and --to go with --question-contains"),
        (["erase", "--question-contains", "x"], "needs --from YYYY-MM-DD and --to YYYY-MM-DD"),
        (["erase", "--question-contains", " ", "--from", "2026-01-01", "--to", "2026-01-02"], "expected some text"),
        (["erase", "--question-contains", "x", "--from", "2026-01-05", "--to", "2026-01-02"], "bad date range"),
        (["erase", "--question-contains", "x", "--from", "2026-1-5", "--to", "2026-01-02"], "bad date for --from"),
    ],
)
def test_option_mistakes_are_one_line(argv: list[str], message: str, cli) -> None:
    result = cli(*argv)
    assert result.code != 0 and result.err.count("\n") == 1 and message in result.err, result.err


def test_rewrite_keys_are_deterministic_and_recognized() -> None:
    key = "requests/dt=2026-12-05/ChatAnalytics-dev-requests-1-2026-12-05-10-00-00-abc"
    new = erase.derived_key(key, ["b", "a"])
    assert new == erase.derived_key(key, ["a", "b", "a"]) and new.startswith(key + ".erased-")
    assert erase.base_of(new) == key and erase.base_of(key) is None
    assert erase.base_of(erase.derived_key(new, ["c"])) == new


def test_a_parquet_rewrite_with_another_schema_or_codec_or_rows_is_refused(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    rows = "(VALUES ('a', 1), ('b', NULL), ('c', 3)) AS t(request_id, n)"

    def write(path: Path, select: str, codec: str = "snappy") -> None:
        duckdb.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet, COMPRESSION {codec})")

    write(old, f"SELECT request_id, n::INTEGER AS n FROM {rows}")
    write(new, f"SELECT request_id, n::BIGINT AS n FROM {rows} WHERE request_id <> 'a'")
    with pytest.raises(OpsError, match="schema differs"):
        erase.check_rewrite(old, new, frozenset({"a"}), "parquet")
    write(new, f"SELECT request_id, n::INTEGER AS n FROM {rows} WHERE request_id <> 'a'", codec="zstd")
    with pytest.raises(OpsError, match="compressed unlike"):
        erase.check_rewrite(old, new, frozenset({"a"}), "parquet")
    write(new, f"SELECT request_id, n::INTEGER AS n FROM {rows} WHERE request_id = 'b'")
    with pytest.raises(OpsError, match="1 rows of old missing"):
        erase.check_rewrite(old, new, frozenset({"a"}), "parquet")
    erase.write_without(old, new, frozenset({"a"}), "parquet")
    erase.check_rewrite(old, new, frozenset({"a"}), "parquet")
    assert duckdb.execute(f"SELECT request_id, n FROM read_parquet('{new}')").fetchall() == [("b", None), ("c", 3)], "row order kept"
    with pytest.raises(OpsError, match="1 rows of old missing"):
        erase.check_rewrite(old, new, frozenset(), "parquet")


def test_the_erasure_policy_grants_what_erase_calls_and_no_more(dev) -> None:
    """IAM is not enforced by moto: the policy itself is asserted. ``s3:prefix`` limits ListBucket to the
    prefixes named (https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html); erase
    lists with Prefix=requests/ and Prefix=compacted/ only, and reads, writes and deletes objects under those
    two folders only (the objects' folders are the ones the command's code names)."""
    [(logical_id, policy)] = [
        (name, resource)
        for name, resource in dev.raw["Resources"].items()
        if resource["Type"] == "AWS::IAM::ManagedPolicy" and name.startswith("ErasureErasurePolicy")
    ]
    assert dev.raw["Outputs"]["ErasurePolicyArn"]["Value"] == {"Ref": logical_id}
    statements = {statement["Sid"]: statement for statement in policy["Properties"]["PolicyDocument"]["Statement"]}
    actions = {
        sid: sorted([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        for sid, statement in statements.items()
    }
    assert actions == {
        "FindTheStacksResources": ["cloudformation:DescribeStacks"],
        "FindAndDeleteTableItems": ["dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"],
        "ListTheLakesRows": ["s3:ListBucket"],
        "RewriteTheLakesObjects": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        "WriteAuditLines": ["s3:PutObject"],
        "DeleteDeadLetters": ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
    }
    assert statements["ListTheLakesRows"]["Condition"] == {"StringLike": {"s3:prefix": ["requests/*", "compacted/*"]}}
    # What the command lists and rewrites is what the policy names, and the compaction writes where both say.
    assert erase.ROW_PREFIXES == (lake.COMPACTED_PREFIX, lake.PREFIX)
    assert set(stacks.erasure.ROW_PREFIXES) == set(erase.ROW_PREFIXES)
    assert stacks.erasure.COMPACTED_PREFIX == stacks.compaction.COMPACTED_PREFIX == lake.COMPACTED_PREFIX
    [lake_bucket] = [
        name for name, resource in dev.raw["Resources"].items() if resource["Type"] == "AWS::S3::Bucket" and name.startswith("LakeBucket")
    ]
    bucket_arn = {"Fn::GetAtt": [lake_bucket, "Arn"]}
    rewritable = statements["RewriteTheLakesObjects"]["Resource"]
    assert sorted(rewritable, key=json.dumps) == [
        {"Fn::Join": ["", [bucket_arn, "/compacted/*"]]},
        {"Fn::Join": ["", [bucket_arn, "/requests/*"]]},
    ], "objects of the lake bucket under the two folders of rows, nothing else"
    assert statements["ListTheLakesRows"]["Resource"] == bucket_arn
    text = json.dumps(statements)
    assert '"/requests/*"' in text and '"/compacted/*"' in text and '"/erasure-audit/*"' in text and "/index/byDay" in text
    assert text.count('"/compacted/*"') == 1 and text.count('"/erasure-audit/*"') == 1, "audit lines: PutObject only, nothing else there"
    assert all(statement["Effect"] == "Allow" for statement in statements.values())
    assert "*" not in [statement["Resource"] for statement in statements.values()]
