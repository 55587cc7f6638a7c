"""The contract's addition 1.1 (the response's ``model``) end to end, and the lake over days written before it.

Requests of two days are sent as 1.0 events (no ``model``; producers from before 1.1), today's as 1.1 (with it,
one with a field of a later minor too, and one 2.0 event). The real processor stores them in the moto stack;
then the lake is laid out as AWS would hold it after the deploy that added the column: the older days' Parquet
written with the columns the Glue table had then (no ``model`` column at all), today's with every column.

Athena reads Parquet by column name (https://docs.aws.amazon.com/athena/latest/ug/handling-schema-updates-chapter.html:
Parquet is read by name by default; adding a column is supported, and a file without it reads it as NULL;
https://docs.aws.amazon.com/athena/latest/ug/updates-and-partitions.html: for Parquet, schema validation is
by column name, so partitions written before the column do not mismatch). Athena cannot run here: DuckDB,
the CLI's local lake engine, reads the same files by name (``union_by_name``), and the report over the mixed
days must equal the table's, while a query that names the new column gets NULL for the older files.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest

from chat_analytics_ops import lake
from chat_analytics_ops.validation import validate_body
from testkit.events import query_event, response_event
from tests.ops.conftest import REGION, Cli, Processor, Stack

MODELS = ("@cf/meta/llama-3.1-8b-instruct", "cv-skill-matcher")
NEW_COLUMN = "model"


def day_start(days_ago: int) -> int:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - timedelta(days=days_ago)).timestamp() * 1000)


def day_text(days_ago: int) -> str:
    return datetime.fromtimestamp(day_start(days_ago) / 1000, UTC).date().isoformat()


def send_mixed_revisions(stack: Stack) -> dict[str, str | None]:
    """1.0 traffic two and one day ago, 1.1 today; returns each request's expected model (None: not sent)."""
    expected: dict[str, str | None] = {}
    for days_ago in (2, 1, 0):
        base = day_start(days_ago) + 3_600_000
        for index in range(8):
            request_id = f"v-{days_ago}-{index}"
            match = ("full", "partial", "none", "none")[index % 4]
            question = ("Python?", "Rust?", "Kubernetes?", "kubernetes")[index % 4]
            query = query_event(request_id, base + index * 1000, question, source="cv-worker")
            response = response_event(request_id, base + index * 1000 + 15, match, (90.0, 50.0, 0.0, 0.0)[index % 4], latencyMs=9)
            if days_ago:  # a producer from before 1.1: no model; some leave schemaVersion out
                if index % 2:
                    del query["schemaVersion"], response["schemaVersion"]
                expected[request_id] = None
            else:
                response["model"] = MODELS[index % 2]
                if index == 3:
                    response["tokensUsed"] = 412  # a later minor's field: ignored, the rest stored
                expected[request_id] = response["model"]
            if index == 7:
                stack.send(query)  # never answered
                expected[request_id] = None
                continue
            for event in (response, query) if index % 3 == 0 else (query, response):
                stack.send(event)
    stack.send(  # a major this processor does not know: refused, never stored
        {"schemaVersion": 2, "eventType": "response", "requestId": "v2-1", "timestamp": day_start(0) + 5, "outcome": {"kind": "full"}}
    )
    return expected


@pytest.fixture
def stored(stack: Stack) -> tuple[Stack, dict[str, str | None]]:
    expected = send_mixed_revisions(stack)
    processor = Processor(stack)
    for _ in range(40):
        if processor.drain(rounds=3) == 0 and stack.depth(stack.events_url) == 0:
            break
    assert stack.depth(stack.events_url) == 0
    assert stack.depth(stack.dlq_url) == 1, "the 2.0 event is dead-lettered like any invalid event"
    return stack, expected


def lay_out_lake(stack: Stack, raw: Path, root: Path) -> None:
    """The bucket's rows, as Firehose would have written them: days before 1.1 as Parquet without the new
    column (the Glue table did not have it), today's as Parquet with every column; rejected rows as they are."""
    s3 = boto3.client("s3", region_name=REGION)
    lake.sync_partitions(s3, stack.outputs["LakeBucketName"], day_text(0), day_text(0), raw)
    connection = lake.DuckDBEngine(raw).connect()
    columns = [name for name, _ in lake.COLUMNS]
    assert columns[-1] == NEW_COLUMN, "an added column comes last"
    old_columns = [name for name in columns if name != NEW_COLUMN]
    for days_ago in (2, 1, 0):
        day = day_text(days_ago)
        written = old_columns if days_ago else columns
        folder = root / "requests" / f"dt={day}"
        folder.mkdir(parents=True)
        connection.execute(
            f"COPY (SELECT {', '.join(written)} FROM requests WHERE day = '{day}') TO '{folder / 'part-0.parquet'}' (FORMAT parquet)"
        )
    for source in (raw / "rejected").rglob("*"):
        if source.is_file():
            target = root / source.relative_to(raw)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    connection.close()


