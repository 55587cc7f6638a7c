"""report --engine duckdb|athena: the event lake's SQL gives the table's report, from the same pipeline.

The synthesized stack is deployed in moto (Firehose stood in for, writing JSON lines under the
template's ``requests/dt=!{timestamp:yyyy-MM-dd}/`` prefix), the real processor stores events through the
event-source-mapping emulator, and the CLI reports the same days from the table (``dynamodb``) and from
the lake (``duckdb``): every figure must agree. Athena cannot run here; its engine is tested for what it
sends and how it reads an answer, and the SQL is checked in Athena's dialect with sqlglot.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
import sqlglot
from sqlglot import expressions

from chat_analytics_ops import lake
from chat_analytics_ops.contract import CANARY_SOURCE
from chat_analytics_ops.errors import OpsError
from chat_analytics_ops.report_model import EngineInfo
from testkit.events import query_event, response_event
from tests.ops.conftest import REGION, Cli, Processor, Stack


def processor_lake_module() -> Any:
    """The processor's lake module (lambda_src/chat_processor/lake.py), the authority for the lake's columns."""
    from chat_processor import lake as processor_lake

    return processor_lake


def day_start(days_ago: int) -> int:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((today - timedelta(days=days_ago)).timestamp() * 1000)


def send_varied_traffic(stack: Stack) -> tuple[str, str]:
    """Requests over three days in every shape the processor meets; returns the report's (first, last) day."""
    events: list[dict[str, Any]] = []
    questions = [
        "Does she know Python?",
        "does she know PYTHON",
        "  Kubernetes?? ",
        "„Ｒｕｓｔ“ experience…",
        "Straße?",
        "İstanbul office?",
    ]
    for days_ago in (2, 1, 0):
        base = day_start(days_ago) + 3_600_000
        for index in range(12):
            request_id = f"r-{days_ago}-{index:02d}"
            question = questions[index % len(questions)]
            match = ("full", "partial", "none", "none")[index % 4]
            score = (92.5, 47.0, 3.5, 0.0)[index % 4] + days_ago
            query = query_event(request_id, base + index * 1000, question, source="cv-worker", sessionId=f"s-{index % 3}")
            response = response_event(request_id, base + index * 1000 + 10 + index, match, score, latencyMs=8 + index % 5)
            if index == 10:
                events.append(query)  # never answered
            elif index == 11:
                events.append(response)  # the answer without its question
            elif index % 3 == 0:
                events += [response, query]  # the answer overtakes its question
            else:
                events += [query, response]
    events.append(query_event("canary-1", day_start(0) + 60_000, "canary?", source=CANARY_SOURCE))
    events.append(response_event("canary-1", day_start(0) + 60_010, "full", 100, source=CANARY_SOURCE))
    for position, event in enumerate(events):
        stack.send(event, group=event["requestId"])
        if position % 5 == 0:  # a replay: the same event again under another deduplication id
            stack.send(event, group=event["requestId"], dedup=f"{event['requestId']}:{event['eventType']}:again")
    first = datetime.fromtimestamp(day_start(2) / 1000, UTC).date().isoformat()
    last = datetime.fromtimestamp(day_start(0) / 1000, UTC).date().isoformat()
    return first, last


@pytest.fixture
def filled(stack: Stack) -> tuple[Stack, str, str]:
    first, last = send_varied_traffic(stack)
    processor = Processor(stack)
    for _ in range(40):
        if processor.drain(rounds=3) == 0 and stack.depth(stack.events_url) == 0:
            break
    assert stack.depth(stack.events_url) == 0 and stack.depth(stack.dlq_url) == 0
    return stack, first, last


def report_json(cli: Cli, *argv: str) -> dict[str, Any]:
    result = cli("report", "--json", *argv)
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    payload.pop("engine")
    payload.pop("rejected")  # what only the lake engines count: tests/ops/test_ops_rejected.py
    return payload


