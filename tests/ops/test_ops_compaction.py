"""The lake's compaction (sql/compact.sql, ``chat-analytics compact``) and the report over compacted days.

The real processor stores varied traffic in the moto stack (tests/ops/test_ops_lake.py's); its lake rows
are then laid out over several ``dt`` partitions as Firehose would deliver them over days (a request's
later states in later partitions: one day later for some, three days later for others, as a redrive from
the dead-letter queue would), and the report read from the lake must equal the table's report with no
day compacted, some days compacted, every day compacted, after a second compaction (which writes
nothing), and after a row arrives in a compacted day (that day is read raw again). The compaction also
summarizes each day (sql/sections.sql): the report over summarized days, compacted-only days and raw days
mixed must equal the table's too, and a summarized row that a later row supersedes is subtracted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlglot
from sqlglot import expressions

from chat_analytics_ops import compact, lake
from chat_analytics_ops.errors import OpsError
from chat_analytics_ops.report_model import EngineInfo
from tests.ops.conftest import REGION, Cli, Processor, Stack
from tests.ops.test_ops_lake import processor_lake_module, report_json, scalar, send_varied_traffic


def today() -> date:
    return datetime.now(UTC).date()


@pytest.fixture
def spread(stack: Stack, tmp_path: Path) -> tuple[Stack, str, str, Path]:
    """The pipeline's lake rows under ``tmp_path/lake/requests/dt=*/``, spread over the days as Firehose
    would have delivered them (moto writes everything on the day the test runs)."""
    first, last = send_varied_traffic(stack)
    processor = Processor(stack)
    for _ in range(40):
        if processor.drain(rounds=3) == 0 and stack.depth(stack.events_url) == 0:
            break
    assert stack.depth(stack.events_url) == 0 and stack.depth(stack.dlq_url) == 0
    s3 = boto3.client("s3", region_name=REGION)
    copy = tmp_path / "copy"
    # moto writes every object on the day the test runs: a week back is every partition there is (one ListObjectsV2
    # per day and table: a range from 2000 was ~39,000 calls, ~75 s a test)
    lake.sync_partitions(s3, stack.outputs["LakeBucketName"], (today() - timedelta(days=7)).isoformat(), today().isoformat(), copy)
    rows_by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((copy / "requests").rglob("*")):
        if path.is_file():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                rows_by_request[row["request_id"]].append(row)
    for rows in rows_by_request.values():  # a request's states in the order the processor wrote them
        rows.sort(key=lambda row: (row["written_at"] or 0, row["complete"] is True))
    root = tmp_path / "lake"
    by_dt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    tomorrow = today() + timedelta(days=1)
    for position, (_, rows) in enumerate(sorted(rows_by_request.items())):
        day = date.fromisoformat(rows[0]["day"])
        shift = 3 if position % 7 == 2 else 1 if position % 3 == 1 else 0  # the last state: a redrive, a day late, on time
        for index, row in enumerate(rows):
            arrived = min(day + timedelta(days=shift if index == len(rows) - 1 else 0), tomorrow)
            by_dt[arrived.isoformat()].append(row)
    assert len(by_dt) >= 4, "the rows are spread over several partitions"
    for dt, rows in by_dt.items():
        folder = root / "requests" / f"dt={dt}"
        folder.mkdir(parents=True)
        (folder / "object-1").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return stack, first, last, root


def partitions(root: Path, table: str) -> list[str]:
    return sorted({path.name[3:] for path in (root / table).glob("dt=*")})


def test_the_report_is_the_tables_with_no_some_and_every_day_compacted(spread: tuple[Stack, str, str, Path], cli: Cli) -> None:
    _, first, last, root = spread
    argv = ("--from", first, "--to", last)
    table = report_json(cli, *argv, "--engine", "dynamodb")
    assert table["requests"] == 36 and table["unanswered"] == 3 and table["topUnmatched"]

    def from_lake() -> dict[str, Any]:
        return report_json(cli, *argv, "--engine", "duckdb", "--lake", str(root))

    assert from_lake() == table, "nothing compacted: the raw rows over several partitions"
    raw_days = partitions(root, "requests")
    some = compact.compact_directory(root, raw_days[0], raw_days[1])
    assert sorted(some.days) == raw_days[:2] and all(rows <= raw for rows, raw in some.days.values())
    assert from_lake() == table, "some days compacted"
    rest = compact.compact_directory(root, raw_days[0], raw_days[-1])
    assert sorted(rest.days) == raw_days[2:], "the days already compacted are skipped"
    assert partitions(root, "compacted") == raw_days
    late = list((root / "compacted").glob("dt=*/late=1/*.parquet"))
    assert late, "requests whose later states arrived on later days have late rows"
    assert from_lake() == table, "every day compacted and summarized"
    first_dt, last_dt = lake.partition_range([first, last])
    read = lake.lake_days(lake.DuckDBEngine(root), first_dt, last_dt)
    assert read.summarized == [day for day in raw_days if first_dt <= day <= last_dt] and read.compacted == []
    text = cli("report", *argv, "--engine", "duckdb", "--lake", str(root))
    assert text.code == 0 and "partitions read compacted" in text.out, "the report says how much it read compacted"
    assert f"({len(read.summarized)} from their summaries)" in text.out


def test_compaction_is_idempotent(spread: tuple[Stack, str, str, Path]) -> None:
    _, _, _, root = spread
    raw_days = partitions(root, "requests")
    first = compact.compact_directory(root, raw_days[0], raw_days[-1])
    files = {path: path.read_bytes() for path in (root / "compacted").rglob("*.parquet")}
    assert len(files) == len(first.objects) and first.days
    again = compact.compact_directory(root, raw_days[0], raw_days[-1])
    assert again.objects == [] and again.days == {} and "nothing to do" in again.text()
    assert {path: path.read_bytes() for path in (root / "compacted").rglob("*.parquet")} == files


def test_one_row_per_request_and_partition_and_the_latest_is_the_tables_item(spread: tuple[Stack, str, str, Path]) -> None:
    """Reconcile: the compacted rows merge every raw row (their source_rows add up to the raw count), and each
    request's row in its latest partition is exactly its table item (the processor's lake row)."""
    stack, _, _, root = spread
    raw_days = partitions(root, "requests")
    compact.compact_directory(root, raw_days[0], raw_days[-1])
    connection = lake.DuckDBEngine(root).connect()
    raw_rows = scalar(connection, "SELECT count(*) FROM requests")
    assert scalar(connection, "SELECT sum(source_rows) FROM compacted") == raw_rows
    assert scalar(connection, "SELECT count(*) - count(DISTINCT (request_key, dt)) FROM compacted") == 0
    names = [name for name, _ in lake.COLUMNS if name != "written_at"]
    latest = connection.execute(
        f"SELECT {', '.join(names)} FROM compacted QUALIFY row_number() OVER (PARTITION BY request_key ORDER BY dt DESC) = 1"
    )
    columns = [column[0] for column in latest.description]
    from_lake = {row["request_id"]: row for row in (dict(zip(columns, values, strict=True)) for values in latest.fetchall())}
    processor_lake = processor_lake_module()
    from_table = {}
    for item in stack.items():
        row = processor_lake.lake_row(item, 0)
        del row["written_at"]
        from_table[row["request_id"]] = row
    assert from_lake == from_table
    late = scalar(connection, "SELECT count(*) FROM compacted WHERE late = '1'")
    spanning = scalar(
        connection, "SELECT count(*) FROM (SELECT request_key FROM requests GROUP BY request_key HAVING count(DISTINCT dt) > 1)"
    )
    assert late == spanning > 0, "a request's rows in a later partition are marked late"


def test_a_row_delivered_after_its_days_compaction_is_not_lost(spread: tuple[Stack, str, str, Path], cli: Cli) -> None:
    """A row arriving in a compacted day (a copy, a delivery retried past the schedule) makes the day's raw
    count differ from its compacted rows' source_rows: the report reads that day raw again."""
    _, first, last, root = spread
    argv = ("--from", first, "--to", last)
    raw_days = partitions(root, "requests")
    compact.compact_directory(root, raw_days[0], raw_days[-1])
    engine = lake.DuckDBEngine(root)
    first_dt, last_dt = lake.partition_range([first, last])
    before, _, _ = lake.compacted_days(engine, first_dt, last_dt)
    assert before == [day for day in raw_days if first_dt <= day <= last_dt]
    day = raw_days[0]
    late_file = root / "requests" / f"dt={day}" / "object-late"
    extra = json.loads(next((root / "requests" / f"dt={day}").glob("object-1")).read_text().splitlines()[0])
    extra.update(request_id="arrived-late", request_key=424242, day=last, complete=False, question_key=None)
    late_file.write_text(json.dumps(extra) + "\n")
    after, _, _ = lake.compacted_days(engine, first_dt, last_dt)
    assert day not in after and len(after) == len(before) - 1
    with_late = report_json(cli, *argv, "--engine", "duckdb", "--lake", str(root))
    late_file.unlink()
    without = report_json(cli, *argv, "--engine", "duckdb", "--lake", str(root))
    assert with_late["requests"] == without["requests"] + 1, "the late row's request is counted"


