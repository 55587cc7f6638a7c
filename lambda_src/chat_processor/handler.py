"""The processor Lambda: validates SQS FIFO batches of analytics events and merges them into DynamoDB.

A batch is split by message group. Groups are written concurrently (at most
``MAX_CONCURRENT_GROUPS`` at a time, so DynamoDB's latency is paid about once per batch rather than
once per record); the records of one group are handled in order, and consecutive records of the same
request are stored by one write (a query and its response arriving together: one ``UpdateItem``).

FIFO skip-on-error, as Powertools' ``SqsFifoPartialProcessor(skip_group_on_error=True)`` does it: a
record that fails (invalid, or the table refused it) fails itself and every later record of its
message group, so order within a group is kept while other groups go on. The response lists exactly
the failed message IDs; SQS redelivers them and moves them to the DLQ after ``maxReceiveCount`` receives.

Each stored run's item goes to the event lake (``lake.py``: Firehose, Parquet on S3) once the
batch's writes are done, in one ``PutRecordBatch``. A row Firehose refuses fails its records and the
rest of their group, like a failed write: SQS delivers them again, the write is repeated (it is
idempotent) and the row is sent again, so the lake misses nothing the table holds.

Both services are called through ``transport.py``: their JSON protocol signed with SigV4 on kept-alive
connections, with botocore's endpoint resolution, credentials, retry handler and exceptions, at a
third of botocore's CPU per call (docs/benchmarks/processor.md).

No invocation outlives its timeout (which would return the whole batch to the queue and count as a
function error): every DynamoDB and Firehose call is bounded by the invocation's deadline, the
remaining time less ``RETURN_RESERVE_MS`` (``store.CallGuard``: a call starts only when one attempt of
its client fits, a retry only when botocore's longest backoff and one more attempt fit). A record
whose write was not started, or did not finish, fails with the rest of its group, like any failed write.

An invalid record is logged once, counted (``InvalidEvents``) and failed, and on every receive its
rejected row (``invalid.describe_rejection``: a reason code, the field, what could be read of the event,
never the question or the reasoning) goes to the lake's second stream (``REJECTED_STREAM_NAME``; table
``rejected``), in one ``PutRecordBatch`` after the lake's. Its delivery never changes a record's outcome:
a refused row is counted (``RejectedDeliveryFailures``) and logged, the record still fails (the DLQ after
the third receive) and its next receive sends a row again; the SQL counts each SQS message id once.

When every record of a batch fails, the failures are reported like any others instead of raising:
the effect on the queue is the same, and a poison message alone in a batch does not count as a
function error (the DLQ alarm covers it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from .clients import error_code, is_transient
from .invalid import describe_invalid, describe_rejection
from .lake import LakeSink, encode, lake_row, rejected_row, rejected_sink_from_environment, sink_from_environment
from .models import QueryEvent, ResponseEvent, parse_event
from .store import Provider, StoreProvider

# What the invocation keeps after its last network wait: merging the groups' outcomes, the metrics,
# the log line and the response take milliseconds; a second leaves room for a slow, shared CPU.
RETURN_RESERVE_MS = 1_000
# Message groups written at the same time: a batch holds at most 10 records, so at most 10 groups.
MAX_CONCURRENT_GROUPS = 10
GROUP_THREAD_PREFIX = "processor-group"  # the threads that write message groups (the local stack routes their output)
MATCH_METRICS = {"full": "MatchFull", "partial": "MatchPartial", "none": "MatchNone"}
MAX_METRIC_VALUES = 100  # Powertools' MAX_METRICS: the values of one name an EMF document holds (it flushes then)


logger = Logger()  # JSON lines on stdout, which Lambda sends to the function's log group
metrics = Metrics()
stores = StoreProvider()
# The rejected rows' stream (None: the function has none); reset with ``sinks``, which whoever changes the environment resets.
rejected_sinks: Provider[LakeSink | None] = Provider(rejected_sink_from_environment)


class _LakeSinks(Provider[LakeSink | None]):
    def reset(self) -> None:
        super().reset()
        rejected_sinks.reset()


sinks: Provider[LakeSink | None] = _LakeSinks(sink_from_environment)  # None: the function has no lake
# Reused across invocations (Lambda freezes its threads in between); created on first concurrent use.
_pool: ThreadPoolExecutor | None = None
# True until the execution environment's first invocation: its ColdStart metric (the dashboard's cold-start rate).
_cold_start = True

Event = QueryEvent | ResponseEvent
Metric = tuple[str, str, MetricUnit, float]  # the record's message ID, name, unit, value


def epoch_ms() -> int:
    """Processing time, epoch milliseconds (``*IngestedAt`` and the ingest lag)."""
    return time.time_ns() // 1_000_000


clock: Callable[[], int] = epoch_ms  # replaced in tests to make items comparable


@dataclass
class _GroupOutcome:
    """What handling one message group produced: failed message IDs and the metrics to emit."""

    failed: list[str] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)  # the group's records, in order
    lake: list[tuple[int, bytes]] = field(default_factory=list)  # (position of the run's first record, row)
    rejected: list[bytes] = field(default_factory=list)  # the rejected rows of the group's invalid records


@dataclass(frozen=True)
class _Parsed:
    record: dict[str, Any]
    event: Event | None  # None: invalid


def _parse(record: dict[str, Any], outcome: _GroupOutcome) -> _Parsed:
    body = record.get("body", "")
    try:
        return _Parsed(record, parse_event(body))
    except ValidationError as error:
        logger.error("Invalid event", extra={"messageId": record["messageId"], **describe_invalid(body, error)})
        outcome.metrics.append((record["messageId"], "InvalidEvents", MetricUnit.Count, 1))
        try:  # the record fails whatever happens to its rejected row
            outcome.rejected.append(encode(rejected_row(describe_rejection(body, error), record, clock())))
        except Exception:
            logger.exception("Rejected row not built", extra={"messageId": record["messageId"]})
            outcome.metrics.append((record["messageId"], "RejectedDeliveryFailures", MetricUnit.Count, 1))
        return _Parsed(record, None)


def _handle_group(records: list[dict[str, Any]], store: Any, deadline: float | None) -> _GroupOutcome:
    """The records of one message group, in order; the first failure fails it and everything after it."""
    outcome = _GroupOutcome(message_ids=[record["messageId"] for record in records])
    parsed: dict[int, _Parsed] = {}

    def at(index: int) -> _Parsed:  # each record is parsed (and, if invalid, logged) once
        if index not in parsed:
            parsed[index] = _parse(records[index], outcome)
        return parsed[index]

    position = 0
    try:
        while position < len(records):
            head = at(position)
            if head.event is None:
                break
            end = position + 1  # consecutive valid records of the same request join the write
            while end < len(records) and (following := at(end).event) is not None and following.requestId == head.event.requestId:
                end += 1
            if not _store_run(position, [at(index) for index in range(position, end)], store, deadline, outcome):
                break
            position = end
    finally:
        logger.thread_safe_clear_keys()
    outcome.failed.extend(record["messageId"] for record in records[position:])
    return outcome


def _store_run(position: int, run: list[_Parsed], store: Any, deadline: float | None, outcome: _GroupOutcome) -> bool:
    """One write for the run's events; True when stored. A failure (``NoTimeLeft`` included: the write
    could not end before ``deadline`` and was not started) leaves the run's records failed."""
    events = [item.event for item in run if item.event is not None]
    request_id = events[0].requestId
    logger.thread_safe_append_keys(correlation_id=request_id)
    now = clock()
    try:
        result = store.write(events, now, deadline=deadline)
    except Exception as error:
        transient = is_transient(error)
        (logger.warning if transient else logger.error)(
            "Event not stored",
            extra={
                "messageIds": [item.record["messageId"] for item in run],
                "eventTypes": [event.eventType for event in events],
                "errorCode": error_code(error),
                "transient": transient,
            },
        )
        return False
    if result.item:
        outcome.lake.append((position, encode(lake_row(result.item, now))))
    counted: set[str] = set()
    for item in run:
        event = item.event
        assert event is not None
        if event.eventType in result.first and event.eventType not in counted:
            counted.add(event.eventType)
            outcome.metrics.extend(_event_metrics(item.record["messageId"], event, now))
    if logger.log_level > logging.DEBUG:  # the extra fields below cost more than the disabled call
        return True
    for item in run:
        assert item.event is not None
        logger.debug(
            "Event stored",
            extra={
                "messageId": item.record["messageId"],
                "eventType": item.event.eventType,
                "firstDelivery": item.event.eventType in counted,
            },
        )
    return True


