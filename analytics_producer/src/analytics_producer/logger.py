"""``AnalyticsLogger``: the caller only enqueues; one background thread batches, sends and retries.

The caller's cost of :meth:`AnalyticsLogger.log` is a few cheap checks and a ``deque.append``: no
lock, no I/O, no JSON. The sender thread owns everything slow: serialization, ``SendMessageBatch``
(up to 10 entries), backoff with jitter, and the counters that describe what happened to each
event. An event is either delivered, counted as failed (after its retries, or at once when the
error cannot succeed), or counted as dropped (buffer full, invalid, logger closed): never lost
silently.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from analytics_producer.errors import error_code, is_retryable
from analytics_producer.events import InvalidEventError, deduplication_id, query_event, response_event, validate

log = logging.getLogger("analytics_producer")

MAX_BATCH_ENTRIES = 10
# SQS's limit for the whole SendMessageBatch payload (bodies plus attributes); kept at the classic
# 256 KiB so the producer works with every endpoint. Bounded fields keep one event far below it.
MAX_BATCH_BYTES = 256 * 1024
WARNING_INTERVAL_S = 60.0

ErrorCallback = Callable[[BaseException, list[dict]], None]

_live: weakref.WeakSet[AnalyticsLogger] = weakref.WeakSet()


def _counter_value(counter: itertools.count) -> int:
    """The next value of an ``itertools.count`` without advancing it (``count(5)`` -> 5)."""
    return int(repr(counter)[6:-1])


class AnalyticsLogger:
    """Fire-and-forget analytics events to an SQS FIFO queue.

    ``log(event)`` never blocks and never raises (unless ``strict``): it returns False when the
    event is rejected (invalid, buffer full, logger closed) and counts why. ``flush()`` waits for
    what was accepted before it; ``close()`` flushes and stops the sender. One instance per
    process is the intended use: it keeps one boto3 client and its connections for its lifetime.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        max_queue_size: int = 10_000,
        batch_size: int = MAX_BATCH_ENTRIES,
        flush_interval_s: float = 0.2,
        max_retries: int = 8,
        on_error: ErrorCallback | None = None,
        strict: bool = False,
        group_id: Callable[[Mapping[str, Any]], str] | None = None,
        source: str | None = None,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 5.0,
        atexit_timeout_s: float = 2.0,
        connect_timeout_s: float = 1.0,
        read_timeout_s: float = 3.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_ENTRIES:
            raise ValueError("batch_size must be 1 to 10 (SendMessageBatch's limit)")
        if max_queue_size < 1 or max_retries < 0 or flush_interval_s <= 0:
            raise ValueError("max_queue_size >= 1, max_retries >= 0 and flush_interval_s > 0 are required")
        self.queue_url = queue_url
        self.region_name = region_name
        self.endpoint_url = endpoint_url
        self.max_queue_size = max_queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_retries = max_retries
        self.on_error = on_error
        self.strict = strict
        self.group_id = group_id
        self.source = source
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.atexit_timeout_s = atexit_timeout_s
        self._client_config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": 1, "mode": "standard"},  # this class owns the retry loop
            max_pool_connections=2,
        )
        self._given_client = client
        self._reset_state()
        self._client = client if client is not None else self._new_client()
        self._start_sender()
        _live.add(self)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> AnalyticsLogger:
        """A logger for ``AWS_SQS_URL`` in ``AWS_REGION``; credentials from ``AWS_ACCESS_KEY_ID`` /
        ``AWS_SECRET_ACCESS_KEY`` when set, else boto3's standard chain (role, profile, ...).

        A queue URL whose host is not ``*.amazonaws.com`` (a local stack) is also the endpoint.
        """
        env = os.environ if environ is None else environ
        queue_url = env.get("AWS_SQS_URL")
        if not queue_url:
            raise ValueError("AWS_SQS_URL is not set")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if "client" not in kwargs:
            parts = urlsplit(queue_url)
            if "endpoint_url" not in kwargs and parts.hostname and not parts.hostname.endswith("amazonaws.com"):
                kwargs["endpoint_url"] = f"{parts.scheme}://{parts.netloc}"
            if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
                session = boto3.Session(
                    aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=env.get("AWS_SESSION_TOKEN"),
                    region_name=region,
                )
                kwargs["client"] = cls._make_client(session, region, kwargs.get("endpoint_url"), kwargs)
        return cls(queue_url, region_name=region, **kwargs)

    @staticmethod
    def _make_client(session: boto3.Session, region: str | None, endpoint_url: str | None, kwargs: Mapping[str, Any]) -> Any:
        config = Config(
            connect_timeout=kwargs.get("connect_timeout_s", 1.0),
            read_timeout=kwargs.get("read_timeout_s", 3.0),
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=2,
        )
        return session.client("sqs", region_name=region, endpoint_url=endpoint_url, config=config)

    def _new_client(self) -> Any:
        return boto3.Session().client("sqs", region_name=self.region_name, endpoint_url=self.endpoint_url, config=self._client_config)

    def _reset_state(self) -> None:
        """Everything a sender owns; also the state a forked child starts from."""
        self._buffer: deque[dict] = deque()
        self._dropped_full = itertools.count()
        self._dropped_invalid = itertools.count()
        self._dropped_closed = itertools.count()
        self._taken = 0  # events the sender took from the buffer (sender thread only)
        self._sent = 0
        self._failed = 0
        self._retried = 0
        self._requests = 0
        self._in_flight = 0
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._abandoned = 0
        self._progress = threading.Condition()
        self._closed = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_warning: dict[str, float] = {}
        self._reported: set[str] = set()

    def _start_sender(self) -> None:
        self._thread = threading.Thread(target=self._run, name="analytics-producer-sender", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        """A forked child must not share the parent's buffer, thread or connections."""
        self._reset_state()
        if self._given_client is not None:
            self._client = _clone_client(self._given_client, self._client_config)
        else:
            self._client = self._new_client()
        self._start_sender()

    # -- the caller's side -------------------------------------------------------------------

    def log(self, event: Mapping[str, Any]) -> bool:
        """Enqueue ``event`` for delivery; True when accepted. Never blocks; never raises unless ``strict``."""
        try:
            validate(event)
        except InvalidEventError:
            next(self._dropped_invalid)
            if self.strict:
                raise
            return False
        if self._closed:
            next(self._dropped_closed)
            return False
        buffer = self._buffer
        if len(buffer) >= self.max_queue_size:
            next(self._dropped_full)
            return False
        buffer.append(event if self.source is None or "source" in event else {**event, "source": self.source})
        if len(buffer) >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        return True

    def log_query(self, request_id: str, query: str, **optional: Any) -> bool:
        """Log the seed's ``query`` event, timestamped now (``source``, ``session_id``, ``latency_ms`` optional)."""
        return self._log_built(query_event, request_id, query, **optional)

    def log_response(self, request_id: str, match_type: str, match_score: float, reasoning: str, **optional: Any) -> bool:
        """Log the seed's ``response`` event, timestamped now."""
        return self._log_built(response_event, request_id, match_type, match_score, reasoning, **optional)

    def _log_built(self, build: Callable[..., dict], *args: Any, **optional: Any) -> bool:
        try:
            event = build(*args, **optional)
        except InvalidEventError:
            next(self._dropped_invalid)
            if self.strict:
                raise
            return False
        return self.log(event)

    # -- flushing and lifecycle ---------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event accepted before this call is delivered or has definitively failed.

        Returns False when ``timeout`` (seconds) ran out first. Safe to call from any thread
        except inside ``on_error``.
        """
        with self._progress:
            target = self._taken + len(self._buffer)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._progress:
            while self._sent + self._failed < target:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(0.05 if remaining is None else min(remaining, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout``), then stop the sender; later ``log()`` calls return False."""
        flushed = self.flush(timeout)
        self._closed = True
        self._stopping = True
        self._closing.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(0.5 if timeout is None else max(0.05, min(timeout, 0.5)))
        with self._progress:
            abandoned = len(self._buffer)
            self._buffer.clear()
            self._abandoned += abandoned
        if abandoned or not flushed:
            log.warning("analytics: closed with %d event(s) undelivered (counted as dropped_closed / failed)", abandoned + self._in_flight)
        _live.discard(self)
        return flushed

    def __enter__(self) -> AnalyticsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(self.atexit_timeout_s if exc[0] is not None else None)

    def stats(self) -> dict[str, int]:
        """Counters; at rest ``accepted == sent + failed + queued``."""
        with self._progress:
            queued = len(self._buffer) + self._in_flight
            return {
                "accepted": self._taken + len(self._buffer) + self._abandoned,
                "sent": self._sent,
                "retried": self._retried,
                "failed": self._failed,
                "dropped_full": _counter_value(self._dropped_full),
                "dropped_invalid": _counter_value(self._dropped_invalid),
                "dropped_closed": _counter_value(self._dropped_closed) + self._abandoned,
                "queued": queued,
                "requests": self._requests,
            }

    # -- the sender thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if not self._buffer:
                if self._stopping:
                    return
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()
                continue
            try:
                self._send_batch(self._take_batch())
            except Exception as error:  # the sender never dies: an unexpected error fails its batch
                log.exception("analytics sender error: %s", error)

    def _take_batch(self) -> list[tuple[dict, dict]]:
        """Up to ``batch_size`` events as (event, SendMessageBatch entry), within the batch byte limit."""
        batch: list[tuple[dict, dict]] = []
        size = 0
        buffer = self._buffer
        with self._progress:  # flush() and stats() see each event either in the buffer or taken
            while buffer and len(batch) < self.batch_size:
                event = buffer[0]
                body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
                entry_size = len(body.encode()) + 300  # ids and attributes
                if batch and size + entry_size > MAX_BATCH_BYTES:
                    break
                buffer.popleft()
                size += entry_size
                group = self.group_id(event) if self.group_id else event["requestId"]
                entry = {
                    "Id": str(len(batch)),
                    "MessageBody": body,
                    "MessageGroupId": group,
                    "MessageDeduplicationId": deduplication_id(event),
                }
                batch.append((event, entry))
            self._taken += len(batch)
            self._in_flight = len(batch)
        return batch

    def _send_batch(self, batch: list[tuple[dict, dict]]) -> None:
        pending = batch
        attempt = 0
        while pending:
            try:
                self._requests += 1
                response = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=[entry for _, entry in pending])
            except Exception as error:
                if not is_retryable(error) or attempt >= self.max_retries or self._stopping:
                    self._fail(pending, error)
                    return
                attempt += 1
                self._retried += len(pending)
                self._backoff(attempt)
                continue
            by_id = {entry["Id"]: (event, entry) for event, entry in pending}
            delivered = len(response.get("Successful", []))
            retry, permanent = [], []
            for failure in response.get("Failed", []):
                item = by_id.get(failure["Id"])
                if item is not None:
                    (permanent if failure.get("SenderFault") else retry).append((item, failure))
            self._record(sent=delivered)
            if permanent:
                error = _EntryError(permanent[0][1])
                self._fail([item for item, _ in permanent], error)
            if retry and (attempt >= self.max_retries or self._stopping):
                self._fail([item for item, _ in retry], _EntryError(retry[0][1]))
                retry = []
            pending = [item for item, _ in retry]
            if pending:
                attempt += 1
                self._retried += len(pending)
                self._backoff(attempt)

    def _backoff(self, attempt: int) -> None:
        """Exponential backoff with full jitter; cut short when the logger is closing."""
        self._closing.wait(random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))))

    def _record(self, *, sent: int = 0, failed: int = 0) -> None:
        with self._progress:
            self._sent += sent
            self._failed += failed
            self._in_flight = max(0, self._in_flight - sent - failed)
            self._progress.notify_all()

    def _fail(self, items: list[tuple[dict, dict]], error: BaseException) -> None:
        self._record(failed=len(items))
        code = error_code(error)
        now = time.monotonic()
        if now - self._last_warning.get(code, -WARNING_INTERVAL_S) >= WARNING_INTERVAL_S:
            self._last_warning[code] = now
            log.warning("analytics: %d event(s) not delivered to %s: %s (%s)", len(items), self.queue_url.rsplit("/", 1)[-1], code, error)
        if self.on_error is not None:
            try:
                self.on_error(error, [event for event, _ in items])
            except Exception:
                log.exception("analytics on_error callback raised")


class _EntryError(Exception):
    """One entry of a SendMessageBatch that SQS refused."""

    def __init__(self, failure: Mapping[str, Any]) -> None:
        super().__init__(f"{failure.get('Code')}: {failure.get('Message', '')}")
        self.code = failure.get("Code", "BatchEntryFailed")
        self.sender_fault = bool(failure.get("SenderFault"))


def _clone_client(client: Any, config: Config) -> Any:
    """A new client with the same region, endpoint and credentials (after a fork)."""
    credentials = client._request_signer._credentials
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    session = boto3.Session(
        aws_access_key_id=frozen.access_key if frozen else None,
        aws_secret_access_key=frozen.secret_key if frozen else None,
        aws_session_token=frozen.token if frozen else None,
        region_name=client.meta.region_name,
    )
    return session.client("sqs", endpoint_url=client.meta.endpoint_url, config=client.meta.config)


def _flush_all_at_exit() -> None:
    """Bounded: a dead endpoint costs at most each logger's ``atexit_timeout_s``, then exit goes on."""
    for logger in list(_live):
        with contextlib.suppress(Exception):
            logger.close(logger.atexit_timeout_s)


def _after_fork() -> None:
    for logger in list(_live):
        logger._after_fork_in_child()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