def test_a_day_compacted_twice_is_read_raw(spread: tuple[Stack, str, str, Path], cli: Cli) -> None:
    """Two runs racing on one day write it twice: the counts no longer match and the day is read raw."""
    _, first, last, root = spread
    argv = ("--from", first, "--to", last)
    table = report_json(cli, *argv, "--engine", "dynamodb")
    day = partitions(root, "requests")[0]
    compact.compact_directory(root, day, day)
    folder = next((root / "compacted" / f"dt={day}").glob("late=*"))
    original = next(folder.glob("*.parquet"))
    (folder / "copy.parquet").write_bytes(original.read_bytes())
    first_dt, last_dt = lake.partition_range([first, last])
    assert day not in lake.compacted_days(lake.DuckDBEngine(root), first_dt, last_dt)[0]
    assert report_json(cli, *argv, "--engine", "duckdb", "--lake", str(root)) == table


def test_compact_command_on_a_lake_directory_and_on_the_stacks_bucket(stack: Stack, cli: Cli, tmp_path: Path) -> None:
    old = (today() - timedelta(days=3)).isoformat()
    folder = tmp_path / "lake" / "requests" / f"dt={old}"
    folder.mkdir(parents=True)
    row = {name: None for name, _ in lake.COLUMNS} | {"request_id": "r1", "request_key": 7, "day": old, "complete": True}
    (folder / "object").write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    done = cli("compact", "--day", old, "--lake", str(tmp_path / "lake"), "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["days"] == {old: {"rows": 1, "rawRows": 2}}
    assert json.loads(done.out)["summarized"] == {old: 1}, "the day's summary counts its one first-partition row"
    again = cli("compact", "--day", old, "--lake", str(tmp_path / "lake"))
    assert again.code == 0 and "nothing to do" in again.out
    s3 = boto3.client("s3", region_name=REGION)
    bucket = stack.outputs["LakeBucketName"]
    s3.upload_file(str(folder / "object"), bucket, f"requests/dt={old}/object")
    uploaded = cli("compact", "--from", old, "--to", old, "--cache", str(tmp_path / "cache"))
    assert uploaded.code == 0, uploaded.err
    keys = sorted(entry["Key"] for entry in s3.list_objects_v2(Bucket=bucket, Prefix="compacted/")["Contents"])
    assert len(keys) == 2 and all(key.endswith(".parquet") for key in keys)
    assert keys[0].startswith(f"compacted/dt={old}/late=0/") and keys[1].startswith(f"compacted/sections/dt={old}/"), "the day, its summary"
    assert "nothing to do" in cli("compact", "--day", old, "--cache", str(tmp_path / "other-cache")).out, (
        "the bucket's compacted day is seen"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--day", "yesterday"], "--day 'yesterday': expected a day as YYYY-MM-DD"),
        (["--day", "2026-01-01", "--from", "2026-01-01"], "--day and --from/--to: give one of them"),
        (["--from", "2026-01-05", "--to", "2026-01-01"], "--from 2026-01-05 is after --to 2026-01-01"),
    ],
)
def test_compact_options_are_checked(cli: Cli, tmp_path: Path, argv: list[str], message: str) -> None:
    result = cli("compact", *argv, "--lake", str(tmp_path))
    assert result.code != 0 and message in result.err and "Traceback" not in result.err


