"""What the chatbot was asked and how well it answered, read from the table's ``byDay`` index.

One ``Query`` per UTC day on the GSI ``byDay`` (partition key ``day``) reads exactly the requests of
the range without a table scan; pages are followed to the end. Only the attributes the report uses
are projected, so the reasoning text never travels. The figures follow the table contract in
``docs/contracts.md``: an item is one request, with its query fields, its response fields, or both.
Requests whose ``source`` is ``chat-analytics-check`` are the canaries of ``chat-analytics check``:
they are counted apart and left out of every figure.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

from chat_analytics_ops.errors import OpsError

DAY_INDEX = "byDay"
MATCH_TYPES = ("full", "partial", "none")
MAX_DAYS = 366
DEFAULT_DAYS = 7  # without --from/--to: the last 7 UTC days, today included
# ``chat-analytics check`` marks its canary events with this source; the report leaves them out.
CANARY_SOURCE = "chat-analytics-check"
REJECTED_TABLE = "rejected"  # the lake's table of the events the processor rejected
# What the report says instead of the rejected counts when it reads the table (which holds only valid events).
REJECTED_NOT_IN_TABLE = (
    "the dynamodb engine cannot count them (the table holds only valid events):"
    f" --engine duckdb or athena reads the lake table {REJECTED_TABLE}"
)
PROGRESS_AFTER_PAGES = 3  # below this a report is instant and a progress line is noise
QUESTION_CHARS = 120  # a top question is shown up to this length
SCORE_BIN_WIDTH = 5  # the chart's score histogram: 20 bins of 5 points (the lake's SQL bins alike)
SCORE_BINS = 20
PROJECTED = (
    "requestId",
    "day",
    "query",
    "matchType",
    "matchScore",
    "latencyMs",
    "responseLatencyMs",
    "queryTimestamp",
    "queryIngestedAt",
    "responseTimestamp",
    "responseIngestedAt",
    "source",
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(text: str, option: str) -> date:
    """A ``YYYY-MM-DD`` date, or one line saying which option is wrong."""
    if not _DATE.match(text or ""):
        raise OpsError(f"bad date for {option}: {text!r} (expected YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise OpsError(f"bad date for {option}: {text!r} is not a calendar day") from None


def today_utc() -> date:
    return datetime.now(UTC).date()


def default_range(start: date | None, end: date | None, *, today: date | None = None) -> tuple[date, date]:
    """The days a report covers. ``--to`` defaults to today (UTC), ``--from`` to ``DEFAULT_DAYS - 1``
    days before the end: no option at all is the last 7 days, today included."""
    end = end or today or today_utc()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    return start, end


def day_range(start: date, end: date, *, max_days: int = MAX_DAYS) -> list[str]:
    """Every UTC day from ``start`` to ``end`` inclusive, as the index's partition keys."""
    if end < start:
        raise OpsError(f"bad date range: --from {start} is after --to {end}")
    count = (end - start).days + 1
    if count > max_days:
        hint = " (one query per day; the lake engines take longer ranges)" if max_days == MAX_DAYS else ""
        raise OpsError(f"bad date range: {count} days; at most {max_days} per report{hint}")
    return [(start + timedelta(days=offset)).isoformat() for offset in range(count)]


@dataclass(frozen=True)
class Item:
    """The report's view of one table item (one request)."""

    request_id: str
    day: str
    query: str | None = None
    match_type: str | None = None
    match_score: float | None = None
    latency_ms: float | None = None
    response_latency_ms: float | None = None
    query_timestamp: float | None = None
    query_ingested_at: float | None = None
    response_timestamp: float | None = None
    response_ingested_at: float | None = None
    source: str | None = None