def test_the_lake_report_equals_the_table_report_on_the_same_pipeline(filled: tuple[Stack, str, str], cli: Cli, tmp_path: Path) -> None:
    _, first, last = filled
    table = report_json(cli, "--from", first, "--to", last, "--engine", "dynamodb")
    from_lake = report_json(cli, "--from", first, "--to", last, "--engine", "duckdb", "--cache", str(tmp_path))
    assert table["requests"] == 36 and table["canariesExcluded"] == 1 and table["unanswered"] == 3 and table["responsesWithoutQuery"] == 3
    assert table["topUnmatched"], "the traffic has unmatched questions"
    assert from_lake == table
    again = report_json(cli, "--from", first, "--to", last, "--engine", "duckdb", "--lake", str(tmp_path))
    assert again == table, "the copied files alone give the same report"
    text = cli("report", "--from", first, "--to", last, "--engine", "duckdb", "--cache", str(tmp_path))
    assert text.code == 0 and "read by duckdb" in text.out and "0 downloaded" in text.out, "the second run reuses the copies"
    stale = tmp_path / "requests" / f"dt={last}" / "an-object-the-bucket-no-longer-has"
    stale.write_text(json.dumps({"request_id": "gone", "request_key": 1, "day": last, "query_timestamp": 1, "complete": False}) + "\n")
    assert report_json(cli, "--from", first, "--to", last, "--engine", "duckdb", "--cache", str(tmp_path)) == table
    assert not stale.exists(), "the copy follows the bucket"