def test_a_day_not_complete_is_refused(cli: Cli, tmp_path: Path) -> None:
    yesterday = (today() - timedelta(days=1)).isoformat()
    result = cli("compact", "--day", yesterday, "--lake", str(tmp_path))
    assert result.code != 0 and f"{yesterday} is not complete yet" in result.err
    with pytest.raises(OpsError, match="not complete"):
        compact.days_to_compact(None, None, today().isoformat(), today=today())
    assert compact.days_to_compact(None, None, None, today=date(2026, 3, 10)) == ("2026-03-06", "2026-03-08"), "the schedule's range"


@pytest.mark.parametrize("dialect", ["athena", "trino", "duckdb"])
def test_the_compaction_sql_parses_in_each_engines_dialect_and_names_every_column(dialect: str) -> None:
    tree = sqlglot.parse_one(lake.compact_sql(), read=dialect)
    assert isinstance(tree, expressions.Insert) and tree.this.name == lake.COMPACTED_TABLE
    select = tree.expression
    names = [projection.alias_or_name for projection in select.expressions]
    assert names == [name for name, _ in lake.COMPACTED_COLUMNS] + list(lake.COMPACTED_PARTITIONS), (
        "Athena's INSERT: columns, then partitions"
    )
    assert len(list(tree.find_all(expressions.Placeholder))) == len(lake.compact_parameters("2026-01-10", "2026-01-12"))
    assert lake.compact_parameters("2026-01-10", "2026-01-12") == ["2026-01-10", "2026-01-12"] * 2 + ["2025-12-26", "2026-01-12"]


