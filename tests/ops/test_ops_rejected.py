"""Rejected events in the lake: the processor's rejected rows, read by ``chat-analytics report`` by reason.

End to end in-process: the synthesized stack deployed in moto (its rejected stream stood in for, writing JSON
lines under ``rejected/dt=YYYY-MM-DD/``), the real processor fed by the event-source-mapping emulator, invalid
events sent like a producer's; the report counts them by reason with DuckDB over the synced files. Athena
cannot run here: its engine is tested for what it sends and how it reads the answer, and ``rejected.sql`` is
parsed in Athena's dialect with sqlglot.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
import sqlglot
from sqlglot import expressions

from chat_analytics_ops import dlq, lake
from chat_analytics_ops.errors import OpsError
from chat_analytics_ops.render import render_text
from chat_analytics_ops.report_model import REJECTED_NOT_IN_TABLE, RejectedCounts
from chat_analytics_ops.table_engine import build_report
from testkit.events import query_event, response_event
from tests.ops.conftest import REGION, Cli, Processor, Stack
from tests.ops.test_ops_lake import PORTABLE_FUNCTIONS, ScriptedAthena, processor_lake_module, sql_functions

QUESTION = "Which of my colleagues earns the most, and why?"


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def drain(stack: Stack) -> None:
    """Run the processor until the events queue is empty: invalid events fail three times, then move to the DLQ."""
    processor = Processor(stack)
    for _ in range(40):
        processor.drain(rounds=2)
        if stack.depth(stack.events_url) == 0:
            break
    assert stack.depth(stack.events_url) == 0


def rejected_objects(stack: Stack) -> list[tuple[str, str]]:
    s3 = boto3.client("s3", region_name=REGION)
    listed = s3.list_objects_v2(Bucket=stack.outputs["LakeBucketName"], Prefix="rejected/").get("Contents", [])
    return [
        (entry["Key"], s3.get_object(Bucket=stack.outputs["LakeBucketName"], Key=entry["Key"])["Body"].read().decode()) for entry in listed
    ]


def test_an_invalid_event_sent_is_a_rejected_row_in_the_bucket_and_the_report_shows_it_by_reason(
    stack: Stack, cli: Cli, tmp_path: Path
) -> None:
    now = int(datetime.now(UTC).timestamp() * 1000)
    stack.send(query_event("r-ok", now, "Does she know Python?"))
    stack.send(response_event("r-ok", now + 10, "full", 90))
    stack.send(query_event("r-neg", -1, QUESTION))  # out_of_range at $.timestamp
    stack.send(response_event("r-score", now, "full", 101))  # out_of_range at $.matchScore
    without_query = query_event("r-missing", now, "x")
    del without_query["query"]
    stack.send(without_query)  # missing_field at $.query
    stack.send(QUESTION, group="g-text", dedup="g-text")  # not JSON: invalid_json
    drain(stack)
    assert stack.depth(stack.dlq_url) == 4, "the rejected records still dead-letter after three receives"

    objects = rejected_objects(stack)
    assert objects and all(key.startswith(f"rejected/dt={today()}/ChatAnalytics-dev-rejected-") for key, _ in objects)
    rows = [json.loads(line) for _, text in objects for line in text.splitlines()]
    assert all(QUESTION not in text for _, text in objects), "the question is never in the lake's rejected rows"
    by_message: dict[str, set[tuple[str, str]]] = {}
    for row in rows:
        by_message.setdefault(row["message_id"], set()).add((row["reason"], row["field_path"]))
    assert sorted(next(iter(found)) for found in by_message.values()) == [
        ("invalid_json", "$"),
        ("missing_field", "$.query"),
        ("out_of_range", "$.matchScore"),
        ("out_of_range", "$.timestamp"),
    ], "one reason per message, whatever its receive"
    assert len(rows) >= 4 * 3, "a row on every receive (three before the DLQ)"

    result = cli("report", "--days", "1", "--engine", "duckdb", "--cache", str(tmp_path), "--json")
    assert result.code == 0, result.err
    rejected = json.loads(result.out)["rejected"]
    assert rejected == {
        "table": "rejected",
        "events": 4,
        "receives": len(rows),
        "byReason": {"out_of_range": 2, "invalid_json": 1, "missing_field": 1},
        "note": None,
    }
    assert (tmp_path / "rejected" / f"dt={today()}").is_dir(), "the duckdb engine syncs the rejected folder too"
    text = cli("report", "--days", "1", "--engine", "duckdb", "--lake", str(tmp_path))
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    start = lines.index("  rejected events (lake table rejected, by reason): 4")
    assert [line.split() for line in lines[start + 1 : start + 4]] == [["2", "out_of_range"], ["1", "invalid_json"], ["1", "missing_field"]]
    assert QUESTION not in text.out

    table = cli("report", "--days", "1", "--engine", "dynamodb")
    assert table.code == 0, table.err
    assert [line for line in table.out.splitlines() if "rejected" in line] == [f"  rejected events: {REJECTED_NOT_IN_TABLE}"]
    table_json = json.loads(cli("report", "--days", "1", "--engine", "dynamodb", "--json").out)
    assert table_json["rejected"] == {"table": "rejected", "note": REJECTED_NOT_IN_TABLE}

    inspected = cli("dlq", "inspect")
    assert inspected.code == 0, inspected.err
    assert dlq.REJECTIONS_HISTORY in inspected.out


def test_an_empty_dlq_says_where_rejections_are_kept_in_its_one_line(stack: Stack, cli: Cli) -> None:
    result = cli("dlq", "inspect")
    assert result.code == 3 and result.err.strip().count("\n") == 0
    assert "dead-letter queue is empty" in result.err and dlq.REJECTIONS_HISTORY in result.err


# --- DuckDB over rejected files -----------------------------------------------------------------------


def write_json_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def rejected_row(message_id: str, reason: str, day: str, receive: int = 1) -> dict[str, Any]:
    return {"received_day": day, "reason": reason, "message_id": message_id, "receive_count": receive, "excerpt": "<...>"}


def test_duckdb_counts_each_message_once_by_reason_over_json_lines_and_parquet(tmp_path: Path) -> None:
    write_json_lines(
        tmp_path / "rejected" / "dt=2026-03-01" / "a",
        [rejected_row("m-1", "missing_field", "2026-03-01", receive) for receive in (1, 2, 3)]
        + [rejected_row("m-2", "invalid_json", "2026-03-01"), rejected_row("m-old", "too_long", "2026-02-28")],
    )
    write_json_lines(tmp_path / "rejected" / "dt=2026-03-02" / "b", [rejected_row("m-3", "missing_field", "2026-03-01")])
    write_json_lines(tmp_path / "rejected" / "dt=2026-03-09" / "c", [rejected_row("m-late", "invalid_json", "2026-03-02")])
    parquet = tmp_path / "rejected" / "dt=2026-03-02" / "d.parquet"
    connection = duckdb.connect()
    connection.execute(
        f"COPY (SELECT '2026-03-02' AS received_day, 'out_of_range' AS reason, 'm-4' AS message_id, 1 AS receive_count)"
        f" TO '{parquet}' (FORMAT PARQUET)"
    )
    connection.close()
    write_json_lines(tmp_path / "requests" / "dt=2026-03-01" / "e", [{"request_id": "r-1", "request_key": 1, "day": "2026-03-01"}])
    counts = lake.rejected_counts(lake.DuckDBEngine(tmp_path), ["2026-03-01", "2026-03-02"])
    assert counts == RejectedCounts([("missing_field", 2), ("invalid_json", 1), ("out_of_range", 1)], 6)
    assert counts.events == 4
    assert lake.rejected_counts(lake.DuckDBEngine(tmp_path), ["2026-03-03"]) == RejectedCounts([], 0)


def test_a_requests_folder_given_as_the_lake_has_no_rejected_view_files(tmp_path: Path) -> None:
    write_json_lines(tmp_path / "dt=2026-03-01" / "a", [{"request_id": "r-1", "request_key": 1, "day": "2026-03-01"}])
    assert lake.lake_files(tmp_path, lake.REJECTED_TABLE) == ([], [])
    assert lake.rejected_counts(lake.DuckDBEngine(tmp_path), ["2026-03-01"]) == RejectedCounts([], 0)


def test_the_rejected_columns_are_the_processors() -> None:
    assert lake.REJECTED_COLUMNS == processor_lake_module().REJECTED_COLUMNS


# --- the SQL, and Athena ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["athena", "trino", "duckdb"])
def test_rejected_sql_parses_in_each_dialect_reads_the_table_once_with_portable_functions(dialect: str) -> None:
    tree = sqlglot.parse_one(lake.rejected_sql(), read=dialect)
    assert isinstance(tree, expressions.Select)
    assert sql_functions(tree) == {"count"} and sql_functions(tree) <= PORTABLE_FUNCTIONS
    assert [table.name for table in tree.find_all(expressions.Table)] == [lake.REJECTED_TABLE]
    assert len(list(tree.find_all(expressions.Placeholder))) == 4


def athena_answer(rows: list[tuple[str, int, int]]) -> list[dict]:
    info = [{"Name": "reason", "Type": "varchar"}, {"Name": "events", "Type": "bigint"}, {"Name": "receives", "Type": "bigint"}]
    table = [{"Data": [{"VarCharValue": "reason"}, {"VarCharValue": "events"}, {"VarCharValue": "receives"}]}]
    table += [{"Data": [{"VarCharValue": str(value)} for value in row]} for row in rows]
    return [{"ResultSet": {"ResultSetMetadata": {"ColumnInfo": info}, "Rows": table}}]


def test_athena_runs_rejected_sql_in_the_workgroup_with_the_days_as_quoted_literals() -> None:
    athena = ScriptedAthena(["RUNNING", "SUCCEEDED"], athena_answer([("missing_field", 3, 9), ("invalid_json", 1, 3)]))
    engine = lake.AthenaEngine(athena, "ChatAnalytics-dev", "chat_analytics_dev", sleep=lambda _: None)
    counts = lake.rejected_counts(engine, ["2026-03-01", "2026-03-02"])
    assert counts == RejectedCounts([("missing_field", 3), ("invalid_json", 1)], 12)
    assert athena.started["QueryString"] == lake.rejected_sql() and athena.started["WorkGroup"] == "ChatAnalytics-dev"
    assert athena.started["ExecutionParameters"] == ["'2026-03-01'", "'2026-03-03'", "'2026-03-01'", "'2026-03-02'"]


def test_a_rejected_table_that_cannot_be_read_is_one_line_of_the_report_not_an_error() -> None:
    athena = ScriptedAthena(["FAILED"], [], reason="TABLE_NOT_FOUND: line 1:1: Table 'chat_analytics_dev.rejected' does not exist")
    engine = lake.AthenaEngine(athena, "ChatAnalytics-dev", "chat_analytics_dev", sleep=lambda _: None)
    counts = lake.rejected_counts(engine, ["2026-03-01"])
    assert counts.by_reason == [] and "TABLE_NOT_FOUND" in counts.note
    report = build_report([], ["2026-03-01"], top=5)
    report.rejected = counts
    rejected_lines = [line for line in render_text(report).splitlines() if "rejected" in line]
    assert len(rejected_lines) == 1 and rejected_lines[0].startswith(
        "  rejected events: not read from the lake table rejected: athena query"
    )
    assert report.to_json()["rejected"]["events"] is None


def test_the_table_engine_says_in_one_line_that_it_cannot_count_rejections() -> None:
    report = build_report([], ["2026-03-01"], top=5)
    assert [line for line in render_text(report).splitlines() if "rejected" in line] == [f"  rejected events: {REJECTED_NOT_IN_TABLE}"]
    report.rejected = RejectedCounts([], 0)
    assert "rejected events (lake table rejected, by reason): 0" in render_text(report)


def test_rejected_counts_reraises_nothing_but_an_ops_error() -> None:
    class Broken:
        name = "broken"

        def run(self, sql: str, parameters: Any) -> Any:
            raise OpsError("no lake here")

    assert lake.rejected_counts(Broken(), ["2026-03-01"]).note == "not read from the lake table rejected: no lake here"