def scalar(connection: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The one value of a one-row, one-column query."""
    row = connection.execute(sql).fetchone()
    assert row is not None and len(row) == 1, sql
    return row[0]


def test_reconcile_every_table_item_is_one_request_in_the_lake(filled: tuple[Stack, str, str], tmp_path: Path) -> None:
    """No request missing or doubled: the lake's final state per request is exactly the table's items."""
    stack, _, _ = filled
    s3 = boto3.client("s3", region_name=REGION)
    keys = [entry["Key"] for entry in s3.list_objects_v2(Bucket=stack.outputs["LakeBucketName"])["Contents"]]
    assert keys and all(key.startswith(f"requests/dt={datetime.now(UTC).date().isoformat()}/ChatAnalytics-dev-requests-") for key in keys)
    # moto writes every object on the day the test runs (asserted above): a week back is every partition there is; a
    # range from 2000 cost one ListObjectsV2 per day and prefix (~29,000 calls, ~75 s)
    today = datetime.now(UTC).date()
    lake.sync_partitions(s3, stack.outputs["LakeBucketName"], (today - timedelta(days=7)).isoformat(), today.isoformat(), tmp_path)
    connection = lake.DuckDBEngine(tmp_path).connect()
    total_rows = scalar(connection, "SELECT count(*) FROM requests")
    names = [name for name, _ in lake.COLUMNS if name != "written_at"]
    finals = connection.execute(
        f"SELECT {', '.join(f'max_by({name}, CASE WHEN complete THEN 1 ELSE 0 END) AS {name}' for name in names)} FROM requests GROUP BY request_key"
    )
    columns = [column[0] for column in finals.description]
    from_lake = {row["request_id"]: row for row in (dict(zip(columns, values, strict=True)) for values in finals.fetchall())}
    processor_lake = processor_lake_module()
    from_table = {}
    for item in stack.items():
        row = processor_lake.lake_row(item, 0)
        del row["written_at"]
        from_table[row["request_id"]] = row
    assert total_rows > len(from_table), "replays and requests stored apart gave more rows than requests"
    assert from_lake == from_table


def test_schema_versions_mix_in_one_view(tmp_path: Path) -> None:
    """Parquet written without a later column, JSON lines with every column: the view reads both by name."""
    partition = tmp_path / "requests" / "dt=2026-03-02"
    partition.mkdir(parents=True)
    connection = duckdb.connect()
    old_columns = [name for name, _ in lake.COLUMNS if name not in {"session_id", "written_at", "model"}]
    connection.execute(
        f"COPY (SELECT 'old-1' AS request_id, 11::BIGINT AS request_key, '2026-03-02' AS day, 1 AS schema_version, NULL::VARCHAR AS source, "
        "'q' AS query, 'q' AS question_key, 1::BIGINT AS query_timestamp, 2::BIGINT AS query_ingested_at, 'none' AS match_type, "
        "5.0::DOUBLE AS match_score, 'r' AS reasoning, 3.0::DOUBLE AS latency_ms, 4::BIGINT AS response_timestamp, "
        "6::BIGINT AS response_ingested_at, 3::BIGINT AS response_latency_ms, 1::BIGINT AS query_ingest_lag_ms, "
        "2::BIGINT AS response_ingest_lag_ms, true AS complete) "
        f"TO '{partition / 'old.parquet'}' (FORMAT parquet)"
    )
    assert len(old_columns) == 19
    new = {name: None for name, _ in lake.COLUMNS} | {"request_id": "new-1", "request_key": 12, "day": "2026-03-02", "query": "q2"}
    new |= {"question_key": None, "query_timestamp": 1, "query_ingest_lag_ms": 0, "complete": False, "session_id": "s", "written_at": 9}
    new["extra_later_column"] = 1
    (partition / "new-object").write_text(json.dumps(new) + "\n")
    rows, _ = lake.DuckDBEngine(tmp_path).run(lake.report_sql(), ["2026-03-01", "2026-03-05", 20260302, 20260302, 10])
    report = lake.report_from_rows(rows, ["2026-03-02"])
    assert (report.requests, report.queries, report.responses, report.unanswered) == (2, 2, 1, 1)
    assert report.top_unmatched == [("q", 1)]


def test_an_empty_lake_reports_zeros(tmp_path: Path) -> None:
    report = lake.lake_report(lake.DuckDBEngine(tmp_path), ["2026-03-01", "2026-03-02"], top=5)
    assert report.requests == 0 and [day.day for day in report.per_day] == ["2026-03-01", "2026-03-02"]
    assert report.answer_latency.count == 0 and report.top_unmatched == []


def test_partition_range_reads_late_rows_but_not_the_future() -> None:
    today = datetime(2026, 11, 29, tzinfo=UTC).date()
    assert lake.partition_range(["2026-11-01", "2026-11-02"], today=today) == ("2026-10-31", "2026-11-16")
    assert lake.partition_range(["2026-11-20", "2026-11-29"], today=today) == ("2026-11-19", "2026-11-30")


def test_the_lake_columns_are_the_processors() -> None:
    assert lake.COLUMNS == processor_lake_module().LAKE_COLUMNS


# --- the SQL in Athena's dialect ----------------------------------------------------------------------

# Functions report.sql may call: each is documented alike for Athena engine version 3 (Trino's functions,
# https://docs.aws.amazon.com/athena/latest/ug/functions-env3.html) and for DuckDB. A new one must be
# checked in both before it is added here. Not least() and greatest(): DuckDB skips NULL arguments, Trino
# returns NULL (https://trino.io/docs/current/functions/comparison.html#greatest-and-least).
PORTABLE_FUNCTIONS = {"max_by", "max", "replace", "floor", "ceil", "coalesce", "count", "sum", "row_number", "grouping"}


def sql_functions(tree: expressions.Expr) -> set[str]:
    names = set()
    for node in tree.walk():
        if isinstance(node, expressions.Anonymous):
            names.add(str(node.name).lower())
        elif isinstance(node, expressions.Func) and not isinstance(
            node, expressions.Cast | expressions.Case | expressions.If | expressions.Connector | expressions.Paren
        ):  # CASE's branches and AND/OR are Func nodes to sqlglot; they are syntax, not functions
            names.add(node.sql_name().lower())
    return names


@pytest.mark.parametrize("dialect", ["athena", "trino", "duckdb"])
def test_report_sql_parses_in_each_engines_dialect(dialect: str) -> None:
    tree = sqlglot.parse_one(lake.report_sql(), read=dialect)
    assert isinstance(tree, expressions.Select)
    assert sql_functions(tree) <= PORTABLE_FUNCTIONS | {"argmax", "arg_max"}, "sqlglot names max_by ArgMax in some dialects"


def _late_partition_read(table: expressions.Table) -> str | None:
    """The ``late`` partition a read of ``compacted`` is limited to by its WHERE (``late = '0'`` or ``'1'``)."""
    select = table.find_ancestor(expressions.Select)
    where = select.args.get("where") if select else None
    for equal in where.find_all(expressions.EQ) if where else ():
        if isinstance(equal.this, expressions.Column) and equal.this.name == "late":
            return str(equal.expression.name)
    return None


def _reads_only_the_request_keys(table: expressions.Table) -> bool:
    """Whether ``table`` is read by a ``SELECT [DISTINCT] request_key`` (the keys, no other column): the keys a
    compacted first-partition row is left out for (DISTINCT, a left join) or subtracted for (an IN subquery)."""
    select = table.find_ancestor(expressions.Select)
    return select is not None and [projection.alias_or_name for projection in select.expressions] == ["request_key"]


def _days_read(table: expressions.Table) -> set[str]:
    """The day lists (``'compacted days'``, ``'summarized days'``) a read of ``compacted`` is limited to."""
    select = table.find_ancestor(expressions.Select)
    where = select.args.get("where") if select else None
    return {str(literal.this) for literal in where.find_all(expressions.Literal) if str(literal.this).endswith(" days")} if where else set()


def test_report_sql_uses_only_portable_functions_and_one_scan() -> None:
    """Athena bills the bytes each table reference scans and inlines every WITH clause, so a CTE read twice
    is computed (and its tables scanned) twice (docs/architecture.md). The lake table is read once; ``compacted``
    twice, once per ``late`` partition (disjoint: each of its bytes is scanned once); every CTE once, but
    ``late_row``, whose second reference reads only its request keys (the DISTINCT keys a compacted
    first-partition row is left out for)."""
    tree = sqlglot.parse_one(lake.report_sql(), read="athena")
    functions = sql_functions(tree)
    assert functions, "the walk found the functions"
    unknown = {name for name in functions if name not in PORTABLE_FUNCTIONS and name not in {"argmax", "arg_max"}}
    assert not unknown, f"not known to mean the same on Athena and DuckDB: {sorted(unknown)}"
    tables = [table.name for table in tree.find_all(expressions.Table) if table.name == lake.TABLE]
    assert tables == [lake.TABLE], "Athena bills each scan: the lake table is read once"
    compacted = [table for table in tree.find_all(expressions.Table) if table.name == "compacted"]
    assert sorted((_late_partition_read(table) or "", sorted(_days_read(table))) for table in compacted) == [
        ("0", ["compacted days"]),
        ("0", ["summarized days"]),
        ("1", ["compacted days", "summarized days"]),
    ], "compacted is read once per late partition and day list, each read limited to its own: no byte scanned twice"
    sections = [table for table in tree.find_all(expressions.Table) if table.name == lake.SECTIONS_TABLE]
    assert len(sections) == 1 and _days_read(sections[0]) == {"summarized days"}, "the summaries are read once"
    ctes = {cte.alias: 0 for cte in tree.find_all(expressions.CTE)}
    key_reads = {cte: 0 for cte in ctes}
    for table in tree.find_all(expressions.Table):
        if table.name in ctes:
            ctes[table.name] += 1
            key_reads[table.name] += _reads_only_the_request_keys(table)
    assert "late_row" in ctes, "the late rows are merged in a CTE of their own"
    assert ctes.pop("late_row") == 3 and key_reads["late_row"] == 2, (
        "late_row is read three times: once merged, twice for its request keys only (lake.py leaves out the block of"
        " an empty day list: tests/ops/test_ops_compaction.py)"
    )
    assert ctes.pop("report_days") == 2, "the report's days: a constant row (no table), read by the requests and the summaries"
    assert ctes and all(count == 1 for count in ctes.values()), f"Athena inlines WITH: each CTE must be read once, {ctes}"
    assert len(list(tree.find_all(expressions.Placeholder))) == 5


# --- Athena -------------------------------------------------------------------------------------------


NO_COMPACTED_DAYS: list[dict[str, Any]] = [  # GetQueryResults pages: Athena's JSON
    {
        "ResultSet": {
            "Rows": [{"Data": [{"VarCharValue": name} for name in ("dt", "raw_rows", "compacted_rows")]}],
            "ResultSetMetadata": {
                "ColumnInfo": [
                    {"Name": "dt", "Type": "varchar"},
                    {"Name": "raw_rows", "Type": "bigint"},
                    {"Name": "compacted_rows", "Type": "bigint"},
                ]
            },
        }
    }
]


class ScriptedAthena:
    """What the engine asks Athena, and Athena's answers: states in turn, then results in pages."""

    def __init__(self, states: list[str], pages: list[dict], reason: str = "") -> None:
        self.states, self.pages, self.reason = list(states), pages, reason
        self.started: dict[str, Any] = {}
        self.queries: list[str] = []
        self.stopped: list[str] = []

    def start_query_execution(self, **kwargs: Any) -> dict:
        self.started = kwargs
        self.queries.append(kwargs["QueryString"])
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        status: dict[str, Any] = {"State": state}
        if self.reason:
            status["StateChangeReason"] = self.reason
        return {"QueryExecution": {"Status": status, "Statistics": {"DataScannedInBytes": 123_456}}}

    def stop_query_execution(self, QueryExecutionId: str) -> dict:
        self.stopped.append(QueryExecutionId)
        return {}

    def get_paginator(self, name: str) -> Any:
        assert name == "get_query_results"
        # The report asks first which days are compacted (sql/compacted_days.sql): none, here.
        pages = NO_COMPACTED_DAYS if self.started.get("QueryString") == lake.compacted_days_sql() else self.pages

        class Paginator:
            def paginate(self, **kwargs: Any) -> list[dict]:
                return pages

        return Paginator()


def athena_pages(rows: list[dict[str, Any]], page_size: int = 4) -> list[dict]:
    """DuckDB's rows as Athena answers them: text cells, a header row first, the types in the metadata."""
    names = list(rows[0])
    types = {"section": "varchar", "day_number": "integer", "canary": "integer", "has_query": "integer", "match_code": "integer"}
    types |= {"score_bin": "integer"}
    types |= {"value": "double", "question": "varchar", "score_sum": "double"}
    info = [{"Name": name, "Type": types.get(name, "bigint")} for name in names]

    def cell(value: Any) -> dict:
        if value is None:
            return {}
        return {"VarCharValue": str(value).lower() if isinstance(value, bool) else str(value)}

    table = [{"Data": [{"VarCharValue": name} for name in names]}] + [{"Data": [cell(row[name]) for name in names]} for row in rows]
    return [
        {"ResultSet": {"ResultSetMetadata": {"ColumnInfo": info}, "Rows": table[i : i + page_size]}}
        for i in range(0, len(table), page_size)
    ]


def test_athena_runs_report_sql_in_the_workgroup_and_reads_every_page(filled: tuple[Stack, str, str], tmp_path: Path) -> None:
    stack, first, last = filled
    days = [first, (datetime.fromisoformat(first) + timedelta(days=1)).date().isoformat(), last]
    s3 = boto3.client("s3", region_name=REGION)
    lake.sync_partitions(s3, stack.outputs["LakeBucketName"], *lake.partition_range(days), tmp_path)
    local = lake.DuckDBEngine(tmp_path)
    expected = lake.lake_report(local, days, top=5)
    rows, _ = local.run(lake.report_sql(), [*lake.partition_range(days), lake.day_number(first), lake.day_number(last), 5])
    athena = ScriptedAthena(["QUEUED", "RUNNING", "SUCCEEDED"], athena_pages(rows))
    engine = lake.AthenaEngine(athena, "ChatAnalytics-dev", "chat_analytics_dev", sleep=lambda _: None)
    report = lake.lake_report(engine, days, top=5)
    assert athena.queries[0] == lake.compacted_days_sql()  # which days the compacted table holds: none here
    assert athena.started["QueryString"] == lake.report_sql_for([])
    assert athena.started["WorkGroup"] == "ChatAnalytics-dev" and athena.started["QueryExecutionContext"] == {
        "Database": "chat_analytics_dev"
    }
    first_dt, last_dt = lake.partition_range(days)
    assert athena.started["ExecutionParameters"] == [f"'{first_dt}'", f"'{last_dt}'", first.replace("-", ""), last.replace("-", ""), "5"]
    # Two queries, each scanning the scripted 123,456 bytes; the detail says how many partitions were compacted.
    engine_info = report.engine
    assert engine_info is not None, "a lake report names its engine"
    assert engine_info == EngineInfo("athena", engine_info.seconds, 2 * 123_456, engine_info.detail)
    assert engine_info.detail.startswith("query q-1; 0 of the ") and engine_info.detail.endswith(" partitions read compacted")
    assert {**report.to_json(), "engine": None} == {**expected.to_json(), "engine": None}


def test_a_failed_athena_query_is_one_line_and_a_slow_one_is_stopped() -> None:
    failed = lake.AthenaEngine(ScriptedAthena(["FAILED"], [], reason="COLUMN_NOT_FOUND:\n line 3"), "wg", "db", sleep=lambda _: None)
    with pytest.raises(OpsError, match=r"^athena query q-1 failed: COLUMN_NOT_FOUND: line 3$"):
        failed.run("SELECT 1", [])
    slow_athena = ScriptedAthena(["RUNNING"], [])
    slow = lake.AthenaEngine(slow_athena, "wg", "db", timeout_s=0.0, sleep=lambda _: None)
    with pytest.raises(OpsError, match="did not finish within 0 s"):
        slow.run("SELECT 1", [])
    assert slow_athena.stopped == ["q-1"]


def test_athena_parameters_are_quoted_literals() -> None:
    assert lake.athena_literal("2026-03-01") == "'2026-03-01'"
    assert lake.athena_literal("it's") == "'it''s'"
    assert lake.athena_literal(10) == "10"


def test_engine_options_are_checked(stack: Stack, cli: Cli, tmp_path: Path) -> None:
    result = cli("report", "--engine", "athena", "--lake", str(tmp_path))
    assert result.code != 0 and result.err.count("\n") == 1 and "--lake and --cache are for --engine duckdb" in result.err
    result = cli("report", "--engine", "duckdb", "--lake", str(tmp_path / "missing"))
    assert result.code != 0 and "not a directory" in result.err
    result = cli("report", "--days", "3", "--from", "2026-01-01")
    assert result.code != 0 and "--from or --days" in result.err
    result = cli("report", "--days", "400")
    assert result.code != 0 and "the lake engines take longer ranges" in result.err
    result = cli("report", "--days", "400", "--engine", "duckdb", "--lake", str(tmp_path), "--json")
    assert result.code == 0 and len(json.loads(result.out)["perDay"]) == 400


def test_duckdb_missing_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(OpsError, match=r"pip install 'chat-analytics-ops\[lake\]'"):
        lake.DuckDBEngine(tmp_path).connect()


def test_report_engine_athena_through_the_cli_against_the_deployed_stack(filled: tuple[Stack, str, str], cli: Cli, tmp_path: Path) -> None:
    """The CLI finds the workgroup and database in the stack's outputs and moto's Athena (which runs no
    query) answers with what report.sql returns on DuckDB for the same files: the same report comes out."""
    from moto.athena.models import QueryResults, athena_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    _, first, last = filled
    from_lake = report_json(cli, "--from", first, "--to", last, "--engine", "duckdb", "--cache", str(tmp_path))
    days = [first, (datetime.fromisoformat(first) + timedelta(days=1)).date().isoformat(), last]
    rows, _ = lake.DuckDBEngine(tmp_path).run(
        lake.report_sql(), [*lake.partition_range(days), lake.day_number(first), lake.day_number(last), 10]
    )
    [page] = athena_pages(rows, page_size=10_000)
    result = page["ResultSet"]
    no_compacted_days = NO_COMPACTED_DAYS[0]["ResultSet"]
    queue = athena_backends[DEFAULT_ACCOUNT_ID][REGION].query_results_queue
    for answer in (no_compacted_days, result):  # which days are compacted (none), then the report
        queue.append(QueryResults(answer["Rows"], answer["ResultSetMetadata"]["ColumnInfo"]))
    text = cli("report", "--from", first, "--to", last, "--engine", "athena")
    assert text.code == 0, text.err
    assert "read by athena" in text.out
    for answer in (no_compacted_days, result):
        queue.append(QueryResults(answer["Rows"], answer["ResultSetMetadata"]["ColumnInfo"]))
    assert report_json(cli, "--from", first, "--to", last, "--engine", "athena") == from_lake
    executions = athena_backends[DEFAULT_ACCOUNT_ID][REGION].executions
    queries = [execution.query for execution in executions.values()]
    assert queries[:2] == [lake.compacted_days_sql(), lake.report_sql_for([])]
    assert {execution.workgroup and execution.workgroup.name for execution in executions.values()} == {"ChatAnalytics-dev"}


def test_a_lake_chart_draws_from_the_lake_figures(filled: tuple[Stack, str, str], cli: Cli, tmp_path: Path) -> None:
    _, first, last = filled
    chart = tmp_path / "lake.png"
    result = cli("report", "--from", first, "--to", last, "--engine", "duckdb", "--cache", str(tmp_path / "cache"), "--chart", str(chart))
    assert result.code == 0, result.err
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_report_engine_athena_against_a_stack_without_a_working_athena_is_one_line(stack: Stack, cli: Cli) -> None:
    """moto's Athena (the local stack's) runs no query and answers each one "SUCCEEDED" with nothing: no
    rows and no columns. Real Athena describes the columns of every SELECT's result, even one without rows
    (ResultSetMetadata, https://docs.aws.amazon.com/athena/latest/APIReference/API_ResultSetMetadata.html):
    an answer without columns is refused instead of printed as a report of zeros."""
    for argv in ([], ["--json"]):
        result = cli("report", "--engine", "athena", *argv)
        assert result.code == 1
        assert result.out == ""
        line = result.err.strip()
        assert "\n" not in line and "Traceback" not in line
        assert line.startswith("chat-analytics: athena query ") and "without a result (no columns" in line
        assert "runs no queries" in line and "use --engine duckdb" in line


def test_report_engine_athena_in_a_workgroup_that_does_not_exist_is_one_line(stack: Stack, cli: Cli) -> None:
    """A stack whose workgroup is gone (or an endpoint without it): Athena (and moto) refuse the query; one
    line names the workgroup."""
    boto3.client("athena", region_name=REGION).delete_work_group(WorkGroup=stack.outputs["AthenaWorkGroupName"], RecursiveDeleteOption=True)
    result = cli("report", "--engine", "athena")
    assert result.code == 1 and result.out == ""
    line = result.err.strip()
    assert "\n" not in line
    assert line.startswith(f"chat-analytics: athena workgroup {stack.outputs['AthenaWorkGroupName']} not usable at ")
    assert line.endswith("WorkGroup does not exist (is the stack deployed with its event lake? or use --engine duckdb)")


def test_an_athena_answer_without_columns_is_refused_and_one_with_columns_but_no_rows_is_empty() -> None:
    header_only = [
        {
            "ResultSet": {
                "ResultSetMetadata": {"ColumnInfo": [{"Name": "section", "Type": "varchar"}]},
                "Rows": [{"Data": [{"VarCharValue": "section"}]}],
            }
        }
    ]
    engine = lake.AthenaEngine(ScriptedAthena(["SUCCEEDED"], header_only), "wg", "db", sleep=lambda _: None)
    assert engine.run("SELECT section FROM requests", [])[0] == []  # a real empty result: no rows
    nothing = [{"ResultSet": {"ResultSetMetadata": {"ColumnInfo": []}, "Rows": []}}]
    engine = lake.AthenaEngine(ScriptedAthena(["SUCCEEDED"], nothing), "wg", "db", sleep=lambda _: None)
    with pytest.raises(OpsError, match=r"^athena query q-1 'succeeded' without a result \(no columns"):
        engine.run("SELECT section FROM requests", [])


def test_a_duckdb_session_inside_a_session_keeps_the_outer_connection(tmp_path: Path) -> None:
    """``lake_report`` opens a session of its own; called inside a caller's session (a benchmark timing several
    reports over one set of views) it must use that one and leave it open, not close it under the caller."""
    engine = lake.DuckDBEngine(tmp_path)
    with engine.session():
        outer = engine._session
        with engine.session():
            assert engine._session is outer
            rows, _ = engine.run("SELECT count(*) AS n FROM requests", [])
        assert engine._session is outer, "the inner session left the outer one open"
        rows, _ = engine.run("SELECT count(*) AS n FROM requests", [])
        assert rows == [{"n": 0}]
    assert engine._session is None