def _event_metrics(message_id: str, event: Event, now_ms: int) -> list[Metric]:
    """Counted once per event: replays add nothing."""
    if isinstance(event, QueryEvent):
        found: list[Metric] = [(message_id, "QueryEvents", MetricUnit.Count, 1)]
    else:
        found = [
            (message_id, "ResponseEvents", MetricUnit.Count, 1),
            (message_id, MATCH_METRICS[event.matchType], MetricUnit.Count, 1),
            (message_id, "MatchScore", MetricUnit.NoUnit, event.matchScore),
        ]
    found.append((message_id, "IngestLagMs", MetricUnit.Milliseconds, now_ms - event.timestamp))
    return found


def _groups(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Records by message group, each group in batch order (Lambda delivers a FIFO batch in queue order)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        group = record.get("attributes", {}).get("MessageGroupId") or record["messageId"]
        groups.setdefault(group, []).append(record)
    return list(groups.values())


def _deliver_to_lake(outcomes: list[_GroupOutcome], lake: LakeSink, deadline: float | None) -> None:
    """One ``PutRecordBatch`` for the rows of every group; a refused row fails its run and the rest of its group."""
    rows = [(outcome, position, row) for outcome in outcomes for position, row in outcome.lake]
    if not rows:
        return
    result = lake.put([row for _, _, row in rows], deadline=deadline)
    metrics.add_metric(name="LakeRows", unit=MetricUnit.Count, value=result.delivered)
    if not result.refused:
        return
    metrics.add_metric(name="LakeDeliveryFailures", unit=MetricUnit.Count, value=len(result.refused))
    for index in sorted(result.refused, reverse=True):  # the earliest refused run of a group is applied last
        outcome, position, _ = rows[index]
        # Rows exist only for stored runs, which precede a group's failed records: the refused run's
        # records and everything after them include what had already failed.
        outcome.failed = outcome.message_ids[position:]
    logger.error(
        "Rows not delivered to the lake",
        extra={"rows": len(rows), "refused": len(result.refused), "errorCodes": sorted(set(result.refused.values()))},
    )


def _deliver_rejected(outcomes: list[_GroupOutcome], sink: LakeSink, deadline: float | None) -> None:
    """One ``PutRecordBatch`` of the batch's rejected rows, after the lake's (which can fail records: this one
    cannot). Their records have failed already and stay failed; a row Firehose refuses is counted and logged,
    and the row of the record's next receive is the next try (the SQL counts a message id once)."""
    rows = [row for outcome in outcomes for row in outcome.rejected]
    if not rows:
        return
    try:
        result = sink.put(rows, deadline=deadline)
    except Exception as error:  # put() reports refusals; anything else must not change the batch's outcome either
        logger.exception("Rejected rows not delivered to the lake", extra={"rows": len(rows), "errorCodes": [type(error).__name__]})
        metrics.add_metric(name="RejectedDeliveryFailures", unit=MetricUnit.Count, value=len(rows))
        return
    metrics.add_metric(name="RejectedRows", unit=MetricUnit.Count, value=result.delivered)
    if result.refused:
        metrics.add_metric(name="RejectedDeliveryFailures", unit=MetricUnit.Count, value=len(result.refused))
        logger.error(
            "Rejected rows not delivered to the lake",
            extra={"rows": len(rows), "refused": len(result.refused), "errorCodes": sorted(set(result.refused.values()))},
        )


def _add_metrics(emitted: list[Metric]) -> None:
    """``metrics.add_metric`` for each value, but only the first value of a name goes through it.

    Powertools checks the name, unit and resolution and formats a debug message on every call (about
    3 µs each, 30 calls a batch); the later values of a name (same unit and resolution: one place sets
    each name) are appended to the entry the first call made in its metric set, as ``add_metric``
    appends them. Powertools flushes a name at ``MAX_METRIC_VALUES`` values: the value that reaches it
    goes through ``add_metric`` too, so that still happens.
    """
    metric_set = metrics.metric_set
    for _, name, unit, value in emitted:
        entry = metric_set.get(name)
        if entry is None or len(entry["Value"]) >= MAX_METRIC_VALUES - 1:
            metrics.add_metric(name=name, unit=unit, value=value)
        else:
            entry["Value"].append(float(value))


def invocation_deadline(context: Any) -> float | None:
    """When the network waits must be over (``time.monotonic()`` seconds): the invocation's remaining
    time less ``RETURN_RESERVE_MS``; None without a context (no deadline)."""
    if context is None:
        return None
    return time.monotonic() + (context.get_remaining_time_in_millis() - RETURN_RESERVE_MS) / 1000


def process_batch(
    records: list[dict[str, Any]], store: Any, context: Any, lake: LakeSink | None = None, rejected: LakeSink | None = None
) -> list[str]:
    """Handle a batch; the failed message IDs in batch order. Metrics are added here, in the caller's
    thread (Powertools' metric set is not shared between threads). ``rejected`` receives the rows of the
    invalid records, which fail whether or not their rows are delivered."""
    global _pool
    deadline = invocation_deadline(context)
    groups = _groups(records)
    if len(groups) == 1:
        outcomes = [_handle_group(groups[0], store, deadline)]
    else:
        # The first group in this thread, the others in the pool, all at once (one thread hand-off fewer).
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_GROUPS - 1, thread_name_prefix=GROUP_THREAD_PREFIX)
        pending = [_pool.submit(_handle_group, group, store, deadline) for group in groups[1:]]
        try:
            first = _handle_group(groups[0], store, deadline)
        finally:
            wait(pending)  # no group's write outlives the invocation, whatever happened in this thread
        outcomes = [first, *(future.result() for future in pending)]
    if lake is not None:
        _deliver_to_lake(outcomes, lake, deadline)
    if rejected is not None:
        _deliver_rejected(outcomes, rejected, deadline)
    failed = {message_id for outcome in outcomes for message_id in outcome.failed}
    position = {record["messageId"]: index for index, record in enumerate(records)}
    emitted = sorted((metric for outcome in outcomes for metric in outcome.metrics), key=lambda metric: position[metric[0]])
    _add_metrics(emitted)  # in batch order, whatever order the groups finished in
    return [record["messageId"] for record in records if record["messageId"] in failed]


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict, context: Any) -> dict:
    """Lambda entry point (``handler.handler``): returns ``{"batchItemFailures": [...]}``."""
    global _cold_start
    if _cold_start:
        _cold_start = False
        metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
    records = event.get("Records", [])
    try:
        failed = process_batch(records, stores.get(), context, sinks.get(), rejected_sinks.get())
    finally:
        logger.set_correlation_id(None)
        # One EMF document per invocation. Flushed by hand rather than with ``log_metrics``, which
        # warns on every invocation without metrics (a batch of replays, or of store failures).
        if metrics.metric_set:
            metrics.flush_metrics()
    logger.info("Batch processed", extra={"records": len(records), "failed": len(failed)})
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
