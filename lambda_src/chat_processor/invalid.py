"""What the error log and the lake's rejected row say about a record that is not a valid event, without the question text.

The log must let an operator see why a message is headed for the DLQ, but the question a user
typed never goes to logs: the excerpt leaves out ``query`` values (see ``excerpt``), and pydantic's
errors are reported without their input values.

The rejected row (``describe_rejection``; ``lake.rejected_row`` completes it) keeps the history of
rejections in the lake's table ``rejected``: a stable reason code per rule of the contract (``REASONS``),
the field as a JSON path, what could be read of the event, and an excerpt in which ``query`` and
``reasoning`` are replaced by their lengths (docs/contracts.md, "The rejected row").
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from .models import KNOWN_MAJOR_VERSIONS, MAX_SCHEMA_VERSION

EXCERPT_CHARS = 200
MAX_ERRORS = 5
# A "query" member in text that is not parseable JSON (e.g. a truncated body): its value is masked.
_QUERY_MEMBER = re.compile(r'("query"\s*:\s*)"(?:[^"\\]|\\.)*(?:"|$)', re.DOTALL)


def _without_query(value: Any) -> Any:
    """``value`` with every ``query`` member removed, at any depth."""
    if isinstance(value, dict):
        return {key: _without_query(item) for key, item in value.items() if key != "query"}
    if isinstance(value, list):
        return [_without_query(item) for item in value]
    return value


def excerpt(body: str) -> str:
    """At most ``EXCERPT_CHARS`` characters of the body, without the question text.

    Parseable JSON loses its ``query`` members; broken JSON gets its ``query`` value masked; a body
    that is not JSON at all, or a bare JSON string, may be the question itself and is not shown
    (the DLQ keeps the message for whoever needs to read it).
    """
    try:
        parsed = json.loads(body)
    except RecursionError:  # deeper than the parser goes: the shape is all an operator needs
        return f"<JSON nested past the parser's recursion limit, {len(body)} characters>"
    except ValueError:
        if not body.lstrip().startswith(("{", "[")):
            return f"<not JSON, {len(body)} characters>"
        text = _QUERY_MEMBER.sub(r'\1"<omitted>"', body)
    else:
        if isinstance(parsed, str):
            return f"<a JSON string, {len(parsed)} characters>"
        try:
            text = json.dumps(_without_query(parsed), ensure_ascii=False, separators=(",", ":"))
        except RecursionError:  # parseable, yet too deep to walk from here
            return f"<JSON nested past the recursion limit, {len(body)} characters>"
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def validation_errors(error: ValidationError) -> list[dict[str, str]]:
    """The first few errors as ``{"loc", "type", "msg"}``: pydantic's ``input`` values are left out."""
    return [
        {"loc": ".".join(str(part) for part in item["loc"]), "type": item["type"], "msg": item["msg"]}
        for item in error.errors(include_url=False, include_input=False, include_context=False)[:MAX_ERRORS]
    ]


def describe_invalid(body: str, error: ValidationError) -> dict[str, Any]:
    """The structured fields of the one error log an invalid record gets."""
    reason, field = reason_code(error, _loads(body))
    described: dict[str, Any] = {
        "reason": reason,  # the rejected row's code and field (an unknown major's, whatever pydantic found first)
        "field": field,
        "validationErrors": validation_errors(error),
        "errorCount": error.error_count(),
        "bodyLength": len(body),
        "excerpt": excerpt(body),
    }
    return described


# --- The rejected row's reason code and field (the lake's table ``rejected``; docs/contracts.md) ---------------

