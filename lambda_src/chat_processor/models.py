"""The event contract: what one SQS message body may contain.

These models are the single authority for the contract: ``schema/generate.py`` turns them into
``schema/analytics-event.schema.json``, which every producer's tests validate against, and
``schema/analytics-event.examples.json`` lists valid and invalid events that every validator in the
repository (these models, the schema, the Python producer, the operations CLI, the Worker) must
judge alike.

The bounds are AWS's, so that an event is refused by its producer instead of dead-lettering after
three tries:

* text holds only characters SQS accepts in a message body (#x9 | #xA | #xD | #x20-#xD7FF |
  #xE000-#xFFFD | #x10000-#x10FFFF: no lone surrogates, no other control characters, no U+FFFE or
  U+FFFF; https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html),
  checked on the parsed value, so a ``\\u0000`` escape is refused like a raw NUL;
* every number the processor stores fits a DynamoDB number (a magnitude of 0 or 1E-130 to
  9.99E+125, 38 digits;
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html#HowItWorks.DataTypes.Number):
  every field has an upper bound, and the two floating-point fields refuse non-zero values below 1E-130;
* unknown extra fields are accepted for forward compatibility and ignored, but they obey the same
  text rule and nest at most ``MAX_EXTRA_DEPTH`` levels, so no body can exhaust a parser.

How the contract evolves (docs/contracts.md, "How the contract evolves"): ``schemaVersion`` is the MAJOR
version. A minor revision only adds optional fields (1.1 added ``model`` to the response), so an event of
any 1.x revision is a valid 1.x event here: the fields this processor knows are stored, unknown ones
ignored. A major this processor does not know (an integer 2 to ``MAX_SCHEMA_VERSION``) is refused
(``invalid.reason_code``: ``unknown_major_version``), whatever else the body holds.

"Integer" has JSON Schema's meaning: a number without a fractional part (``1.0`` is an integer).
Validation is otherwise strict (no string-to-number coercion), so the processor accepts exactly what
the schema accepts.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1  # the major version producers send, and the only one this processor knows
KNOWN_MAJOR_VERSIONS = frozenset({SCHEMA_VERSION})
MAX_SCHEMA_VERSION = 999  # the field's bound: 2 to 999 are majors this processor does not know, 0 or 1000 malformed
MAX_MODEL_CHARS = 128  # the answering model's name (1.1)
# 9999-12-31T23:59:59.999Z: the last instant a UTC date (the table's ``day``) can be formatted for.
MAX_TIMESTAMP_MS = 253_402_300_799_999
MAX_LATENCY_MS = 86_400_000  # one day: no answer takes longer
MAX_TEXT_CHARS = 4096
MAX_EXTRA_DEPTH = 4
# DynamoDB stores no non-zero magnitude below this.
DYNAMODB_MIN_MAGNITUDE = 1e-130
MAX_DOUBLE = 1.7976931348623157e308  # the largest finite JSON number every parser agrees on

# One character SQS refuses in a message body. The same text is the JSON Schema's ``not: {pattern}``;
# it means the same in Python's ``re`` and in JavaScript's ``u``-flag RegExp (where a surrogate pair is
# one code point, so only lone surrogates fall in \uD800-\uDFFF).
SQS_REFUSED_CHARACTER = r"[\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]"
# One character a request id may not hold (it must be printable ASCII without space).
REQUEST_ID_REFUSED_CHARACTER = r"[^!-~]"
_SQS_REFUSED = re.compile(SQS_REFUSED_CHARACTER)
_REQUEST_ID_REFUSED = re.compile(REQUEST_ID_REFUSED_CHARACTER)

SQS_TEXT_SCHEMA = {"not": {"pattern": SQS_REFUSED_CHARACTER}}
STORABLE_NUMBER_SCHEMA = {"not": {"exclusiveMinimum": 0, "exclusiveMaximum": DYNAMODB_MIN_MAGNITUDE}}


def _sqs_text(value: str) -> str:
    if _SQS_REFUSED.search(value):
        raise PydanticCustomError("sqs_character", "contains a character SQS refuses in a message")
    return value


def _request_id_text(value: str) -> str:
    if _REQUEST_ID_REFUSED.search(value):
        raise PydanticCustomError("request_id_character", "must be printable ASCII characters without spaces")
    return value


def _storable_number(value: float) -> float:
    if 0 < abs(value) < DYNAMODB_MIN_MAGNITUDE:
        raise PydanticCustomError("dynamodb_number", "a non-zero number below 1E-130 cannot be stored in DynamoDB")
    return value


def _integral_float_as_int(value: Any) -> Any:
    """JSON has one number type: ``1.0`` and ``1e3`` are integers, as JSON Schema's ``integer`` says."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