def test_the_report_sql_with_its_compacted_days_parses_and_checks_them() -> None:
    sql = lake.report_sql_for(["2026-01-01", "2026-01-02"])
    assert "('2026-01-01', '2026-01-02')" in sql and lake.COMPACTED_DAYS_MARKER not in sql
    for dialect in ("athena", "duckdb"):
        sqlglot.parse_one(sql, read=dialect)
    assert lake.NO_COMPACTED_DAY in lake.report_sql_for([])
    with pytest.raises(ValueError):
        lake.report_sql_for(["2026-01-01') OR (1=1"])


def test_an_engine_without_the_compacted_table_reads_every_day_raw() -> None:
    class NoTable:
        name = "athena"

        def run(self, sql: str, parameters: Sequence[str | int]) -> tuple[list[dict[str, Any]], EngineInfo]:
            raise OpsError("TABLE_NOT_FOUND: compacted")

    days, note, scanned = lake.compacted_days(NoTable(), "2026-01-01", "2026-01-02")
    assert days == [] and "compacted table not read" in note and scanned is None


def without_engine(report: Any) -> dict[str, Any]:
    figures = report.to_json()
    figures.pop("engine")
    return figures


def test_summarized_compacted_and_raw_days_mixed_give_the_tables_report(spread: tuple[Stack, str, str, Path], cli: Cli) -> None:
    """Every mixture: a summarized day, a compacted day without its summary (deleted, as an erasure does), raw
    days, a summary written twice (its count no longer the day's: the day is read from its rows), and a day's
    summary left after a row of the day was removed from its compacted rows (the count again)."""
    _, first, last, root = spread
    argv = ("--from", first, "--to", last)
    table = report_json(cli, *argv, "--engine", "dynamodb")
    raw_days = partitions(root, "requests")
    assert len(raw_days) >= 4
    compact.compact_directory(root, raw_days[0], raw_days[-2])  # the last day stays raw
    unsummarized = raw_days[1]
    for path in (root / lake.SECTIONS_PREFIX / f"dt={unsummarized}").glob("*.parquet"):
        path.unlink()
    twice = raw_days[2]
    [summary] = (root / lake.SECTIONS_PREFIX / f"dt={twice}").glob("*.parquet")
    (summary.parent / "copy.parquet").write_bytes(summary.read_bytes())
    first_dt, last_dt = lake.partition_range([first, last])
    read = lake.lake_days(lake.DuckDBEngine(root), first_dt, last_dt)
    assert raw_days[0] in read.summarized and unsummarized in read.compacted and twice in read.compacted
    assert raw_days[-1] not in read.summarized + read.compacted
    assert report_json(cli, *argv, "--engine", "duckdb", "--lake", str(root)) == table
    again = compact.compact_directory(root, raw_days[0], raw_days[-2])
    assert again.days == {} and sorted(again.summarized) == [unsummarized], "a day without its summary is summarized again"
    assert unsummarized in lake.lake_days(lake.DuckDBEngine(root), first_dt, last_dt).summarized
    assert report_json(cli, *argv, "--engine", "duckdb", "--lake", str(root)) == table


