"""The processor's AWS clients and what both the store and the lake sink need of them: their configuration,
the deadline every call keeps (``CallGuard``), and the reading of their errors (``error_code``, ``is_transient``).

Both clients are ``transport.JsonClient`` (the service's JSON protocol signed on kept-alive connections,
docs/benchmarks/processor.md), or botocore's own client when the transport cannot send for it (``client``).

No call outlives the invocation (``CallGuard``): a call starts only when one attempt of the client fits
before the caller's deadline, and a retry only when its backoff and one more attempt still fit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore import configprovider
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import get_environ_proxies

from .transport import Finished, JsonClient, Pending

T = TypeVar("T")
# Short timeouts and three attempts in all (``total_max_attempts`` counts the first; botocore's
# ``max_attempts`` would count retries only): a record that still fails is simply retried by SQS.
# ``CallGuard`` starts an attempt only when it fits in what is left of the invocation (one attempt:
# at most 2 + 4 = 6 s; all three: at most 21 s, see ``CallLimits``).
# One kept-alive connection per message group's write in flight (a batch holds at most 10 records: 10 groups).
DYNAMODB_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=2, read_timeout=4, max_pool_connections=10)
# Each PutRecordBatch is bounded by the invocation's deadline the same way: one attempt of this client waits
# at most 2 + 4 = 6 s, all three at most 21 s.
FIREHOSE_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=2, read_timeout=4)
# Codes DynamoDB (or botocore) uses for errors that a later retry of the same record can succeed after.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)
BACKOFF_MAX_S = 20  # botocore.retries.standard.ExponentialBackoff._MAX_BACKOFF
RETRY_AFTER_MAX_ADDITIONAL_S = 5  # ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL (new retries only)


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete: every invocation fails until it is fixed."""


class NoTimeLeft(Exception):
    """A call was not started: one attempt of its client could end after the caller's deadline."""


def error_code(error: BaseException) -> str:
    """AWS's error code (DynamoDB's, Firehose's), or the exception's class name for errors raised before a response."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "Unknown"))
    return type(error).__name__


def is_transient(error: BaseException) -> bool:
    """True for throttling, 5xx and connection errors, and a call not started for lack of time: a
    retry of the same record may succeed."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(error) in TRANSIENT_ERROR_CODES or status >= 500
    return isinstance(error, BotoCoreError | NoTimeLeft)


@dataclass(frozen=True)
class CallLimits:
    """How long one call of a botocore client can wait on the network, from the client's ``Config``.

    Exact for botocore's ``standard`` retry mode (the only mode accepted), as botocore implements it
    (``botocore/retries/standard.py``, ``botocore/endpoint.py``, urllib3's ``connectionpool.py``) and
    as ``transport.JsonClient`` keeps it (botocore's retry handler decides its retries; its sockets wait
    ``connect_timeout`` to connect, TLS handshake included, then ``read_timeout`` for each read):

    * ``total_max_attempts`` is the number of attempts, the first one included (``MaxAttemptsChecker``:
      a retry only while ``attempt_number < max_attempts``, ``attempt_number`` being 1-based);
    * one attempt waits at most ``connect_timeout`` for the connection and ``read_timeout`` for the
      answer (urllib3 ``_make_request``: the connect timeout, then the read timeout on the socket);
    * after failed attempt ``n`` (1-based) and before the next, botocore sleeps
      ``ExponentialBackoff.delay_amount``: ``random() * min(2 ** (n - 1), 20)`` (``_BASE`` 2,
      ``_MAX_BACKOFF`` 20 s), so less than 1 s, then 2 s, ...; with botocore's new retries
      (``configprovider.NEW_RETRIES_ENABLED``) the factor before ``2 ** (n - 1)`` is at most 1 (1 for
      throttling, 0.05 or 0.025 otherwise) and an ``x-amz-retry-after`` header adds up to
      ``_RETRY_AFTER_MAX_ADDITIONAL`` (5 s), which ``backoff_s`` counts then. No sleep follows the last attempt.

    Not bounded by these timeouts, and left to Lambda's own timeout: name resolution, a peer that
    takes the request more slowly than the network or answers a byte at a time (each read waits up to
    ``read_timeout`` again).
    """

    connect_timeout_s: float
    read_timeout_s: float
    total_max_attempts: int

    @classmethod
    def of(cls, config: Config) -> CallLimits:
        retries = config.retries or {}
        if retries.get("mode") != "standard" or not isinstance(retries.get("total_max_attempts"), int):
            raise ValueError(f"a bounded call needs retries={{'mode': 'standard', 'total_max_attempts': N}}, not {retries!r}")
        return cls(float(config.connect_timeout), float(config.read_timeout), retries["total_max_attempts"])

    @property
    def attempt_s(self) -> float:
        """The longest one attempt can wait: the connection, then the answer."""
        return self.connect_timeout_s + self.read_timeout_s

    @staticmethod
    def backoff_s(failed_attempt: int) -> float:
        """The longest sleep after attempt ``failed_attempt`` (1-based), before the next one."""
        longest = float(min(2 ** (failed_attempt - 1), BACKOFF_MAX_S))
        if getattr(configprovider, "NEW_RETRIES_ENABLED", False):
            longest += RETRY_AFTER_MAX_ADDITIONAL_S
        return longest

    def worst_case_s(self) -> float:
        """The longest a whole call can wait: every attempt, and the sleeps between them."""
        attempts = self.total_max_attempts
        return attempts * self.attempt_s + sum(self.backoff_s(n) for n in range(1, attempts))


