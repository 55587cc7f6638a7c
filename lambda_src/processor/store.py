"""The idempotent merge of events into one DynamoDB item per ``requestId``.

Every event is one ``UpdateItem`` whose result does not depend on arrival order or on how often
the event is delivered:

* the query event owns the fields both events carry (``day``, ``expiresAt``, ``schemaVersion``,
  ``source``, ``sessionId``) and sets them unconditionally; the response sets them only with
  ``if_not_exists``, so it fills them in until the query arrives and never overwrites the query's;
* each event sets its own fields unconditionally (a replay writes the same values again);
* ``*IngestedAt`` uses ``if_not_exists``: the first delivery's processing time is kept;
* ``responseLatencyMs`` needs both timestamps: the first write returns the old item
  (``ALL_OLD``), from which the new item's timestamps are known, and a second, conditional
  ``UpdateItem`` sets it only when it is missing or stale. A replay finds it already right and
  writes nothing more, so the item stays exactly as one delivery left it.

Only ``UpdateItem`` is used: it is the only DynamoDB permission the function's role has.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from models import QueryEvent, ResponseEvent

DEFAULT_RETENTION_DAYS = 30
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
# The environment a store is built from; a change (the local stack redeploying, a test) builds a new one.
_ENV_KEYS = (
    "TABLE_NAME",
    "EVENT_RETENTION_DAYS",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
)
# Short timeouts and three attempts in all (``total_max_attempts`` counts the first; botocore's
# ``max_attempts`` would count retries only): a batch must finish well inside the function's timeout,
# and a record that still fails is simply retried by SQS.
CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=2, read_timeout=4)

_QUERY_SET = (
    "SET #day = :day, #expiresAt = :expiresAt, #schemaVersion = :schemaVersion, #query = :query,"
    " #queryTimestamp = :timestamp, #queryIngestedAt = if_not_exists(#queryIngestedAt, :now)"
)
_RESPONSE_SET = (
    "SET #day = if_not_exists(#day, :day), #expiresAt = if_not_exists(#expiresAt, :expiresAt),"
    " #schemaVersion = if_not_exists(#schemaVersion, :schemaVersion), #matchType = :matchType, #matchScore = :matchScore,"
    " #reasoning = :reasoning, #responseTimestamp = :timestamp, #responseIngestedAt = if_not_exists(#responseIngestedAt, :now)"
)


class ConfigurationError(RuntimeError):
    """The function's environment is incomplete: every invocation fails until it is fixed."""


@dataclass(frozen=True)
class MergeResult:
    """What the first write of a merge did.

    ``first_delivery`` is False for a replay (metrics count an event once). ``latency_update`` holds
    the ``(queryTimestamp, responseTimestamp)`` that ``complete`` must still write a latency for.
    """

    request_id: str
    first_delivery: bool
    response_latency_ms: int | None
    latency_update: tuple[int, int] | None = None


def number(value: int | float) -> str:
    """A DynamoDB ``N`` string in canonical form (``50.0`` -> ``50``), never in exponent notation."""
    if isinstance(value, int):
        return str(value)
    return format(Decimal(repr(value)).normalize(), "f")


