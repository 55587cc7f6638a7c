"""report: figures from the byDay index as text, JSON and a PNG chart."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import pytest

from chat_analytics_ops import cli as cli_module
from chat_analytics_ops import lake
from chat_analytics_ops.cli import build_parser, report_engine
from chat_analytics_ops.contract import CANARY_SOURCE, normalize_question
from chat_analytics_ops.engines import AthenaReportEngine, DuckDBReportEngine, DynamoDBReportEngine, ReportEngine
from chat_analytics_ops.lake import MAX_LAKE_DAYS
from chat_analytics_ops.outputs import AwsContext
from chat_analytics_ops.render import plural, render_text
from chat_analytics_ops.report_model import (
    MAX_DAYS,
    REJECTED_NOT_IN_TABLE,
    RejectedCounts,
    Report,
    default_range,
    percentile,
)
from chat_analytics_ops.table_engine import Item, build_report
from tests.ops.conftest import Cli, Stack, put_item

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ms(day: str, seconds: int = 0) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000) + seconds * 1000


def request(index: int, day: str, question: str | None, match: str | None, score: float | None, **extra) -> dict:
    """One item as the processor leaves it (docs/contracts.md)."""
    q_ts = ms(day, 3600 + index)
    item = {"requestId": f"req-{day}-{index:04d}", "day": day, "schemaVersion": 1}
    if question is not None:
        item.update(query=question, queryTimestamp=q_ts, queryIngestedAt=q_ts + 200)
    if match is not None:
        r_ts = q_ts + 15
        item.update(
            matchType=match,
            matchScore=score,
            reasoning="the CV says so",
            responseTimestamp=r_ts,
            responseIngestedAt=r_ts + 400,
            latencyMs=12,
        )
        if question is not None:
            item["responseLatencyMs"] = 15
    item.update(extra)
    return item


@pytest.fixture
def seeded(stack: Stack) -> Stack:
    """Three days: 2026-03-01 (4 requests), 2026-03-02 (5), 2026-03-03 (none), plus one day outside the range."""
    items = [
        request(1, "2026-03-01", "Python?", "full", 92),
        request(2, "2026-03-01", "Does she know Kubernetes?", "none", 5),
        request(3, "2026-03-01", "AWS CDK?", "partial", 60),
        request(4, "2026-03-01", "Unanswered question", None, None),
        request(1, "2026-03-02", "do you know   KUBERNETES", "none", 10),
        request(2, "2026-03-02", "Rust experience?", "none", 0),
        request(3, "2026-03-02", "Java?", "full", 88),
        request(4, "2026-03-02", "Go?", "partial", 45),
        request(5, "2026-03-02", None, "full", 95),  # the response arrived, its query not yet
        request(1, "2026-03-05", "outside the range", "none", 1),
    ]
    for item in items:
        put_item(stack.dynamodb, stack.table, item)
    return stack


def test_report_json_has_every_figure(seeded: Stack, cli: Cli) -> None:
    result = cli("report", "--from", "2026-03-01", "--to", "2026-03-03", "--json", "--top", "2")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["requests"] == 9
    assert data["queries"] == 8
    assert data["responses"] == 8
    assert data["unanswered"] == 1
    assert data["responsesWithoutQuery"] == 1
    assert data["matches"] == {"full": 3, "partial": 2, "none": 3}
    assert data["shares"] == {"full": 0.375, "partial": 0.25, "none": 0.375}
    assert data["averageMatchScore"] == pytest.approx((92 + 5 + 60 + 10 + 0 + 88 + 45 + 95) / 8, abs=0.05)
    assert data["answerLatencyMs"]["median"] == 12
    assert data["responseLatencyMs"] == {"count": 7, "median": 15, "p95": 15, "max": 15}
    assert data["ingestLagMs"]["query"]["median"] == 200
    assert data["ingestLagMs"]["response"]["median"] == 400
    # equal counts sort by text
    assert data["topUnmatched"] == [
        {"question": "do you know kubernetes", "count": 1},
        {"question": "does she know kubernetes", "count": 1},
    ]
    assert [day["day"] for day in data["perDay"]] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert data["perDay"][2]["requests"] == 0
    assert "outside the range" not in result.out


def test_report_text_is_a_readable_table(seeded: Stack, cli: Cli) -> None:
    result = cli("report", "--from", "2026-03-01", "--to", "2026-03-02")
    assert result.code == 0, result.err
    out = result.out
    assert "2026-03-01 .. 2026-03-02 (2 days, UTC)" in out
    assert "match full" in out and "37.5%" in out
    assert "answer latency (latencyMs)" in out and "12 ms" in out
    assert "ingest lag, queries" in out and "200 ms" in out
    assert "top 3 unmatched questions" in out
    assert "rust experience" in out
    assert "the CV says so" not in out  # reasoning is not read


def test_unmatched_questions_are_normalized_and_counted(stack: Stack, cli: Cli) -> None:
    for index, text in enumerate(["Do you know Kubernetes?", "do you know  kubernetes", "DO YOU KNOW KUBERNETES!", "Haskell?"]):
        put_item(stack.dynamodb, stack.table, request(index, "2026-03-01", text, "none", 2))
    data = json.loads(cli("report", "--from", "2026-03-01", "--to", "2026-03-01", "--json").out)
    assert data["topUnmatched"] == [{"question": "do you know kubernetes", "count": 3}, {"question": "haskell", "count": 1}]


def test_chart_is_a_valid_png(seeded: Stack, cli: Cli, tmp_path: Path) -> None:
    chart = tmp_path / "report.png"
    result = cli("report", "--from", "2026-03-01", "--to", "2026-03-03", "--chart", str(chart))
    assert result.code == 0, result.err
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000  # two labelled panels, not an empty canvas
    assert f"chart: {chart}" in result.out
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 1000 and height > 500


def test_chart_path_is_checked_before_reading(stack: Stack, cli: Cli, tmp_path: Path) -> None:
    wrong = cli("report", "--from", "2026-03-01", "--to", "2026-03-01", "--chart", str(tmp_path / "report.jpg"))
    assert wrong.code == 1 and "PNG" in wrong.err
    missing = cli("report", "--from", "2026-03-01", "--to", "2026-03-01", "--chart", str(tmp_path / "no" / "r.png"))
    assert missing.code == 1 and "does not exist" in missing.err


def test_many_pages_are_all_read_with_progress_on_stderr(stack: Stack, cli: Cli) -> None:
    for index in range(25):
        put_item(stack.dynamodb, stack.table, request(index, "2026-03-01", f"question {index % 5}", "none", 1))
    result = cli("report", "--from", "2026-03-01", "--to", "2026-03-01", "--json", "--page-size", "2", "--progress", "always")
    assert result.code == 0, result.err
    assert json.loads(result.out)["requests"] == 25
    assert "reading byDay" in result.err
    assert "items" in result.err.splitlines()[-1]
    quiet = cli("report", "--from", "2026-03-01", "--to", "2026-03-01", "--json", "--page-size", "2")
    assert quiet.err == ""  # not a terminal: no progress


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-3-1", "2026-03-02", "bad date for --from"),
        ("2026-03-01", "yesterday", "bad date for --to"),
        ("2026-02-30", "2026-03-02", "not a calendar day"),
        ("2026-03-05", "2026-03-01", "is after --to"),
        ("2024-01-01", "2026-01-01", "at most 366"),
    ],
)
def test_bad_dates_are_one_line(stack: Stack, cli: Cli, start: str, end: str, message: str) -> None:
    result = cli("report", "--from", start, "--to", end)
    assert result.code == 1
    assert result.out == ""
    assert len(result.err.strip().splitlines()) == 1
    assert message in result.err


def test_empty_range_reports_zeros(stack: Stack, cli: Cli) -> None:
    result = cli("report", "--from", "2026-03-01", "--to", "2026-03-01", "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["requests"] == 0 and data["averageMatchScore"] is None and data["shares"]["full"] is None


def test_counts_agree_with_their_nouns(stack: Stack, cli: Cli) -> None:
    """Plurals in the text: one day is "1 day", one question "1 question"; several get an s (or "queries")."""
    put_item(stack.dynamodb, stack.table, request(1, "2026-03-01", "Rust?", "none", 1))
    result = cli("report", "--from", "2026-03-01", "--to", "2026-03-01")
    assert result.code == 0, result.err
    assert "2026-03-01 .. 2026-03-01 (1 day, UTC)" in result.out
    assert "top 1 unmatched question (matchType none)" in result.out
    assert "(s)" not in result.out
    assert plural(0, "query", "queries") == "0 queries" and plural(1, "query", "queries") == "1 query"
    assert plural(1, "message") == "1 message" and plural(2, "message") == "2 messages"


def test_helpers() -> None:
    assert normalize_question("  “Do you know\tRust?!”  ") == "do you know rust"
    assert percentile([5, 1, 3, 2, 4], 0.95) == 5
    assert percentile([], 0.5) is None
    report = build_report([Item("a", "2026-01-01", query="q", match_type="none", match_score=0.0)], ["2026-01-01"], top=0)
    assert report.top_unmatched == [] and report.shares["none"] == 1.0


def test_without_dates_the_report_covers_the_last_7_days_ending_today(stack: Stack, cli: Cli) -> None:
    today = datetime.now(UTC).date()
    for offset in (0, 6, 7):
        day = (today - timedelta(days=offset)).isoformat()
        put_item(stack.dynamodb, stack.table, request(offset, day, f"question {offset}", "full", 90))
    data = json.loads(cli("report", "--json").out)
    assert (data["from"], data["to"]) == ((today - timedelta(days=6)).isoformat(), today.isoformat())
    assert len(data["perDay"]) == 7
    assert data["requests"] == 2  # today and 6 days ago; 7 days ago is outside
    ending = json.loads(cli("report", "--to", (today - timedelta(days=1)).isoformat(), "--json").out)
    assert ending["from"] == (today - timedelta(days=7)).isoformat() and ending["requests"] == 2
    starting = json.loads(cli("report", "--from", (today - timedelta(days=2)).isoformat(), "--json").out)
    assert (starting["from"], starting["to"], starting["requests"]) == ((today - timedelta(days=2)).isoformat(), today.isoformat(), 1)


def test_default_range_helper() -> None:
    today = date(2026, 3, 10)
    assert default_range(None, None, today=today) == (date(2026, 3, 4), today)
    assert default_range(None, date(2026, 1, 7), today=today) == (date(2026, 1, 1), date(2026, 1, 7))
    assert default_range(date(2026, 3, 9), None, today=today) == (date(2026, 3, 9), today)


def test_canary_requests_are_left_out_of_every_figure() -> None:
    items = [
        Item("a", "2026-03-01", query="Rust?", match_type="none", match_score=3.0, source="cv-worker"),
        Item("b", "2026-03-01", query="chat-analytics check: canary question", match_type="full", match_score=100.0, source=CANARY_SOURCE),
    ]
    report = build_report(items, ["2026-03-01"], top=5)
    assert (report.requests, report.queries, report.matches["full"], report.canaries) == (1, 1, 0, 1)
    assert report.to_json()["canariesExcluded"] == 1


def one_day_report():
    items = [
        Item("a", "2026-03-01", query="q", match_type="full", match_score=92.0),
        Item("b", "2026-03-01", query="q", match_type="partial", match_score=60.0),
        Item("c", "2026-03-01", query="q", match_type="none", match_score=5.0),
    ]
    return build_report(items, ["2026-03-01"], top=3)


def test_a_one_day_chart_is_one_bar_of_the_usual_width_and_one_legend() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from chat_analytics_ops.chart import MIN_DAY_SLOTS, day_limits, draw

    figure = draw(one_day_report())
    try:
        days_axis, score_axis = figure.axes
        left, right = days_axis.get_xlim()
        assert (left, right) == (-MIN_DAY_SLOTS / 2, MIN_DAY_SLOTS / 2)  # the bar at 0 sits in the middle of 7 slots
        bars = [patch for patch in days_axis.patches if isinstance(patch, Rectangle)]
        assert len(bars) == len(days_axis.patches), "the day panel's patches are its bars"
        widths = {round(bar.get_width(), 2) for bar in bars}
        assert widths == {0.75} and 0.75 / (right - left) < 0.15  # a bar, not a block filling the plot
        # One legend for the figure, each match type once; none inside the panels.
        assert days_axis.get_legend() is None and score_axis.get_legend() is None
        [legend] = figure.legends
        assert [text.get_text() for text in legend.get_texts()] == ["full match", "partial match", "no match"]
    finally:
        plt.close(figure)
    assert day_limits(30) == (-0.5, 29.5)  # a month fills the axis as before


def test_one_day_chart_through_the_cli(stack: Stack, cli: Cli, tmp_path: Path) -> None:
    put_item(stack.dynamodb, stack.table, request(1, "2026-03-01", "Python?", "full", 92))
    chart = tmp_path / "one-day.png"
    result = cli("report", "--from", "2026-03-01", "--to", "2026-03-01", "--chart", str(chart))
    assert result.code == 0, result.err
    assert chart.read_bytes().startswith(PNG_SIGNATURE)


# --- one interface, three engines: the CLI builds the one --engine names and runs it -----------------------


class NoAws:
    """Stands for the ``AwsContext``: building an engine must read nothing (no client, no output), so a wrong
    option or date range is reported before any AWS call."""

    stack_name = "ChatAnalytics-dev"

    def client(self, service: str) -> NoReturn:
        raise AssertionError(f"client({service!r}) while building an engine")

    def output(self, name: str) -> NoReturn:
        raise AssertionError(f"output({name!r}) while building an engine")


@pytest.mark.parametrize(
    ("flags", "kind", "name", "max_days"),
    [
        ([], DynamoDBReportEngine, "dynamodb", MAX_DAYS),
        (["--engine", "dynamodb", "--page-size", "7"], DynamoDBReportEngine, "dynamodb", MAX_DAYS),
        (["--engine", "duckdb"], DuckDBReportEngine, "duckdb", MAX_LAKE_DAYS),
        (["--engine", "duckdb", "--cache", "{tmp}"], DuckDBReportEngine, "duckdb", MAX_LAKE_DAYS),
        (["--engine", "duckdb", "--lake", "{tmp}"], DuckDBReportEngine, "duckdb", MAX_LAKE_DAYS),
        (["--engine", "athena", "--query-timeout", "42"], AthenaReportEngine, "athena", MAX_LAKE_DAYS),
    ],
)
def test_the_engine_flags_build_one_report_engine_that_reads_nothing_yet(
    flags: list[str], kind: type, name: str, max_days: int, tmp_path: Path
) -> None:
    args = build_parser().parse_args(["report", *(flag.format(tmp=tmp_path) for flag in flags)])
    context = NoAws()
    engine = report_engine(args, context)
    assert type(engine) is kind and isinstance(engine, ReportEngine)
    assert (engine.name, engine.max_days) == (name, max_days)
    if isinstance(engine, DynamoDBReportEngine):
        assert engine.page_size == (7 if "--page-size" in flags else None)
    if isinstance(engine, AthenaReportEngine):
        assert engine.timeout_s == 42
    if isinstance(engine, DuckDBReportEngine):
        if "--lake" in flags:
            assert (engine.root, engine.ctx) == (tmp_path, None)  # the folder as it is: no bucket, no copy
        else:
            default = Path.home() / ".cache" / "chat-analytics" / "ChatAnalytics-dev"
            assert (engine.root, engine.ctx) == (tmp_path if "--cache" in flags else default, context)


def test_the_cli_runs_the_engine_the_factory_builds_within_its_max_days(monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    ran: list[tuple[list[str], int, str]] = []
    built: list[str] = []

    class Scripted:
        name = "scripted"
        max_days = 3

        def report(self, days: list[str], *, top: int, stack_name: str = "") -> Report:
            ran.append((days, top, stack_name))
            result = build_report([], days, top=top, stack_name=stack_name)
            result.rejected = RejectedCounts([("SCHEMA_INVALID", 2)], 3)
            return result

    def factory(args, ctx) -> ReportEngine:
        built.append(args.engine)
        return Scripted()

    assert isinstance(Scripted(), ReportEngine)
    monkeypatch.setattr(cli_module, "report_engine", factory)
    result = cli("report", "--engine", "athena", "--from", "2026-03-01", "--to", "2026-03-03", "--top", "4", "--json")
    assert result.code == 0, result.err
    assert built == ["athena"]
    assert ran == [(["2026-03-01", "2026-03-02", "2026-03-03"], 4, "ChatAnalytics-dev")]
    assert json.loads(result.out)["rejected"]["byReason"] == {"SCHEMA_INVALID": 2}
    text = cli("report", "--engine", "duckdb", "--days", "2", "--to", "2026-03-03")
    assert text.code == 0 and "rejected events (lake table rejected, by reason): 2" in text.out
    too_long = cli("report", "--from", "2026-03-01", "--to", "2026-03-04")  # the engine's max_days, not the table's
    assert too_long.code == 1 and "4 days; at most 3 per report" in too_long.err
    assert len(ran) == 2 and built == ["athena", "duckdb", "dynamodb"]


def test_the_table_engine_cannot_count_rejected_events_and_the_lake_engines_do(stack: Stack, tmp_path: Path) -> None:
    days = ["2026-03-01"]
    put_item(stack.dynamodb, stack.table, request(1, "2026-03-01", "Python?", "full", 92))
    from_table = DynamoDBReportEngine(AwsContext(stack_name="ChatAnalytics-dev")).report(days, top=5, stack_name="ChatAnalytics-dev")
    assert from_table.requests == 1 and from_table.rejected is None
    assert f"rejected events: {REJECTED_NOT_IN_TABLE}" in render_text(from_table)
    from_files = DuckDBReportEngine(tmp_path).report(days, top=5)  # an empty lake
    assert from_files.requests == 0 and from_files.rejected == RejectedCounts([], 0)
    assert from_files.engine is not None and from_files.engine.name == "duckdb"
    assert from_files.engine.detail.startswith(f"files in {tmp_path}; 0 of the ")  # how many partitions were compacted


def test_the_athena_engine_runs_in_the_stack_workgroup_and_database() -> None:
    class Outputs:
        stack_name = "ChatAnalytics-dev"

        def client(self, service: str) -> str:
            return f"{service} client"

        def output(self, name: str) -> str:
            return {"AthenaWorkGroupName": "wg-dev", "LakeDatabaseName": "db_dev"}[name]

    runner = AthenaReportEngine(Outputs(), timeout_s=9.0).runner(["2026-03-01"])
    assert isinstance(runner, lake.AthenaEngine)
    assert (runner.athena, runner.work_group, runner.database, runner.timeout_s) == ("athena client", "wg-dev", "db_dev", 9.0)