# Stable reason codes, one per rule of the contract; ``reason_code`` maps pydantic's error types to them.
REASONS = (
    "invalid_json",  # not JSON, truncated, a lone surrogate escape, nested past the parser's limit
    "not_an_object",  # JSON, but not an object (an array, a string, a number)
    "missing_field",  # a required field is absent (eventType included)
    "unknown_event_type",  # eventType is neither "query" nor "response"
    "unsupported_schema_version",  # schemaVersion is not an integer 1 to 999
    "unknown_major_version",  # schemaVersion is a major this processor does not know (2 to 999): checked before any other rule
    "invalid_type",  # a field of the wrong JSON type (a string for a number, a fraction for an integer...)
    "out_of_range",  # a number outside its bounds, not finite, or a magnitude DynamoDB cannot store
    "too_short",  # text under its minimum length (an empty requestId or query)
    "too_long",  # text over its maximum length
    "invalid_character",  # a character SQS refuses, or a requestId that is not printable ASCII without spaces
    "invalid_value",  # a value outside its set (matchType), or any other rule
    "invalid_extra_field",  # an unknown field (accepted and ignored) that breaks the bounds on unknown fields
)
_TYPE_REASONS = {
    "json_invalid": "invalid_json",
    "json_type": "invalid_json",
    "missing": "missing_field",
    "union_tag_not_found": "missing_field",
    "union_tag_invalid": "unknown_event_type",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "dynamodb_number": "out_of_range",
    "too_short": "too_short",
    "string_too_short": "too_short",
    "too_long": "too_long",
    "string_too_long": "too_long",
    "sqs_character": "invalid_character",
    "request_id_character": "invalid_character",
    "extra_field": "invalid_extra_field",
    "unknown_major_version": "unknown_major_version",
    "literal_error": "invalid_value",
    "int_from_float": "invalid_type",
}
_NOT_AN_OBJECT = frozenset({"dict_type", "model_type", "model_attributes_type"})
_EVENT_TAGS = frozenset({"query", "response"})  # the first part of a field's location: the union's member
MAX_TEXT_COLUMN = 128  # request ids and event types in the rejected row: at most this many characters
REJECTED_EXCERPT_CHARS = 256
PRIVATE_FIELDS = ("query", "reasoning")  # never in a rejected row: their lengths stand in for them
MAX_EPOCH_MS = 253402300799999  # the contract's timestamp bound (9999-12-31)
_UNPARSED = object()  # what ``_loads`` returns for a body Python's parser refuses
_TOO_DEEP = object()  # ... and for one nested past its recursion limit


def _field_path(location: tuple[Any, ...]) -> str:
    """A JSON path (``$.matchScore``, ``$``) of an error's location, the union's member left out."""
    parts = list(location)
    if parts and parts[0] in _EVENT_TAGS:
        parts = parts[1:]
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_path(value: Any, path: str = "$") -> str | None:
    """The JSON path of the first string holding a lone surrogate (the path of its object for a key), or None."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                return path
            found = _surrogate_path(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _surrogate_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def unknown_major(parsed: Any) -> int | None:
    """The body's ``schemaVersion`` when it is a major version this processor does not know (an integer 2 to
    999, ``2.0`` included), else None. Such a body is refused for that alone: a new major may change any
    field, so whatever else it breaks in this major's rules says nothing (docs/contracts.md)."""
    if not isinstance(parsed, dict):
        return None
    version = parsed.get("schemaVersion")
    if isinstance(version, float) and version.is_integer():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    return version if 1 <= version <= MAX_SCHEMA_VERSION and version not in KNOWN_MAJOR_VERSIONS else None


def reason_code(error: ValidationError, parsed: Any = None) -> tuple[str, str]:
    """The reason code and field (JSON path) of the first error, stable across pydantic's wording. ``parsed``
    is the body as Python's parser reads it: pydantic's refuses a lone surrogate escape as invalid JSON,
    Python's takes it, so such a body is found to hold a character SQS refuses, and where. A major version
    this processor does not know is the reason whatever error pydantic found first (``unknown_major``)."""
    if unknown_major(parsed) is not None:
        return "unknown_major_version", "$.schemaVersion"
    first = error.errors(include_url=False, include_input=False)[0]
    kind, location = first["type"], tuple(first["loc"])
    if kind == "json_invalid" and isinstance(parsed, dict | list):
        try:
            found = _surrogate_path(parsed)
        except RecursionError:
            found = None
        if found is not None:
            return "invalid_character", found
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        return _TYPE_REASONS[kind], "$.eventType"
    if kind == "extra_field":
        name = (first.get("ctx") or {}).get("field")
        return "invalid_extra_field", "$" if name is None else _field_path((str(name),))
    field = _field_path(location)
    if field == "$.schemaVersion":
        return "unsupported_schema_version", field
    if kind in _NOT_AN_OBJECT and field == "$":
        return "not_an_object", field
    if kind in _TYPE_REASONS:
        return _TYPE_REASONS[kind], field
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "invalid_type", field
    return "invalid_value", field