SqsText = Annotated[str, AfterValidator(_sqs_text), Field(json_schema_extra=SQS_TEXT_SCHEMA)]
RequestId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="1 to 128 printable ASCII characters, no spaces; also the FIFO MessageGroupId",
        json_schema_extra={"not": {"pattern": REQUEST_ID_REFUSED_CHARACTER}},
    ),
    AfterValidator(_request_id_text),
]
EpochMillis = Annotated[
    int,
    Field(ge=0, le=MAX_TIMESTAMP_MS, description="Epoch milliseconds when the producer saw the event"),
    BeforeValidator(_integral_float_as_int),
]


def _known_major(value: int) -> int:
    if value not in KNOWN_MAJOR_VERSIONS:
        raise PydanticCustomError(
            "unknown_major_version",
            "major version {version} is not one this processor knows ({known})",
            {"version": value, "known": ", ".join(map(str, sorted(KNOWN_MAJOR_VERSIONS)))},
        )
    return value


SchemaVersion = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_SCHEMA_VERSION,
        description=(
            "The contract's major version: 1. A minor revision (1.1: model) only adds optional fields and keeps it; "
            "a major this processor does not know (2 to 999) is refused"
        ),
        # The schema states what is accepted: the known major (``le`` bounds the field, ``_known_major`` refuses the rest).
        json_schema_extra={"maximum": max(KNOWN_MAJOR_VERSIONS)},
    ),
    BeforeValidator(_integral_float_as_int),
    AfterValidator(_known_major),
]
LatencyMs = Annotated[
    float,
    Field(ge=0, le=MAX_LATENCY_MS, description="The answer time the producer measured", json_schema_extra=STORABLE_NUMBER_SCHEMA),
    AfterValidator(_storable_number),
]
MatchScore = Annotated[float, Field(ge=0, le=100, json_schema_extra=STORABLE_NUMBER_SCHEMA), AfterValidator(_storable_number)]


def extra_value_definitions() -> dict[str, Any]:
    """JSON Schema ``$defs`` for an extra field's value: ``ExtraValue<n>`` nests at most ``n`` levels."""
    scalar = [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number", "minimum": -MAX_DOUBLE, "maximum": MAX_DOUBLE},
        {"type": "string", **SQS_TEXT_SCHEMA},
    ]
    definitions: dict[str, Any] = {"ExtraValue0": {"anyOf": scalar}}
    for depth in range(1, MAX_EXTRA_DEPTH + 1):
        inner = {"$ref": f"#/$defs/ExtraValue{depth - 1}"}
        definitions[f"ExtraValue{depth}"] = {
            "anyOf": [
                *scalar,
                {"type": "array", "items": inner},
                {"type": "object", "propertyNames": SQS_TEXT_SCHEMA, "additionalProperties": inner},
            ]
        }
    return definitions


EXTRA_FIELDS_SCHEMA = {
    "propertyNames": SQS_TEXT_SCHEMA,
    "additionalProperties": {
        "$ref": f"#/$defs/ExtraValue{MAX_EXTRA_DEPTH}",
        "description": "Unknown fields are accepted and ignored (forward compatibility), within these bounds",
    },
}