def utc_day(timestamp_ms: int) -> str:
    """``YYYY-MM-DD`` (UTC) of an epoch-milliseconds timestamp: the ``byDay`` index's partition key."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp_ms // 1000))


def build_update(event: QueryEvent | ResponseEvent, now_ms: int, retention_days: int) -> dict[str, Any]:
    """The ``UpdateItem`` arguments (without table and key) that merge ``event`` into its item."""
    values: dict[str, dict[str, str]] = {
        ":day": {"S": utc_day(event.timestamp)},
        ":expiresAt": {"N": str(event.timestamp // 1000 + retention_days * SECONDS_PER_DAY)},
        ":schemaVersion": {"N": str(event.schemaVersion)},
        ":timestamp": {"N": str(event.timestamp)},
        ":now": {"N": str(now_ms)},
    }
    if isinstance(event, QueryEvent):
        expression = _QUERY_SET
        names = ["day", "expiresAt", "schemaVersion", "query", "queryTimestamp", "queryIngestedAt"]
        values[":query"] = {"S": event.query}
        shared = "#{0} = :{0}"
    else:
        expression = _RESPONSE_SET
        names = ["day", "expiresAt", "schemaVersion", "matchType", "matchScore", "reasoning", "responseTimestamp", "responseIngestedAt"]
        values[":matchType"] = {"S": event.matchType}
        values[":matchScore"] = {"N": number(event.matchScore)}
        values[":reasoning"] = {"S": event.reasoning}
        shared = "#{0} = if_not_exists(#{0}, :{0})"
        if event.latencyMs is not None:  # the answer time belongs to the response (see the table contract)
            expression += ", #latencyMs = :latencyMs"
            names.append("latencyMs")
            values[":latencyMs"] = {"N": number(event.latencyMs)}
    for field in ("source", "sessionId"):
        value = getattr(event, field)
        if value is not None:
            expression += ", " + shared.format(field)
            names.append(field)
            values[f":{field}"] = {"S": value}
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": {f"#{name}": name for name in names},
        "ExpressionAttributeValues": values,
    }


class EventStore:
    """Merges validated events into the table through one DynamoDB client (reused across invocations)."""

    def __init__(self, client: Any, table_name: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.client = client
        self.table_name = table_name
        self.retention_days = retention_days

    def merge(self, event: QueryEvent | ResponseEvent, now_ms: int) -> MergeResult:
        """Write ``event`` into its item; raises the client's error (the caller fails the record).

        The caller then calls ``complete``: the split lets it count the event between the two
        writes, so a failure of the second still leaves the event counted exactly once.
        """
        old = self.client.update_item(
            TableName=self.table_name,
            Key={"requestId": {"S": event.requestId}},
            ReturnValues="ALL_OLD",
            **build_update(event, now_ms, self.retention_days),
        ).get("Attributes", {})
        if isinstance(event, QueryEvent):
            first, query_ts, response_ts = "queryIngestedAt" not in old, event.timestamp, _int(old, "responseTimestamp")
        else:
            first, query_ts, response_ts = "responseIngestedAt" not in old, _int(old, "queryTimestamp"), event.timestamp
        if query_ts is None or response_ts is None:
            return MergeResult(event.requestId, first, None)
        latency = response_ts - query_ts
        pending = (query_ts, response_ts) if _int(old, "responseLatencyMs") != latency else None
        return MergeResult(event.requestId, first, latency, pending)

    def complete(self, result: MergeResult) -> None:
        """Set ``responseLatencyMs`` if ``merge`` found it missing or stale, and only if the item still
        has the timestamps it was computed from."""
        if result.latency_update is None or result.response_latency_ms is None:
            return
        query_ts, response_ts = result.latency_update
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"requestId": {"S": result.request_id}},
                UpdateExpression="SET #latency = :latency",
                ConditionExpression="#queryTs = :queryTs AND #responseTs = :responseTs",
                ExpressionAttributeNames={
                    "#latency": "responseLatencyMs",
                    "#queryTs": "queryTimestamp",
                    "#responseTs": "responseTimestamp",
                },
                ExpressionAttributeValues={
                    ":latency": {"N": str(result.response_latency_ms)},
                    ":queryTs": {"N": str(query_ts)},
                    ":responseTs": {"N": str(response_ts)},
                },
            )
        except ClientError as error:
            # The item changed (or expired) since: whichever write changed it computes the latency itself.
            if error_code(error) != "ConditionalCheckFailedException":
                raise

    def merge_and_complete(self, event: QueryEvent | ResponseEvent, now_ms: int) -> MergeResult:
        """Both writes, for callers that do not count events in between."""
        result = self.merge(event, now_ms)
        self.complete(result)
        return result


def _int(item: dict, name: str) -> int | None:
    attribute = item.get(name)
    return int(Decimal(attribute["N"])) if attribute and "N" in attribute else None


def error_code(error: BaseException) -> str:
    """DynamoDB's error code, or the exception's class name for errors raised before a response."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "Unknown"))
    return type(error).__name__


def is_transient(error: BaseException) -> bool:
    """True for throttling, 5xx and connection errors: a retry of the same record may succeed."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(error) in TRANSIENT_ERROR_CODES or status >= 500
    return isinstance(error, BotoCoreError)


def environment_key() -> tuple[str | None, ...]:
    """The environment values a store depends on (cheap enough to compare on every invocation)."""
    return tuple(os.environ.get(name) for name in _ENV_KEYS)


def store_from_environment() -> EventStore:
    """A store for ``TABLE_NAME`` with a fresh boto3 session, so it sees the current credentials and
    endpoint (boto3 honours ``AWS_ENDPOINT_URL``, which the local stack sets)."""
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
    client = boto3.session.Session().client("dynamodb", config=CLIENT_CONFIG)
    return EventStore(client, table_name, retention_days)


class StoreProvider:
    """Builds the store on first use and reuses it while the environment stays the same.

    Lazily, so that tests and the local emulator can set the environment after importing the
    handler; keyed on the environment, so that a changed endpoint or table gets a new client.
    ``pin`` replaces it outright (tests, benchmarks).
    """

    def __init__(self) -> None:
        self._store: EventStore | None = None
        self._key: tuple[str | None, ...] | None = None
        self._pinned: Any = None

    def get(self) -> Any:
        if self._pinned is not None:
            return self._pinned
        key = environment_key()
        if self._store is None or key != self._key:
            self._store, self._key = store_from_environment(), key
        return self._store

    def reset(self) -> None:
        """Forget the cached store: the next ``get`` builds one from the environment."""
        self._store, self._key, self._pinned = None, None, None

    def pin(self, store: Any) -> None:
        """Use ``store`` (anything with ``merge`` and ``complete`` like ``EventStore``) until ``pin(None)``."""
        self._pinned = store
