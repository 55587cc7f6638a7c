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
again. Those stay in the DLQ, listed with their reason; ``include_invalid`` moves them too. A FIFO
group's later messages stay behind one that stays. The redrive judges that from a look at the whole
queue before it moves anything, each group in the order one receive returned it, not from the order the
receives came in: SQS never returns a group's later message before an earlier one, but an endpoint that
does (moto, see ``Receiver.group_order``) must not make the redrive break a group's order.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chat_analytics_ops.errors import UNREACHABLE_ERRORS, EmptyQueueError, OpsError, error_code
from chat_analytics_ops.render import plural
from chat_analytics_ops.validation import validate_body

HOLD_SECONDS = 60  # how long a received message stays locked while we work on it
# A look longer than that extends the holds it still needs once less than this is left of them.
EXTEND_BEFORE_SECONDS = HOLD_SECONDS / 2
# Long poll: short polls of a FIFO queue may miss messages; tests set 0. SQS holds the answer up to this
# long, so it must stay well below timeouts.READ_TIMEOUT_S (a test holds them apart).
RECEIVE_WAIT_SECONDS = 1
# How often one FIFO group is released and received again to see the messages held back behind it
# (more than once only when a full receive cut it again: holds running out during a long look).
MAX_TRIES_PER_GROUP = 5
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
    _change_visibility(sqs, url, receipts, 0)