def item_from_dynamodb(raw: dict[str, dict[str, str]]) -> Item:
    """Convert a low-level ``{"attr": {"S"|"N": ...}}`` item."""

    def text(name: str) -> str | None:
        value = raw.get(name)
        return value.get("S") if value else None

    def num(name: str) -> float | None:
        value = raw.get(name)
        if not value or "N" not in value:
            return None
        try:
            return float(value["N"])
        except ValueError:
            return None

    return Item(
        request_id=text("requestId") or "",
        day=text("day") or "",
        query=text("query"),
        match_type=text("matchType"),
        match_score=num("matchScore"),
        latency_ms=num("latencyMs"),
        response_latency_ms=num("responseLatencyMs"),
        query_timestamp=num("queryTimestamp"),
        query_ingested_at=num("queryIngestedAt"),
        response_timestamp=num("responseTimestamp"),
        response_ingested_at=num("responseIngestedAt"),
        source=text("source"),
    )


class Progress:
    """A one-line counter on stderr, shown once a report needs more than a few pages.

    ``mode`` is ``auto`` (only on a terminal), ``always`` or ``never``.
    """

    def __init__(self, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = mode == "always" or (mode == "auto" and self.stream.isatty())
        self.shown = False
        self._last = 0.0

    def update(self, day: str, day_index: int, days: int, pages: int, items: int) -> None:
        if not self.enabled or pages < PROGRESS_AFTER_PAGES:
            return
        now = time.monotonic()
        if self.shown and now - self._last < 0.1:
            return
        self._last = now
        self.shown = True
        self.stream.write(f"\rreading {DAY_INDEX}: day {day_index}/{days} ({day}), {plural(pages, 'page')}, {plural(items, 'item')} ")
        self.stream.flush()

    def finish(self, pages: int, items: int) -> None:
        if self.shown:
            self.stream.write(f"\rread {plural(pages, 'page')}, {plural(items, 'item')}{' ' * 30}\n")
            self.stream.flush()


def read_items(
    dynamodb: Any, table_name: str, days: list[str], *, page_size: int | None = None, progress: Progress | None = None
) -> Iterator[Item]:
    """Every item of ``days`` from the ``byDay`` index, following ``LastEvaluatedKey`` to the end."""
    progress = progress or Progress("never")
    paginator = dynamodb.get_paginator("query")
    names = {f"#a{i}": name for i, name in enumerate(PROJECTED)}
    day_name = next(alias for alias, name in names.items() if name == "day")
    pages = items = 0
    for index, day in enumerate(days, start=1):
        arguments: dict[str, Any] = {
            "TableName": table_name,
            "IndexName": DAY_INDEX,
            "KeyConditionExpression": f"{day_name} = :day",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":day": {"S": day}},
            "ProjectionExpression": ", ".join(names),
        }
        if page_size:
            arguments["PaginationConfig"] = {"PageSize": page_size}
        for page in paginator.paginate(**arguments):
            pages += 1
            for raw in page.get("Items", []):
                items += 1
                yield item_from_dynamodb(raw)
            progress.update(day, index, len(days), pages, items)
    progress.finish(pages, items)


