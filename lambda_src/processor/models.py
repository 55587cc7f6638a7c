"""The event contract: what one SQS message body may contain.

These models are the single authority for the contract: ``schema/generate.py`` turns them into
``schema/analytics-event.schema.json``, which every producer's tests validate against. Validation
is strict (no string-to-number coercion) so that the processor accepts exactly what the schema
accepts; unknown fields are ignored so producers can add fields before the processor knows them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

SCHEMA_VERSION = 1
# 9999-12-31T23:59:59.999Z: the last instant a UTC date (the table's ``day``) can be formatted for.
MAX_TIMESTAMP_MS = 253_402_300_799_999
MAX_TEXT_CHARS = 4096

RequestId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$"),
    Field(description="1 to 128 printable ASCII characters, no spaces; also the FIFO MessageGroupId"),
]
EpochMillis = Annotated[int, Field(ge=0, le=MAX_TIMESTAMP_MS, description="Epoch milliseconds when the producer saw the event")]


class _EventBase(BaseModel):
    """Fields both event types carry."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, allow_inf_nan=False, field_title_generator=lambda name, _info: name)

    schemaVersion: int = Field(default=SCHEMA_VERSION, ge=1, description="Version of this contract")
    requestId: RequestId
    timestamp: EpochMillis
    source: str | None = Field(default=None, max_length=64, description="The producer, e.g. cv-worker or demo-chatbot")
    sessionId: str | None = Field(default=None, max_length=128, description="The conversation the request belongs to")
    latencyMs: float | None = Field(default=None, ge=0, description="The answer time the producer measured")


class QueryEvent(_EventBase):
    """The user's question, sent when the chatbot receives it."""

    model_config = ConfigDict(title="QueryEvent")

    eventType: Literal["query"]
    query: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The question text (never logged)")


class ResponseEvent(_EventBase):
    """How well the chatbot's answer matched, sent once it has answered."""

    model_config = ConfigDict(title="ResponseEvent")

    eventType: Literal["response"]
    matchType: Literal["full", "partial", "none"]
    matchScore: float = Field(ge=0, le=100)
    reasoning: str = Field(min_length=0, max_length=MAX_TEXT_CHARS)


AnalyticsEvent = Annotated[QueryEvent | ResponseEvent, Field(discriminator="eventType")]
EVENT_ADAPTER: TypeAdapter[QueryEvent | ResponseEvent] = TypeAdapter(AnalyticsEvent)


def parse_event(body: str | bytes) -> QueryEvent | ResponseEvent:
    """Validate one SQS message body; raises ``pydantic.ValidationError`` (also for bodies that are not JSON)."""
    return EVENT_ADAPTER.validate_json(body)


def json_schema() -> dict:
    """The contract as a JSON Schema (Draft 2020-12), as checked in at ``schema/analytics-event.schema.json``."""
    generated = EVENT_ADAPTER.json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "AnalyticsEvent",
        "description": (
            "The body of one message on the events queue: a query or a response event. Generated from "
            "lambda_src/processor/models.py by schema/generate.py; do not edit by hand. Unknown fields are ignored."
        ),
        **generated,
    }