def lake_row(request_key: int, day: str, **values: Any) -> dict[str, Any]:
    return {name: None for name, _ in lake.COLUMNS} | {"request_id": f"r{request_key}", "request_key": request_key, "day": day} | values


def write_partition(root: Path, dt: str, rows: list[dict[str, Any]]) -> None:
    folder = root / "requests" / f"dt={dt}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"object-{len(list(folder.iterdir()))}").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_a_summarized_row_superseded_by_a_later_row_is_subtracted_and_its_values_dropped(tmp_path: Path) -> None:
    """A request summarized on day D whose later row (D + 3, a redrive) holds other values: the summary counted
    the first row's values, the report subtracts them (the request is counted once, with the later row's values)
    and drops the keys whose count comes to 0: the first row's answer latency must not be the maximum, nor its
    unmatched question listed with 0 requests. The same report as over the compacted rows."""
    day = date(2026, 3, 2)
    d, d3 = day.isoformat(), (day + timedelta(days=3)).isoformat()
    common = {"source": "web", "query_ingest_lag_ms": 120, "response_ingest_lag_ms": 80}
    first = lake_row(1, d, complete=False, match_type="none", match_score=3.0, question_key="q-first", latency_ms=9000.0, **common)
    later = lake_row(1, d, complete=True, match_type="full", match_score=97.0, question_key="q-first", latency_ms=40.0, **common)
    other = [
        lake_row(key, d, complete=True, match_type="none", match_score=1.0, question_key="q-other", latency_ms=30.0 + key, **common)
        for key in range(2, 6)
    ]
    write_partition(tmp_path, d, [first, *other])
    write_partition(tmp_path, d3, [later])
    compact.compact_directory(tmp_path, d, d)  # D compacted and summarized; D + 3 stays raw
    engine = lake.DuckDBEngine(tmp_path)
    first_dt, last_dt = lake.partition_range([d])
    assert lake.lake_days(engine, first_dt, last_dt).summarized == [d]
    summarized = lake.lake_report(engine, [d], top=10)
    from_rows = lake.lake_report(engine, [d], top=10, summaries=False)
    assert without_engine(summarized) == without_engine(from_rows)
    assert summarized.requests == 5, "the superseded row is subtracted: request 1 counted once"
    assert summarized.answer_latency.max == 40.0, "the later row's, not the superseded row's 9000 ms (its key's count is 0)"
    assert summarized.top_unmatched == [("q-other", 4)], "q-first: 1 - 1 = 0 requests, not listed"
    assert summarized.matches == {"full": 1, "partial": 0, "none": 4}


