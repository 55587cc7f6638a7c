"""chat-analytics erase over compacted days: a request leaves ``compacted/`` too, and its days stay compacted.

The real processor stores varied traffic and two secret requests in the moto stack; their lake rows are laid
out over several ``dt`` partitions as Firehose would deliver them over days (test_ops_compaction.py's
``spread``: secret-1's last state three days late, so it has a ``late = 0`` and a ``late = 1`` compacted row),
put in the stack's bucket in place of moto's objects, and every day is compacted into ``compacted/`` with
``compact.compact_bucket`` (``chat-analytics compact``'s code). Erasure must then remove each secret request's
raw rows AND its compacted rows, leave every other object byte for byte and every other row as it was, and
keep each day consistent (its raw row count still the sum of its ``source_rows``): the report still reads
every day compacted, and equals the table's report. The section summaries of the days rewritten are deleted
before the rewrite and made again after it (the secret's question is in no summary); an interrupted run leaves
those days unsummarized, read from their compacted rows.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import botocore.client
import pytest
from botocore.exceptions import ClientError

from chat_analytics_ops import compact, erase, lake
from testkit.events import query_event, response_event
from tests.ops.conftest import Stack
from tests.ops.test_ops_compaction import partitions, spread  # noqa: F401 - the spread lake fixture
from tests.ops.test_ops_erase import (
    SECRET_QUESTION,
    SECRET_TEXT,
    all_objects,
    audit_lines,
    bucket_of,
    day_start,
    drain,
    erase_args,
    s3,
    send_pair,
)
from tests.ops.test_ops_lake import report_json

SECRETS = ("secret-1", "secret-2")
SECOND_QUESTION = "And where does she live, 0170-5550199?"
ROW_PREFIXES = (lake.PREFIX, lake.COMPACTED_PREFIX)
COLUMNS = {
    lake.TABLE: [name for name, _ in lake.COLUMNS] + ["dt"],
    lake.COMPACTED_TABLE: [name for name, _ in lake.COMPACTED_COLUMNS] + ["dt", "late"],
}


def copy_of(stack: Stack, directory: Path) -> Path:
    """A copy of the bucket's requests/ and compacted/ in ``directory`` (the keys as they are)."""
    for prefix in ROW_PREFIXES:
        lake.mirror_prefix(s3(), bucket_of(stack), prefix, directory)
    return directory


def rows(root: Path, table: str) -> Counter:
    """Every row of ``table`` (``requests`` or ``compacted``) in the lake copy ``root``, all columns and the
    partitions, as DuckDB reads them: a multiset."""
    index = COLUMNS[table]
    connection = lake.DuckDBEngine(root).connect()
    try:
        return Counter(connection.execute(f"SELECT {', '.join(index)} FROM {table}").fetchall())
    finally:
        connection.close()


def of_requests(counter: Counter, table: str, ids: tuple[str, ...]) -> Counter:
    position = COLUMNS[table].index("request_id")
    return Counter({values: count for values, count in counter.items() if values[position] in ids})


def compacted_days(root: Path, first: str, last: str) -> list[str]:
    first_dt, last_dt = lake.partition_range([first, last])
    return lake.compacted_days(lake.DuckDBEngine(root), first_dt, last_dt)[0]


@pytest.fixture
def compacted(stack: Stack, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Stack, str, str, list[str]]:
    """The stack's bucket holding the spread lake's raw rows (two secret requests among them) and every one of
    its days compacted; returns the stack, the report's days and the raw partitions."""
    asked = day_start(2) + 7_200_000
    stack.send(query_event("secret-1", asked, SECRET_QUESTION, source="cv-worker", sessionId="s-1"))
    drain(stack)  # secret-1's question stored alone first: two states, two raw rows
    stack.send(response_event("secret-1", asked + 20, "none", 12.5, latencyMs=9))
    send_pair(stack, "secret-2", asked + 5_000, SECOND_QUESTION, match="partial")
    _, first, last, root = request.getfixturevalue("spread")
    client, bucket = s3(), bucket_of(stack)
    for key in all_objects(stack, lake.PREFIX):  # moto's Firehose wrote everything today: the spread layout replaces it
        client.delete_object(Bucket=bucket, Key=key)
    for path in sorted((root / "requests").rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, path.relative_to(root).as_posix())
    raw_days = partitions(root, "requests")
    done = compact.compact_bucket(client, bucket, raw_days[0], raw_days[-1], tmp_path / "compact-cache")
    assert sorted(done.days) == raw_days and sorted(done.summarized) == raw_days, "every day compacted and summarized"
    copy = copy_of(stack, tmp_path / "layout")
    secret_rows = of_requests(rows(copy, lake.COMPACTED_TABLE), lake.COMPACTED_TABLE, SECRETS)
    late = COLUMNS[lake.COMPACTED_TABLE].index("late")
    assert sorted((values[COLUMNS[lake.COMPACTED_TABLE].index("request_id")], values[late]) for values in secret_rows) == [
        ("secret-1", "0"),
        ("secret-1", "1"),
        ("secret-2", "0"),
    ], "the layout the tests need: secret-1's rows over two days (a late compacted row), secret-2's in one"
    return stack, first, last, raw_days