def _text(value: str, limit: int) -> str:
    """Text a row can hold: lone surrogates (valid in a parsed JSON escape, not in UTF-8) replaced, cut to ``limit``."""
    return value.encode("utf-8", "replace").decode("utf-8")[:limit]


def _private_replaced(value: Any) -> Any:
    """``value`` with every ``query`` and ``reasoning`` member, at any depth, replaced by its length."""
    if isinstance(value, dict):
        return {key: _placeholder(key, item) if key in PRIVATE_FIELDS else _private_replaced(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_private_replaced(item) for item in value]
    return value


def _placeholder(key: str, value: Any) -> str:
    if isinstance(value, str):
        return f"<{key}, {len(value)} characters>"
    return f"<{key}, {'null' if value is None else type(value).__name__}>"


def lake_excerpt(parsed: Any, body: str) -> str:
    """At most ``REJECTED_EXCERPT_CHARS`` characters that show the event's shape, never its question or reasoning.

    Parsed JSON (Python's parser, which takes what pydantic's refuses: lone surrogate escapes, NaN) is
    shown with ``query`` and ``reasoning`` replaced by their lengths. A body that does not parse is shown
    only as its length: in broken JSON the question cannot be located reliably (a key can be escaped),
    and a body that is not JSON may be the question itself; so may a bare JSON string.
    """
    if parsed is _UNPARSED:
        return f"<not parseable JSON, {len(body)} characters>"
    if parsed is _TOO_DEEP:
        return f"<JSON nested past the parser's recursion limit, {len(body)} characters>"
    if isinstance(parsed, str):
        return f"<a JSON string, {len(parsed)} characters>"
    try:
        text = json.dumps(_private_replaced(parsed), ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        return f"<JSON nested past the recursion limit, {len(body)} characters>"
    text = _text(text, len(text))
    return text if len(text) <= REJECTED_EXCERPT_CHARS else text[: REJECTED_EXCERPT_CHARS - 1] + "…"


def _loads(body: str) -> Any:
    try:
        return json.loads(body)
    except RecursionError:
        return _TOO_DEEP
    except ValueError:
        return _UNPARSED


def _integer(value: Any, low: int, high: int) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high else None


def describe_rejection(body: str, error: ValidationError) -> dict[str, Any]:
    """What the rejected row says about the event (``lake.rejected_row`` adds the SQS and time columns):
    reason, field, error count, body length, and what could be read of the event (its type, request id,
    schema version, timestamp), each None when it could not."""
    parsed = _loads(body)
    reason, field = reason_code(error, parsed)
    event = parsed if isinstance(parsed, dict) else {}
    event_type = event.get("eventType")
    request_id = event.get("requestId")
    return {
        "reason": reason,
        "field_path": field,
        "error_count": error.error_count(),
        "body_length": len(body),
        "event_type": _text(event_type, MAX_TEXT_COLUMN) if isinstance(event_type, str) else None,
        "request_id": _text(request_id, MAX_TEXT_COLUMN) if isinstance(request_id, str) and request_id else None,
        "schema_version": _integer(event.get("schemaVersion"), -(2**31), 2**31 - 1),
        "event_timestamp": _integer(event.get("timestamp"), 0, MAX_EPOCH_MS),
        "excerpt": lake_excerpt(parsed, body),
    }
