"""Look at and move the dead-letter queue's messages without losing or duplicating any.

Both queues are FIFO. Receiving from a FIFO queue locks the message's group until the message is
deleted or becomes visible again, so ``inspect`` receives with a short visibility timeout and,
whatever happens (an error, Ctrl-C), sets every received message visible again at once: the look
leaves the queue as it found it, except that SQS counts one more receive. (If the endpoint itself
stops answering, the messages come back by themselves when the visibility timeout ends.)

``redrive`` sends each message to the events queue with its ``MessageGroupId`` and
``MessageDeduplicationId`` and only then deletes it from the DLQ. SQS replaced the original
deduplication id with the original message id when it moved the message to the DLQ, so the resend
is not dropped as a duplicate of the first send; and if the delete fails and the command is run
again, the second send carries the same id and is dropped inside the 5-minute window. The processor
merges idempotently, so even a late duplicate only rewrites the same item.

``redrive`` moves only the messages that pass the event contract (``validation.validate_body``, the
finding ``inspect`` shows): an invalid one would fail the processor three more times and dead-letter
again. Those stay in the DLQ, listed with their reason; ``include_invalid`` moves them too.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chat_analytics_ops.errors import UNREACHABLE_ERRORS, EmptyQueueError, OpsError, error_code
from chat_analytics_ops.validation import validate_body

HOLD_SECONDS = 60  # how long a received message stays locked while we work on it
# Long poll: short polls of a FIFO queue may miss messages; tests set 0. SQS holds the answer up to this
# long, so it must stay well below timeouts.READ_TIMEOUT_S (a test holds them apart).
RECEIVE_WAIT_SECONDS = 1
EXCERPT_CHARS = 100
FIELD_EXCERPT_CHARS = 32  # a question or reasoning is cut to this inside the excerpt
EXCERPT_FIRST = ("eventType", "query", "matchType", "matchScore", "reasoning")
MOVE_TASK_UNSUPPORTED = frozenset(
    {
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        "InvalidAction",
        "NotImplemented",
        "UnknownOperationException",
        "InvalidParameterValue",
    }
)


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ message as an operator needs to see it: ids, history and why it failed, no full text."""

    message_id: str
    group_id: str | None
    deduplication_id: str | None
    receive_count: int
    sent_at_ms: int | None
    age_s: float | None
    event_type: str | None
    request_id: str | None
    excerpt: str
    error: str | None
    body: str = field(repr=False)
    receipt_handle: str = field(repr=False)
    attributes: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The printable view (``--json``): no body and no receipt handle."""
        return {
            "messageId": self.message_id,
            "messageGroupId": self.group_id,
            "messageDeduplicationId": self.deduplication_id,
            "receiveCount": self.receive_count,
            "sentTimestamp": self.sent_at_ms,
            "ageSeconds": None if self.age_s is None else round(self.age_s, 1),
            "eventType": self.event_type,
            "requestId": self.request_id,
            "excerpt": self.excerpt,
            "validationError": self.error,
        }


# A "query" member in text that is not parseable JSON (e.g. a truncated body): its value is masked.
_QUERY_MEMBER = re.compile(r'("query"\s*:\s*)"(?:[^"\\]|\\.)*(?:"|$)', re.DOTALL)


def excerpt(body: str, limit: int = EXCERPT_CHARS, *, show_text: bool = False) -> str:
    """A short, single-line view of a body, within the project's privacy rule (docs/architecture.md):
    the user's question is shown as its length only, unless ``show_text`` (``dlq inspect --show-text``);
    other free text is cut first. A body that is not JSON may be the question itself: its length only."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        event = None
    if isinstance(event, dict):
        # What tells events apart first; ids and timestamps are shown elsewhere.
        keys = [key for key in EXCERPT_FIRST if key in event] + [key for key in event if key not in EXCERPT_FIRST]
        shortened = {key: _question(event[key]) if key == "query" and not show_text else _shorten(event[key]) for key in keys}
        text = json.dumps(shortened, ensure_ascii=False, separators=(",", ":"))
    elif show_text:
        text = " ".join(body.split())
    elif body.lstrip().startswith(("{", "[")):
        text = " ".join(_QUERY_MEMBER.sub(r'\1"<question omitted>"', body).split())
    else:
        return f"<not JSON, {len(body)} characters>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _question(value: Any) -> Any:
    return f"<question, {len(value)} characters>" if isinstance(value, str) else _shorten(value)


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > FIELD_EXCERPT_CHARS:
        return value[: FIELD_EXCERPT_CHARS - 1] + "…"
    if isinstance(value, dict | list):
        return "…"
    return value