def report_json(cli: Cli, *argv: str) -> dict[str, Any]:
    result = cli("report", "--json", *argv)
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    payload.pop("engine")
    return payload


def test_the_addition_flows_to_the_table_and_the_lake_and_mixed_days_report_as_the_table(stored, cli: Cli, tmp_path: Path) -> None:
    stack, expected = stored
    items = {item["requestId"]["S"]: item for item in stack.items()}
    assert set(items) == set(expected), "every 1.x request stored, the 2.0 one not"
    for request_id, model in expected.items():
        assert items[request_id].get("model") == ({"S": model} if model else None), request_id
    assert "tokensUsed" not in items["v-0-3"], "a field this processor does not know is not stored"

    root = tmp_path / "lake"
    lay_out_lake(stack, tmp_path / "raw", root)
    for days_ago, has_column in ((2, False), (1, False), (0, True)):
        file = root / "requests" / f"dt={day_text(days_ago)}" / "part-0.parquet"
        names = {row[0] for row in duckdb.execute(f"SELECT name FROM parquet_schema('{file}')").fetchall()}
        assert (NEW_COLUMN in names) is has_column, file

    first, last = day_text(2), day_text(0)
    table = report_json(cli, "--from", first, "--to", last, "--engine", "dynamodb")
    table.pop("rejected")
    from_lake = report_json(cli, "--from", first, "--to", last, "--engine", "duckdb", "--lake", str(root))
    rejected = from_lake.pop("rejected")
    assert table["requests"] == 24 and table["unanswered"] == 3 and table["topUnmatched"]
    assert from_lake == table, "files written before the column existed change no figure"
    assert "unknown_major_version" in json.dumps(rejected), "the 2.0 event is a rejection by its reason"

    rows, _ = lake.DuckDBEngine(root).run(
        "SELECT request_id, max_by(model, complete) AS model, count(model) AS with_model FROM requests GROUP BY request_id", []
    )
    from_lake_models = {row["request_id"]: row["model"] for row in rows}
    assert from_lake_models == expected, "the new column: NULL in the older files, the model where it was sent"
    assert all(row["with_model"] == 0 for row in rows if row["request_id"].startswith(("v-2-", "v-1-")))


def old_row_select(request_id: str) -> str:
    """A SELECT of one row with the lake's columns as they were before 1.1 (no ``model``)."""
    values = {"request_id": f"'{request_id}'", "request_key": "11::BIGINT", "day": "'2026-03-02'", "complete": "false"}
    return ", ".join(
        f"{values.get(name, f'NULL::{lake._DUCKDB_TYPES[kind]}')} AS {name}" for name, kind in lake.COLUMNS if name != NEW_COLUMN
    )


def test_a_view_over_files_that_all_predate_the_column_still_has_it(tmp_path: Path) -> None:
    """No file has ``model`` yet (a lake written before 1.1, or a period before it): selecting it is NULL, not an error."""
    folder = tmp_path / "requests" / "dt=2026-03-02"
    folder.mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT {old_row_select('old-1')}) TO '{folder / 'old.parquet'}' (FORMAT parquet)")
    rows, _ = lake.DuckDBEngine(tmp_path).run("SELECT request_id, model FROM requests", [])
    assert rows == [{"request_id": "old-1", "model": None}]
    duckdb.sql(f"COPY (SELECT {old_row_select('new-1')}, 'm1' AS model) TO '{folder / 'new.parquet'}' (FORMAT parquet)")
    rows, _ = lake.DuckDBEngine(tmp_path).run("SELECT request_id, model FROM requests ORDER BY request_id", [])
    assert rows == [{"request_id": "new-1", "model": "m1"}, {"request_id": "old-1", "model": None}]


def test_the_report_sql_does_not_read_the_added_column() -> None:
    """The report is unaffected by the addition: its SQL names no column added after 1.0."""
    assert NEW_COLUMN not in re.findall(r"\w+", lake.report_sql())


@pytest.mark.parametrize(
    "event",
    [
        query_event("r-1", 1, "Python?", schemaVersion=2),
        {"schemaVersion": 2.0, "eventType": "feedback", "requestId": "r-1", "rating": 5},  # a new major's own shape
    ],
)
def test_a_dead_lettered_event_of_an_unknown_major_is_named_so(event: dict[str, Any]) -> None:
    """``dlq inspect``'s finding for it says what the processor's rejected row says: a major it does not know."""
    assert validate_body(json.dumps(event)) == (
        "schemaVersion: 2 is a major version this contract does not know (it knows 1): a newer producer, or a wrong one"
    )
    assert validate_body(json.dumps(query_event("r-1", 1, "Python?", schemaVersion=1000))) == "schemaVersion: above the maximum 1"
    assert validate_body(json.dumps(response_event("r-1", 1, "full", 100, model="m", tokensUsed=3))) is None
