"""The processor Lambda: validates SQS FIFO batches of analytics events and merges them into DynamoDB.

``Processor`` composes the batch mechanics (``fifo_batch.py``) with the store (``store.py``), the lake's
sinks (``lake.py``) and the metrics, all given to its constructor. Lambda's entry point ``handler`` builds
one from the environment at the execution environment's first invocation (its cold start) and keeps it;
tests, the local stack and the benchmarks build their own from explicit parts.

A batch is split by message group. Every group's write is in flight at once, in one thread (``fifo_batch.py``'s
rounds: each group's next write sent on a connection of its own, then the answers read, so DynamoDB's latency is
paid about once per round rather than once per record); the records of one group are handled in order, and
consecutive records of the same request are stored by one write (a query and its response arriving together: one
``UpdateItem``).

FIFO skip-on-error (``fifo_batch.py``), as Powertools' ``SqsFifoPartialProcessor(skip_group_on_error=True)`` does it: a
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
remaining time less ``RETURN_RESERVE_MS`` (``clients.CallGuard``: a call starts only when one attempt of
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
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from . import contract
from .clients import error_code, is_transient
from .fifo_batch import Batch, FifoBatchProcessor, Group, Record, deadline_of, failure_response
from .invalid import describe_invalid, describe_rejection
from .lake import PutResult, encode, lake_row, rejected_row, rejected_sink_from_environment, sink_from_environment
from .models import QueryEvent, ResponseEvent, parse_event
from .store import WriteResult, store_from_environment

# What the invocation keeps after its last network wait: merging the groups' outcomes, the metrics,
# the log line and the response take milliseconds; a second leaves room for a slow, shared CPU.
RETURN_RESERVE_MS = 1_000
MAX_METRIC_VALUES = 100  # Powertools' MAX_METRICS: the values of one name an EMF document holds (it flushes then)

Event = QueryEvent | ResponseEvent
Metric = tuple[str, str, MetricUnit, float]  # the record's message ID, name, unit, value


class StartedWrite(Protocol):
    """A write under way (``store.PendingWrite``): ``finish`` waits for it and raises what the write raised."""

    def finish(self) -> WriteResult: ...


class EventWriter(Protocol):
    """What the processor needs of the events table (``store.EventStore``): a request's write started, its outcome
    read later, so every message group's write of a round is in flight at once."""

    def start(self, events: Sequence[Event], now_ms: int, *, deadline: float | None = None) -> StartedWrite: ...


class RowSink(Protocol):
    """What the processor needs of a lake stream (``lake.LakeSink``): rows sent, refusals reported, never raised."""

    def put(self, records: Sequence[bytes], *, deadline: float | None = None) -> PutResult: ...


def epoch_ms() -> int:
    """Processing time, epoch milliseconds (``*IngestedAt`` and the ingest lag)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class _Parsed:
    record: Record
    event: Event | None  # None: invalid


@dataclass
class _GroupOutcome:
    """What handling one message group produced, beside its failures (``fifo_batch.Group``)."""

    metrics: list[Metric] = field(default_factory=list)
    lake: list[tuple[int, bytes]] = field(default_factory=list)  # (position of the run's first record, row)
    rejected: list[bytes] = field(default_factory=list)  # the rejected rows of the group's invalid records
    parsed: dict[int, _Parsed] = field(default_factory=dict)  # each record is parsed (and, if invalid, logged) once


class _NotStarted:
    """A write whose start raised: ``finish`` raises the same error, so the run fails as a failed write does."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def finish(self) -> WriteResult:
        raise self.error


class _StoredRun:
    """A run whose write is under way (``fifo_batch.Run``): its records, events and processing time, for
    ``Processor._finish_run``."""

    __slots__ = ("events", "now", "outcome", "position", "processor", "run", "write")

    def __init__(
        self,
        processor: Processor,
        outcome: _GroupOutcome,
        position: int,
        run: list[_Parsed],
        events: list[Event],
        now: int,
        write: StartedWrite,
    ) -> None:
        self.processor, self.outcome, self.position, self.run, self.events, self.now, self.write = (
            processor,
            outcome,
            position,
            run,
            events,
            now,
            write,
        )

    def finish(self) -> bool:
        return self.processor._finish_run(self)


