"""``AnalyticsLogger``: the caller only validates and enqueues; a background thread does the rest.

The caller's cost of :meth:`AnalyticsLogger.log` is a dict copy, a few ``isinstance``/``len``
checks and a ``deque.append``: no lock, no I/O, no JSON. The sender thread (:mod:`.sender`) owns
serialization, ``SendMessageBatch``, backoff and retries. Every event ends up delivered, counted
as failed (and passed to ``on_error``), or rejected at ``log()`` with a counted reason: never
lost silently.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3

from analytics_producer import lifecycle
from analytics_producer.batching import MAX_BATCH_ENTRIES, GroupKey
from analytics_producer.client import client_config, clone_client, new_client, new_transport
from analytics_producer.errors import LoggerClosedError
from analytics_producer.events import MAX_SOURCE, InvalidEventError, find_unsafe_char, query_event, response_event, validate
from analytics_producer.sender import ErrorCallback, Sender
from analytics_producer.transport import SQSTransport, region_from_queue_url

DEFAULT_CLOSE_TIMEOUT_S = 5.0  # close() and leaving a with block: bounded even when SQS never answers
TRANSPORTS = ("lean", "botocore")


def _peek(counter: itertools.count) -> int:
    """The value an ``itertools.count`` would return next, without advancing it.

    ``next(count)`` is a single C call, so callers on many threads can count without a lock
    (``self.n += 1`` can lose increments between threads); reading it back goes through its repr.
    """
    return int(repr(counter)[6:-1])


class AnalyticsLogger:
    """Fire-and-forget analytics events to an SQS FIFO queue.

    ``log(event)`` never blocks and never raises (unless ``strict``): it returns False when the
    event is rejected (invalid, buffer full, logger closed) and counts why. ``flush()`` waits for
    what was accepted before it; ``close()`` flushes and stops the sender. One instance per
    process is the intended use: it keeps one connection (or one boto3 client) for its lifetime.

    Args:
        queue_url: the FIFO queue's URL.
        region_name, endpoint_url: where to send (ignored when ``client`` is given). The region
            defaults to the queue URL's (``sqs.<region>.amazonaws.com``), else the session's; the
            endpoint to what botocore resolves (``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL``, the
            config file, else the region's).
        session: a ``boto3.Session`` whose credential chain (profile, role, refresh) and settings
            the logger uses (default: a new ``boto3.Session()``, the standard chain).
        transport: ``"lean"`` (default) sends each batch as one SigV4-signed HTTP request on a
            kept-alive connection, a fraction of botocore's CPU per request; ``"botocore"`` uses a
            boto3 client. The lean transport also falls back to a boto3 client when a proxy applies.
        client: a boto3 SQS client to use instead (e.g. built with explicit keys), always through
            botocore. Give it short timeouts and one attempt per call,
            ``retries={"total_max_attempts": 1}`` (see :func:`client_config`), since the logger
            retries on its own.
        max_queue_size: events held in memory; beyond it new events are dropped and counted.
        batch_size: entries per ``SendMessageBatch`` (1 to 10).
        flush_interval_s: how long a partial batch waits for more events before it is sent.
        max_retries: retries of a retryable failure before its events are counted as failed: an
            event is sent in at most ``max_retries + 1`` attempts (one request each).
        on_error: ``on_error(error, events)``, called from the sender thread once for every group
            of events that will not be delivered. Keep it short; it must not call ``flush()``.
        strict: raise :class:`InvalidEventError` from ``log()`` for an invalid event (for tests).
        group_id: ``group_id(event) -> str`` choosing the ``MessageGroupId`` (default: the request id).
        source: a ``source`` added to events that have none.
        atexit_timeout_s: how long the exit hook waits for queued events (endpoint down: then exits).
        close_timeout_s: how long ``close()`` without a timeout, and leaving a ``with`` block, wait
            for queued events before counting them as failed (5 s).
    """

    def __init__(
        self,
        queue_url: str,
        *,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        session: Any = None,
        transport: str = "lean",
        max_queue_size: int = 10_000,
        batch_size: int = MAX_BATCH_ENTRIES,
        flush_interval_s: float = 0.2,
        max_retries: int = 8,
        on_error: ErrorCallback | None = None,
        strict: bool = False,
        group_id: GroupKey | None = None,
        source: str | None = None,
        backoff_base_s: float = 0.1,
        backoff_max_s: float = 5.0,
        atexit_timeout_s: float = 2.0,
        close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S,
        connect_timeout_s: float = 1.0,
        read_timeout_s: float = 3.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_ENTRIES:
            raise ValueError("batch_size must be 1 to 10 (SendMessageBatch's limit)")
        if max_queue_size < 1 or max_retries < 0 or flush_interval_s <= 0 or not close_timeout_s >= 0:
            raise ValueError("max_queue_size >= 1, max_retries >= 0, flush_interval_s > 0 and close_timeout_s >= 0 are required")
        if source is not None and (not isinstance(source, str) or len(source) > MAX_SOURCE or find_unsafe_char(source)):
            raise ValueError("source: a string of at most 64 characters of SQS-safe text")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}")
        self.queue_url = queue_url
        self.region_name = region_name or region_from_queue_url(queue_url)
        self.transport = transport if client is None else "client"
        self._session = session
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
        self.close_timeout_s = close_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._config = client_config(connect_timeout_s, read_timeout_s)
        self._given_client = client
        client = client if client is not None else self._new_client()  # built now: a bad region fails here, not later
        self._own_client = client if self._given_client is None else None
        self._start(client)
        lifecycle.register(self)

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> AnalyticsLogger:
        """A logger for ``AWS_SQS_URL`` in ``AWS_REGION``.

        Credentials come from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and
        ``AWS_SESSION_TOKEN``) when both keys are set, else from boto3's standard chain (an
        instance or Lambda role, a profile, ...). A queue URL whose host is not AWS's (a local
        stack) is also used as the endpoint. ``kwargs`` are passed to the constructor (e.g.
        ``transport="botocore"``).
        """
        env = os.environ if environ is None else environ
        queue_url = env.get("AWS_SQS_URL")
        if not queue_url:
            raise ValueError("AWS_SQS_URL is not set")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        kwargs.setdefault("region_name", region)
        if "client" not in kwargs:
            parts = urlsplit(queue_url)
            if "endpoint_url" not in kwargs and parts.hostname and not parts.hostname.endswith(("amazonaws.com", "amazonaws.com.cn")):
                kwargs["endpoint_url"] = f"{parts.scheme}://{parts.netloc}"
            if "session" not in kwargs and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
                kwargs["session"] = boto3.Session(
                    aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
                    region_name=kwargs["region_name"],
                )
        return cls(queue_url, **kwargs)

    def _new_client(self) -> Any:
        """The logger's own sender: the lean transport, or a boto3 client (``transport="botocore"``)."""
        if self.transport == "lean":
            return new_transport(
                self.queue_url,
                session=self._session,
                region_name=self.region_name,
                endpoint_url=self.endpoint_url,
                connect_timeout_s=self.connect_timeout_s,
                read_timeout_s=self.read_timeout_s,
            )
        return new_client(region_name=self.region_name, endpoint_url=self.endpoint_url, config=self._config, session=self._session)

    def _start(self, client: Any) -> None:
        """Fresh buffer, counters and sender: at construction, and in a forked child."""
        self._buffer: deque[dict[str, Any]] = deque()
        self._dropped_full = itertools.count()
        self._dropped_invalid = itertools.count()
        self._dropped_closed = itertools.count()
        self._closed = False
        self._close_lock = threading.Lock()
        self._sender = Sender(
            buffer=self._buffer,
            client_factory=self._client_for_child,
            client=client,
            queue_url=self.queue_url,
            batch_size=self.batch_size,
            flush_interval_s=self.flush_interval_s,
            max_retries=self.max_retries,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            group_key=self.group_id,
            on_error=self.on_error,
        )
        self._wake = self._sender.wake
        self._sender.start()

    @property
    def _client(self) -> Any:
        """The sender's transport or boto3 client (None in a forked child until its sender builds one); for tests and debugging."""
        return self._sender.client

    def _client_for_child(self) -> Any:
        """A forked child's own sender: a fresh connection with the parent's endpoint, region and credentials."""
        if self._given_client is not None:
            return clone_client(self._given_client)
        if isinstance(self._own_client, SQSTransport):
            return self._own_client.fresh()
        return self._new_client()

    def _after_fork_in_child(self) -> None:
        """The parent's buffer, thread and pooled sockets are not the child's: start over.

        The parent still delivers what it had queued. The child's client is built lazily by its
        new sender thread, so a fork that never logs pays only for an idle thread.
        """
        self._start(None)

    # -- the caller's side --------------------------------------------------------------------------

    def log(self, event: Mapping[str, Any]) -> bool:
        """Enqueue ``event`` for delivery; True when accepted.

        Never blocks and never raises (unless ``strict``). The event is copied, so the caller may
        reuse its dict; serialization happens later in the sender thread.
        """
        try:
            if type(event) is not dict and not isinstance(event, Mapping):
                raise InvalidEventError("event: expected a dict")
            event = dict(event)
            if self.source is not None and "source" not in event:
                event["source"] = self.source
            validate(event)
        except Exception:  # InvalidEventError, or a Mapping whose methods raise: never the caller's problem
            next(self._dropped_invalid)
            if self.strict:
                raise
            return False
        if self._closed:
            next(self._dropped_closed)
            return False
        buffer = self._buffer
        size = len(buffer)
        if size >= self.max_queue_size:
            next(self._dropped_full)
            return False
        buffer.append(event)
        # Wake the sender for a full batch, unless traffic is steady: then it looks by itself every few
        # milliseconds, and no caller pays for waking a thread (the largest part of log()'s p99).
        if size + 1 >= self.batch_size and not self._sender.polling and not self._wake.is_set():
            self._wake.set()
        return True

    def log_query(self, request_id: str, query: str, **optional: Any) -> bool:
        """Log the seed's ``query`` event, timestamped now.

        Optional: ``source``, ``session_id``, ``latency_ms``, ``timestamp`` (epoch ms).
        """
        try:
            event = query_event(request_id, query, **optional)
        except Exception:  # an unknown keyword
            next(self._dropped_invalid)
            if self.strict:
                raise
            return False
        return self.log(event)

    def log_response(self, request_id: str, match_type: str, match_score: float, reasoning: str, **optional: Any) -> bool:
        """Log the seed's ``response`` event (``match_type`` full|partial|none, ``match_score`` 0-100), timestamped now."""
        try:
            event = response_event(request_id, match_type, match_score, reasoning, **optional)
        except Exception:
            next(self._dropped_invalid)
            if self.strict:
                raise
            return False
        return self.log(event)

    # -- flushing and lifecycle -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event accepted before this call is delivered or has definitively failed.

        Partial batches are sent at once instead of waiting for ``flush_interval_s``. Returns
        False when ``timeout`` (seconds) ran out first. Do not call it from ``on_error``.
        """
        sender = self._sender
        deadline = None if timeout is None else time.monotonic() + timeout
        with sender.progress:
            target = sender.taken + len(self._buffer)
            sender.flush_target = max(sender.flush_target, target)
        sender.wake.set()
        with sender.progress:
            while sender.sent + sender.failed < target:
                if not sender.alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                sender.progress.wait(0.1 if remaining is None else min(remaining, 0.1))
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout`` seconds), then stop the sender; later ``log()`` calls return False.

        Without ``timeout``, waits at most ``close_timeout_s`` (5 s by default): closing never
        hangs on an SQS that does not answer (``math.inf`` waits without bound). What is still
        queued then is counted as failed and passed to ``on_error``; a request already on the
        wire ends within the client's read timeout and is counted then. Returns within about
        ``timeout + 0.5`` s, and whether everything was delivered or definitively failed in time.
        """
        if timeout is None:
            timeout = self.close_timeout_s
        with self._close_lock:
            if self._closed:
                return True
            flushed = self.flush(timeout)
            self._closed = True
            sender = self._sender
            sender.stopping.set()  # cuts a backoff short; an in-flight attempt fails without retry
            sender.wake.set()
            if sender.thread is not threading.current_thread():
                sender.thread.join(max(0.05, min(timeout, 0.5)))
            sender.abandon(LoggerClosedError("logger closed before these events were sent"))
            lifecycle.unregister(self)
            return flushed

    def __enter__(self) -> AnalyticsLogger:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # Bounded either way (close_timeout_s); on an exception the block is already failing: wait less.
        self.close(min(self.atexit_timeout_s, self.close_timeout_s) if exc_type is not None else None)

    def stats(self) -> dict[str, int]:
        """Counters. At rest, ``accepted == sent + failed + queued``.

        ``retried`` counts send attempts repeated for an event (one event retried twice counts 2);
        ``requests`` counts ``SendMessageBatch`` calls; ``dropped_*`` are events ``log()`` refused.
        """
        sender = self._sender
        with sender.progress:
            queued = len(self._buffer)
            return {
                "accepted": sender.taken + queued,
                "sent": sender.sent,
                "retried": sender.retried,
                "failed": sender.failed,
                "dropped_full": _peek(self._dropped_full),
                "dropped_invalid": _peek(self._dropped_invalid),
                "dropped_closed": _peek(self._dropped_closed),
                "queued": queued + sender.in_flight,
                "requests": sender.requests,
            }

    def __repr__(self) -> str:
        return f"AnalyticsLogger({self.queue_url!r}, {self.stats()})"
