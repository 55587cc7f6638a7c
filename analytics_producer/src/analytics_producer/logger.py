"""``AnalyticsLogger``: the caller only validates and enqueues; a background thread does the rest.

The caller's cost of :meth:`AnalyticsLogger.log` is a dict copy, a few ``isinstance``/``len``
checks and a ``deque.append``: no lock, no I/O, no JSON. The logger validates and builds events; its
lane (:mod:`.sender`) owns the delivery state: the buffer, the sender thread (serialization,
``SendMessageBatch``, backoff and retries) and every counter, and the logger only calls its public
surface. Every event ends up delivered, counted as failed (and passed to ``on_error``), or rejected at
``log()`` with a counted and logged reason: never lost silently.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3

from analytics_producer.batching import MAX_BATCH_ENTRIES, GroupKey
from analytics_producer.client import client_config, client_for_child, new_client, new_transport
from analytics_producer.destination import Destination, QueueUrl, aws_host, parse_queue_url, resolve_destination
from analytics_producer.errors import ConfigurationError
from analytics_producer.events import MAX_SOURCE, InvalidEventError, MatchType, find_unsafe_char, query_event, response_event, validate
from analytics_producer.sender import DisabledSender, ErrorCallback, Sender
from analytics_producer.transport import SQSTransport

log = logging.getLogger("analytics_producer")

DEFAULT_CLOSE_TIMEOUT_S = 5.0  # close() and leaving a with block: bounded even when SQS never answers
TRANSPORTS = ("lean", "botocore")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _env_flag(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be 1, true, yes or on (or 0, false, no, off, empty)")


def _env_keys(env: Mapping[str, str]) -> tuple[str, str, str | None] | None:
    """The producer's own keys (``ANALYTICS_*``), else ``AWS_*`` ones, each pair with its own session token; None when neither pair is set."""
    for prefix in ("ANALYTICS_", "AWS_"):
        key_id, secret = env.get(f"{prefix}ACCESS_KEY_ID"), env.get(f"{prefix}SECRET_ACCESS_KEY")
        if key_id and secret:
            return key_id, secret, env.get(f"{prefix}SESSION_TOKEN") or None
        if prefix == "ANALYTICS_" and (key_id or secret):
            raise ConfigurationError("ANALYTICS_ACCESS_KEY_ID and ANALYTICS_SECRET_ACCESS_KEY must be set together")
    return None


def _check_client(queue: QueueUrl, client: Any) -> tuple[str | None, str | None]:
    """The caller's client's (region, endpoint); a warning when it cannot reach the queue URL (it is used as it is).

    A client on AWS's endpoint with a queue URL on another host (a local stack) sends its requests to AWS,
    and one signing for another region than the queue URL's is refused by SQS: both are logged once, here.
    """
    meta = getattr(client, "meta", None)
    region, endpoint = getattr(meta, "region_name", None), getattr(meta, "endpoint_url", None)
    if not isinstance(region, str) or not isinstance(endpoint, str):
        return None, None  # not a boto3 client (a test double): nothing to compare
    try:
        endpoint_host = urlsplit(endpoint).hostname or ""
    except ValueError:
        endpoint_host = ""
    if queue.region is None and aws_host(endpoint_host)[0] is not None:
        log.warning(
            "analytics: client= sends to %s, not to the queue URL's host (%s): build the client with endpoint_url=%r",
            endpoint,
            queue.url,
            queue.origin,
        )
    elif queue.region is not None and region != queue.region:
        log.warning(
            "analytics: client= signs for %s, but the queue URL %s is in %s: build the client for that region",
            region,
            queue.url,
            queue.region,
        )
    return region, endpoint


