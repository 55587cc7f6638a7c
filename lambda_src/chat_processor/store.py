"""The idempotent merge of events into one DynamoDB item per ``requestId``, in as few writes as possible.

The events of one request that arrive together (the Worker sends both in one request, so one batch
usually holds both) are stored by **one** ``UpdateItem`` that writes the complete item,
``responseLatencyMs`` included. Apart, each event is one ``UpdateItem`` in the usual order (query,
then response): the response computes the latency in the same write from the stored
``queryTimestamp`` (``SET #latency = :responseTs - #queryTimestamp``, on condition the query is
there). Only a response that overtakes its query costs more: each of the two then makes one
conditional write that fails (ReturnValuesOnConditionCheckFailure tells what the item holds) and one
that stores.

The result never depends on arrival order or on how often an event is delivered:

* the query owns the fields both events carry (``day``, ``expiresAt``, ``schemaVersion``,
  ``source``, ``sessionId``) and sets them unconditionally; the response sets them only with
  ``if_not_exists``, so it fills them in until the query arrives and never overwrites the query's;
* each event sets its own fields unconditionally (a replay writes the same values again);
* ``*IngestedAt`` uses ``if_not_exists``: the first delivery's processing time is kept;
* ``responseLatencyMs`` is written by whichever write finds both timestamps, from those timestamps.

Every write returns the old item (``ALL_OLD``): an event whose ``*IngestedAt`` was already there is
a replay, and metrics count it no more. Only ``UpdateItem`` is used: it is the only DynamoDB
permission the function's role has.

No call outlives the invocation (``CallGuard``): a call starts only when one attempt of the client
fits before the caller's deadline, and a retry only when its backoff and one more attempt still fit.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

import boto3
from botocore import configprovider
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .models import QueryEvent, ResponseEvent
from .transport import json_client

DEFAULT_RETENTION_DAYS = 30
T = TypeVar("T")
SECONDS_PER_DAY = 86_400
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
# Short timeouts and three attempts in all (``total_max_attempts`` counts the first; botocore's
# ``max_attempts`` would count retries only): a record that still fails is simply retried by SQS.
# ``CallGuard`` starts an attempt only when it fits in what is left of the invocation (one attempt:
# at most 2 + 4 = 6 s; all three: at most 21 s, see ``CallLimits``).
# One pooled connection per concurrently written message group (handler.MAX_CONCURRENT_GROUPS).
CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=2, read_timeout=4, max_pool_connections=10)

_SHARED_FIELDS = ("source", "sessionId")
CONDITION_FAILED = "ConditionalCheckFailedException"


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete: every invocation fails until it is fixed."""


class NoTimeLeft(Exception):
    """A call was not started: one attempt of its client could end after the caller's deadline."""


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


BACKOFF_MAX_S = 20  # botocore.retries.standard.ExponentialBackoff._MAX_BACKOFF
RETRY_AFTER_MAX_ADDITIONAL_S = 5  # ExponentialBackoff._RETRY_AFTER_MAX_ADDITIONAL (new retries only)
_current = threading.local()  # the deadline and limits of the call this thread is making


