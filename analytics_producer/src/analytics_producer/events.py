"""The event contract as the producer checks it, and the FIFO ids derived from an event.

:func:`validate` implements the contract (major version 1, revision 1.1: a response may name its
``model``; tightened to what AWS accepts) exactly,
so an event that passes it is one SQS, the processor and DynamoDB accept. It runs in the caller's
thread, so it is plain ``isinstance``/``len`` tests and one scan per string for SQS-safe text (a
precompiled regular expression, or ``bytes.translate`` for long ASCII text); extra fields are
walked only when the event has some.
"""

from __future__ import annotations

import hashlib
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TypeGuard

MAX_REQUEST_ID = 128
MAX_TEXT = 4096
MAX_SOURCE = 64
MAX_SESSION_ID = 128
MAX_TIMESTAMP = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the schema's bound
MAX_SCHEMA_VERSION = 999
MAX_MODEL = 128  # the answering model's name (contract 1.1)
MAX_LATENCY_MS = 86_400_000  # one day
# DynamoDB cannot store a non-zero number of magnitude below 1E-130 (e.g. 5e-324).
MIN_NONZERO = 1e-130
MAX_EXTRA_DEPTH = 4  # arrays/objects nested inside one extra field's value
MatchType = Literal["full", "partial", "none"]
MATCH_TYPES = frozenset({"full", "partial", "none"})
EVENT_TYPES = frozenset({"query", "response"})
SCHEMA_VERSION = 1  # the contract's major version: the only one the processor knows (2 to 999 are refused)
_MAX_FLOAT = sys.float_info.max

# Code points SQS refuses in a message body (it accepts #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
# #x10000-#x10FFFF). A Python str holds surrogates only unpaired (a pair is one code point), and
# those cannot even be encoded as UTF-8.
find_unsafe_char = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]").search
_CONTROL_BYTES = bytes(code for code in range(0x20) if code not in (0x09, 0x0A, 0x0D))
SQS_SAFE_RULE = "SQS-safe text (no control characters but tab, LF and CR, no lone surrogates, no U+FFFE/U+FFFF)"

_COMMON_FIELDS = ("eventType", "requestId", "timestamp", "schemaVersion", "source", "sessionId", "latencyMs")
_KNOWN_FIELDS = {
    "query": frozenset((*_COMMON_FIELDS, "query")),
    "response": frozenset((*_COMMON_FIELDS, "matchType", "matchScore", "reasoning", "model")),
}
# Fields a minor revision added (1.1: ``model``). Before it they were the caller's own: ``extra={"model": ...}``
# still works (as the field, checked by its rules) when its argument is not given, so no caller breaks on an upgrade.
_ADDED_FIELDS = {"model": "model"}
_ABSENT = object()


class InvalidEventError(ValueError):
    """The event does not satisfy the contract; the message names the field and the rule, never the value.

    ``rule`` identifies the broken rule without naming an extra field's key (the message, else), so
    that ``log()``'s warning about rejected events is rate-limited per rule.
    """

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = message if rule is None else rule


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_integer(value: Any) -> TypeGuard[int | float]:
    """JSON Schema's integer: a number with no fractional part (1, 1.0 and 1e3; not 1.5, never a bool)."""
    kind = type(value)
    if kind is int:
        return True
    if kind is float:
        return value.is_integer()  # False for NaN and infinities
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> TypeGuard[int | float]:
    """A finite JSON number: int or float, never a bool, never NaN or infinity (nor an int too big for a double)."""
    kind = type(value)
    if kind is float or kind is int:
        return -_MAX_FLOAT <= value <= _MAX_FLOAT  # False for NaN
    return isinstance(value, int | float) and not isinstance(value, bool) and -_MAX_FLOAT <= value <= _MAX_FLOAT


def not_sqs_safe(text: str) -> bool:
    """Whether ``text`` holds a code point SQS refuses.

    Long ASCII text (the common case) is checked by deleting its control bytes in C, 2.5 to 5 times
    faster than the regular expression (4096 characters: about 2.6 µs instead of 13 µs); short or
    non-ASCII text by the regular expression.
    """
    if len(text) > 64 and text.isascii():  # isascii() is O(1); ASCII holds no surrogate, U+FFFE or U+FFFF
        return len(text.encode().translate(None, _CONTROL_BYTES)) != len(text)
    return find_unsafe_char(text) is not None


def _text_error(field: str, min_len: int, max_len: int, value: Any, optional: bool) -> InvalidEventError:
    """The error for a text field, once it is known to be invalid (never called on the fast path)."""
    if isinstance(value, str) and min_len <= len(value) <= max_len:
        return InvalidEventError(f"{field}: must be {SQS_SAFE_RULE}")
    qualifier = f"{min_len} to {max_len}" if min_len else f"at most {max_len}"
    return InvalidEventError(f"{field}: {'optional; ' if optional else ''}a string of {qualifier} characters")