def lake_report(cli, first: str, last: str, cache: Path) -> dict[str, Any]:
    return report_json(cli, "--from", first, "--to", last, "--engine", "duckdb", "--cache", str(cache))


def table_report(cli, first: str, last: str) -> dict[str, Any]:
    return report_json(cli, "--from", first, "--to", last, "--engine", "dynamodb")


def assert_nowhere(stack: Stack, root: Path, ids: tuple[str, ...], text: str = SECRET_TEXT) -> None:
    """No object under requests/ or compacted/ holds a row of ``ids`` or ``text``: read by DuckDB (every table,
    every column) and, byte for byte, in every object's body."""
    for table in (lake.TABLE, lake.COMPACTED_TABLE):
        left = rows(root, table)
        assert not of_requests(left, table, ids), table
        assert not [values for values in left if any(isinstance(value, str) and text in value for value in values)], table
    for key, body in all_objects(stack).items():
        for secret in (*ids, text):
            assert secret.encode() not in body, key


def summarized_days(root: Path, first: str, last: str) -> list[str]:
    first_dt, last_dt = lake.partition_range([first, last])
    return lake.lake_days(lake.DuckDBEngine(root), first_dt, last_dt).summarized


def summaries(stack: Stack) -> dict[str, bytes]:
    return all_objects(stack, lake.SECTIONS_PREFIX)