def to_dead_letter(message: dict[str, Any], now_ms: int) -> DeadLetter:
    """Build the operator's view of a received message."""
    attributes = message.get("Attributes", {})
    body = message.get("Body", "")
    sent = int(attributes["SentTimestamp"]) if "SentTimestamp" in attributes else None
    # SQS counts the receive that returned the message: the receives before this look are one fewer.
    count = max(int(attributes.get("ApproximateReceiveCount", "1")) - 1, 0)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    event = parsed if isinstance(parsed, dict) else {}
    event_type = event.get("eventType") if isinstance(event.get("eventType"), str) else None
    request_id = event.get("requestId") if isinstance(event.get("requestId"), str) else None
    return DeadLetter(
        message_id=message["MessageId"],
        group_id=attributes.get("MessageGroupId"),
        deduplication_id=attributes.get("MessageDeduplicationId"),
        receive_count=count,
        sent_at_ms=sent,
        age_s=None if sent is None else max(now_ms - sent, 0) / 1000,
        event_type=event_type,
        request_id=request_id[:64] if request_id else None,
        excerpt=excerpt(body),
        error=validate_body(body),
        body=body,
        receipt_handle=message["ReceiptHandle"],
        attributes=message.get("MessageAttributes", {}),
    )


@dataclass(frozen=True)
class QueueState:
    """What GetQueueAttributes says about a queue."""

    url: str
    arn: str
    visible: int
    in_flight: int
    fifo: bool


def queue_state(sqs: Any, url: str) -> QueueState:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "FifoQueue"]
    )["Attributes"]
    return QueueState(
        url=url,
        arn=attributes.get("QueueArn", ""),
        visible=int(attributes.get("ApproximateNumberOfMessages", "0")),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
        fifo=attributes.get("FifoQueue") == "true",
    )


def ensure_not_empty(state: QueueState) -> None:
    """An empty DLQ is reported as such, with a hint when someone else holds its messages."""
    if state.visible == 0 and state.in_flight == 0:
        raise EmptyQueueError(f"the dead-letter queue is empty: {state.url}")


def _receive(sqs: Any, url: str, count: int) -> list[dict[str, Any]]:
    return sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=max(1, min(10, count)),
        VisibilityTimeout=HOLD_SECONDS,
        WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def release(sqs: Any, url: str, receipts: list[str]) -> None:
    """Make received messages visible again at once (visibility 0), ten per request."""
    for start in range(0, len(receipts), 10):
        chunk = receipts[start : start + 10]
        entries = [{"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0} for i, handle in enumerate(chunk)]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


@contextmanager
def held_messages(sqs: Any, url: str, limit: int) -> Iterator[list[DeadLetter]]:
    """Receive up to ``limit`` messages and hold them; on exit release the ones still in ``held``.

    The caller removes from the list the messages it deleted; everything left is released, even
    when the body of the ``with`` raises, except when the endpoint stopped answering (a release would
    wait out the timeouts again): then they come back by themselves after ``HOLD_SECONDS``.
    """
    held: list[DeadLetter] = []
    seen: set[str] = set()
    answering = True
    try:
        while len(held) < limit:
            messages = _receive(sqs, url, limit - len(held))
            now_ms = time.time_ns() // 1_000_000
            fresh = [m for m in messages if m["MessageId"] not in seen]
            held.extend(to_dead_letter(m, now_ms) for m in fresh)
            seen.update(m["MessageId"] for m in fresh)
            if not fresh:
                break
        yield held
    except UNREACHABLE_ERRORS:
        # The endpoint stopped answering: a release would only wait out the timeouts once more.
        answering = False
        raise
    finally:
        if held and answering:
            # If the release fails they become visible by themselves after HOLD_SECONDS; the
            # command's own result (or error) is what the operator needs to see.
            with contextlib.suppress(ClientError, BotoCoreError):
                release(sqs, url, [letter.receipt_handle for letter in held])


def inspect(sqs: Any, dlq_url: str, limit: int) -> list[DeadLetter]:
    """Up to ``limit`` DLQ messages, left in the queue (visible again when this returns)."""
    state = queue_state(sqs, dlq_url)
    ensure_not_empty(state)
    with held_messages(sqs, dlq_url, limit) as letters:
        result = list(letters)
    if not result:
        _nothing_received(state)
    return result


def _nothing_received(state: QueueState) -> None:
    if state.in_flight:
        raise OpsError(
            f"the dead-letter queue's {state.in_flight} message(s) are in flight (another inspect or redrive holds them); try again in a minute"
        )
    raise EmptyQueueError(f"the dead-letter queue is empty: {state.url}")


@dataclass
class RedriveResult:
    """What a redrive did (or, with ``dry_run``, would do). ``left`` are the messages it did not move
    because they fail the event contract (each with its finding in ``error``): redriven, they would
    only dead-letter again."""

    method: str
    dry_run: bool
    moved: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)
    left: list[DeadLetter] = field(default_factory=list)
    task_handle: str | None = None
    approximate_count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "dryRun": self.dry_run,
            "moved": [letter.to_json() for letter in self.moved],
            "failed": [{**letter.to_json(), "reason": reason} for letter, reason in self.failed],
            "left": [{**letter.to_json(), "reason": letter.error} for letter in self.left],
            "leftCount": len(self.left),
            "taskHandle": self.task_handle,
            "approximateCount": self.approximate_count,
        }