class AnalyticsLogger:
    """Fire-and-forget analytics events to an SQS FIFO queue.

    ``log(event)`` never blocks and never raises (unless ``strict``): it returns False when the
    event is rejected (invalid, buffer full, logger closed) and counts why; an invalid event is also
    logged (a warning naming the field and the rule, at most one a minute per rule). ``flush()``
    waits for what was accepted before it; ``close()`` flushes and stops the sender. One instance per
    process is the intended use: it keeps one connection (or one boto3 client) for its lifetime.

    Args:
        queue_url: the FIFO queue's URL (``.../<name>.fifo``); a URL that is not one is refused
            (:class:`ConfigurationError`, a ``ValueError``), unless ``disabled``.
        region_name, endpoint_url: where to send (not with ``client``, which has its own). The region
            is ``region_name``, else the one the queue URL's host names (``sqs.<region>.amazonaws.com``,
            FIPS, VPC endpoint and China hosts), else ``ANALYTICS_REGION``, ``AWS_REGION``,
            ``AWS_DEFAULT_REGION`` (read from ``environ``), else the session's, else
            :class:`ConfigurationError`; a ``region_name`` that contradicts the queue URL's is refused.
            The endpoint is ``endpoint_url``, else one configured for botocore (``AWS_ENDPOINT_URL_SQS``,
            ``AWS_ENDPOINT_URL``, the config file), else the queue URL's own host when it is not AWS's
            public regional one (a local stack, LocalStack, a VPC endpoint), else the region's.
        environ: where the region variables are read (default ``os.environ``); ``from_env()`` passes its own.
        session: a ``boto3.Session`` whose credential chain (profile, role, refresh) and settings
            the logger uses (default: a new ``boto3.Session()``, the standard chain).
        transport: ``"lean"`` (default) sends each batch as one SigV4-signed HTTP request on a
            kept-alive connection, a fraction of botocore's CPU per request; ``"botocore"`` uses a
            boto3 client. The lean transport also falls back to a boto3 client when a proxy applies.
        client: a boto3 SQS client to use instead (e.g. built with explicit keys), always through
            botocore. Give it short timeouts and one attempt per call,
            ``retries={"total_max_attempts": 1}`` (see :func:`client_config`), since the logger
            retries on its own.
        disabled: the off switch: no thread, no client, nothing sent. ``log()`` still validates
            (False for an invalid event) and returns True for a valid one, counted in
            ``stats()["skipped_disabled"]``, not in ``accepted``.
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
        disabled: bool = False,
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
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_ENTRIES:
            raise ConfigurationError("batch_size must be 1 to 10 (SendMessageBatch's limit)")
        if max_queue_size < 1 or max_retries < 0 or flush_interval_s <= 0 or not close_timeout_s >= 0:
            raise ConfigurationError("max_queue_size >= 1, max_retries >= 0, flush_interval_s > 0 and close_timeout_s >= 0 are required")
        if source is not None and (not isinstance(source, str) or len(source) > MAX_SOURCE or find_unsafe_char(source)):
            raise ConfigurationError("source: a string of at most 64 characters of SQS-safe text")
        if transport not in TRANSPORTS:
            raise ConfigurationError(f"transport must be one of {TRANSPORTS}")
        self.queue_url = queue_url
        self.transport = transport if client is None else "client"
        self.disabled = bool(disabled)
        self._config = client_config(connect_timeout_s, read_timeout_s)
        # Where it sends, resolved once here (never by log()): the region and endpoint of the logger's own
        # transport, or of the caller's client.
        self._destination: Destination | None = None
        self.region_name: str | None = region_name or None
        self.endpoint_url: str | None = endpoint_url or None
        if not self.disabled:
            if client is None:
                session = session if session is not None else boto3.Session()
                self._destination = resolve_destination(
                    queue_url,
                    region_name=region_name,
                    endpoint_url=endpoint_url,
                    session=session,
                    environ=os.environ if environ is None else environ,
                    config=self._config,
                )
                self.region_name, self.endpoint_url = self._destination.region_name, self._destination.endpoint_url
            else:
                if region_name or endpoint_url or session is not None:
                    raise ConfigurationError(
                        "client= is used as it is: build it with the region, endpoint and credentials"
                        " (region_name, endpoint_url and session do not apply to it)"
                    )
                self.region_name, self.endpoint_url = _check_client(parse_queue_url(queue_url), client)
        self._session = session
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
        self._given_client = None if self.disabled else client
        self._own_client: Any = None
        self._sender: Sender | DisabledSender
        if self.disabled:
            self._sender = DisabledSender()
        else:
            if client is None:
                client = self._own_client = self._new_client()  # built now: a bad region fails here, not later
            self._sender = Sender(
                client_factory=self._client_for_child,
                client=client,
                queue_url=queue_url,
                batch_size=batch_size,
                max_queue_size=max_queue_size,
                flush_interval_s=flush_interval_s,
                max_retries=max_retries,
                backoff_base_s=backoff_base_s,
                backoff_max_s=backoff_max_s,
                group_key=group_id,
                on_error=on_error,
                atexit_timeout_s=atexit_timeout_s,
            )
        self._sender.start()

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> AnalyticsLogger:
        """A logger configured by the producer's own environment variables, ``AWS_*`` ones as a fallback.

        - ``ANALYTICS_DISABLED``: ``1``/``true``/``yes``/``on`` gives a disabled logger (no queue URL needed).
        - the queue: ``ANALYTICS_SQS_URL``, else ``AWS_SQS_URL`` (the name the stack's secret and the
          Worker use). A queue URL whose host is not AWS's (a local stack) is also the endpoint.
        - the region: the queue URL's, else ``ANALYTICS_REGION``, else ``AWS_REGION``, else
          ``AWS_DEFAULT_REGION``; ``ANALYTICS_REGION`` contradicting the queue URL's is an error.
          The constructor resolves both, from this ``environ``, as for ``AnalyticsLogger(url)``.
        - credentials: ``ANALYTICS_ACCESS_KEY_ID`` and ``ANALYTICS_SECRET_ACCESS_KEY`` (with
          ``ANALYTICS_SESSION_TOKEN``), else ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``
          (with ``AWS_SESSION_TOKEN``), else boto3's standard chain (an instance or Lambda role, a
          profile, ...). In an application whose other boto3 clients use ``AWS_*``, give the
          producer's send-only key as ``ANALYTICS_*``: it then never becomes their credentials.

        ``kwargs`` are passed to the constructor and win over the environment (e.g.
        ``transport="botocore"``, ``region_name=...``). A wrong value is a :class:`ConfigurationError`
        (a ``ValueError``) naming the variable.
        """
        env = os.environ if environ is None else environ
        if _env_flag(env, "ANALYTICS_DISABLED"):
            kwargs.setdefault("disabled", True)
        variable = "ANALYTICS_SQS_URL" if env.get("ANALYTICS_SQS_URL") else "AWS_SQS_URL"
        queue_url = env.get(variable) or ""
        if kwargs.get("disabled"):
            return cls(queue_url, **kwargs)
        if not queue_url:
            raise ConfigurationError("ANALYTICS_SQS_URL (or AWS_SQS_URL) is not set")
        parse_queue_url(queue_url, name=variable)  # the same check as the constructor's, naming where the URL came from
        if "client" not in kwargs:
            keys = _env_keys(env)
            if "session" not in kwargs and keys is not None:
                kwargs["session"] = boto3.Session(aws_access_key_id=keys[0], aws_secret_access_key=keys[1], aws_session_token=keys[2])
            kwargs.setdefault("environ", env)
        return cls(queue_url, **kwargs)

    def _new_client(self) -> Any:
        """The logger's own sender to its resolved destination: the lean transport, or a boto3 client (``transport="botocore"``)."""
        destination = self._destination
        if destination is None:
            raise RuntimeError("a logger given client= or disabled builds no client of its own")
        if self.transport == "lean":
            return new_transport(
                destination, session=self._session, connect_timeout_s=self.connect_timeout_s, read_timeout_s=self.read_timeout_s
            )
        return new_client(
            region_name=destination.region_name, endpoint_url=destination.endpoint_url, config=self._config, session=self._session
        )

    def _client_for_child(self) -> Any:
        """A forked child's own sender: a fresh connection with the parent's endpoint, region and credentials."""
        if self._given_client is not None:
            return client_for_child(self._given_client)
        if isinstance(self._own_client, SQSTransport):
            return self._own_client.fresh()
        return self._new_client()

    @property
    def _client(self) -> Any:
        """The sender's transport or boto3 client (None when disabled, and in a forked child until its sender builds one); for tests and debugging."""
        return self._sender.client

    @property
    def _wake(self) -> threading.Event | None:
        """The event that wakes the sender thread (None when disabled); for tests."""
        return getattr(self._sender, "wake", None)

    # -- the caller's side --------------------------------------------------------------------------

    def log(self, event: Mapping[str, Any]) -> bool:
        """Enqueue ``event`` for delivery; True when accepted (or, disabled, when valid).

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
        except Exception as error:  # InvalidEventError, or a Mapping whose methods raise: never the caller's problem
            return self._refuse(error)
        return self._sender.offer(event)

    def _refuse(self, error: BaseException) -> bool:
        """An event that breaks the contract: counted and logged by the sender; raised again with ``strict``."""
        self._sender.reject(error)
        if self.strict:
            raise error
        return False

    def log_query(
        self,
        request_id: str,
        query: str,
        *,
        source: str | None = None,
        session_id: str | None = None,
        latency_ms: float | None = None,
        timestamp: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> bool:
        """Log the seed's ``query`` event, timestamped now unless ``timestamp`` (epoch ms) is given.

        ``extra`` adds fields of your own (JSON values); a misspelled keyword is a ``TypeError``.
        """
        try:
            event = query_event(
                request_id, query, source=source, session_id=session_id, latency_ms=latency_ms, timestamp=timestamp, extra=extra
            )
        except Exception as error:  # an extra= that is not a mapping, or names a field of the contract
            return self._refuse(error)
        return self.log(event)

    def log_response(
        self,
        request_id: str,
        match_type: MatchType,
        match_score: float,
        reasoning: str,
        *,
        source: str | None = None,
        session_id: str | None = None,
        latency_ms: float | None = None,
        timestamp: int | None = None,
        extra: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> bool:
        """Log the seed's ``response`` event (``match_type`` full|partial|none, ``match_score`` 0-100); as :meth:`log_query`.

        ``model`` is the answering model's name (contract 1.1: 1 to 128 characters); None leaves it out.
        """
        try:
            event = response_event(
                request_id,
                match_type,
                match_score,
                reasoning,
                source=source,
                session_id=session_id,
                latency_ms=latency_ms,
                timestamp=timestamp,
                extra=extra,
                model=model,
            )
        except Exception as error:
            return self._refuse(error)
        return self.log(event)

    # -- flushing and lifecycle -------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event accepted before this call is delivered or has definitively failed.

        Partial batches are sent at once instead of waiting for ``flush_interval_s``. Returns
        False when ``timeout`` (seconds) ran out first. Do not call it from ``on_error``.
        """
        return self._sender.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush (up to ``timeout`` seconds), then stop the sender; later ``log()`` calls return False.

        Without ``timeout``, waits at most ``close_timeout_s`` (5 s by default): closing never
        hangs on an SQS that does not answer (``math.inf`` waits without bound). What is still
        queued then is counted as failed and passed to ``on_error``; a request already on the
        wire ends within the client's read timeout and is counted then. Returns within about
        ``timeout + 0.5`` s, and whether everything was delivered or definitively failed in time.
        """
        return self._sender.close(self.close_timeout_s if timeout is None else timeout)

    def __enter__(self) -> AnalyticsLogger:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # Bounded either way (close_timeout_s); on an exception the block is already failing: wait less.
        self.close(min(self.atexit_timeout_s, self.close_timeout_s) if exc_type is not None else None)

    def stats(self) -> dict[str, int]:
        """Counters. At rest, ``accepted == sent + failed + queued``.

        ``retried`` counts send attempts repeated for an event (one event retried twice counts 2);
        ``requests`` counts ``SendMessageBatch`` calls; ``dropped_*`` are events ``log()`` refused;
        ``skipped_disabled`` the valid events a disabled logger did not send.
        """
        return self._sender.stats()

    def __repr__(self) -> str:
        return f"AnalyticsLogger({self.queue_url!r}, {self.stats()})"
