"""The delivery state of a logger, owned in one place: its buffer, its sender thread and every counter.

``AnalyticsLogger`` validates events and talks to its lane only through this surface:
``offer(event)`` (the enqueue half of ``log()``), ``reject(error)`` (an event ``log()`` refused),
``flush(timeout)``, ``close(timeout)``, ``stats()`` and, from the fork hook, ``after_fork()``.
:class:`Sender` is the real lane: one daemon thread that batches, sends, retries and counts;
:class:`DisabledSender` is the lane of ``AnalyticsLogger(..., disabled=True)``: no thread, no
client, nothing sent, the same counters.

Everything slow lives in the thread so that the caller's ``offer()`` is an ``append``. The thread owns
the transport (or boto3 client), so it is only ever used from one thread, and it survives any exception:
an unexpected error fails the batch it was sending (counted, reported), never the thread.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from analytics_producer import lifecycle
from analytics_producer.batching import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, Entry, GroupKey, UnsendableEventError, to_entry
from analytics_producer.counters import RateLimiter, Tally
from analytics_producer.errors import EntryError, LoggerClosedError, error_details, is_retryable
from analytics_producer.events import InvalidEventError
from analytics_producer.transport import SQSTransport

log = logging.getLogger("analytics_producer")

ErrorCallback = Callable[[BaseException, list[dict[str, Any]]], None]
WARNING_INTERVAL_S = 60.0  # at most one warning a minute per error code (undelivered) or per rule (rejected)
POLL_INTERVAL_S = 0.002  # how often the sender looks at the buffer while traffic is steady
_ENTRY_IDS = tuple(str(index) for index in range(MAX_BATCH_ENTRIES))  # an entry's Id: its place in the batch


def _entry_id(item: Any) -> str | None:
    """The ``Id`` of one ``Successful``/``Failed`` item of a response, None when the item is malformed."""
    entry_id = item.get("Id") if isinstance(item, Mapping) else None
    return entry_id if isinstance(entry_id, str) else None


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 event``, ``2 events``."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


def held_back_note(held_back: int, what: str) -> str:
    """``; 1 more report ... since the last warning``, nothing when none was held back."""
    if not held_back:
        return ""
    return f"; {held_back} more {what if held_back == 1 else what + 's'} since the last warning"


def stats_dict(
    *,
    accepted: int = 0,
    sent: int = 0,
    retried: int = 0,
    failed: int = 0,
    dropped_full: int = 0,
    dropped_invalid: int = 0,
    dropped_closed: int = 0,
    skipped_disabled: int = 0,
    queued: int = 0,
    requests: int = 0,
) -> dict[str, int]:
    """``stats()``'s keys, in their documented order."""
    return {
        "accepted": accepted,
        "sent": sent,
        "retried": retried,
        "failed": failed,
        "dropped_full": dropped_full,
        "dropped_invalid": dropped_invalid,
        "dropped_closed": dropped_closed,
        "skipped_disabled": skipped_disabled,
        "queued": queued,
        "requests": requests,
    }


class Door:
    """What both lanes share: the counts of events ``log()`` refused, and the warning for a rejected one.

    Every counter here is a :class:`Tally`: caller threads increment it without a lock.
    """

    atexit_timeout_s = 0.0
    closed = False

    def _reset_door(self) -> None:
        self.dropped_invalid = Tally()
        self.dropped_full = Tally()
        self.dropped_closed = Tally()
        self._rejections = RateLimiter(WARNING_INTERVAL_S)
        self._closed_warned = False
        self._closed_warning_lock = threading.Lock()

    def refuse_closed(self) -> bool:
        """An event offered after ``close()``: counted (``dropped_closed``), and the first one of this logger logged. Returns False.

        Only a closed logger gets here: the open path of ``offer()`` does not pay for it.
        """
        self.dropped_closed.increment()
        if not self._closed_warned:
            with self._closed_warning_lock:
                if self._closed_warned:
                    return False
                self._closed_warned = True
            with contextlib.suppress(Exception):  # a failing log handler is not the caller's problem
                log.warning(
                    "analytics: log() after close() (or at interpreter exit): the event is not sent, counted in"
                    " stats()['dropped_closed'] (logged once per logger)"
                )
        return False

    def reject(self, error: BaseException) -> None:
        """Count an event ``log()`` refused, and log why: a warning naming the field and the rule, never the value.

        At most one warning a minute per rule, stating how many rejections for that rule it held back
        since the previous one. A rejection whose warning is held back costs a ``time.monotonic()``
        comparison and a lock-free increment; never raises.
        """
        self.dropped_invalid.increment()
        try:
            # Not an InvalidEventError: a Mapping whose methods raised; its message may hold a value, so only its type is named.
            rule = error.rule if isinstance(error, InvalidEventError) else f"event: reading it raised {type(error).__name__}"
            held_back = self._rejections.allow(rule)
            if held_back is not None:
                message = str(error) if isinstance(error, InvalidEventError) else rule
                log.warning(
                    "analytics: log() rejected an event (not sent): %s%s (at most one warning a minute per rule; values are never logged)",
                    message,
                    "" if not held_back else f"; {held_back} more rejected for the same rule since the last warning",
                )
        except Exception:  # a failing log handler is not the caller's problem
            pass


