"""The processor Lambda: validates SQS FIFO batches of analytics events and merges them into DynamoDB.

``handler`` runs each batch through Powertools' ``SqsFifoPartialProcessor`` with
``skip_group_on_error=True``: a record that fails (invalid, or the table refused it) fails its own
message group only, i.e. itself and the later records of its ``requestId``, so order within a
request is kept while other requests go on. The response lists exactly the failed message IDs;
SQS redelivers them and moves them to the DLQ after ``maxReceiveCount`` receives.

When every record of a batch fails, the failures are reported like any others instead of raising
(Powertools' default): the effect on the queue is the same, and a poison message alone in a batch
does not count as a function error (the DLQ alarm covers it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from invalid import describe_invalid
from models import QueryEvent, ResponseEvent, parse_event
from pydantic import ValidationError
from store import StoreProvider, error_code, is_transient

# A record is not started when less than this is left of the invocation: failing it fast keeps the
# records already done (a timeout would return the whole batch to the queue).
DEADLINE_SLACK_MS = 3_000
MATCH_METRICS = {"full": "MatchFull", "partial": "MatchPartial", "none": "MatchNone"}


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time: Lambda's stdout in AWS, and the local stack's
    or pytest's replacement locally (a Logger binds its stream once, at import)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


logger = Logger(stream=_CurrentStdout())  # type: ignore[arg-type]
metrics = Metrics()
stores = StoreProvider()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


def epoch_ms() -> int:
    """Processing time, epoch milliseconds (``*IngestedAt`` and the ingest lag)."""
    return time.time_ns() // 1_000_000


clock: Callable[[], int] = epoch_ms  # replaced in tests to make items comparable


class InvalidEventError(Exception):
    """The record's body is not a valid event; it will reach the DLQ after its last receive."""


class DeadlineError(Exception):
    """Too little time is left in the invocation to start this record."""


class _Invocation:
    """What the record handler needs from the current invocation."""

    store: Any = None
    context: Any = None


_current = _Invocation()


def record_handler(record: SQSRecord) -> None:
    """Validate one record and merge it; raising fails the record (and the rest of its group)."""
    logger.set_correlation_id(None)
    context = _current.context
    if context is not None and context.get_remaining_time_in_millis() < DEADLINE_SLACK_MS:
        logger.warning("Not enough time left to start the record", extra={"messageId": record.message_id})
        raise DeadlineError("invocation deadline near")
    try:
        event = parse_event(record.body)
    except ValidationError as error:
        logger.error("Invalid event", extra={"messageId": record.message_id, **describe_invalid(record.body, error)})
        metrics.add_metric(name="InvalidEvents", unit=MetricUnit.Count, value=1)
        raise InvalidEventError(f"invalid event in message {record.message_id}") from None
    logger.set_correlation_id(event.requestId)
    now = clock()
    store = _current.store
    with _store_errors(record, event):
        result = store.merge(event, now)
    if result.first_delivery:
        _add_event_metrics(event, now)
    with _store_errors(record, event):
        store.complete(result)
    logger.debug(
        "Event stored", extra={"messageId": record.message_id, "eventType": event.eventType, "firstDelivery": result.first_delivery}
    )


@contextmanager
def _store_errors(record: SQSRecord, event: QueryEvent | ResponseEvent) -> Iterator[None]:
    """Log a failed write (a warning when a retry may succeed) and let it fail the record."""
    try:
        yield
    except Exception as error:
        transient = is_transient(error)
        (logger.warning if transient else logger.error)(
            "Event not stored",
            extra={"messageId": record.message_id, "eventType": event.eventType, "errorCode": error_code(error), "transient": transient},
        )
        raise


def _add_event_metrics(event: QueryEvent | ResponseEvent, now_ms: int) -> None:
    """Counted once per event: replays (``first_delivery`` False) add nothing."""
    if isinstance(event, QueryEvent):
        metrics.add_metric(name="QueryEvents", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="ResponseEvents", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=MATCH_METRICS[event.matchType], unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="MatchScore", unit=MetricUnit.NoUnit, value=event.matchScore)
    metrics.add_metric(name="IngestLagMs", unit=MetricUnit.Milliseconds, value=now_ms - event.timestamp)


@logger.inject_lambda_context(log_event=False, clear_state=True)
def handler(event: dict, context: Any) -> dict:
    """Lambda entry point (``handler.handler``): returns ``{"batchItemFailures": [...]}``."""
    _current.store = stores.get()
    _current.context = context
    try:
        response = process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    finally:
        _current.context = None
        logger.set_correlation_id(None)
        # One EMF document per invocation. Flushed by hand rather than with ``log_metrics``, which
        # warns on every invocation without metrics (a batch of replays, or of store failures).
        if metrics.metric_set:
            metrics.flush_metrics()
    failures = response.get("batchItemFailures", [])
    records = len(event.get("Records", []))
    logger.info("Batch processed", extra={"records": records, "failed": len(failures)})
    return response
