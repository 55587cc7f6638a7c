"""The report's figures, whichever engine computed them (``engines.py``): the model the table engine
(``table_engine.py``) and the lake engines (``lake.py``'s SQL) fill alike, and the days a report covers.

``RequestTally`` holds the one definition of each count that both kinds of engine add to; ``Report`` is
every figure, and its ``to_json`` is ``chat-analytics report --json``. Rendering is ``render.py``'s.
Requests whose ``source`` is ``CANARY_SOURCE`` are the canaries of ``chat-analytics check``: they are
counted apart and left out of every figure.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chat_analytics_ops.contract import MATCH_TYPES
from chat_analytics_ops.errors import OpsError

MAX_DAYS = 366  # a report of the table (one query per day); the lake engines take MAX_LAKE_DAYS (lake.py)
DEFAULT_DAYS = 7  # without --from/--to: the last 7 UTC days, today included
REJECTED_TABLE = "rejected"  # the lake's table of the events the processor rejected
# What the report says instead of the rejected counts when it reads the table (which holds only valid events).
REJECTED_NOT_IN_TABLE = (
    "the dynamodb engine cannot count them (the table holds only valid events):"
    f" --engine duckdb or athena reads the lake table {REJECTED_TABLE}"
)
QUESTION_CHARS = 120  # a top question is shown up to this length
SCORE_BIN_WIDTH = 5  # the chart's score histogram: 20 bins of 5 points (the lake's SQL bins alike)
SCORE_BINS = 20
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
        self.score_bins: dict[str, list[int]] = {kind: [0] * SCORE_BINS for kind in MATCH_TYPES}
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


def shorten_question(text: str) -> str:
    """A top question as the report shows it: at most ``QUESTION_CHARS`` characters."""
    return text if len(text) <= QUESTION_CHARS else text[: QUESTION_CHARS - 1] + "…"


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