def _change_visibility(sqs: Any, url: str, receipts: list[str], seconds: int) -> set[str]:
    """ChangeMessageVisibilityBatch, ten per request; returns the receipt handles SQS refused (e.g. a
    message whose hold already ran out is not in flight any more)."""
    refused: set[str] = set()
    for start in range(0, len(receipts), 10):
        chunk = receipts[start : start + 10]
        entries = [{"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds} for i, handle in enumerate(chunk)]
        response = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
        refused.update(chunk[int(item["Id"])] for item in response.get("Failed", []))
    return refused


def clock() -> float:
    """The clock holds are timed by (tests replace it with a simulated one)."""
    return time.monotonic()


class Receiver:
    """Receives a queue's messages and holds them, each remembered once (by ``MessageId``) with its latest
    receipt handle, until ``release_all``.

    Holding is what makes each receive return messages not seen yet. In a FIFO queue it also holds back
    the later messages of every group it holds: SQS returns a group's next message only together with
    the earlier ones (as many of one group as fit in the 10 of a receive) or after they are deleted,
    never while they are in flight ("FIFO queue delivery logic in Amazon SQS", receiving messages:
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html).
    So when a full receive cuts a group (its first message in this batch, its second one left out), the
    second one is never returned while the first is held: ``recover_tails`` makes such a group visible
    again on its own, and the next receive returns its messages together.

    Each receive's messages of each group are remembered in that receive's order (``runs``): the order of
    a group's messages is known from a receive that returned them together (``group_order``).

    A look longer than ``HOLD_SECONDS`` extends the holds it still needs before they run out
    (``ChangeMessageVisibility``, once less than ``EXTEND_BEFORE_SECONDS`` is left), so the messages it
    has seen do not come back in its way. A message returned again anyway (its hold ran out, e.g. one
    call took longer than the hold) is held again under its new receipt handle and not counted twice.
    """

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs = sqs
        self.url = url
        self.letters: dict[str, DeadLetter] = {}  # every message seen, in the order first received
        self.handles: dict[str, str] = {}  # the messages held now: MessageId -> latest receipt handle
        self.held_until: dict[str, float] = {}  # MessageId -> when its hold ends, on ``clock()``
        self.groups: dict[str, list[str]] = {}  # MessageGroupId -> its messages seen, in the order first received
        # MessageGroupId -> the distinct runs of its messages single receives returned, each in that receive's order
        self.runs: dict[str, list[tuple[str, ...]]] = {}
        self.cut: list[str] = []  # groups a full receive may have cut, the last group of each batch first
        self._cuts: dict[str, int] = {}  # how many full receives each of them came in
        self.receives = 0
        self._stale = 0  # messages received again, and nothing new, since the last new one
        self._last_count = 0

    def receive(self, count: int) -> list[DeadLetter]:
        """One receive of up to ``count`` (at most 10); returns the messages not seen before, in order."""
        requested = max(1, min(10, count))
        self.extend_holds()
        started = clock()
        messages = _receive(self.sqs, self.url, requested)
        self.receives += 1
        self._last_count = len(messages)
        now_ms = time.time_ns() // 1_000_000
        fresh = []
        for message in messages:
            message_id = message["MessageId"]
            self.handles[message_id] = message["ReceiptHandle"]
            self.held_until[message_id] = started + HOLD_SECONDS
            if message_id in self.letters:
                continue
            letter = to_dead_letter(message, now_ms)
            self.letters[message_id] = letter
            if letter.group_id is not None:
                self.groups.setdefault(letter.group_id, []).append(message_id)
            fresh.append(letter)
        self._record_runs(messages)
        if len(messages) >= requested:
            batch_groups = [message.get("Attributes", {}).get("MessageGroupId") for message in reversed(messages)]
            for group in dict.fromkeys(group for group in batch_groups if group is not None):
                self._cuts[group] = self._cuts.get(group, 0) + 1
                if group not in self.cut:
                    self.cut.append(group)
        if fresh:
            self._stale = 0
        else:
            self._stale += len(messages)
        return fresh

    def _record_runs(self, messages: list[dict[str, Any]]) -> None:
        by_group: dict[str, list[str]] = {}
        for message in messages:
            group = message.get("Attributes", {}).get("MessageGroupId")
            if group is not None:
                by_group.setdefault(group, []).append(message["MessageId"])
        for group, ids in by_group.items():
            known = self.runs.setdefault(group, [])
            if tuple(ids) not in known:
                known.append(tuple(ids))

    def group_order(self, group: str, message_ids: list[str]) -> list[str] | None:
        """``message_ids`` (messages of ``group`` seen here) in their order in the group, as one receive returned
        them all together; None when no single receive returned them all.

        Only a receive that returned them together tells their order for certain: SQS returns a group's
        messages in order within a receive, and across receives only because it holds a group's later
        messages back while an earlier one is in flight (FIFO delivery logic, see the class docstring).
        An endpoint that does not (moto: when a release leaves a message marked in flight, its next receive
        skips the group's first message and returns the second alone) delivers the second one first."""
        wanted = set(message_ids)
        for run in self.runs.get(group, []):
            if wanted <= set(run):
                return [message_id for message_id in run if message_id in wanted]
        return None

    def exhausted(self) -> bool:
        """After a receive: nothing more to get. Either it returned nothing (all held, or gone), or every
        held message has come back once since the last new one (holds run out faster than the look moves)."""
        return self._last_count == 0 or self._stale > len(self.handles)

    def forget(self, message_id: str) -> None:
        """A message deleted from the queue (or visible again): nothing to release."""
        self.handles.pop(message_id, None)
        self.held_until.pop(message_id, None)

    def extend_holds(self) -> None:
        """Extend the holds that end within ``EXTEND_BEFORE_SECONDS``; a hold SQS says has already ended is
        forgotten (the message is visible again: a later receive returns it and it is held again)."""
        now = clock()
        due = [message_id for message_id in self.handles if self.held_until.get(message_id, now) - now < EXTEND_BEFORE_SECONDS]
        if not due:
            return
        handles = [self.handles[message_id] for message_id in due]
        refused = _change_visibility(self.sqs, self.url, handles, HOLD_SECONDS)
        for message_id, handle in zip(due, handles, strict=True):
            if handle in refused:
                self.forget(message_id)
            else:
                self.held_until[message_id] = now + HOLD_SECONDS

    def look(self, enough: Callable[[], bool]) -> None:
        """Receive (ten at a time) until ``enough()`` or nothing new comes, then ``recover_tails`` until ``enough()``."""
        self._receive_until(enough)
        self.recover_tails(enough)

    def _receive_until(self, done: Callable[[], bool], releasing: list[str] | None = None) -> None:
        """Release ``releasing`` (messages held here: SQS then returns their groups from each group's first
        message), then receive ten at a time until ``done()`` or nothing more comes (``exhausted``)."""
        if releasing:
            release(self.sqs, self.url, [self.handles[message_id] for message_id in releasing])
            for message_id in releasing:
                self.forget(message_id)
        self._stale = 0
        while True:
            self.receive(10)
            if done() or self.exhausted():
                break

    def recover_tails(self, enough: Callable[[], bool]) -> None:
        """Until ``enough()``: one group at a time, release the messages of a group held here and receive
        until they are back, so that SQS returns that group's messages together, the ones held back
        included.

        The groups a full receive may have cut come first (the last group of each full batch first: a
        receive returns a group's messages together), then every other group still held, each once; a
        group cut again (the receive that returned it was full again) is tried again, up to
        ``MAX_TRIES_PER_GROUP`` times."""
        tries: dict[str, int] = {}
        while not enough():
            group = self._next_group(tries)
            if group is None:
                return
            tries[group] = tries.get(group, 0) + 1

            def back(tried: str = group) -> bool:  # the group came back, or enough
                return enough() or bool(self._held(tried))

            self._receive_until(back, releasing=self._held(group))

    def hold_again(self, message_ids: list[str]) -> None:
        """Hold again those of ``message_ids`` (seen here) that are not held now: a release whose receive did not
        return them (moto, when a release leaves a later message of the group marked in flight, skips the
        group's first one), or a hold that ran out. Each of their groups is released whole, so that the
        receives return it from its first message, up to ``MAX_TRIES_PER_GROUP`` times."""
        for _ in range(MAX_TRIES_PER_GROUP):
            missing = [message_id for message_id in message_ids if message_id not in self.handles]
            if not missing:
                return
            groups = dict.fromkeys(group for group in (self.letters[message_id].group_id for message_id in missing) if group is not None)
            self._receive_until(
                lambda: all(message_id in self.handles for message_id in message_ids),
                releasing=[message_id for group in groups for message_id in self._held(group)],
            )

    def _next_group(self, tries: dict[str, int]) -> str | None:
        """The next group to release: one cut since its last try, else one never tried; only groups held here."""
        for group in self.cut:
            if self._cuts[group] > tries.get(group, 0) and tries.get(group, 0) < MAX_TRIES_PER_GROUP and self._held(group):
                return group
        return next((group for group in self.groups if group not in tries and self._held(group)), None)

    def _held(self, group: str) -> list[str]:
        return [message_id for message_id in self.groups.get(group, []) if message_id in self.handles]

    def release_all(self) -> None:
        """Make every held message visible again (best effort: they come back by themselves after HOLD_SECONDS)."""
        handles, self.handles, self.held_until = list(self.handles.values()), {}, {}
        if handles:
            with contextlib.suppress(ClientError, BotoCoreError):
                release(self.sqs, self.url, handles)


@contextmanager
def held_messages(sqs: Any, url: str, limit: int, *, expected: int = 0) -> Iterator[list[DeadLetter]]:
    """Up to ``limit`` messages, held while the ``with`` runs and released on exit: every message of the
    queue when ``expected`` (its ``ApproximateNumberOfMessages``) is reached, whatever its FIFO groups.

    Everything received is released on exit, even when the body of the ``with`` raises, except when the
    endpoint stopped answering (a release would wait out the timeouts again): then the messages come
    back by themselves after ``HOLD_SECONDS``.
    """
    receiver = Receiver(sqs, url)
    answering = True
    try:
        while len(receiver.letters) < limit:
            receiver.receive(limit - len(receiver.letters))
            if receiver.exhausted():
                break
        receiver.recover_tails(lambda: len(receiver.letters) >= min(limit, expected))
        yield list(receiver.letters.values())[:limit]
    except UNREACHABLE_ERRORS:
        # The endpoint stopped answering: a release would only wait out the timeouts once more.
        answering = False
        raise
    finally:
        if answering:
            receiver.release_all()


@dataclass(frozen=True)
class Inspection:
    """What ``inspect`` saw: the messages, and what the queue said before the look."""

    state: QueueState
    letters: list[DeadLetter]

    @property
    def approximate_count(self) -> int:
        return self.state.visible

    @property
    def missing(self) -> int:
        """Messages the queue counted that the look could not receive (e.g. beyond 10 in one FIFO group)."""
        return max(self.state.visible - len(self.letters), 0)

    def raise_if_nothing(self) -> None:
        """Nothing to show: an empty DLQ (``EmptyQueueError``, exit 3), or its messages held by someone else."""
        if not self.letters:
            _nothing_received(self.state)


def inspect(sqs: Any, dlq_url: str, limit: int) -> Inspection:
    """Up to ``limit`` DLQ messages, left in the queue (visible again when this returns); none when the
    queue is empty or its messages are in flight (``Inspection.raise_if_nothing`` says which)."""
    state = queue_state(sqs, dlq_url)
    if state.visible == 0 and state.in_flight == 0:
        return Inspection(state, [])
    with held_messages(sqs, dlq_url, limit, expected=state.visible) as letters:
        return Inspection(state, list(letters))


# Where the history of rejections lives: every receive of an invalid event leaves a row in the lake (the DLQ keeps
# only the messages of the last 14 days, rejected or failed for other reasons, until they are redriven or deleted).
REJECTIONS_HISTORY = (
    "rejections are kept in the lake table rejected (reason code, field, no question text):"
    " chat-analytics report --engine duckdb (or athena) shows them by reason"
)


def _nothing_received(state: QueueState) -> None:
    if state.in_flight:
        raise OpsError(
            f"the dead-letter queue's {plural(state.in_flight, 'message')} {'is' if state.in_flight == 1 else 'are'} in flight"
            f" (another inspect or redrive holds {'it' if state.in_flight == 1 else 'them'}); try again in a minute"
        )
    raise EmptyQueueError(f"the dead-letter queue is empty: {state.url}; {REJECTIONS_HISTORY}")


@dataclass
class RedriveResult:
    """What a redrive did (or, with ``dry_run``, would do). ``left`` are the messages it did not move
    because they fail the event contract (each with its finding in ``error``): redriven, they would
    only dead-letter again. ``held_back`` are valid messages of a FIFO group whose earlier message stays
    (left, or not moved): moved, they would overtake it, so they stay behind it."""

    method: str
    dry_run: bool
    moved: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)
    left: list[DeadLetter] = field(default_factory=list)
    held_back: list[DeadLetter] = field(default_factory=list)
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
            "heldBack": [letter.to_json() for letter in self.held_back],
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
    messages are moved one by one (a look at every message, then send and delete, ``_copy_messages``)
    and the invalid ones are left, with the later messages of their FIFO groups.
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
    with held_messages(sqs, dlq.url, max(dlq.visible, 1), expected=dlq.visible) as letters:
        seen = list(letters)
    invalid = [letter for letter in seen if letter.error]
    if invalid and required:
        raise OpsError(
            f"{len(invalid)} of {plural(len(seen), 'message')} {'fails' if len(invalid) == 1 else 'fail'} the event contract"
            " and StartMessageMoveTask cannot leave them behind:"
            " use --method manual to move only the valid ones, or --include-invalid to move everything (see dlq inspect)"
        )
    if len(seen) < dlq.visible and required:
        raise OpsError(
            f"could only look at {len(seen)} of about {plural(dlq.visible, 'message')} to check them against the contract:"
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


NOT_HELD = "not held any more (its hold ran out, or it did not come back after a release): it stays in the DLQ; rerunning is safe"


def _copy_messages(sqs: Any, dlq: QueueState, events_url: str, *, limit: int, dry_run: bool, include_invalid: bool) -> RedriveResult:
    """Look at the queue, judge every message it saw, then send the movable ones with the same group and
    deduplication ids and delete them; ten at a time, up to ``limit`` moved.

    The look comes first (every message received and held, as ``inspect`` and ``--dry-run`` do, each
    FIFO group's held-back messages included: ``Receiver.recover_tails``), and nothing moves before it
    ends: what the redrive moves is judged from the whole of each group it saw, in the group's order as one
    receive returned it (``Receiver.group_order``), never from the order the receives happened to return
    the messages in. A message moves only when every earlier message of its group seen here moves before
    it. What is not moved (the invalid messages, the ones behind them in their group: ``held_back``,
    and in a dry run everything) stays held until the end and is then released at once: a dry run leaves
    the queue as it found it, and a redrive leaves exactly the invalid messages, the ones behind them and
    any it could not move. When the look could not see every message (a group of more than ten, whose
    later ones SQS returns only once the earlier ones are gone), the redrive looks again after moving, and
    the groups that stay keep holding their later messages back.
    """
    result = RedriveResult(method="manual", dry_run=dry_run)
    receiver = Receiver(sqs, dlq.url)
    staying: set[str] = set()  # FIFO groups with a message that stays: the group's later messages stay behind it
    capped: set[str] = set()  # FIFO groups with a message beyond ``limit``: the group's later ones are beyond it too
    judged: set[str] = set()  # MessageIds already judged (moved, left, held back or beyond ``limit``)

    def complete() -> bool:
        return len(receiver.letters) >= dlq.visible

    def judge() -> list[DeadLetter]:
        """The messages to move, in order; the others go to ``result.left`` / ``held_back`` or stay unlisted."""
        movable: list[DeadLetter] = []

        def stays(letter: DeadLetter, valid: bool) -> None:
            if letter.group_id in staying:
                (result.held_back if valid else result.left).append(letter)
            elif not valid:
                result.left.append(letter)
            # else beyond --max (its group, or itself): it stays, unlisted

        def decide(letter: DeadLetter) -> None:
            group, valid = letter.group_id, include_invalid or letter.error is None
            if group is not None and (group in staying or group in capped):
                stays(letter, valid)
            elif valid and len(result.moved) + len(movable) < limit and not dry_run and letter.message_id not in receiver.handles:
                # Seen but not held (it did not come back after a release, or its hold ran out): not moved in order.
                result.failed.append((letter, NOT_HELD))
                if group is not None:
                    staying.add(group)
            elif valid and len(result.moved) + len(movable) < limit:
                movable.append(letter)
            else:
                stays(letter, valid)
                if group is not None:
                    (capped if valid else staying).add(group)

        fresh = [letter for letter in receiver.letters.values() if letter.message_id not in judged]
        if not dry_run:
            receiver.hold_again([letter.message_id for letter in fresh])
        fresh_ids = {letter.message_id for letter in fresh}
        judged.update(fresh_ids)
        groups_done: set[str] = set()
        for letter in fresh:
            group = letter.group_id
            if group is None:
                decide(letter)
                continue
            if group in groups_done:
                continue
            groups_done.add(group)
            ids = [message_id for message_id in receiver.groups[group] if message_id in fresh_ids]
            ordered = receiver.group_order(group, ids)
            members = [receiver.letters[message_id] for message_id in (ordered or ids)]
            if ordered is None and group not in staying and group not in capped:
                # No receive returned them together, so their order is unknown: the group moves whole or not at all.
                if any(not include_invalid and member.error for member in members):
                    staying.add(group)  # the valid ones may be behind an invalid one: they stay too
                elif not dry_run and any(member.message_id not in receiver.handles for member in members):
                    staying.add(group)  # one is not held: it cannot move in order, and the others may be behind it
                    for member in members:
                        if member.message_id not in receiver.handles and (include_invalid or member.error is None):
                            result.failed.append((member, NOT_HELD))
                        else:
                            decide(member)
                    continue
                elif len(result.moved) + len(movable) + len(members) <= limit:
                    movable.extend(members)
                    continue
                else:
                    capped.add(group)
            for member in members:
                decide(member)
        return movable

    def move(movable: list[DeadLetter]) -> None:
        failures = len(result.failed)
        for chunk in _batches(movable):
            receiver.extend_holds()
            lost = [letter for letter in chunk if letter.message_id not in receiver.handles]
            if lost:
                # Visible again: another consumer may hold it now, and a group's order is kept only while we hold it.
                result.failed.extend((letter, NOT_HELD) for letter in lost)
                return
            sent, failed = _send(sqs, events_url, chunk)
            result.failed.extend(failed)
            deleted = _delete(sqs, dlq.url, sent, result, receiver.handles)
            for letter in deleted:
                receiver.forget(letter.message_id)
            result.moved.extend(deleted)
            if len(result.failed) > failures:
                return  # the events queue refuses or the DLQ will not delete: stop moving what we cannot move

    answering = True
    try:
        while True:
            receiver.look(complete)
            movable = judge()
            if dry_run:
                result.moved.extend(movable)
                break
            move(movable)
            if result.failed or not movable or len(result.moved) >= limit or complete():
                break
    except UNREACHABLE_ERRORS:
        answering = False  # a release would only wait out the timeouts again; the holds end by themselves
        raise
    finally:
        if answering:
            receiver.release_all()
    if not result.moved and not result.failed and not result.left and not result.held_back:
        _nothing_received(queue_state(sqs, dlq.url))
    return result


def _batches(letters: list[DeadLetter], size: int = 10) -> list[list[DeadLetter]]:
    """``letters`` as SendMessageBatch batches of at most ``size``, each holding at most one message of a FIFO
    group, a group's messages in successive batches in their order (the n-th message of every group in the
    n-th layer of batches). SendMessageBatch can refuse one entry and take the next: a later message of the
    same group in that batch would then overtake the refused one, which the redrive stops behind."""
    layers: list[list[DeadLetter]] = []
    depth_of: dict[str, int] = {}
    for letter in letters:
        depth = 0
        if letter.group_id is not None:
            depth = depth_of.get(letter.group_id, 0)
            depth_of[letter.group_id] = depth + 1
        if depth == len(layers):
            layers.append([])
        layers[depth].append(letter)
    return [layer[start : start + size] for layer in layers for start in range(0, len(layer), size)]


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


def _delete(sqs: Any, dlq_url: str, sent: list[DeadLetter], result: RedriveResult, handles: dict[str, str]) -> list[DeadLetter]:
    """Delete what was sent, each with its latest receipt handle (``handles``: SQS deletes a message received
    again only by the handle of its last receive); a message whose delete fails stays in the DLQ and is
    reported (a rerun is safe)."""
    if not sent:
        return []
    entries = [{"Id": str(i), "ReceiptHandle": handles.get(letter.message_id, letter.receipt_handle)} for i, letter in enumerate(sent)]
    response = sqs.delete_message_batch(QueueUrl=dlq_url, Entries=entries)
    ok = {item["Id"] for item in response.get("Successful", [])}
    for item in response.get("Failed", []):
        letter = sent[int(item["Id"])]
        result.failed.append((letter, f"sent but not deleted from the DLQ ({item.get('Code', 'Error')}); rerunning is safe"))
    return [letter for i, letter in enumerate(sent) if str(i) in ok]