class Processor:
    """The processor of one execution environment, from its parts: the table's store, the lake's stream
    and the rejected rows' stream (None: the function has none), the Logger, the metrics and the clock.

    ``handle`` is the Lambda handler (``{"batchItemFailures": [...]}``); the first invocation counts the
    environment's cold start. One invocation at a time, as Lambda runs them.
    """

    def __init__(
        self,
        store: EventWriter,
        lake: RowSink | None = None,
        rejected: RowSink | None = None,
        *,
        logger: Logger,
        metrics: Metrics,
        clock: Callable[[], int] = epoch_ms,
    ) -> None:
        self.store = store
        self.lake = lake
        self.rejected = rejected
        self.logger = logger
        self.metrics = metrics
        self.clock = clock
        self.cold_start = True  # until the first invocation: its ColdStart metric (the dashboard's cold-start rate)
        # Per metric name: (the unit it is added with, Powertools' resolved unit and storage resolution) (``_add_metrics``).
        self._metric_entries: dict[str, tuple[MetricUnit, str, int]] = {}
        self.batches = FifoBatchProcessor(self._start_run, _GroupOutcome)
        self.handle: Callable[[dict[str, Any], LambdaContext], dict[str, Any]] = logger.inject_lambda_context(
            log_event=False, clear_state=True
        )(self._handle)

    def close(self) -> None:
        """Close the clients' idle connections (a process that builds processors again: tests, the local stack;
        Lambda never does: its execution environment ends with them)."""
        for part in (self.store, self.lake, self.rejected):
            close = getattr(part, "close", None)
            if close is not None:
                close()

    def _handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if self.cold_start:
            self.cold_start = False
            self.metrics.add_metric(name=contract.COLD_START, unit=MetricUnit.Count, value=1)
        records = event.get("Records", [])
        try:
            failed = self.process(records, context)
        finally:
            self.logger.set_correlation_id(None)
            # One EMF document per invocation. Flushed by hand rather than with ``log_metrics``, which
            # warns on every invocation without metrics (a batch of replays, or of store failures).
            if self.metrics.metric_set:
                self.metrics.flush_metrics()
        self.logger.info("Batch processed", extra={"records": len(records), "failed": len(failed)})
        return failure_response(failed)

    def process(self, records: list[Record], context: LambdaContext | None) -> list[str]:
        """Handle a batch; the failed message IDs in batch order. Metrics are added here, in batch order, once the
        groups are done. The rejected rows' stream receives the rows of the invalid records, which fail whether or
        not their rows are delivered."""
        deadline = deadline_of(context, RETURN_RESERVE_MS)
        try:
            batch = self.batches.process(records, deadline)
        finally:
            self.logger.thread_safe_clear_keys()  # the correlation id of the last run logged
        if self.lake is not None:
            self._deliver_to_lake(batch, self.lake, deadline)
        if self.rejected is not None:
            self._deliver_rejected(batch, self.rejected, deadline)
        position = batch.positions()
        emitted = sorted((metric for group in batch.groups for metric in group.state.metrics), key=lambda metric: position[metric[0]])
        self._add_metrics(emitted)  # in batch order, whatever order the groups finished in
        return batch.failed()

    # The run starter (``fifo_batch.RunStarter``): one write for consecutive valid records of one request.

    def _start_run(self, group: Group[_GroupOutcome], position: int, deadline: float | None) -> tuple[int, _StoredRun] | None:
        records, outcome = group.records, group.state
        head = self._parsed(records, position, outcome)
        if head.event is None:
            return None
        end = position + 1  # consecutive valid records of the same request join the write
        while (
            end < len(records)
            and (following := self._parsed(records, end, outcome).event) is not None
            and following.requestId == head.event.requestId
        ):
            end += 1
        run = [outcome.parsed[index] for index in range(position, end)]
        events = [item.event for item in run if item.event is not None]
        now = self.clock()
        try:
            write: StartedWrite = self.store.start(events, now, deadline=deadline)
        except Exception as error:  # a store that fails before sending: the run fails as when its write fails
            write = _NotStarted(error)
        return end, _StoredRun(self, outcome, position, run, events, now, write)

    def _parsed(self, records: list[Record], index: int, outcome: _GroupOutcome) -> _Parsed:
        parsed = outcome.parsed.get(index)
        if parsed is None:
            parsed = outcome.parsed[index] = self._parse(records[index], outcome)
        return parsed

    def _parse(self, record: Record, outcome: _GroupOutcome) -> _Parsed:
        body = record.get("body", "")
        try:
            return _Parsed(record, parse_event(body))
        except ValidationError as error:
            self.logger.thread_safe_clear_keys()  # no request's correlation id: the record has none that can be trusted
            self.logger.error("Invalid event", extra={"messageId": record["messageId"], **describe_invalid(body, error)})
            outcome.metrics.append((record["messageId"], contract.INVALID_EVENTS, MetricUnit.Count, 1))
            try:  # the record fails whatever happens to its rejected row
                outcome.rejected.append(encode(rejected_row(describe_rejection(body, error), record, self.clock())))
            except Exception:
                self.logger.exception("Rejected row not built", extra={"messageId": record["messageId"]})
                outcome.metrics.append((record["messageId"], contract.REJECTED_DELIVERY_FAILURES, MetricUnit.Count, 1))
            return _Parsed(record, None)

    def _finish_run(self, stored: _StoredRun) -> bool:
        """The run's write read: True when stored. A failure (``NoTimeLeft`` included: the write could not end
        before the deadline and was not started) leaves the run's records failed. Logged with the request's
        correlation id, set only when there is a line to log (at prod's level, only a failure)."""
        run, events, now, outcome, logger = stored.run, stored.events, stored.now, stored.outcome, self.logger
        try:
            result = stored.write.finish()
        except Exception as error:
            transient = is_transient(error)
            logger.thread_safe_append_keys(correlation_id=events[0].requestId)
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
            outcome.lake.append((stored.position, encode(lake_row(result.item, now))))
        counted: set[str] = set()
        for item in run:
            event = item.event
            assert event is not None
            if event.eventType in result.first and event.eventType not in counted:
                counted.add(event.eventType)
                outcome.metrics.extend(_event_metrics(item.record["messageId"], event, now))
        if logger.log_level > logging.DEBUG:  # the extra fields below cost more than the disabled call
            return True
        logger.thread_safe_append_keys(correlation_id=events[0].requestId)
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

    # After the groups: the lake's rows, the rejected rows, the metrics.

    def _deliver_to_lake(self, batch: Batch[_GroupOutcome], lake: RowSink, deadline: float | None) -> None:
        """One ``PutRecordBatch`` for the rows of every group; a refused row fails its run and the rest of its group."""
        rows = [(group, position, row) for group in batch.groups for position, row in group.state.lake]
        if not rows:
            return
        result = lake.put([row for _, _, row in rows], deadline=deadline)
        self.metrics.add_metric(name=contract.LAKE_ROWS, unit=MetricUnit.Count, value=result.delivered)
        if not result.refused:
            return
        self.metrics.add_metric(name=contract.LAKE_DELIVERY_FAILURES, unit=MetricUnit.Count, value=len(result.refused))
        for index in result.refused:
            group, position, _ = rows[index]
            # Rows exist only for stored runs, which precede a group's failed records: the refused run's
            # records and everything after them include what had already failed.
            group.fail_from(position)
        self.logger.error(
            "Rows not delivered to the lake",
            extra={"rows": len(rows), "refused": len(result.refused), "errorCodes": sorted(set(result.refused.values()))},
        )

    def _deliver_rejected(self, batch: Batch[_GroupOutcome], sink: RowSink, deadline: float | None) -> None:
        """One ``PutRecordBatch`` of the batch's rejected rows, after the lake's (which can fail records: this one
        cannot). Their records have failed already and stay failed; a row Firehose refuses is counted and logged,
        and the row of the record's next receive is the next try (the SQL counts a message id once)."""
        rows = [row for group in batch.groups for row in group.state.rejected]
        if not rows:
            return
        try:
            result = sink.put(rows, deadline=deadline)
        except Exception as error:  # put() reports refusals; anything else must not change the batch's outcome either
            self.logger.exception(
                "Rejected rows not delivered to the lake", extra={"rows": len(rows), "errorCodes": [type(error).__name__]}
            )
            self.metrics.add_metric(name=contract.REJECTED_DELIVERY_FAILURES, unit=MetricUnit.Count, value=len(rows))
            return
        self.metrics.add_metric(name=contract.REJECTED_ROWS, unit=MetricUnit.Count, value=result.delivered)
        if result.refused:
            self.metrics.add_metric(name=contract.REJECTED_DELIVERY_FAILURES, unit=MetricUnit.Count, value=len(result.refused))
            self.logger.error(
                "Rejected rows not delivered to the lake",
                extra={"rows": len(rows), "refused": len(result.refused), "errorCodes": sorted(set(result.refused.values()))},
            )

    def _add_metrics(self, emitted: list[Metric]) -> None:
        """``metrics.add_metric`` for each value, but only the first value of a name in this process goes through it.

        Powertools checks the name, unit and resolution and formats a debug message on every call (about
        3 µs each, 30 calls a batch, 8 of them a name's first value in the batch's metric set). The later
        values of a name (same unit and resolution: one place sets each name) are appended to the entry in
        the metric set, as ``add_metric`` appends them; a name's first value of a later invocation gets an
        entry shaped as the one ``add_metric`` made for it the first time (its unit and resolution as
        Powertools resolved them). Powertools flushes at ``MAX_METRIC_VALUES`` values of a name or names in
        the set: a value that reaches either goes through ``add_metric``, so that still happens.
        """
        metrics = self.metrics
        metric_set = metrics.metric_set
        resolved = self._metric_entries
        for _, name, unit, value in emitted:
            entry = metric_set.get(name)
            if entry is not None and len(entry["Value"]) < MAX_METRIC_VALUES - 1:
                entry["Value"].append(float(value))
                continue
            shape = resolved.get(name)
            if entry is None and shape is not None and shape[0] == unit and len(metric_set) < MAX_METRIC_VALUES - 1:
                metric_set[name] = defaultdict(list, {"Unit": shape[1], "StorageResolution": shape[2], "Value": [float(value)]})
                continue
            metrics.add_metric(name=name, unit=unit, value=value)
            made = metric_set.get(name)
            if made is not None:  # None: that value flushed the set
                resolved[name] = (unit, made["Unit"], made["StorageResolution"])