def test_erase_removes_the_compacted_rows_and_the_days_stay_compacted(compacted, cli, tmp_path: Path) -> None:
    stack, first, last, raw_days = compacted
    before = copy_of(stack, tmp_path / "before")
    raw_before, compacted_before = rows(before, lake.TABLE), rows(before, lake.COMPACTED_TABLE)
    summaries_before = summaries(stack)
    assert summarized_days(before, first, last) == raw_days
    objects_before = {
        key: body for key, body in all_objects(stack).items() if key.startswith(ROW_PREFIXES) and not key.startswith(lake.SECTIONS_PREFIX)
    }
    secret_raw = of_requests(raw_before, lake.TABLE, SECRETS)
    secret_compacted = of_requests(compacted_before, lake.COMPACTED_TABLE, SECRETS)
    merged = sum(values[COLUMNS[lake.COMPACTED_TABLE].index("source_rows")] * n for values, n in secret_compacted.items())
    assert merged == sum(secret_raw.values()) > 0, "the secret requests' compacted rows merge their raw rows"
    days = [day for day in raw_days if day in compacted_days(before, first, last)]
    assert days == raw_days, "every day is read compacted before the erasure"
    table_before = table_report(cli, first, last)
    assert lake_report(cli, first, last, tmp_path / "report-before") == table_before
    assert any(SECRET_TEXT in entry["question"] for entry in table_before["topUnmatched"]), "the report shows the question before"

    result = cli(*erase_args(*SECRETS), "--yes", "--cache", str(tmp_path / "cache"))

    assert result.code == 0, result.err
    assert f"compacted: 3 rows (merging {merged} raw rows) in" in result.out, result.out
    for secret in (*SECRETS, SECRET_TEXT, "where does she live"):
        assert secret not in result.out and secret not in result.err, "never an id or a question on the screen"
    after = copy_of(stack, tmp_path / "after")
    assert_nowhere(stack, after, SECRETS)
    assert not {item["requestId"]["S"] for item in stack.items()} & set(SECRETS)
    # Every other row as it was, none doubled; every object that held no secret row the same bytes, same key.
    assert rows(after, lake.TABLE) == raw_before - secret_raw
    assert rows(after, lake.COMPACTED_TABLE) == compacted_before - secret_compacted
    objects_after = {
        key: body for key, body in all_objects(stack).items() if key.startswith(ROW_PREFIXES) and not key.startswith(lake.SECTIONS_PREFIX)
    }
    kept = set(objects_before) & set(objects_after)
    assert all(objects_after[key] == objects_before[key] for key in kept), "an object without a secret row is untouched"
    new = set(objects_after) - set(objects_before)
    assert {erase.base_of(key) for key in new} <= set(objects_before) - set(objects_after), "each new object replaces its source"
    assert any(key.startswith(lake.COMPACTED_PREFIX) for key in new), "a compacted object rewritten, not only deleted"
    for key in new:
        if key.startswith(lake.COMPACTED_PREFIX):
            assert erase.parquet_compression(after / key) == "snappy", "the compaction's codec is kept"
    # Each day is still consistent, so the report still reads it compacted, and it equals the table's report.
    assert compacted_days(after, first, last) == days, "raw rows and compacted rows went together: the counts still match"
    # The rewritten days' summaries were made again (new objects), the others' untouched; every day still summarized.
    rewritten_days = {key.split("/")[1] for key in new if key.startswith(lake.COMPACTED_PREFIX)}
    summaries_after = summaries(stack)
    assert {key for key in summaries_before if key.split("/")[2] not in rewritten_days} == {
        key for key in summaries_after if key in summaries_before
    }, "a summary of a day not rewritten is kept, the rewritten days' are replaced"
    assert {key.split("/")[2] for key in set(summaries_after) - set(summaries_before)} == rewritten_days
    assert summarized_days(after, first, last) == raw_days, "each rewritten day summarized again, and its count matches"
    table_after = table_report(cli, first, last)
    assert table_after["requests"] == table_before["requests"] - 2
    assert lake_report(cli, first, last, tmp_path / "report-after") == table_after
    text = cli("report", "--from", first, "--to", last, "--engine", "duckdb", "--cache", str(tmp_path / "report-after"))
    first_dt, last_dt = lake.partition_range([first, last])
    assert f"{len(days)} of the {lake._days_between(first_dt, last_dt)} partitions read compacted" in text.out
    # The audit line counts the compacted rows and objects apart from the raw ones.
    [audit] = audit_lines(stack)
    assert audit["compactedRows"] == 3 and audit["lakeRows"] == sum(secret_raw.values())
    assert audit["compactedObjectsWritten"] >= 1 and audit["compactedObjectsWritten"] + audit["lakeObjectsWritten"] == len(new)
    assert audit["compactedObjectsDeleted"] + audit["lakeObjectsDeleted"] == len(set(objects_before) - set(objects_after))
    assert audit["summaryObjectsDeleted"] == audit["summaryObjectsWritten"] == len(rewritten_days)
    # Again: nothing to erase, nothing changes.
    objects_after = {key: body for key, body in all_objects(stack).items() if key.startswith(ROW_PREFIXES)}
    again = cli(*erase_args(*SECRETS), "--yes", "--cache", str(tmp_path / "cache"))
    assert again.code == 0 and "nothing to erase" in again.out, again.err
    assert {key: body for key, body in all_objects(stack).items() if key.startswith(ROW_PREFIXES)} == objects_after