def test_a_count_below_zero_is_an_error_not_a_report() -> None:
    rows = [
        {"section": "day", "day_number": 20260302, "canary": 0, "has_query": 1, "match_code": 1, "score_bin": 0, "n": -1, "score_sum": -3.0}
    ]
    with pytest.raises(OpsError, match="counts -1"):
        lake.report_from_rows(rows, ["2026-03-02"])


@pytest.mark.parametrize("dialect", ["athena", "trino", "duckdb"])
def test_the_sections_sql_parses_in_each_engines_dialect_and_names_every_column(dialect: str) -> None:
    tree = sqlglot.parse_one(lake.sections_sql(), read=dialect)
    assert isinstance(tree, expressions.Insert) and tree.this.name == lake.SECTIONS_TABLE
    names = [projection.alias_or_name for projection in tree.expression.expressions]
    assert names == [name for name, _ in lake.SECTIONS_COLUMNS] + list(lake.SECTIONS_PARTITIONS), "Athena's INSERT: columns, then dt"
    assert len(list(tree.find_all(expressions.Placeholder))) == len(lake.sections_parameters("2026-01-10", "2026-01-12"))


def test_the_report_sql_leaves_out_the_block_of_an_empty_day_list() -> None:
    """Athena scans ``late_row`` again for each join on its keys: a day list that is empty has no block."""
    both = lake.report_sql_for(["2026-01-01"], ["2026-01-02"])
    assert both.count("FROM late_row") == 3
    for compacted, summarized, left in ((["2026-01-01"], [], "superseded"), ([], ["2026-01-02"], "AS later"), ([], [], "")):
        sql = lake.report_sql_for(compacted, summarized)
        assert sql.count("FROM late_row") == 1 + len([days for days in (compacted, summarized) if days])
        assert not left or left not in sql
        for dialect in ("athena", "duckdb"):
            sqlglot.parse_one(sql, read=dialect)


def test_the_report_sql_takes_the_summarized_days_apart() -> None:
    sql = lake.report_sql_for(["2026-01-01"], ["2026-01-02", "2026-01-03"])
    assert "('2026-01-01')" in sql and "('2026-01-02', '2026-01-03')" in sql and lake.SUMMARIZED_DAYS_MARKER not in sql
    for dialect in ("athena", "duckdb"):
        sqlglot.parse_one(sql, read=dialect)
    with pytest.raises(OpsError, match="both compacted and summarized"):
        lake.report_sql_for(["2026-01-01"], ["2026-01-01"])
    with pytest.raises(ValueError):
        lake.report_sql_for([], ["2026-01-01') OR (1=1"])


def test_an_engine_without_the_sections_table_reads_the_compacted_rows() -> None:
    statements: list[str] = []

    class NoSections:
        name = "athena"

        def run(self, sql: str, parameters: Sequence[str | int]) -> tuple[list[dict[str, Any]], EngineInfo]:
            statements.append(sql)
            if "FROM compacted_sections" in sql:
                raise OpsError("TABLE_NOT_FOUND: compacted_sections")
            row = {"dt": "2026-01-01", "raw_rows": 3, "compacted_rows": 3, "first_rows": 2, "summarized_rows": None}
            return [row], EngineInfo(self.name, 0.0, 10, "")

    read = lake.lake_days(NoSections(), "2026-01-01", "2026-01-02")
    assert read.compacted == ["2026-01-01"] and read.summarized == [] and "compacted_sections table not read" in read.note
    assert len(statements) == 2
