"""The table engine: what the chatbot was asked and how well it answered, read from the table's ``byDay`` index.

One ``Query`` per UTC day on the GSI ``byDay`` (partition key ``day``) reads exactly the requests of
the range without a table scan; pages are followed to the end. Only the attributes the report uses
are projected, so the reasoning text never travels. The figures follow the table contract in
``docs/contracts.md``: an item is one request, with its query fields, its response fields, or both.
``build_report`` adds them to the same ``RequestTally`` the lake engines fill (``report_model.py``);
the table holds only valid events, so this engine cannot count the rejected ones. ``engines.py`` runs
it for ``chat-analytics report --engine dynamodb``.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from botocore.exceptions import ClientError

from chat_analytics_ops.contract import CANARY_SOURCE, DAY_INDEX, DAY_INDEX_ATTRIBUTES, normalize_question
from chat_analytics_ops.errors import OpsError, error_code
from chat_analytics_ops.render import plural
from chat_analytics_ops.report_model import Distribution, Report, RequestTally, score_bin

PROGRESS_AFTER_PAGES = 3  # below this a report is instant and a progress line is noise
PROJECTED = ("requestId", "day", *DAY_INDEX_ATTRIBUTES)  # the index's keys and what it projects


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


class NoDayIndex(OpsError):
    """The table has no ``byDay`` index: the stack was deployed with ``tableDayIndex`` false (prod's default, since
    the lake reports), so nothing can read a day's requests from the table."""

    def __init__(self, table_name: str) -> None:
        super().__init__(
            f"table {table_name} has no {DAY_INDEX} index (the stack's setting tableDayIndex is false): "
            "read the event lake instead, with --engine athena or --engine duckdb"
        )


def has_day_index(dynamodb: Any, table_name: str) -> bool:
    """Whether the table has its ``byDay`` index (``DescribeTable``; the setting ``tableDayIndex`` decides)."""
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    return any(index["IndexName"] == DAY_INDEX for index in table.get("GlobalSecondaryIndexes", []))


def _has_index_or_unknown(dynamodb: Any, table_name: str) -> bool:
    try:
        return has_day_index(dynamodb, table_name)
    except ClientError:  # DescribeTable not allowed, or no table: the query's own error says more
        return True


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
        try:
            for page in paginator.paginate(**arguments):
                pages += 1
                for raw in page.get("Items", []):
                    items += 1
                    yield item_from_dynamodb(raw)
                progress.update(day, index, len(days), pages, items)
        except ClientError as error:
            # AWS answers ValidationException ("does not have the specified index"), moto ResourceNotFoundException:
            # the table itself says whether the index exists.
            if error_code(error) in ("ValidationException", "ResourceNotFoundException") and not _has_index_or_unknown(
                dynamodb, table_name
            ):
                raise NoDayIndex(table_name) from None
            raise
    progress.finish(pages, items)


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
