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
a replay, and metrics count it no more. The item the write leaves (the lake's row) follows from the old
item and the ``Update`` that describes the write, the same description that renders its
``UpdateExpression``. Only ``UpdateItem`` is used: it is the only DynamoDB permission the function's role has.

No call outlives the invocation (``clients.CallGuard``).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any, Literal, NamedTuple

from botocore.exceptions import ClientError

from .clients import DYNAMODB_CONFIG, CallGuard, ConfigurationError, error_code, service_client
from .models import QueryEvent, ResponseEvent
from .transport import Finished, InFlight, JsonClient, Pending, complete

DEFAULT_RETENTION_DAYS = 30
SECONDS_PER_DAY = 86_400
_SHARED_FIELDS = ("source", "sessionId")
CONDITION_FAILED = "ConditionalCheckFailedException"


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
    return _day_text(timestamp_ms // (SECONDS_PER_DAY * 1000))


@functools.lru_cache(maxsize=64)
def _day_text(day: int) -> str:
    """Day ``day`` since the epoch as ``YYYY-MM-DD``: events come from a day or two, so each is formatted once."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * SECONDS_PER_DAY))


Value = dict[str, str]  # a DynamoDB attribute value as the JSON protocol carries it: {"S": text} or {"N": number text}
# How an assignment sets its attribute (``#a`` the attribute, ``:a`` the assignment's value, ``#o`` another attribute):
Action = Literal["set", "if_not_exists", "value_minus", "minus_value"]
SET: Action = "set"  # #a = :a
IF_NOT_EXISTS: Action = "if_not_exists"  # #a = if_not_exists(#a, :a): what the item holds, else the value
VALUE_MINUS: Action = "value_minus"  # #a = :a - #o: the value less what the item holds in o
MINUS_VALUE: Action = "minus_value"  # #a = #o - :a: what the item holds in o less the value


# One SET clause of an ``UpdateItem``: (attribute, action, value, other), ``other`` being the stored attribute a
# difference reads ("" otherwise). A plain tuple: a write makes about 16 of them.
Assignment = tuple[str, Action, Value, str]


# The JSON text ``json.dumps`` writes for a string, quotes included (its own C function: ASCII, escapes as json.dumps).
_json_string = encode_basestring_ascii


class _Text(NamedTuple):
    """How one attribute is written in an expression: its name and value placeholders and its clause for each action
    that reads no other attribute (a difference's clause is written when it is rendered); and the same as the request's
    JSON text: the names' entry, the value's key and each clause, escaped as ``json.dumps`` escapes them."""

    path: str
    placeholder: str
    clauses: dict[str, str]
    name_json: str  # "#a": "a"
    value_key_json: str  # ":a": (the value's object follows)
    clauses_json: dict[str, str]  # each clause inside the UpdateExpression's JSON string (no quotes)


_TEXT: dict[str, _Text] = {}  # by attribute: each is rendered once, not once per write


def _text(attribute: str) -> _Text:
    path, placeholder = f"#{attribute}", f":{attribute}"
    clauses: dict[str, str] = {SET: f"{path} = {placeholder}", IF_NOT_EXISTS: f"{path} = if_not_exists({path}, {placeholder})"}
    text = _TEXT[attribute] = _Text(
        path,
        placeholder,
        clauses,
        f"{_json_string(path)}: {_json_string(attribute)}",
        f"{_json_string(placeholder)}: ",
        {action: _json_string(clause)[1:-1] for action, clause in clauses.items()},
    )
    return text


def _value_json(value: Value) -> str:
    """A DynamoDB attribute value (one type and its text) as ``json.dumps`` writes it."""
    ((kind, text),) = value.items()
    return f"{_KIND_JSON.get(kind) or _kind_json(kind)}{_json_string(text)}}}"


_KIND_JSON: dict[str, str] = {}  # by type (S, N): the start of a value's JSON object, up to its text


def _kind_json(kind: str) -> str:
    text = _KIND_JSON[kind] = f"{{{_json_string(kind)}: "
    return text


class Update:
    """What one ``UpdateItem`` does, described once: its assignments (one per attribute) and its condition.

    ``arguments`` renders the ``UpdateExpression``, its names and values, and the ``ConditionExpression``
    from the description; ``applied_to`` computes from the same description the item the write leaves.
    """

    __slots__ = ("assignments", "condition")

    def __init__(self) -> None:
        self.assignments: list[Assignment] = []
        self.condition: tuple[str, str] | None = None  # (function, attribute): attribute_exists(#queryTimestamp)

    def set(self, attribute: str, value: Value, *, keep_existing: bool = False) -> None:
        """``attribute`` = ``value``; with ``keep_existing``, only when the item does not hold the attribute yet."""
        self.assignments.append((attribute, IF_NOT_EXISTS if keep_existing else SET, value, ""))

    def difference(self, attribute: str, action: Action, value: Value, other: str) -> None:
        """``attribute`` = ``value`` - stored ``other`` (``VALUE_MINUS``) or stored ``other`` - ``value`` (``MINUS_VALUE``)."""
        self.assignments.append((attribute, action, value, other))

    def require(self, function: Literal["attribute_exists", "attribute_not_exists"], attribute: str) -> None:
        """The write happens only when ``function(attribute)`` holds for the stored item."""
        self.condition = (function, attribute)

    def arguments(self) -> dict[str, Any]:
        """The ``UpdateItem`` arguments (without table, key and return options)."""
        names: dict[str, str] = {}
        values: dict[str, Value] = {}
        clauses: list[str] = []
        for attribute, action, value, other in self.assignments:
            text = _TEXT.get(attribute) or _text(attribute)
            path, placeholder, texts = text.path, text.placeholder, text.clauses
            names[path] = attribute
            values[placeholder] = value
            if other:
                other_path = f"#{other}"
                names[other_path] = other
                clauses.append(
                    f"{path} = {placeholder} - {other_path}" if action == VALUE_MINUS else f"{path} = {other_path} - {placeholder}"
                )
            else:
                clauses.append(texts[action])
        arguments: dict[str, Any] = {
            "UpdateExpression": "SET " + ", ".join(clauses),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if self.condition is not None:
            function, attribute = self.condition
            names[f"#{attribute}"] = attribute
            arguments["ConditionExpression"] = f"{function}(#{attribute})"
        return arguments

    def request_arguments(self, table_name: str, key: dict[str, Value]) -> dict[str, Any]:
        """The whole ``UpdateItem`` request: table, key, ``ReturnValues=ALL_OLD`` (and, with a condition,
        ``ReturnValuesOnConditionCheckFailure=ALL_OLD``: a failed condition tells what the item holds)."""
        arguments = {"TableName": table_name, "Key": key, "ReturnValues": "ALL_OLD", **self.arguments()}
        if self.condition is not None:
            arguments["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return arguments

    def request_body(self, table_name: str, key: dict[str, Value]) -> bytes:
        """``request_arguments`` as the JSON protocol's body: byte for byte ``json.dumps`` of them (what botocore
        sends), written from each attribute's JSON text (rendered once per attribute, ``_text``) and only the
        values escaped here (with ``json.dumps``'s own string escaping), at a fraction of ``json.dumps``'s cost."""
        # As ``arguments`` builds them: dicts of each name's and value's JSON entry (a repeated key keeps its first
        # place, with its last entry, as json.dumps writes a dict), and the clauses in order.
        names: dict[str, str] = {}
        values: dict[str, str] = {}
        clauses: list[str] = []
        for attribute, action, value, other in self.assignments:
            text = _TEXT.get(attribute) or _text(attribute)
            names[text.path] = text.name_json
            ((kind, literal),) = value.items()  # a Value is one type and its text
            values[text.placeholder] = f"{text.value_key_json}{_KIND_JSON.get(kind) or _kind_json(kind)}{_json_string(literal)}}}"
            if other:
                other_path = f"#{other}"
                names[other_path] = f"{_json_string(other_path)}: {_json_string(other)}"
                clause = (
                    f"{text.path} = {text.placeholder} - {other_path}"
                    if action == VALUE_MINUS
                    else f"{text.path} = {other_path} - {text.placeholder}"
                )
                clauses.append(_json_string(clause)[1:-1])
            else:
                clauses.append(text.clauses_json[action])
        condition = ""
        if self.condition is not None:
            function, attribute = self.condition
            path = f"#{attribute}"
            names[path] = f"{_json_string(path)}: {_json_string(attribute)}"
            condition = f', "ConditionExpression": {_json_string(f"{function}({path})")}, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"'
        key_json = ", ".join(f"{_json_string(name)}: {_value_json(value)}" for name, value in key.items())
        return (
            f'{{"TableName": {_json_string(table_name)}, "Key": {{{key_json}}}, "ReturnValues": "ALL_OLD", '
            f'"UpdateExpression": "SET {", ".join(clauses)}", "ExpressionAttributeNames": {{{", ".join(names.values())}}}, '
            f'"ExpressionAttributeValues": {{{", ".join(values.values())}}}{condition}}}'
        ).encode("ascii")

    def applied_to(self, old: dict[str, Value], key: dict[str, Value]) -> dict[str, Value]:
        """The item this update leaves when applied to ``old`` (the item before it: ``ReturnValues=ALL_OLD``), as
        DynamoDB applies it: every operand reads the item as it was before the update, so nothing is read back."""
        item = {**old, **key}
        for attribute, action, value, other in self.assignments:
            if action == SET:
                item[attribute] = value
            elif action == IF_NOT_EXISTS:
                item[attribute] = old.get(attribute) or value
            else:
                stored = old.get(other)
                if stored is None:  # DynamoDB refuses the write; the write's condition prevents it
                    raise ValueError(f"{attribute}: {other} is missing from the item")
                left, right = (value, stored) if action == VALUE_MINUS else (stored, value)
                item[attribute] = {"N": number_text(Decimal(left["N"]) - Decimal(right["N"]))}
        return item


LatencyFrom = Literal["events", "stored query", "stored response", "none"]


def build_update(
    query: QueryEvent | None, response: ResponseEvent | None, now_ms: int, retention_days: int, *, latency: LatencyFrom = "none"
) -> Update:
    """The update that merges the events into their request's item.

    ``latency`` says where ``responseLatencyMs`` comes from: both events (``events``), the response and
    the item's ``queryTimestamp`` (``stored query``), the query and the item's ``responseTimestamp``
    (``stored response``), or nowhere yet (``none``).
    """
    owner = query or response
    if owner is None:
        raise ValueError("no event to store")
    update = Update()
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
        if response.model is not None:  # contract 1.1: the answering model, the response's own
            update.set("model", {"S": response.model})
    if latency == "events" and query is not None and response is not None:
        update.set("responseLatencyMs", {"N": str(response.timestamp - query.timestamp)})
    elif latency == "stored query" and response is not None:
        update.difference("responseLatencyMs", VALUE_MINUS, {"N": str(response.timestamp)}, "queryTimestamp")
    elif latency == "stored response" and query is not None:
        update.difference("responseLatencyMs", MINUS_VALUE, {"N": str(query.timestamp)}, "responseTimestamp")
    return update


def number_text(value: Decimal) -> str:
    """A Decimal as DynamoDB returns a number: integral values without a fraction or exponent."""
    return format(value.normalize(), "f")


class EventStore:
    """Merges validated events into the table through one DynamoDB client (reused across invocations). The client's
    retry mode must be ``standard`` with ``total_max_attempts`` (``CallGuard`` bounds its calls).

    One batch at a time, as Lambda runs an execution environment's invocations: the writes ``start`` sends are
    read together by the first ``PendingWrite.finish`` (``settle``), whichever request they belong to."""

    def __init__(self, client: Any, table_name: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.client = client
        self.table_name = table_name
        self.retention_days = retention_days
        self.guard = CallGuard(client, DYNAMODB_CONFIG)
        self._in_flight: list[Pending] = []  # the calls of writes started and not read yet (``settle``)

    def write(self, events: Sequence[QueryEvent | ResponseEvent], now_ms: int, *, deadline: float | None = None) -> WriteResult:
        """Store the events of one request (one or both types; a repeated type: the last one wins).

        Raises the client's error, and the caller fails the records; ``NoTimeLeft`` when a write could
        not end before ``deadline`` (``time.monotonic()`` seconds) and was not started. The first attempt
        is one write for whatever order the events come in; see the module docstring for the one order that needs two.
        """
        return self.start(events, now_ms, deadline=deadline).finish()

    def start(self, events: Sequence[QueryEvent | ResponseEvent], now_ms: int, *, deadline: float | None = None) -> PendingWrite:
        """``write``'s first ``UpdateItem`` sent, its answer read by ``PendingWrite.finish`` (which raises what
        ``write`` raises, ``NoTimeLeft`` included): the processor starts every message group's write before it reads
        any answer, so the writes of a batch wait on DynamoDB at the same time in one thread."""
        if not events:
            raise ValueError("no event to store")
        request_id = events[0].requestId
        query: QueryEvent | None = None
        response: ResponseEvent | None = None
        for event in events:  # the last of each type wins
            if event.requestId != request_id:
                raise ValueError("events of different requests cannot share a write")
            if isinstance(event, QueryEvent):
                query = event
            else:
                response = event
        key = {"requestId": {"S": request_id}}
        fallback: LatencyFrom | None = None  # the second write's latency after a failed condition (None: no condition)
        if query is not None and response is not None:
            update = build_update(query, response, now_ms, self.retention_days, latency="events")
        elif response is not None:  # alone: expect the usual order, and learn from a failed condition what the item holds
            update = build_update(query, response, now_ms, self.retention_days, latency="stored query")
            update.require("attribute_exists", "queryTimestamp")
            fallback = "none"
        else:
            update = build_update(query, response, now_ms, self.retention_days, latency="none")
            update.require("attribute_not_exists", "responseTimestamp")
            fallback = "stored response"
        written = PendingWrite(self, request_id, key, query, response, now_ms, deadline, update, fallback)
        try:
            written.call = self._start(key, update, deadline)
        except Exception as error:  # NoTimeLeft: not sent; finish raises it
            written.call = Finished(error=error)
        self._in_flight.append(written.call)
        return written

    def close(self) -> None:
        """Close the transport's idle connections (a botocore client, which may be shared, is left as it is)."""
        if isinstance(self.client, JsonClient):
            self.client.close()

    def settle(self) -> None:
        """Read the answers of every write started and not read yet (``transport.complete``): the first
        ``PendingWrite.finish`` of a batch waits for all of them at once."""
        in_flight, self._in_flight = self._in_flight, []
        complete(in_flight)

    def _start(self, key: dict[str, Value], update: Update, deadline: float | None) -> Pending:
        """One ``UpdateItem`` started (``CallGuard``: ``NoTimeLeft`` when it could not end before ``deadline``). The
        transport is given the request's JSON body as ``Update.request_body`` writes it (json.dumps's bytes at a
        third of the cost); a botocore client, its arguments."""
        if isinstance(self.client, JsonClient):
            return self.client.start("UpdateItem", update.request_body(self.table_name, key), self.guard.context(deadline))
        return self.guard.start("update_item", deadline, **update.request_arguments(self.table_name, key))

    def _update(self, key: dict[str, Value], update: Update, deadline: float | None) -> dict[str, Value]:
        """One whole ``UpdateItem`` (the second write of an overtaking response or query): the item before it."""
        attributes: dict[str, Value] = self._start(key, update, deadline).result().get("Attributes", {})
        return attributes

    @staticmethod
    def _first(old: dict[str, Any], query: QueryEvent | None, response: ResponseEvent | None) -> frozenset[str]:
        first = set()
        if query is not None and "queryIngestedAt" not in old:
            first.add("query")
        if response is not None and "responseIngestedAt" not in old:
            first.add("response")
        return frozenset(first)


class PendingWrite:
    """A request's write under way (``EventStore.start``); ``finish`` reads its answer and gives the ``WriteResult``."""

    __slots__ = ("call", "deadline", "fallback", "key", "now_ms", "query", "request_id", "response", "store", "update")

    def __init__(
        self,
        store: EventStore,
        request_id: str,
        key: dict[str, Value],
        query: QueryEvent | None,
        response: ResponseEvent | None,
        now_ms: int,
        deadline: float | None,
        update: Update,
        fallback: LatencyFrom | None,
    ) -> None:
        self.store, self.request_id, self.key, self.query, self.response = store, request_id, key, query, response
        self.now_ms, self.deadline, self.update, self.fallback = now_ms, deadline, update, fallback
        self.call: Pending = Finished(error=RuntimeError("not started"))

    def finish(self) -> WriteResult:
        """The write's outcome (every write of the store started so far is read with it: ``EventStore.settle``).
        After a failed condition, the second write is made here, whole: only an overtaking event needs it."""
        store, key, query, response = self.store, self.key, self.query, self.response
        if isinstance(self.call, InFlight) and not self.call.settled:
            store.settle()
        try:
            old: dict[str, Value] = self.call.result().get("Attributes", {})
            return WriteResult(self.request_id, store._first(old, query, response), 1, self.update.applied_to(old, key))
        except ClientError as error:
            if self.fallback is None or error_code(error) != CONDITION_FAILED:
                raise
            before = error.response.get("Item", {})
        update = build_update(query, response, self.now_ms, store.retention_days, latency=self.fallback)
        old = store._update(key, update, self.deadline)
        # The failed write changed nothing; ``before`` and ``old`` agree unless a concurrent writer came in between.
        return WriteResult(self.request_id, store._first({**before, **old}, query, response), 2, update.applied_to(old, key))


def store_from_environment() -> EventStore:
    """A store for ``TABLE_NAME`` with a fresh boto3 session, so it sees the current credentials and
    endpoint (botocore resolves ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_DYNAMODB``; the local stack
    sets the first), sending through ``clients.service_client`` (docs/benchmarks/processor.md)."""
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
    return EventStore(service_client("dynamodb", DYNAMODB_CONFIG), table_name, retention_days)