class DisabledSender(Door):
    """The lane of a disabled logger: no thread, no client, nothing sent.

    A valid event is counted in ``skipped_disabled`` (not ``accepted``, so ``accepted == sent +
    failed + queued`` holds: all zero); an invalid one is rejected as by a live logger.
    """

    client = None

    def __init__(self) -> None:
        self._reset_door()
        self.skipped_disabled = Tally()

    def start(self) -> None:
        lifecycle.register(self)  # only so that a forked child starts with fresh counters

    def alive(self) -> bool:
        return False

    def offer(self, event: dict[str, Any]) -> bool:
        if self.closed:
            return self.refuse_closed()
        self.skipped_disabled.increment()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> bool:
        self.closed = True
        lifecycle.unregister(self)
        return True

    def after_fork(self) -> None:
        self._reset_door()
        self.skipped_disabled = Tally()

    def stats(self) -> dict[str, int]:
        return stats_dict(
            dropped_invalid=self.dropped_invalid.value,
            dropped_closed=self.dropped_closed.value,
            skipped_disabled=self.skipped_disabled.value,
        )


class Sender(Door):
    """Owns a logger's delivery: the bounded buffer, the daemon thread draining it into ``SendMessageBatch``
    calls, and every counter.

    Partial batches wait up to ``flush_interval_s`` for more events (so a steady trickle still
    goes out ten at a time) unless a ``flush()`` asks for them. Delivery counters are written by the
    thread only and read under ``progress``; ``taken`` moves an event out of the buffer and into
    ``sent`` or ``failed`` exactly once.

    The public surface: ``offer()``, ``reject()``, ``flush()``, ``close()``, ``stats()``,
    ``after_fork()``, ``alive()``; ``client`` and ``thread`` are readable for debugging.
    """

    def __init__(
        self,
        *,
        client_factory: Callable[[], Any],
        client: Any,
        queue_url: str,
        batch_size: int,
        max_queue_size: int,
        flush_interval_s: float,
        max_retries: int,
        backoff_base_s: float,
        backoff_max_s: float,
        group_key: GroupKey | None,
        on_error: ErrorCallback | None,
        atexit_timeout_s: float,
    ) -> None:
        self.client_factory = client_factory
        self.queue_url = queue_url
        self.batch_size = min(batch_size, MAX_BATCH_ENTRIES)
        self.max_queue_size = max_queue_size
        self.flush_interval_s = flush_interval_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.group_key = group_key
        self.on_error = on_error
        self.atexit_timeout_s = atexit_timeout_s
        self._reset(client)

    def _reset(self, client: Any) -> None:
        """Empty buffer, zero counters, new locks and a new (unstarted) thread: at construction, and in a forked child."""
        self._reset_door()
        self.client = client
        self.buffer: deque[dict[str, Any]] = deque()
        self.closed = False
        # Steady traffic (a full batch taken within the flush interval): the sender looks at the buffer
        # every POLL_INTERVAL_S instead of being woken by offer(). Read by offer() without a lock: a stale
        # value costs one wake-up too many or a few milliseconds of delay, never an event.
        self.polling = False
        self._last_full_batch = 0.0
        self.wake = threading.Event()  # set by offer() when a batch is full, by flush() and close()
        self.stopping = threading.Event()  # cuts backoff short and ends the thread
        self.progress = threading.Condition()
        self._close_lock = threading.Lock()
        self.taken = 0
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.requests = 0
        self.in_flight = 0
        self.flush_target = 0  # send partial batches until `taken` reaches this
        self._warnings = RateLimiter(WARNING_INTERVAL_S)
        self.thread = threading.Thread(target=self._run, name="analytics-producer-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()
        lifecycle.register(self)

    def alive(self) -> bool:
        return self.thread.is_alive()

    # -- the caller's side ------------------------------------------------------------------------

    def offer(self, event: dict[str, Any]) -> bool:
        """Enqueue a validated event; False (and counted) when closed or full. Never blocks: no lock, no I/O."""
        if self.closed:
            return self.refuse_closed()
        buffer = self.buffer
        size = len(buffer)
        if size >= self.max_queue_size:
            self.dropped_full.increment()
            return False
        buffer.append(event)
        # Wake the thread for a full batch, unless traffic is steady: then it looks by itself every few
        # milliseconds, and no caller pays for waking a thread (the largest part of log()'s p99).
        if size + 1 >= self.batch_size and not self.polling and not self.wake.is_set():
            self.wake.set()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event offered before this call is delivered or has definitively failed.

        Partial batches are sent at once instead of waiting for ``flush_interval_s``. False when
        ``timeout`` (seconds) ran out first, or the thread is gone.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.progress:
            target = self.taken + len(self.buffer)
            self.flush_target = max(self.flush_target, target)
        self.wake.set()
        with self.progress:
            while self.sent + self.failed < target:
                if not self.alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.progress.wait(0.1 if remaining is None else min(remaining, 0.1))
        return True

    def close(self, timeout: float) -> bool:
        """Flush for at most ``timeout`` seconds, stop the thread, and fail what is still queued.

        What is left is counted as failed and passed to ``on_error`` with :class:`LoggerClosedError`;
        a request already on the wire ends within the read timeout and is counted then. Later
        ``offer()`` calls return False (``dropped_closed``). Returns whether everything was
        delivered or definitively failed in time; closing twice returns True.
        """
        with self._close_lock:
            if self.closed:
                return True
            flushed = self.flush(timeout)
            self.closed = True
            self.stopping.set()  # cuts a backoff short; an in-flight attempt fails without retry
            self.wake.set()
            if self.thread is not threading.current_thread() and self.thread.ident is not None:
                self.thread.join(max(0.05, min(timeout, 0.5)))
            self._abandon(LoggerClosedError("logger closed before these events were sent"))
            lifecycle.unregister(self)
            return flushed

    def after_fork(self) -> None:
        """In a forked child: the parent's buffer, thread, locks and pooled sockets are not the child's.

        Start over with an empty buffer, zero counters and a new thread; the parent still delivers
        what it had queued. The child's client is built lazily by its thread (``client_factory``),
        so a fork that never logs pays only for an idle thread.
        """
        if self.closed:
            return
        self._reset(None)
        self.start()

    def stats(self) -> dict[str, int]:
        """Counters, read under one lock: at rest ``accepted == sent + failed + queued``."""
        with self.progress:
            queued = len(self.buffer)
            return stats_dict(
                accepted=self.taken + queued,
                sent=self.sent,
                retried=self.retried,
                failed=self.failed,
                dropped_full=self.dropped_full.value,
                dropped_invalid=self.dropped_invalid.value,
                dropped_closed=self.dropped_closed.value,
                queued=queued + self.in_flight,
                requests=self.requests,
            )

    # -- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        anchor = time.monotonic()  # no event in the buffer arrived before this
        while not self.stopping.is_set():
            try:
                self.wake.clear()  # cleared before the state is read: a wake-up is never lost
                pending = len(self.buffer)
                now = time.monotonic()
                if self.polling and now - self._last_full_batch > self.flush_interval_s:
                    self.polling = False  # traffic has slowed down: log() wakes the sender again
                if not pending:
                    anchor = now
                    self.wake.wait(POLL_INTERVAL_S if self.polling else self.flush_interval_s)
                    continue
                due = anchor + self.flush_interval_s
                if pending < self.batch_size and self.flush_target <= self.taken and now < due:
                    self.wake.wait(min(due - now, POLL_INTERVAL_S) if self.polling else due - now)
                    continue
                anchor = now
                batch = self._take_batch()
                if len(batch) >= self.batch_size:
                    self.polling, self._last_full_batch = True, now
                try:
                    self._send(batch)
                except Exception as error:  # a bug or a broken client, not an SQS failure (those are handled in _send)
                    self._fail([entry for entry in batch if not entry.settled], error)
                    raise
            except Exception as error:  # the thread survives anything: log and go on
                with contextlib.suppress(Exception):
                    log.exception("analytics sender error: %s", error)
                time.sleep(0.05)
        if isinstance(self.client, SQSTransport):  # the logger's own connection (never a caller's client)
            self.client.close()

    def _take_batch(self) -> list[Entry]:
        """Up to ``batch_size`` entries within the batch byte limit; an event that cannot become one fails alone.

        An event leaves the buffer and is counted (``taken`` and ``in_flight``) under one lock, so
        stats() always adds up; an unsendable one is reported, then counted as failed.
        """
        batch: list[Entry] = []
        unsendable: list[tuple[UnsendableEventError, dict[str, Any]]] = []
        buffer, group_key, batch_size = self.buffer, self.group_key, self.batch_size
        size = 0  # the batch's bytes, as fits() counts them
        with self.progress:  # flush() and stats() see every event either queued or taken
            while buffer and len(batch) < batch_size:
                try:
                    entry = to_entry(buffer[0], group_key)
                except Exception as error:  # to_entry turns everything into UnsendableEventError; this is a second net
                    reason = error if isinstance(error, UnsendableEventError) else UnsendableEventError(f"{type(error).__name__}: {error}")
                    unsendable.append((reason, buffer.popleft()))
                    continue
                if batch and size + entry.size > MAX_BATCH_BYTES:
                    break
                buffer.popleft()
                entry.entry_id = _ENTRY_IDS[len(batch)]
                size += entry.size
                batch.append(entry)
            self.taken += len(batch) + len(unsendable)
            self.in_flight = len(batch) + len(unsendable)  # the unsendable ones until reported
        for reason, event in unsendable:
            self._report(reason, [event])
            with self.progress:
                self.failed += 1
                self.in_flight -= 1
                self.progress.notify_all()
        return batch

    # -- sending and retrying ---------------------------------------------------------------------

    def _send(self, batch: list[Entry]) -> None:
        pending = batch
        attempt = 0
        while pending:
            retry: list[Entry] = []
            error: BaseException | None = None
            try:
                if self.client is None:
                    self.client = self.client_factory()  # after a fork, built lazily in this thread
                self.requests += 1
                # Each entry keeps the Id of its place in the first batch, so a retry is easy to follow.
                client = self.client
                if type(client) is SQSTransport:  # the lean transport takes the entries themselves: no request dicts
                    response = client.send_entries(self.queue_url, pending)
                else:
                    response = client.send_message_batch(
                        QueueUrl=self.queue_url, Entries=[entry.as_request(entry.entry_id) for entry in pending]
                    )
            except Exception as raised:
                if not is_retryable(raised):
                    self._fail(pending, raised)
                    return
                retry, error = pending, raised
            else:
                try:
                    delivered, refused, retry, error = self._read_response(response, pending)
                except Exception as unreadable:  # not SendMessageBatch's response shape: nothing is confirmed
                    self._fail(pending, unreadable)
                    return
                self._record(delivered)
                for code in dict.fromkeys(failure.code for _, failure in refused):  # one report per error code
                    group = [(entry, failure) for entry, failure in refused if failure.code == code]
                    self._fail([entry for entry, _ in group], group[0][1])
            if not retry:
                return
            if attempt >= self.max_retries or self.stopping.is_set():
                self._fail(retry, error or RuntimeError("retries exhausted"))
                return
            attempt += 1
            with self.progress:
                self.retried += len(retry)
            self._backoff(attempt)
            pending = retry  # only what failed is sent again, with the same ids

    @staticmethod
    def _read_response(
        response: Any, pending: list[Entry]
    ) -> tuple[list[Entry], list[tuple[Entry, EntryError]], list[Entry], BaseException | None]:
        """Split ``pending`` into delivered, refused for the sender's fault (with why) and to retry (with the last error).

        A malformed item is skipped, so its entry counts as missing from the response and is sent
        again (same ids: never a duplicate); a response that is not a mapping of lists raises.
        """
        by_id = {entry.entry_id: entry for entry in pending}
        successful, failed = response.get("Successful") or (), response.get("Failed") or ()
        delivered: list[Entry] = []
        for success in successful:
            entry = by_id.pop(_entry_id(success) or "", None)
            if entry is not None:
                delivered.append(entry)
        refused: list[tuple[Entry, EntryError]] = []
        retry: list[Entry] = []
        error: BaseException | None = None
        for failure in failed:
            entry = by_id.pop(_entry_id(failure) or "", None)
            if entry is None:
                continue
            if failure.get("SenderFault"):
                refused.append((entry, EntryError(failure)))
            else:
                retry.append(entry)
                error = EntryError(failure)
        if by_id:  # neither successful nor failed: not confirmed, so send again
            retry += by_id.values()
            error = error or EntryError({"Code": "MissingFromResponse", "Message": "entry not in the response"})
        return delivered, refused, retry, error

    def _backoff(self, attempt: int) -> None:
        """Exponential backoff with full jitter (spreads retries of many producers); cut short by close()."""
        self.stopping.wait(random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))))

    # -- accounting -----------------------------------------------------------------------------

    def _record(self, delivered: list[Entry]) -> None:
        self._settle(delivered, sent=True)

    def _fail(self, entries: list[Entry], error: BaseException) -> None:
        """Report, then count as failed, the entries not counted yet: once ``flush()`` sees them counted, ``on_error`` has run."""
        fresh = [entry for entry in entries if not entry.settled]  # only this thread settles entries
        if fresh:
            self._report(error, [entry.event for entry in fresh])
            self._settle(fresh, sent=False)

    def _settle(self, entries: list[Entry], *, sent: bool) -> None:
        """Count each entry once, as sent or failed."""
        fresh = [entry for entry in entries if not entry.settled]
        if not fresh:
            return
        with self.progress:
            for entry in fresh:
                entry.settled = True
            if sent:
                self.sent += len(fresh)
            else:
                self.failed += len(fresh)
            self.in_flight -= len(fresh)
            self.progress.notify_all()

    def _report(self, error: BaseException, events: list[dict[str, Any]]) -> None:
        """Every undelivered event reaches ``on_error`` exactly once; the warning log is rate-limited per error code.

        Never raises: a failing log handler or an ``on_error`` that raises (even ``SystemExit``)
        cannot stop the sender thread.
        """
        try:
            code, message = error_details(error)
            held_back = self._warnings.allow(code)
            if held_back is not None:
                log.warning(
                    "analytics: %s not delivered to %s: %s%s%s (at most one warning a minute per error code)",
                    plural(len(events), "event"),
                    self.queue_url.rsplit("/", 1)[-1],
                    code,
                    f": {message}" if message and message != code else "",
                    held_back_note(held_back, f"{code} report"),
                )
        except Exception:  # reporting must not stop the sender
            pass
        if self.on_error is not None:
            try:
                self.on_error(error, events)
            except BaseException:  # a callback's sys.exit() must not end the sender thread either
                with contextlib.suppress(Exception):
                    log.exception("analytics on_error callback raised")

    def _abandon(self, error: BaseException) -> int:
        """Fail whatever is still queued (close() after its timeout); returns how many."""
        events: list[dict[str, Any]] = []
        with self.progress:
            while True:  # popleft, not clear(): an append racing with this is either taken here or stays queued
                try:
                    events.append(self.buffer.popleft())
                except IndexError:
                    break
            self.taken += len(events)
            self.failed += len(events)
            self.progress.notify_all()
        if events:
            self._report(error, events)
        return len(events)