class FailOnceUnder:
    """The first DeleteObject of a key under ``prefix`` raises (a crash between the write of the new object and
    the delete of the old one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
        self.failed: list[str] = []
        original = botocore.client.BaseClient._make_api_call

        def call(client: Any, name: str, params: dict[str, Any]) -> Any:
            if name == "DeleteObject" and params["Key"].startswith(prefix) and not self.failed:
                self.failed.append(params["Key"])
                raise ClientError({"Error": {"Code": "InternalError", "Message": "simulated crash"}}, name)
            return original(client, name, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)


def test_a_crash_in_compacted_loses_nothing_and_a_rerun_completes(compacted, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack, first, last, raw_days = compacted
    before = copy_of(stack, tmp_path / "before")
    raw_before, compacted_before = rows(before, lake.TABLE), rows(before, lake.COMPACTED_TABLE)
    expected_raw = raw_before - of_requests(raw_before, lake.TABLE, ("secret-1",))
    expected_compacted = compacted_before - of_requests(compacted_before, lake.COMPACTED_TABLE, ("secret-1",))
    report_before = lake_report(cli, first, last, tmp_path / "report-before")
    summarized_before = summarized_days(before, first, last)
    failing = FailOnceUnder(monkeypatch, f"{lake.COMPACTED_PREFIX}dt=")

    crashed = cli(*erase_args("secret-1"), "--yes", "--cache", str(tmp_path / "cache"))

    assert failing.failed and crashed.code == 1 and crashed.err.count("\n") == 1 and "Traceback" not in crashed.err
    keys = set(all_objects(stack, lake.COMPACTED_PREFIX))
    [pair] = [key for key in keys if erase.base_of(key) in keys]
    assert erase.base_of(pair) == failing.failed[0], "the new compacted object was written and the old one is still there"
    middle = copy_of(stack, tmp_path / "middle")
    assert +(expected_compacted - rows(middle, lake.COMPACTED_TABLE)) == Counter(), "no compacted row to keep is lost"
    assert rows(middle, lake.TABLE) == raw_before, "the raw rows come after the compacted ones: not touched yet"
    pair_day = pair.split("/")[1].removeprefix("dt=")
    assert pair_day not in compacted_days(middle, first, last), "while both exist the day's counts differ: it is read raw"
    assert pair_day not in {key.split("/")[2][3:] for key in summaries(stack)}, "the day's summary went before its rewrite"
    assert len(summarized_days(middle, first, last)) < len(summarized_before), "the rewritten days are read from their rows"
    assert lake_report(cli, first, last, tmp_path / "report-middle") == report_before, "the report is unaffected by the copies"
    assert [line["outcome"] for line in audit_lines(stack)] == ["failed: ClientError"]

    rerun = cli(*erase_args("secret-1"), "--yes", "--cache", str(tmp_path / "cache"))

    assert rerun.code == 0, rerun.err
    assert "completes an interrupted erasure" in rerun.out
    keys = set(all_objects(stack))
    assert not [key for key in keys if erase.base_of(key) in keys], "no object left beside its rewritten copy"
    after = copy_of(stack, tmp_path / "after")
    assert rows(after, lake.COMPACTED_TABLE) == expected_compacted, "no duplicate, nothing lost, secret-1 gone"
    assert rows(after, lake.TABLE) == expected_raw
    assert_nowhere(stack, after, ("secret-1",), SECRET_QUESTION)
    assert compacted_days(after, first, last) == compacted_days(before, first, last) == raw_days, "every day compacted again"
    assert summarized_days(after, first, last) == summarized_before, "the rerun summarized the rewritten days again"
    assert lake_report(cli, first, last, tmp_path / "report-after") == table_report(cli, first, last)


def test_compacted_rows_left_by_an_earlier_erasure_are_found_and_the_day_is_compacted_again(compacted, cli, tmp_path: Path) -> None:
    """An erasure made before erase reached compacted/ removed a request's raw rows only: its compacted rows
    kept the question, and their days' counts differ (read raw). ``--question-contains`` finds the request in
    compacted/ alone, removes its rows there, and the days match again."""
    stack, first, last, raw_days = compacted
    client, bucket = s3(), bucket_of(stack)
    for secret in SECRETS:
        stack.dynamodb.delete_item(TableName=stack.table, Key={"requestId": {"S": secret}})
    for key, body in all_objects(stack, lake.PREFIX).items():  # the secrets' items and raw rows gone, as the old erase left them
        kept = b"".join(line for line in body.splitlines(keepends=True) if not any(secret.encode() in line for secret in SECRETS))
        if kept != body:
            client.put_object(Bucket=bucket, Key=key, Body=kept)
    stale = copy_of(stack, tmp_path / "stale")
    assert of_requests(rows(stale, lake.COMPACTED_TABLE), lake.COMPACTED_TABLE, SECRETS), "the question is still under compacted/"
    assert len(compacted_days(stale, first, last)) < len(raw_days), "the secrets' days are read raw"

    result = cli(
        "erase", "--question-contains", SECRET_TEXT.upper(), "--from", first, "--to", last, "--yes", "--cache", str(tmp_path / "cache")
    )

    assert result.code == 0, result.err
    assert "2 requests asked" in result.out and "lake: 0 rows" in result.out and "compacted: 3 rows" in result.out
    after = copy_of(stack, tmp_path / "after")
    assert_nowhere(stack, after, SECRETS)
    assert compacted_days(after, first, last) == raw_days, "the counts match again: every day is read compacted"
    assert lake_report(cli, first, last, tmp_path / "report") == table_report(cli, first, last)