def _extra_value_error(value: Any, depth: int) -> str | None:
    """Why an extra field's value breaks the contract (``depth`` levels of arrays/objects remain), or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_DOUBLE else "a number outside the finite range"
    if isinstance(value, float):
        return None if math.isfinite(value) else "a number outside the finite range"
    if isinstance(value, str):
        return "contains a character SQS refuses in a message" if _SQS_REFUSED.search(value) else None
    if isinstance(value, list | dict):
        if depth == 0:
            return f"nests arrays or objects more than {MAX_EXTRA_DEPTH} levels deep"
        if isinstance(value, dict):
            for key in value:
                if _SQS_REFUSED.search(key):
                    return "has a key with a character SQS refuses in a message"
            items = list(value.values())
        else:
            items = value
        for item in items:
            reason = _extra_value_error(item, depth - 1)
            if reason:
                return reason
        return None
    return f"is not a JSON value ({type(value).__name__})"


_FIELD_NAMES: dict[type, frozenset[str]] = {}  # each event model's field names


class _EventBase(BaseModel):
    """Fields both event types carry, and the bounds on fields neither knows."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        field_title_generator=lambda name, _info: name,
    )

    schemaVersion: SchemaVersion = SCHEMA_VERSION
    requestId: RequestId
    timestamp: EpochMillis
    source: Annotated[SqsText, Field(max_length=64)] | None = Field(
        default=None, description="The producer, e.g. cv-worker or demo-chatbot"
    )
    sessionId: Annotated[SqsText, Field(max_length=128)] | None = Field(default=None, description="The conversation the request belongs to")
    latencyMs: LatencyMs | None = None

    @model_validator(mode="before")
    @classmethod
    def _check_extra_fields(cls, data: Any) -> Any:
        """Unknown fields are dropped after this check; it is what keeps them within the contract."""
        if isinstance(data, dict):
            known = _FIELD_NAMES.get(cls)
            if known is None:  # read once per class: ``model_fields`` is a property that builds a dict
                known = _FIELD_NAMES[cls] = frozenset(cls.model_fields)
            for key, value in data.items():
                if key in known:
                    continue
                if not isinstance(key, str) or _SQS_REFUSED.search(key):
                    raise PydanticCustomError("extra_field", "an extra field's name contains a character SQS refuses in a message")
                reason = _extra_value_error(value, MAX_EXTRA_DEPTH)
                if reason:
                    raise PydanticCustomError("extra_field", "extra field {field}: {reason}", {"field": key[:64], "reason": reason})
        return data


class QueryEvent(_EventBase):
    """The user's question, sent when the chatbot receives it."""

    model_config = ConfigDict(title="QueryEvent")

    eventType: Literal["query"]
    query: Annotated[SqsText, Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The question text (never logged)")]


class ResponseEvent(_EventBase):
    """How well the chatbot's answer matched, sent once it has answered."""

    model_config = ConfigDict(title="ResponseEvent")

    eventType: Literal["response"]
    matchType: Literal["full", "partial", "none"]
    matchScore: MatchScore
    reasoning: Annotated[SqsText, Field(min_length=0, max_length=MAX_TEXT_CHARS)]
    model: Annotated[SqsText, Field(min_length=1, max_length=MAX_MODEL_CHARS)] | None = Field(
        default=None, description="The answering model's name (added in 1.1; absent in 1.0 events)"
    )


AnalyticsEvent = Annotated[QueryEvent | ResponseEvent, Field(discriminator="eventType")]
EVENT_ADAPTER: TypeAdapter[QueryEvent | ResponseEvent] = TypeAdapter(AnalyticsEvent)


def parse_event(body: str | bytes) -> QueryEvent | ResponseEvent:
    """Validate one SQS message body; raises ``pydantic.ValidationError`` (also for bodies that are not
    JSON, or nested deeper than the parser's recursion limit)."""
    return EVENT_ADAPTER.validate_json(body)


def json_schema() -> dict:
    """The contract as a JSON Schema (Draft 2020-12), as checked in at ``schema/analytics-event.schema.json``."""
    generated = EVENT_ADAPTER.json_schema(mode="validation")
    definitions = generated["$defs"]
    for model in (QueryEvent, ResponseEvent):  # added here: pydantic resolves every $ref it generates itself
        definitions[model.__name__].update(EXTRA_FIELDS_SCHEMA)
    definitions.update(extra_value_definitions())
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "AnalyticsEvent",
        "description": (
            "The body of one message on the events queue: a query or a response event. Generated from "
            "lambda_src/chat_processor/models.py by schema/generate.py; do not edit by hand. Text holds only characters "
            "SQS accepts, numbers fit DynamoDB, and unknown fields are ignored but bounded (ExtraValue*)."
        ),
        **generated,
    }
