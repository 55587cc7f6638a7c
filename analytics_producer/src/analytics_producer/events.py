"""The event contract as the producer checks it, and the FIFO ids derived from an event.

The checks are the cheap ones that keep a malformed event from ever being sent (types, required
fields, size bounds of ``schema/analytics-event.schema.json``); they run in the caller's thread, so
they are plain ``isinstance``/``len`` tests, no schema library.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from typing import Any

MAX_REQUEST_ID = 128
MAX_TEXT = 4096
MAX_SOURCE = 64
MAX_SESSION_ID = 128
MAX_TIMESTAMP = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the schema's bound
MATCH_TYPES = frozenset({"full", "partial", "none"})
EVENT_TYPES = frozenset({"query", "response"})
SCHEMA_VERSION = 1


class InvalidEventError(ValueError):
    """The event does not satisfy the contract; the message names the field."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _number(value: Any) -> bool:
    """A JSON number: int or float, not bool, finite (NaN and infinity are not valid JSON)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate(event: Any) -> None:
    """Raise :class:`InvalidEventError` naming the first field that breaks the contract.

    Extra fields are not checked here (the contract ignores them); the sender rejects an event
    whose serialized body would not fit in one SQS message or is not JSON.
    """
    if type(event) is not dict and not isinstance(event, Mapping):  # the exact-type test skips the ABC check
        raise InvalidEventError("event: expected a dict")
    request_id = event.get("requestId")
    if (
        not isinstance(request_id, str)
        or not 0 < len(request_id) <= MAX_REQUEST_ID
        or not request_id.isascii()
        or not request_id.isprintable()
        or " " in request_id
    ):
        raise InvalidEventError("requestId: 1 to 128 printable ASCII characters without spaces")
    event_type = event.get("eventType")
    if event_type not in EVENT_TYPES:
        raise InvalidEventError("eventType: must be 'query' or 'response'")
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidEventError("timestamp: epoch milliseconds as a non-negative integer")
    if event_type == "query":
        query = event.get("query")
        if not isinstance(query, str) or not 0 < len(query) <= MAX_TEXT:
            raise InvalidEventError("query: 1 to 4096 characters")
    else:
        if event.get("matchType") not in MATCH_TYPES:
            raise InvalidEventError("matchType: must be 'full', 'partial' or 'none'")
        score = event.get("matchScore")
        if not _number(score) or not 0 <= score <= 100:
            raise InvalidEventError("matchScore: a number from 0 to 100")
        reasoning = event.get("reasoning")
        if not isinstance(reasoning, str) or len(reasoning) > MAX_TEXT:
            raise InvalidEventError("reasoning: a string of at most 4096 characters")
    version = event.get("schemaVersion", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidEventError("schemaVersion: a positive integer")
    source = event.get("source")
    if source is not None and (not isinstance(source, str) or len(source) > MAX_SOURCE):
        raise InvalidEventError("source: a string of at most 64 characters")
    session_id = event.get("sessionId")
    if session_id is not None and (not isinstance(session_id, str) or len(session_id) > MAX_SESSION_ID):
        raise InvalidEventError("sessionId: a string of at most 128 characters")
    latency = event.get("latencyMs")
    if latency is not None and (not _number(latency) or latency < 0):
        raise InvalidEventError("latencyMs: a non-negative number")


def deduplication_id(event: Mapping[str, Any]) -> str:
    """``requestId:eventType``, or its SHA-256 hex digest when over 128 characters.

    Deterministic, so a retry (or a second process sending the same event) is deduplicated by SQS
    within its 5-minute window, while the query and the response of one request never collide.
    """
    raw = f"{event['requestId']}:{event['eventType']}"
    return raw if len(raw) <= 128 else hashlib.sha256(raw.encode()).hexdigest()


def query_event(request_id: str, query: str, *, timestamp: int | None = None, **optional: Any) -> dict[str, Any]:
    """A seed ``query`` event; ``optional`` takes ``source``, ``session_id``/``sessionId``, ``latency_ms``/``latencyMs``."""
    event = {
        "schemaVersion": SCHEMA_VERSION,
        "eventType": "query",
        "requestId": request_id,
        "timestamp": now_ms() if timestamp is None else timestamp,
        "query": query,
    }
    _add_optional(event, optional)
    return event


def response_event(
    request_id: str, match_type: str, match_score: float, reasoning: str, *, timestamp: int | None = None, **optional: Any
) -> dict[str, Any]:
    """A seed ``response`` event (``matchType`` full|partial|none, ``matchScore`` 0-100)."""
    event = {
        "schemaVersion": SCHEMA_VERSION,
        "eventType": "response",
        "requestId": request_id,
        "timestamp": now_ms() if timestamp is None else timestamp,
        "matchType": match_type,
        "matchScore": match_score,
        "reasoning": reasoning,
    }
    _add_optional(event, optional)
    return event


_OPTIONAL_NAMES = {
    "source": "source",
    "session_id": "sessionId",
    "sessionId": "sessionId",
    "latency_ms": "latencyMs",
    "latencyMs": "latencyMs",
}


def _add_optional(event: dict[str, Any], optional: dict[str, Any]) -> None:
    for name, value in optional.items():
        if value is None:
            continue
        key = _OPTIONAL_NAMES.get(name)
        if key is None:
            raise InvalidEventError(f"{name}: unknown optional field (source, session_id, latency_ms)")
        event[key] = value