def redrive(
    sqs: Any,
    dlq_url: str,
    events_url: str,
    *,
    limit: int | None,
    dry_run: bool,
    method: str = "auto",
    include_invalid: bool = False,
) -> RedriveResult:
    """Move DLQ messages back to the events queue: by default only those that pass the event contract.

    A message that fails the contract (``dlq inspect``'s finding) would fail the processor again and
    dead-letter again after three more receives: it stays in the DLQ, reported in ``left`` with its
    reason, unless ``include_invalid``.

    ``auto`` asks SQS for a message-move task (it supports FIFO DLQs now, runs server side and keeps
    order) when the whole queue is to move. A move task moves everything and cannot filter, so
    without ``include_invalid`` it is started only after a look at every message found them all
    valid; otherwise, and for ``--max``, ``--dry-run`` and endpoints without the API (moto), the
    messages are moved one by one (receive, send, delete) and the invalid ones are left.
    """
    dlq = queue_state(sqs, dlq_url)
    ensure_not_empty(dlq)
    events = queue_state(sqs, events_url)
    if dlq.fifo != events.fifo:
        raise OpsError("the dead-letter queue and the events queue must both be FIFO (or both standard) to redrive")
    if method == "move-task" and (limit is not None or dry_run):
        raise OpsError("--method move-task moves the whole queue: it cannot be combined with --max or --dry-run")
    whole_queue = method in {"auto", "move-task"} and limit is None and not dry_run
    # A move task cannot filter: only when every message passes, or when told to move the invalid ones too.
    if whole_queue and (include_invalid or _all_valid(sqs, dlq, required=method == "move-task")):
        started = _start_move_task(sqs, dlq, events, required=method == "move-task")
        if started is not None:
            return started
    return _copy_messages(
        sqs, dlq, events_url, limit=limit if limit is not None else 1_000_000, dry_run=dry_run, include_invalid=include_invalid
    )


def _all_valid(sqs: Any, dlq: QueueState, *, required: bool) -> bool:
    """Whether a look at the whole DLQ (every message received, judged, released) found only valid events.

    False when some fail the contract or when the look could not see every message (a FIFO queue
    holds back a group's later messages while an earlier one is received): the caller then moves
    message by message, which leaves the invalid ones. With ``required`` (``--method move-task``)
    either case is an error instead.
    """
    with held_messages(sqs, dlq.url, max(dlq.visible, 1)) as letters:
        seen = list(letters)
    invalid = [letter for letter in seen if letter.error]
    if invalid and required:
        raise OpsError(
            f"{len(invalid)} of {len(seen)} message(s) fail the event contract and StartMessageMoveTask cannot leave them behind:"
            " use --method manual to move only the valid ones, or --include-invalid to move everything (see dlq inspect)"
        )
    if len(seen) < dlq.visible and required:
        raise OpsError(
            f"could only look at {len(seen)} of about {dlq.visible} message(s) to check them against the contract:"
            " use --method manual to move only the valid ones, or --include-invalid to move everything"
        )
    return not invalid and len(seen) >= dlq.visible


def _start_move_task(sqs: Any, dlq: QueueState, events: QueueState, *, required: bool) -> RedriveResult | None:
    """Start SQS's own message move; None when the endpoint does not offer it (and it was not required).

    "Does not offer it" is an unsupported-operation code, or a server error (moto's server answers
    500 for actions it lacks): the receive, send, delete path that follows is just as safe.
    """
    try:
        response = sqs.start_message_move_task(SourceArn=dlq.arn, DestinationArn=events.arn)
    except NotImplementedError:  # moto in-process
        if required:
            raise OpsError("this endpoint does not implement StartMessageMoveTask; use --method manual") from None
        return None
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if required or (error_code(error) not in MOVE_TASK_UNSUPPORTED and status < 500):
            raise
        return None
    return RedriveResult(method="move-task", dry_run=False, task_handle=response.get("TaskHandle"), approximate_count=dlq.visible)