def validate(event: Any) -> None:
    """Raise :class:`InvalidEventError` naming the first field that breaks the contract.

    The rules (``docs/contracts.md``): ``eventType`` "query" or "response"; ``requestId`` 1 to 128
    characters from "!" to "~"; ``timestamp`` an integer 0 to 253402300799999; ``schemaVersion``
    absent or 1 (the major version; 2 to 999 are majors the processor does not know, refused). A
    query has ``query``, 1 to 4096 characters; a response has ``matchType`` full|partial|none,
    ``matchScore`` 0 to 100 and ``reasoning``, 0 to 4096 characters. Optional, absent or null:
    ``source`` (at most 64 characters), ``sessionId`` (at most 128), ``latencyMs`` (0 to
    86400000), and on a response ``model`` (1 to 128 characters; contract 1.1). Integers are JSON Schema integers (1.0 is one, a
    bool never is); numbers are finite, and a non-zero ``matchScore`` or ``latencyMs`` is at
    least 1e-130 (DynamoDB's smallest magnitude). Every string is SQS-safe text (lengths count
    code points). Extra fields are allowed: an SQS-safe key and a JSON value (null, bool, finite
    number, SQS-safe string, or arrays/objects of those nested at most 4 deep, keys SQS-safe).

    It runs in the caller's thread: type and length tests, and one scan per string; extra fields
    are walked only when the event has some.
    """
    if type(event) is not dict and not isinstance(event, Mapping):  # the exact-type test skips the ABC check
        raise InvalidEventError("event: expected a dict")
    get = event.get
    # The version first: a major the processor does not know is refused for that alone (its fields may differ).
    version = get("schemaVersion", _ABSENT)
    if version is not _ABSENT and not (type(version) is int and version == SCHEMA_VERSION):  # the usual 1 costs one test
        if (type(version) is not int and not _is_integer(version)) or not 1 <= version <= MAX_SCHEMA_VERSION:
            raise InvalidEventError("schemaVersion: absent or an integer from 1 to 999")
        if version != SCHEMA_VERSION:
            raise InvalidEventError(
                f"schemaVersion: {int(version)} is a major version the processor does not know (it knows {SCHEMA_VERSION})"
            )
    event_type = get("eventType")
    if type(event_type) is not str or event_type not in EVENT_TYPES:
        raise InvalidEventError("eventType: must be 'query' or 'response'")
    request_id = get("requestId")
    if (
        not isinstance(request_id, str)
        or not 0 < len(request_id) <= MAX_REQUEST_ID
        or not request_id.isascii()
        or not request_id.isprintable()
        or " " in request_id
    ):
        raise InvalidEventError("requestId: 1 to 128 characters, each from '!' to '~' (printable ASCII, no spaces)")
    timestamp = get("timestamp")
    if (type(timestamp) is not int and not _is_integer(timestamp)) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidEventError("timestamp: epoch milliseconds, an integer from 0 to 253402300799999")
    if event_type == "query":
        text = get("query")
        if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT or not_sqs_safe(text):
            raise _text_error("query", 1, MAX_TEXT, text, False)
        present = 4  # eventType, requestId, timestamp, query
    else:
        match_type = get("matchType")
        if type(match_type) is not str or match_type not in MATCH_TYPES:
            raise InvalidEventError("matchType: must be 'full', 'partial' or 'none'")
        score = get("matchScore")
        if not _is_number(score) or not 0 <= score <= 100 or (score < MIN_NONZERO and score != 0):
            raise InvalidEventError("matchScore: a finite number from 0 to 100, either 0 or at least 1e-130")
        text = get("reasoning")
        if not isinstance(text, str) or len(text) > MAX_TEXT or not_sqs_safe(text):
            raise _text_error("reasoning", 0, MAX_TEXT, text, False)
        present = 6  # eventType, requestId, timestamp, matchType, matchScore, reasoning
        model = get("model", _ABSENT)
        if model is not _ABSENT:
            present += 1
            if model is not None and (not isinstance(model, str) or not 0 < len(model) <= MAX_MODEL or find_unsafe_char(model)):
                raise _text_error("model", 1, MAX_MODEL, model, True)
    if version is not _ABSENT:
        present += 1
    source = get("source", _ABSENT)
    if source is not _ABSENT:
        present += 1
        if source is not None and (not isinstance(source, str) or len(source) > MAX_SOURCE or find_unsafe_char(source)):
            raise _text_error("source", 0, MAX_SOURCE, source, True)
    session_id = get("sessionId", _ABSENT)
    if session_id is not _ABSENT:
        present += 1
        if session_id is not None and (not isinstance(session_id, str) or len(session_id) > MAX_SESSION_ID or find_unsafe_char(session_id)):
            raise _text_error("sessionId", 0, MAX_SESSION_ID, session_id, True)
    latency = get("latencyMs", _ABSENT)
    if latency is not _ABSENT:
        present += 1
        if latency is not None and (
            not _is_number(latency) or not 0 <= latency <= MAX_LATENCY_MS or (latency < MIN_NONZERO and latency != 0)
        ):
            raise InvalidEventError("latencyMs: optional; a finite number from 0 to 86400000, either 0 or at least 1e-130")
    if len(event) > present:  # extra fields: the only case that walks the event
        _validate_extra_fields(event, _KNOWN_FIELDS[event_type])