def normalize_question(text: str) -> str:
    """One key for questions that differ only in case, spacing, quotes or closing punctuation.

    The processor computes the same key into the lake's ``question_key`` (lambda_src/processor/lake.py;
    a test holds the two equal), so both engines group unmatched questions alike.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    collapsed = " ".join(folded.split())
    return collapsed.strip(" \"'`“”‘’?!.,;:…")


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Distribution:
    """Median, p95 and max of a list of non-negative numbers (milliseconds here)."""

    count: int
    median: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Distribution:
        present = [v for v in values if v is not None]
        if not present:
            return cls(0, None, None, None)
        return cls(len(present), float(statistics.median(present)), percentile(present, 0.95), max(present))

    @classmethod
    def from_ranked(cls, rows: Iterable[tuple[float, int]], total: int) -> Distribution:
        """From ``(value, count up to and including it)`` pairs in value order that hold at least the
        values at the ranks the figures need (the lake's SQL returns exactly those): the same figures as
        ``of`` on the full list."""
        ranked = sorted(rows)
        if not total or not ranked:
            return cls(0, None, None, None)

        def at(rank: int) -> float:
            return next(value for value, upto in ranked if upto >= rank)

        lower, upper = at((total + 1) // 2), at(total // 2 + 1)
        median = float(lower) if total % 2 else (lower + upper) / 2
        return cls(total, median, at(max(1, math.ceil(0.95 * total))), ranked[-1][0])

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "median": _round(self.median), "p95": _round(self.p95), "max": _round(self.max)}


@dataclass
class DayFigures:
    day: str
    requests: int = 0
    queries: int = 0
    matches: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MATCH_TYPES, 0))
    score_sum: float = 0.0
    score_count: int = 0

    @property
    def average_score(self) -> float | None:
        return self.score_sum / self.score_count if self.score_count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "requests": self.requests,
            "queries": self.queries,
            "responses": sum(self.matches.values()),
            "matches": dict(self.matches),
            "averageMatchScore": _round(self.average_score),
        }


def score_bin(score: float) -> int:
    """The chart's 5-point bin of a match score (0-4.99 -> 0, ..., 95-100 -> 19), as the lake's SQL bins it."""
    return min(math.floor(score / SCORE_BIN_WIDTH), SCORE_BINS - 1)


@dataclass(frozen=True)
class RejectedCounts:
    """The events the processor rejected in a report's days, by reason code (the lake's table ``rejected``;
    ``lake.rejected_counts``): ``by_reason`` counts each SQS message once, most first; ``receives`` counts
    the rows (a message is rejected on each receive); ``note`` says why they could not be read, if so."""

    by_reason: list[tuple[str, int]]
    receives: int
    note: str = ""

    @property
    def events(self) -> int:
        return sum(count for _, count in self.by_reason)

    def to_json(self) -> dict[str, Any]:
        return {
            "table": REJECTED_TABLE,
            "events": None if self.note else self.events,
            "receives": None if self.note else self.receives,
            "byReason": dict(self.by_reason),
            "note": self.note or None,
        }


@dataclass(frozen=True)
class EngineInfo:
    """Where a report was read and what it cost: shown under the report, and in ``--json``."""

    name: str
    seconds: float
    bytes_scanned: int | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds, 3), "bytesScanned": self.bytes_scanned, "detail": self.detail}


@dataclass
class Report:
    """Every figure of the report; ``to_json`` is the ``--json`` output."""

    stack_name: str
    start: str
    end: str
    per_day: list[DayFigures]
    score_bins: dict[str, list[int]]  # per match type, answers per 5-point score bin (SCORE_BINS of them)
    answer_latency: Distribution
    response_latency: Distribution
    query_ingest_lag: Distribution
    response_ingest_lag: Distribution
    unanswered: int
    without_query: int
    top_unmatched: list[tuple[str, int]]
    canaries: int = 0  # requests of ``chat-analytics check`` (source CANARY_SOURCE), left out of every figure
    engine: EngineInfo | None = None
    rejected: RejectedCounts | None = None  # None: not counted (the dynamodb engine cannot)

    @property
    def requests(self) -> int:
        return sum(day.requests for day in self.per_day)

    @property
    def queries(self) -> int:
        return sum(day.queries for day in self.per_day)

    @property
    def matches(self) -> dict[str, int]:
        return {kind: sum(day.matches[kind] for day in self.per_day) for kind in MATCH_TYPES}

    @property
    def responses(self) -> int:
        return sum(self.matches.values())

    @property
    def shares(self) -> dict[str, float | None]:
        """Share of answers per match type (of the responses, not of the queries)."""
        total = self.responses
        return {kind: (count / total if total else None) for kind, count in self.matches.items()}

    @property
    def average_score(self) -> float | None:
        count = sum(day.score_count for day in self.per_day)
        return math.fsum(day.score_sum for day in self.per_day) / count if count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack_name,
            "from": self.start,
            "to": self.end,
            "requests": self.requests,
            "queries": self.queries,
            "responses": self.responses,
            "unanswered": self.unanswered,
            "responsesWithoutQuery": self.without_query,
            "matches": self.matches,
            "shares": {kind: _round(share, 4) for kind, share in self.shares.items()},
            "averageMatchScore": _round(self.average_score),
            "answerLatencyMs": self.answer_latency.to_json(),
            "responseLatencyMs": self.response_latency.to_json(),
            "ingestLagMs": {"query": self.query_ingest_lag.to_json(), "response": self.response_ingest_lag.to_json()},
            "topUnmatched": [{"question": question, "count": count} for question, count in self.top_unmatched],
            "perDay": [day.to_json() for day in self.per_day],
            "canariesExcluded": self.canaries,
            "rejected": self.rejected.to_json() if self.rejected else {"table": REJECTED_TABLE, "note": REJECTED_NOT_IN_TABLE},
            "engine": self.engine.to_json() if self.engine else None,
        }


class RequestTally:
    """The per-day figures, score bins and request counts of a report, added a group of requests at a
    time: one request by the table engine, a group of alike requests by the lake's SQL. One definition of
    each count serves both engines, which a test holds equal."""

    def __init__(self, days: list[str]) -> None:
        self.per_day = {day: DayFigures(day) for day in days}
        self.score_bins = {kind: [0] * SCORE_BINS for kind in MATCH_TYPES}
        self.unanswered = self.without_query = self.canaries = 0

    def add(
        self,
        day: str,
        count: int,
        *,
        canary: bool,
        has_query: bool,
        match_type: str | None,
        score_sum: float | None,
        score_bin: int | None,
    ) -> None:
        """``count`` requests of ``day`` alike in all but their scores (``score_sum``: theirs together, or
        None without an answer); a canary (`chat-analytics check`) is only counted, apart."""
        if canary:
            self.canaries += count
            return
        figures = self.per_day.setdefault(day, DayFigures(day))
        figures.requests += count
        if has_query:
            figures.queries += count
        if match_type in figures.matches:
            figures.matches[match_type] += count
        elif has_query:
            self.unanswered += count
        if not has_query and match_type is not None:
            self.without_query += count
        if score_sum is not None:
            figures.score_sum += score_sum
            figures.score_count += count
            if match_type in self.score_bins and score_bin is not None:
                self.score_bins[match_type][score_bin] += count

    def report(
        self,
        days: list[str],
        distributions: tuple[Distribution, Distribution, Distribution, Distribution],
        top_unmatched: list[tuple[str, int]],
        *,
        stack_name: str = "",
        engine: EngineInfo | None = None,
    ) -> Report:
        """The ``Report``: these counts, the four distributions (answer latency, query -> response, the
        two ingest lags) and the unmatched questions (shown shortened)."""
        answer, response, query_lag, response_lag = distributions
        return Report(
            stack_name=stack_name,
            start=days[0],
            end=days[-1],
            per_day=[self.per_day[day] for day in sorted(self.per_day)],
            score_bins=self.score_bins,
            answer_latency=answer,
            response_latency=response,
            query_ingest_lag=query_lag,
            response_ingest_lag=response_lag,
            unanswered=self.unanswered,
            without_query=self.without_query,
            top_unmatched=[(shorten_question(question), count) for question, count in top_unmatched],
            canaries=self.canaries,
            engine=engine,
        )


def build_report(items: Iterable[Item], days: list[str], *, top: int, stack_name: str = "") -> Report:
    """Aggregate the items of ``days`` in one pass (the table engine; the lake's SQL computes the same)."""
    tally = RequestTally(days)
    answer, response, query_lag, response_lag = [], [], [], []
    unmatched: Counter[str] = Counter()
    for item in items:
        canary = item.source == CANARY_SOURCE
        score = item.match_score
        tally.add(
            item.day,
            1,
            canary=canary,
            has_query=item.query is not None,
            match_type=item.match_type,
            score_sum=score,
            score_bin=None if score is None else score_bin(score),
        )
        if canary:
            continue
        answer.append(item.latency_ms)
        response.append(item.response_latency_ms)
        query_lag.append(_difference(item.query_ingested_at, item.query_timestamp))
        response_lag.append(_difference(item.response_ingested_at, item.response_timestamp))
        if item.match_type == "none" and item.query:
            key = normalize_question(item.query)
            if key:
                unmatched[key] += 1
    distributions = (Distribution.of(answer), Distribution.of(response), Distribution.of(query_lag), Distribution.of(response_lag))
    top_unmatched = sorted(unmatched.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return tally.report(days, distributions, top_unmatched, stack_name=stack_name)


def _difference(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else max(later - earlier, 0.0)


def shorten_question(text: str) -> str:
    """A top question as the report shows it: at most ``QUESTION_CHARS`` characters."""
    return text if len(text) <= QUESTION_CHARS else text[: QUESTION_CHARS - 1] + "…"


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def format_ms(value: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4.1 min``: the unit a person reads at a glance."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:5.1f}%"


def _distribution_line(label: str, dist: Distribution) -> str:
    if not dist.count:
        return f"  {label:<28} -"
    return (
        f"  {label:<28} median {format_ms(dist.median):>9}   p95 {format_ms(dist.p95):>9}   max {format_ms(dist.max):>9}   (n={dist.count})"
    )


def plural(count: int, noun: str, many: str | None = None) -> str:
    """The count and its noun in agreement: ``1 message``, ``2 messages``, ``1 query``, ``3 queries``."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def render_text(report: Report) -> str:
    """The default output: a summary, a per-day table and the unmatched questions."""
    lines = [
        f"Chat analytics {report.stack_name}: {report.start} .. {report.end} ({plural(len(report.per_day), 'day')}, UTC)",
        "",
        f"  {'requests':<28} {report.requests:>8}",
        f"  {'queries':<28} {report.queries:>8}",
        f"  {'answers':<28} {report.responses:>8}   ({plural(report.unanswered, 'query', 'queries')} without answer, {plural(report.without_query, 'answer')} without query)",
    ]
    shares = report.shares
    for kind, count in report.matches.items():
        lines.append(f"  {'  match ' + kind:<28} {count:>8}   {_share(shares[kind])}")
    average = report.average_score
    lines.append(f"  {'average match score':<28} {'-' if average is None else f'{average:8.1f}'}")
    lines.append("")
    lines.append(_distribution_line("answer latency (latencyMs)", report.answer_latency))
    lines.append(_distribution_line("query -> response", report.response_latency))
    lines.append(_distribution_line("ingest lag, queries", report.query_ingest_lag))
    lines.append(_distribution_line("ingest lag, answers", report.response_ingest_lag))
    if report.canaries:
        lines.append(f"  ({plural(report.canaries, 'canary request')} of `chat-analytics check` left out)")
    lines += ["", f"  {'day':<10}  {'queries':>7}  {'full':>6}  {'partial':>7}  {'none':>6}  {'avg score':>9}"]
    for day in report.per_day:
        avg = f"{day.average_score:9.1f}" if day.average_score is not None else f"{'-':>9}"
        m = day.matches
        lines.append(f"  {day.day:<10}  {day.queries:>7}  {m['full']:>6}  {m['partial']:>7}  {m['none']:>6}  {avg}")
    lines += [
        "",
        f"  top {len(report.top_unmatched)} unmatched {'question' if len(report.top_unmatched) == 1 else 'questions'} (matchType none)",
    ]
    if not report.top_unmatched:
        lines.append("    (none)")
    for question, count in report.top_unmatched:
        lines.append(f"  {count:>6}  {question}")
    lines += ["", *_rejected_lines(report.rejected)]
    if report.engine:
        lines += ["", f"  read by {report.engine.name} in {report.engine.seconds:.1f} s" + _engine_cost(report.engine)]
    return "\n".join(lines)


def _rejected_lines(rejected: RejectedCounts | None) -> list[str]:
    """The rejected events by reason, or the one line that says why they are not counted."""
    if rejected is None:
        return [f"  rejected events: {REJECTED_NOT_IN_TABLE}"]
    if rejected.note:
        return [f"  rejected events: {rejected.note}"]
    lines = [f"  rejected events (lake table {REJECTED_TABLE}, by reason): {rejected.events}"]
    if not rejected.by_reason:
        lines.append("    (none)")
    lines += [f"  {count:>6}  {reason}" for reason, count in rejected.by_reason]
    return lines


def _engine_cost(engine: EngineInfo) -> str:
    parts = [] if engine.bytes_scanned is None else [f"{engine.bytes_scanned / 1e6:,.1f} MB scanned"]
    if engine.detail:
        parts.append(engine.detail)
    return f" ({', '.join(parts)})" if parts else ""
