"""The background sender: one thread per logger that batches, sends, retries and counts.

Everything slow lives here so that the caller's ``log()`` is an ``append``. The thread owns the
transport (or boto3 client), so it is only ever used from one thread, and it survives any exception:
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

from analytics_producer.batching import MAX_BATCH_ENTRIES, Entry, GroupKey, UnsendableEventError, fits, to_entry
from analytics_producer.errors import EntryError, error_code, is_retryable
from analytics_producer.transport import SQSTransport

log = logging.getLogger("analytics_producer")

ErrorCallback = Callable[[BaseException, list[dict[str, Any]]], None]
WARNING_INTERVAL_S = 60.0
POLL_INTERVAL_S = 0.002  # how often the sender looks at the buffer while traffic is steady


def _entry_id(item: Any) -> str | None:
    """The ``Id`` of one ``Successful``/``Failed`` item of a response, None when the item is malformed."""
    entry_id = item.get("Id") if isinstance(item, Mapping) else None
    return entry_id if isinstance(entry_id, str) else None


class Sender:
    """Drains ``buffer`` into ``SendMessageBatch`` calls from a daemon thread.

    Partial batches wait up to ``flush_interval_s`` for more events (so a steady trickle still
    goes out ten at a time) unless a ``flush()`` asks for them. Counters are written by this
    thread only and read under ``progress``; ``taken`` moves an event out of the buffer and into
    ``sent`` or ``failed`` exactly once.
    """

    def __init__(
        self,
        *,
        buffer: deque[dict[str, Any]],
        client_factory: Callable[[], Any],
        client: Any,
        queue_url: str,
        batch_size: int,
        flush_interval_s: float,
        max_retries: int,
        backoff_base_s: float,
        backoff_max_s: float,
        group_key: GroupKey | None,
        on_error: ErrorCallback | None,
    ) -> None:
        self.buffer = buffer
        self.client_factory = client_factory
        self.client = client
        self.queue_url = queue_url
        self.batch_size = min(batch_size, MAX_BATCH_ENTRIES)
        self.flush_interval_s = flush_interval_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.group_key = group_key
        self.on_error = on_error

        # Steady traffic (a full batch taken within the flush interval): the sender looks at the buffer
        # every POLL_INTERVAL_S instead of being woken by log(). Read by log() without a lock: a stale
        # value costs one wake-up too many or a few milliseconds of delay, never an event.
        self.polling = False
        self._last_full_batch = 0.0
        self.wake = threading.Event()  # set by log() when a batch is full, by flush() and close()
        self.stopping = threading.Event()  # cuts backoff short and ends the thread
        self.progress = threading.Condition()
        self.taken = 0
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.requests = 0
        self.in_flight = 0
        self.flush_target = 0  # send partial batches until `taken` reaches this
        self._last_warning: dict[str, float] = {}
        self.thread = threading.Thread(target=self._run, name="analytics-producer-sender", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

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
        buffer = self.buffer
        with self.progress:  # flush() and stats() see every event either queued or taken
            while buffer and len(batch) < self.batch_size:
                try:
                    entry = to_entry(buffer[0], self.group_key)
                except Exception as error:  # to_entry turns everything into UnsendableEventError; this is a second net
                    reason = error if isinstance(error, UnsendableEventError) else UnsendableEventError(f"{type(error).__name__}: {error}")
                    unsendable.append((reason, buffer.popleft()))
                    continue
                if batch and not fits(batch, entry, self.batch_size):
                    break
                buffer.popleft()
                entry.entry_id = str(len(batch))
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
                response = self.client.send_message_batch(
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
            code = error_code(error)
            now = time.monotonic()
            if now - self._last_warning.get(code, -WARNING_INTERVAL_S) >= WARNING_INTERVAL_S:
                self._last_warning[code] = now
                log.warning(
                    "analytics: %d event(s) not delivered to %s: %s (%s); further %s failures are logged at most once a minute",
                    len(events),
                    self.queue_url.rsplit("/", 1)[-1],
                    code,
                    error,
                    code,
                )
        except Exception:  # reporting must not stop the sender
            pass
        if self.on_error is not None:
            try:
                self.on_error(error, events)
            except BaseException:  # a callback's sys.exit() must not end the sender thread either
                with contextlib.suppress(Exception):
                    log.exception("analytics on_error callback raised")

    def abandon(self, error: BaseException) -> int:
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