def _copy_messages(sqs: Any, dlq: QueueState, events_url: str, *, limit: int, dry_run: bool, include_invalid: bool) -> RedriveResult:
    """Receive, send with the same group and deduplication ids, delete; in chunks of ten, up to ``limit`` moved.

    What is not moved (the invalid messages, and in a dry run everything) stays held until the end,
    so each receive returns new messages, and is then released at once: a dry run leaves the queue
    as it found it, and a redrive leaves exactly the invalid messages (and any it could not move).
    """
    result = RedriveResult(method="manual", dry_run=dry_run)
    kept: list[str] = []  # receipt handles to release at the end
    seen: set[str] = set()
    answering = True
    try:
        while len(result.moved) < limit:
            messages = _receive(sqs, dlq.url, limit - len(result.moved))
            now_ms = time.time_ns() // 1_000_000
            # A message seen before is back because its hold ran out (a long run): hold it again until the end.
            kept.extend(m["ReceiptHandle"] for m in messages if m["MessageId"] in seen)
            batch = [to_dead_letter(m, now_ms) for m in messages if m["MessageId"] not in seen]
            if not batch:
                break
            seen.update(letter.message_id for letter in batch)
            movable = [letter for letter in batch if include_invalid or letter.error is None]
            invalid = [letter for letter in batch if not (include_invalid or letter.error is None)]
            result.left.extend(invalid)
            kept.extend(letter.receipt_handle for letter in invalid)
            if dry_run:
                result.moved.extend(movable)
                kept.extend(letter.receipt_handle for letter in movable)
                continue
            sent, failed = _send(sqs, events_url, movable) if movable else ([], [])
            result.failed.extend(failed)
            deleted = _delete(sqs, dlq.url, sent, result)
            result.moved.extend(deleted)
            done = {letter.message_id for letter in deleted}
            kept.extend(letter.receipt_handle for letter in movable if letter.message_id not in done)
            if result.failed:
                break  # the events queue refuses or the DLQ will not delete: stop pulling messages we cannot move
    except UNREACHABLE_ERRORS:
        answering = False  # a release would only wait out the timeouts again; the holds end by themselves
        raise
    finally:
        if kept and answering:
            with contextlib.suppress(ClientError, BotoCoreError):
                release(sqs, dlq.url, kept)
    if not result.moved and not result.failed and not result.left:
        _nothing_received(queue_state(sqs, dlq.url))
    return result


def _send(sqs: Any, events_url: str, batch: list[DeadLetter]) -> tuple[list[DeadLetter], list[tuple[DeadLetter, str]]]:
    """SendMessageBatch with each message's own ids and attributes; returns (sent, failed with reason)."""
    entries = []
    for index, letter in enumerate(batch):
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": letter.body}
        if letter.group_id:
            entry["MessageGroupId"] = letter.group_id
        if letter.deduplication_id:
            entry["MessageDeduplicationId"] = letter.deduplication_id
        if letter.attributes:
            entry["MessageAttributes"] = letter.attributes
        entries.append(entry)
    response = sqs.send_message_batch(QueueUrl=events_url, Entries=entries)
    ok = {item["Id"] for item in response.get("Successful", [])}
    reasons = {item["Id"]: f"{item.get('Code', 'Error')}: {item.get('Message', '')}".strip() for item in response.get("Failed", [])}
    sent = [letter for index, letter in enumerate(batch) if str(index) in ok]
    failed = [(letter, reasons.get(str(index), "not acknowledged")) for index, letter in enumerate(batch) if str(index) not in ok]
    return sent, failed


def _delete(sqs: Any, dlq_url: str, sent: list[DeadLetter], result: RedriveResult) -> list[DeadLetter]:
    """Delete what was sent; a message whose delete fails stays in the DLQ and is reported (a rerun is safe)."""
    if not sent:
        return []
    entries = [{"Id": str(i), "ReceiptHandle": letter.receipt_handle} for i, letter in enumerate(sent)]
    response = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=entries)
    ok = {item["Id"] for item in response.get("Successful", [])}
    for item in response.get("Failed", []):
        letter = sent[int(item["Id"])]
        result.failed.append((letter, f"sent but not deleted from the DLQ ({item.get('Code', 'Error')}); rerunning is safe"))
    return [letter for i, letter in enumerate(sent) if str(i) in ok]