def _no_late_retry(attempts: int, **_: Any) -> bool | None:
    """botocore's ``needs-retry`` event, before its retry handler: ``False`` (no retry) when the sleep
    and one more attempt could end after the call's deadline. botocore takes the first answer that is
    not None (``endpoint._needs_retry``), so otherwise its own handler decides, as without a deadline."""
    deadline: float | None = getattr(_current, "deadline", None)
    limits: CallLimits | None = getattr(_current, "limits", None)
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
    """

    def __init__(self, client: Any, default_config: Config) -> None:
        meta = getattr(client, "meta", None)  # test doubles have none: they are given the config they stand for
        self.limits = CallLimits.of(meta.config if meta is not None else default_config)
        if meta is not None:
            service = meta.service_model.service_id.hyphenize()
            meta.events.register_first(f"needs-retry.{service}", _no_late_retry, unique_id="processor-call-deadline")

    def call(self, method: Callable[..., T], deadline: float | None, **arguments: Any) -> T:
        if deadline is None:
            return method(**arguments)
        left = deadline - time.monotonic()
        if left < self.limits.attempt_s:
            raise NoTimeLeft(f"{left:.1f} s left, one attempt may take {self.limits.attempt_s:g} s")
        _current.deadline, _current.limits = deadline, self.limits
        try:
            return method(**arguments)
        finally:
            _current.deadline = _current.limits = None


@dataclass(frozen=True)
class WriteResult:
    """What storing one request's events did.

    ``first`` holds the event types stored for the first time (metrics count those); ``writes`` is how
    many ``UpdateItem`` requests it took (conditional ones that failed included: they cost a write too);
    ``item`` is the item as the last write left it (the lake's row is made from it).
    """

    request_id: str
    first: frozenset[str] = field(default_factory=frozenset)
    writes: int = 0
    item: dict[str, Any] = field(default_factory=dict)

    @property
    def first_delivery(self) -> bool:
        return bool(self.first)


def number(value: int | float) -> str:
    """A DynamoDB ``N`` string in canonical form (``50.0`` -> ``50``), never in exponent notation."""
    if isinstance(value, int):
        return str(value)
    return number_text(Decimal(repr(value)))


def utc_day(timestamp_ms: int) -> str:
    """``YYYY-MM-DD`` (UTC) of an epoch-milliseconds timestamp: the ``byDay`` index's partition key."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp_ms // 1000))


class _Update:
    """An ``UpdateItem``'s SET clauses, names and values, built one field at a time."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, str]] = {}

    def name(self, field_name: str) -> str:
        self.names[f"#{field_name}"] = field_name
        return f"#{field_name}"

    def set(self, field_name: str, value: dict[str, str], *, keep_existing: bool = False) -> None:
        path, placeholder, plain, keep = _CLAUSE_TEXT.get(field_name) or _clause_text(field_name)
        self.names[path] = field_name
        self.values[placeholder] = value
        self.clauses.append(keep if keep_existing else plain)

    def arguments(self) -> dict[str, Any]:
        return {
            "UpdateExpression": "SET " + ", ".join(self.clauses),
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }


# field -> (#path, :placeholder, "#path = :placeholder", "#path = if_not_exists(#path, :placeholder)")
_CLAUSE_TEXT: dict[str, tuple[str, str, str, str]] = {}


def _clause_text(field_name: str) -> tuple[str, str, str, str]:
    path, placeholder = f"#{field_name}", f":{field_name}"
    text = _CLAUSE_TEXT[field_name] = (path, placeholder, f"{path} = {placeholder}", f"{path} = if_not_exists({path}, {placeholder})")
    return text


LatencyFrom = str  # "events" (both timestamps known) | "stored query" | "stored response" | "none"


def build_update(
    query: QueryEvent | None, response: ResponseEvent | None, now_ms: int, retention_days: int, *, latency: LatencyFrom = "none"
) -> dict[str, Any]:
    """The ``UpdateItem`` arguments (without table, key and return options) that merge the events.

    ``latency`` says where ``responseLatencyMs`` comes from: both events (``events``), the response and
    the item's ``queryTimestamp`` (``stored query``), the query and the item's ``responseTimestamp``
    (``stored response``), or nowhere yet (``none``).
    """
    owner = query or response
    if owner is None:
        raise ValueError("no event to store")
    update = _Update()
    keep = query is None  # only the query owns the shared fields; a response alone fills them in
    update.set("day", {"S": utc_day(owner.timestamp)}, keep_existing=keep)
    update.set("expiresAt", {"N": str(owner.timestamp // 1000 + retention_days * SECONDS_PER_DAY)}, keep_existing=keep)
    update.set("schemaVersion", {"N": str(owner.schemaVersion)}, keep_existing=keep)
    for name in _SHARED_FIELDS:
        if query is not None and getattr(query, name) is not None:
            update.set(name, {"S": getattr(query, name)})
        elif response is not None and getattr(response, name) is not None:
            update.set(name, {"S": getattr(response, name)}, keep_existing=True)
    if query is not None:
        update.set("query", {"S": query.query})
        update.set("queryTimestamp", {"N": str(query.timestamp)})
        update.set("queryIngestedAt", {"N": str(now_ms)}, keep_existing=True)
    if response is not None:
        update.set("matchType", {"S": response.matchType})
        update.set("matchScore", {"N": number(response.matchScore)})
        update.set("reasoning", {"S": response.reasoning})
        update.set("responseTimestamp", {"N": str(response.timestamp)})
        update.set("responseIngestedAt", {"N": str(now_ms)}, keep_existing=True)
        if response.latencyMs is not None:  # the answer time belongs to the response (see the table contract)
            update.set("latencyMs", {"N": number(response.latencyMs)})
    latency_path = update.name("responseLatencyMs")
    if latency == "events" and query is not None and response is not None:
        update.values[":responseLatencyMs"] = {"N": str(response.timestamp - query.timestamp)}
        update.clauses.append(f"{latency_path} = :responseLatencyMs")
    elif latency == "stored query" and response is not None:
        update.clauses.append(f"{latency_path} = :responseTimestamp - {update.name('queryTimestamp')}")
    elif latency == "stored response" and query is not None:
        update.clauses.append(f"{latency_path} = {update.name('responseTimestamp')} - :queryTimestamp")
    else:
        del update.names[latency_path]
    return update.arguments()


_OPERAND = re.compile(r"^([#:][A-Za-z]+)$")
_IF_NOT_EXISTS = re.compile(r"^if_not_exists\((#[A-Za-z]+), (:[A-Za-z]+)\)$")
_DIFFERENCE = re.compile(r"^([#:][A-Za-z]+) - ([#:][A-Za-z]+)$")


Clause = tuple[str, str, str, str]  # (target, kind: "keep" | "difference" | "operand", first operand, second operand)


@functools.lru_cache(maxsize=1024)
def parse_clauses(expression: str) -> tuple[Clause, ...]:
    """The SET clauses of an update expression ``build_update`` wrote. Its expressions come in a few dozen
    shapes (which fields an event has), so each shape is parsed once, not once per write."""
    clauses: list[Clause] = []
    for clause in re.split(r", (?=#)", expression.removeprefix("SET ")):  # every clause starts with its target
        target, _, source = clause.partition(" = ")
        if match := _IF_NOT_EXISTS.match(source):
            clauses.append((target, "keep", match.group(1), match.group(2)))
        elif match := _DIFFERENCE.match(source):
            clauses.append((target, "difference", match.group(1), match.group(2)))
        elif _OPERAND.match(source):
            clauses.append((target, "operand", source, ""))
        else:
            raise ValueError(f"{clause!r} is not a clause build_update writes")
    return tuple(clauses)


def apply_update(old: dict[str, Any], request_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The item ``arguments`` (from ``build_update``) leave when applied to ``old``, as DynamoDB applies them.

    Every operand of a SET clause reads the item as it was before the update (DynamoDB's rule), so the
    result follows from ``old`` (``ReturnValues=ALL_OLD``) without reading the item back. Only the
    clause forms ``build_update`` writes are understood; anything else is a programming error.
    """
    names: dict[str, str] = arguments["ExpressionAttributeNames"]
    values: dict[str, dict[str, str]] = arguments["ExpressionAttributeValues"]

    def operand(token: str) -> dict[str, str] | None:
        return values[token] if token.startswith(":") else old.get(names[token])

    item = {**old, "requestId": {"S": request_id}}
    for target, kind, first, second in parse_clauses(arguments["UpdateExpression"]):
        if kind == "keep":
            value = old.get(names[first]) or values[second]
        elif kind == "difference":
            left, right = operand(first), operand(second)
            if left is None or right is None:  # DynamoDB refuses the write; build_update's conditions prevent it
                raise ValueError(f"{target} = {first} - {second}: an operand is missing from the item")
            value = {"N": number_text(Decimal(left["N"]) - Decimal(right["N"]))}
        else:
            found = operand(first)
            if found is None:
                raise ValueError(f"{target} = {first}: the attribute is missing from the item")
            value = found
        item[names[target]] = value
    return item


def number_text(value: Decimal) -> str:
    """A Decimal as DynamoDB returns a number: integral values without a fraction or exponent."""
    return format(value.normalize(), "f")


class EventStore:
    """Merges validated events into the table through one DynamoDB client (reused across invocations;
    ``transport.JsonClient`` and boto3 clients are thread-safe, so concurrently written message groups share it). The client's
    retry mode must be ``standard`` with ``total_max_attempts`` (``CallGuard`` bounds its calls)."""

    def __init__(self, client: Any, table_name: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.client = client
        self.table_name = table_name
        self.retention_days = retention_days
        self.guard = CallGuard(client, CLIENT_CONFIG)

    def write(self, events: Sequence[QueryEvent | ResponseEvent], now_ms: int, *, deadline: float | None = None) -> WriteResult:
        """Store the events of one request (one or both types; a repeated type: the last one wins).

        Raises the client's error, and the caller fails the records; ``NoTimeLeft`` when a write could
        not end before ``deadline`` (``time.monotonic()`` seconds) and was not started. The first attempt
        is one write for whatever order the events come in; see the module docstring for the one order that needs two.
        """
        if not events:
            raise ValueError("no event to store")
        request_id = events[0].requestId
        if any(event.requestId != request_id for event in events):
            raise ValueError("events of different requests cannot share a write")
        query = next((e for e in reversed(events) if isinstance(e, QueryEvent)), None)
        response = next((e for e in reversed(events) if isinstance(e, ResponseEvent)), None)
        if query is not None and response is not None:
            arguments = build_update(query, response, now_ms, self.retention_days, latency="events")
            old = self._update(request_id, arguments, deadline)
            return WriteResult(request_id, self._first(old, query, response), 1, apply_update(old, request_id, arguments))
        # Alone: expect the usual order, and learn from a failed condition what the item already holds.
        if response is not None:
            expected, condition = "stored query", "attribute_exists(#queryTimestamp)"
            fallback: LatencyFrom = "none"
        else:
            expected, condition = "none", "attribute_not_exists(#responseTimestamp)"
            fallback = "stored response"
        arguments = build_update(query, response, now_ms, self.retention_days, latency=expected)
        arguments["ExpressionAttributeNames"].setdefault("#queryTimestamp", "queryTimestamp")
        arguments["ExpressionAttributeNames"].setdefault("#responseTimestamp", "responseTimestamp")
        try:
            old = self._update(request_id, arguments, deadline, condition=condition)
            return WriteResult(request_id, self._first(old, query, response), 1, apply_update(old, request_id, arguments))
        except ClientError as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            before = error.response.get("Item", {})
        arguments = build_update(query, response, now_ms, self.retention_days, latency=fallback)
        old = self._update(request_id, arguments, deadline)
        # The failed write changed nothing; ``before`` and ``old`` agree unless a concurrent writer came in between.
        return WriteResult(request_id, self._first({**before, **old}, query, response), 2, apply_update(old, request_id, arguments))

    def _update(
        self, request_id: str, arguments: dict[str, Any], deadline: float | None, *, condition: str | None = None
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if condition:
            extra = {"ConditionExpression": condition, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        response = self.guard.call(
            self.client.update_item,
            deadline,
            TableName=self.table_name,
            Key={"requestId": {"S": request_id}},
            ReturnValues="ALL_OLD",
            **arguments,
            **extra,
        )
        return response.get("Attributes", {})

    @staticmethod
    def _first(old: dict[str, Any], query: QueryEvent | None, response: ResponseEvent | None) -> frozenset[str]:
        first = set()
        if query is not None and "queryIngestedAt" not in old:
            first.add("query")
        if response is not None and "responseIngestedAt" not in old:
            first.add("response")
        return frozenset(first)


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


def store_from_environment() -> EventStore:
    """A store for ``TABLE_NAME`` with a fresh boto3 session, so it sees the current credentials and
    endpoint (botocore resolves ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_DYNAMODB``; the local stack
    sets the first), sending through ``transport.JsonClient`` (docs/benchmarks/processor.md)."""
    table_name = os.environ.get("TABLE_NAME")
    if not table_name:
        raise ConfigurationError("TABLE_NAME is not set")
    raw_days = os.environ.get("EVENT_RETENTION_DAYS") or str(DEFAULT_RETENTION_DAYS)
    try:
        retention_days = int(raw_days)
    except ValueError:
        raise ConfigurationError(f"EVENT_RETENTION_DAYS is not an integer: {raw_days!r}") from None
    if retention_days < 1:
        raise ConfigurationError(f"EVENT_RETENTION_DAYS must be at least 1, not {retention_days}")
    return EventStore(json_client(boto3.session.Session(), "dynamodb", CLIENT_CONFIG), table_name, retention_days)


class Provider(Generic[T]):
    """Builds a client-holding object on first use and keeps it: in Lambda the environment never
    changes, so one client (and its connections) serves every invocation of the execution environment.

    Lazily, so that importing the handler needs no environment. Whoever changes the environment inside
    one process (the local stack deploying again, a test) calls ``reset``; ``pin`` replaces the object
    outright (tests, benchmarks). The factory may return None (the lake, when the function has none).
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._built = False
        self._value: T | None = None
        self._pinned: Any = None

    def get(self) -> Any:
        if self._pinned is not None:
            return self._pinned
        if not self._built:
            self._value, self._built = self._factory(), True
        return self._value

    def reset(self) -> None:
        """Forget the object: the next ``get`` builds one from the environment as it is then."""
        self._value, self._built, self._pinned = None, False, None

    def pin(self, value: Any) -> None:
        """Use ``value`` (for the store: anything with ``write`` like ``EventStore``) until ``pin(None)``."""
        self._pinned = value


class StoreProvider(Provider[EventStore]):
    """The processor's ``EventStore``, from ``TABLE_NAME`` and ``EVENT_RETENTION_DAYS``."""

    def __init__(self) -> None:
        super().__init__(store_from_environment)