def _validate_extra_fields(event: Mapping[Any, Any], known: frozenset[str]) -> None:
    for key, value in event.items():
        if type(key) is str and key in known:
            continue
        if not isinstance(key, str):
            raise InvalidEventError("extra field: its key must be a string")
        if not_sqs_safe(key):
            raise InvalidEventError(f"extra field: its key must be {SQS_SAFE_RULE}")
        problem = _json_value_problem(value, 0)
        if problem is not None:
            raise InvalidEventError(f"extra field {key[:64]!r}: {problem}", rule=f"extra field: {problem}")


def _json_value_problem(value: Any, depth: int) -> str | None:
    """Why ``value`` is not an allowed extra-field value (None when it is); ``depth`` counts enclosing arrays/objects."""
    kind = type(value)
    if kind is str or (kind is not bool and isinstance(value, str)):
        return f"strings must be {SQS_SAFE_RULE}" if not_sqs_safe(value) else None
    if value is None or kind is bool:
        return None
    if kind is int or kind is float or isinstance(value, int | float):
        return None if _is_number(value) else "numbers must be finite"
    if kind is list or kind is tuple or kind is dict or isinstance(value, dict | list | tuple):
        if depth >= MAX_EXTRA_DEPTH:
            return f"arrays and objects nest at most {MAX_EXTRA_DEPTH} levels deep"
        depth += 1
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return "object keys must be strings"
                if not_sqs_safe(key):
                    return f"object keys must be {SQS_SAFE_RULE}"
                problem = _json_value_problem(item, depth)
                if problem is not None:
                    return problem
        else:
            for item in value:
                problem = _json_value_problem(item, depth)
                if problem is not None:
                    return problem
        return None
    return "values must be JSON: null, a boolean, a number, a string, an array or an object"


def deduplication_id(event: Mapping[str, Any]) -> str:
    """``requestId:eventType``, or its SHA-256 hex digest when over 128 characters.

    Deterministic, so a retry (or a second process sending the same event) is deduplicated by SQS
    within its 5-minute window, while the query and the response of one request never collide.
    """
    raw = f"{event['requestId']}:{event['eventType']}"
    return raw if len(raw) <= 128 else hashlib.sha256(raw.encode()).hexdigest()


def query_event(
    request_id: str,
    query: str,
    *,
    source: str | None = None,
    session_id: str | None = None,
    latency_ms: float | None = None,
    timestamp: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A seed ``query`` event, timestamped now unless ``timestamp`` (epoch ms) is given.

    None leaves an optional field out; ``extra`` adds fields of the caller's own (not one the contract
    defines for a query: those have their own arguments). The event is not validated here.
    """
    event: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "eventType": "query",
        "requestId": request_id,
        "timestamp": now_ms() if timestamp is None else timestamp,
        "query": query,
    }
    if source is not None or session_id is not None or latency_ms is not None or extra is not None:
        _add_optional(event, source, session_id, latency_ms, extra)
    return event


def response_event(
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
) -> dict[str, Any]:
    """A seed ``response`` event (``matchType`` full|partial|none, ``matchScore`` 0-100); as :func:`query_event`.

    ``model`` is the answering model's name (contract 1.1; None leaves it out, as a 1.0 event)."""
    event: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "eventType": "response",
        "requestId": request_id,
        "timestamp": now_ms() if timestamp is None else timestamp,
        "matchType": match_type,
        "matchScore": match_score,
        "reasoning": reasoning,
    }
    if model is not None:
        event["model"] = model
    if source is not None or session_id is not None or latency_ms is not None or extra is not None:
        _add_optional(event, source, session_id, latency_ms, extra)
    return event


_EXTRA_RULE = "extra: a mapping of fields of your own, not one the contract defines for the event (those have their own arguments)"


def _add_optional(
    event: dict[str, Any], source: str | None, session_id: str | None, latency_ms: float | None, extra: Mapping[str, Any] | None
) -> None:
    if source is not None:
        event["source"] = source
    if session_id is not None:
        event["sessionId"] = session_id
    if latency_ms is not None:
        event["latencyMs"] = latency_ms
    if extra is not None:
        if type(extra) is not dict and not isinstance(extra, Mapping):
            raise InvalidEventError(_EXTRA_RULE)
        known = _KNOWN_FIELDS[event["eventType"]]
        for key in extra:
            if type(key) is str and key in known and not (key in _ADDED_FIELDS and key not in event):
                raise InvalidEventError(f"extra: {key!r} is a field of the contract; pass it as its own argument", rule=_EXTRA_RULE)
        event.update(extra)