def _event_metrics(message_id: str, event: Event, now_ms: int) -> list[Metric]:
    """Counted once per event: replays add nothing."""
    if isinstance(event, QueryEvent):
        found: list[Metric] = [(message_id, contract.QUERY_EVENTS, MetricUnit.Count, 1)]
    else:
        found = [
            (message_id, contract.RESPONSE_EVENTS, MetricUnit.Count, 1),
            (message_id, contract.MATCH_METRICS[event.matchType], MetricUnit.Count, 1),
            (message_id, contract.MATCH_SCORE, MetricUnit.NoUnit, event.matchScore),
        ]
    found.append((message_id, contract.INGEST_LAG_MS, MetricUnit.Milliseconds, now_ms - event.timestamp))
    return found


def processor_from_environment() -> Processor:
    """What an execution environment's cold start builds: the store (``TABLE_NAME``, ``EVENT_RETENTION_DAYS``),
    the lake's streams (``LAKE_STREAM_NAME``, ``REJECTED_STREAM_NAME``; each optional), the Logger and the metrics
    (``POWERTOOLS_*``). ``clients.ConfigurationError`` when the environment is incomplete."""
    return Processor(
        store_from_environment(), sink_from_environment(), rejected_sink_from_environment(), logger=Logger(), metrics=Metrics()
    )


_processor: Processor | None = None  # the execution environment's, built at its first invocation


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda's entry point (``chat_processor.handler.handler``): returns ``{"batchItemFailures": [...]}``.

    Lambda's environment never changes, so the processor (its clients and their connections) is built once,
    lazily, so that importing this module reads no environment; an incomplete environment fails every
    invocation (``ConfigurationError``) until it is fixed."""
    global _processor
    if _processor is None:
        _processor = processor_from_environment()
    return _processor.handle(event, context)