_current = threading.local()  # the deadline and limits of the whole call this thread is making (a botocore client's)
_BOUND = "processor_call_bound"
_UNKNOWN = object()  # the key of (deadline, limits) in the context of a call started in two steps


def _no_late_retry(attempts: int, request_dict: dict[str, Any] | None = None, **_: Any) -> bool | None:
    """botocore's ``needs-retry`` event, before its retry handler: ``False`` (no retry) when the sleep
    and one more attempt could end after the call's deadline. botocore takes the first answer that is
    not None (``endpoint._needs_retry``), so otherwise its own handler decides, as without a deadline.

    The deadline is the call's context's (``CallGuard.start``: its answer is read later, maybe while other
    calls are under way) or, for a call made whole (``CallGuard.call``), the calling thread's."""
    bound = ((request_dict or {}).get("context") or {}).get(_BOUND)
    if bound is None:
        bound = (getattr(_current, "deadline", None), getattr(_current, "limits", None))
    deadline, limits = bound
    if deadline is None or limits is None:
        return None
    if time.monotonic() + limits.backoff_s(attempts) + limits.attempt_s > deadline:
        return False
    return None


class CallGuard:
    """Makes a client's calls end before a deadline (``time.monotonic()`` seconds), counting its attempts.

    ``call`` starts a call only when one attempt fits before the deadline (else ``NoTimeLeft``), and
    each retry only when botocore's longest backoff and one more attempt fit: the call then raises its
    last attempt's error, as it does after its last attempt. Without a deadline, calls are the client's own.
    ``start`` does the same for a call whose answer is read later (``transport.InFlight``).
    """

    def __init__(self, client: Any, default_config: Config) -> None:
        meta = getattr(client, "meta", None)  # test doubles have none: they are given the config they stand for
        self.client = client
        self._starters: dict[str, Any] = {}  # by operation: the client's start_<operation>, or None
        self.limits = CallLimits.of(meta.config if meta is not None else default_config)
        if meta is not None:
            service = meta.service_model.service_id.hyphenize()
            meta.events.register_first(f"needs-retry.{service}", _no_late_retry, unique_id="processor-call-deadline")

    def _check(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left < self.limits.attempt_s:
            raise NoTimeLeft(f"{left:.1f} s left, one attempt may take {self.limits.attempt_s:g} s")

    def context(self, deadline: float | None) -> dict[str, Any]:
        """The context of a ``transport.JsonClient`` call started now, bounded by ``deadline`` (its retries are
        decided when its answer is read, maybe while other calls are under way); ``NoTimeLeft`` when one
        attempt does not fit before it."""
        if deadline is None:
            return {}
        self._check(deadline)
        return {_BOUND: (deadline, self.limits)}

    def call(self, method: Callable[..., T], deadline: float | None, **arguments: Any) -> T:
        if deadline is None:
            return method(**arguments)
        self._check(deadline)
        _current.deadline, _current.limits = deadline, self.limits
        try:
            return method(**arguments)
        finally:
            _current.deadline = _current.limits = None

    def start(self, operation: str, deadline: float | None, **arguments: Any) -> Pending:
        """The client's ``operation`` (``update_item``, ``put_record_batch``) started: its answer is read by the
        result's ``result()`` (or ``transport.complete``), so several calls can wait on the network at once in
        one thread. ``NoTimeLeft`` (raised) when one attempt does not fit before ``deadline``.

        A client that cannot split a call (a botocore client: ``needs_botocore``; a test double) has no
        ``start_<operation>``: the whole call is made here, bounded as ``call`` bounds it, and its answer or
        its error is returned as a ``transport.Finished``."""
        context = self.context(deadline)
        start = self._starters.get(operation, _UNKNOWN)
        if start is _UNKNOWN:
            start = self._starters[operation] = getattr(self.client, f"start_{operation}", None)
        if start is None:
            try:
                return Finished(self.call(getattr(self.client, operation), deadline, **arguments))
            except Exception as error:
                return Finished(error=error)
        started: Pending = start(context, **arguments)
        return started


def needs_botocore(endpoint_url: str, config: Any) -> str | None:
    """Why ``transport.JsonClient`` cannot send for the client (a proxy, a client certificate), or None."""
    scheme = urlsplit(endpoint_url).scheme
    if (config.proxies or {}).get(scheme) or get_environ_proxies(endpoint_url).get(scheme):
        return f"a proxy for {scheme}"
    if config.client_cert:
        return "a client certificate"
    return None


def json_client(session: Any, service: str, config: Any) -> Any:
    """A ``JsonClient`` for ``service`` from a boto3 session: botocore resolves the endpoint (``AWS_ENDPOINT_URL``,
    ``AWS_ENDPOINT_URL_<SERVICE>``), the region, the credentials and the CA bundle (``AWS_CA_BUNDLE``) as for its own client.

    When the client would go through a proxy (``HTTPS_PROXY``, ``Config.proxies``) or present a client
    certificate, which this transport does not do, the botocore client itself is returned: slower, never wrong.
    """
    client = session.client(service, config=config)
    if needs_botocore(client.meta.endpoint_url, client.meta.config):
        return client
    verify = session._session.get_config_variable("ca_bundle") or True
    return JsonClient(client, session.get_credentials(), verify=verify)


def service_client(service: str, config: Config) -> Any:
    """The client for ``service`` with a fresh boto3 session, so it sees the current credentials and endpoint
    (botocore resolves ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>``; the local stack sets the first)."""
    return json_client(boto3.session.Session(), service, config)
