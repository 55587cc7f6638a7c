"""Every validator in the repository judges ``schema/analytics-event.examples.json`` alike.

The rules behind the examples are AWS's, which moto does not enforce:

* SQS accepts only #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF in a message
  body; anything else is refused with InvalidMessageContents
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html).
* A DynamoDB number has at most 38 significant digits and a magnitude of 0 or 1E-130 to
  9.9999999999999999999999999999999999999E+125
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html#HowItWorks.DataTypes.Number).

An event that breaks one is refused where it is made, instead of dead-lettering after three tries.
The Worker runs the same examples in ``edge/test`` (its validator and ajv over the same schema).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from chat_processor import models
from pydantic import ValidationError

from analytics_producer.events import InvalidEventError
from analytics_producer.events import validate as producer_validate
from chat_analytics_ops.validation import validate_body as ops_validate_body

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = json.loads((REPO / "schema" / "analytics-event.examples.json").read_text(encoding="utf-8"))
SCHEMA = json.loads((REPO / "schema" / "analytics-event.schema.json").read_text(encoding="utf-8"))
VALID = EXAMPLES["valid"]
INVALID = EXAMPLES["invalid"]
INVALID_EVENTS = [example for example in INVALID if "event" in example]
SQS_ALLOWED = ((0x9, 0x9), (0xA, 0xA), (0xD, 0xD), (0x20, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF))


MODELS = models
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def body_of(example: dict[str, Any]) -> str:
    """The SQS body: a ``body`` example as it is, an ``event`` serialized with escapes (as a producer would)."""
    return example["body"] if "body" in example else json.dumps(example["event"])


def verdicts(example: dict[str, Any]) -> dict[str, bool]:
    """Each validator's verdict (True = valid) on one example."""
    body = body_of(example)
    results: dict[str, bool] = {}
    try:
        MODELS.parse_event(body)
        results["processor models"] = True
    except ValidationError:
        results["processor models"] = False
    try:
        results["JSON Schema"] = SCHEMA_VALIDATOR.is_valid(json.loads(body))
    except (ValueError, RecursionError):
        results["JSON Schema"] = False
    results["ops validate_body"] = ops_validate_body(body) is None
    if "event" in example:  # a producer builds objects; only a consumer can receive a raw body
        try:
            producer_validate(example["event"])
            results["producer validate"] = True
        except InvalidEventError:
            results["producer validate"] = False
    return results


def test_the_examples_cover_every_rule() -> None:
    fields = {example["field"] for example in INVALID}
    assert fields >= {"requestId", "timestamp", "schemaVersion", "query", "matchType", "matchScore", "reasoning"}
    assert fields >= {"source", "sessionId", "latencyMs", "eventType", "extra", "(body)"}
    assert all(example["reason"] for example in INVALID)
    assert len({example["name"] for example in VALID + INVALID}) == len(VALID) + len(INVALID)


@pytest.mark.parametrize("example", VALID, ids=[example["name"] for example in VALID])
def test_every_validator_accepts_the_valid_examples(example: dict[str, Any]) -> None:
    results = verdicts(example)
    assert all(results.values()), f"rejected by {[name for name, ok in results.items() if not ok]}"


@pytest.mark.parametrize("example", INVALID, ids=[example["name"] for example in INVALID])
def test_every_validator_rejects_the_invalid_examples(example: dict[str, Any]) -> None:
    results = verdicts(example)
    assert not any(results.values()), f"accepted by {[name for name, ok in results.items() if ok]} ({example['reason']})"


def _sqs_accepts(text: str) -> bool:
    return all(any(low <= ord(char) <= high for low, high in SQS_ALLOWED) for char in text)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [key, *_strings(item)]]
    return []


@pytest.mark.parametrize("example", VALID, ids=[example["name"] for example in VALID])
def test_valid_events_hold_only_text_sqs_accepts_and_encode_as_utf8(example: dict[str, Any]) -> None:
    """The rule stated independently of the validators: SQS's character ranges, and UTF-8 encodable."""
    body = json.dumps(example["event"], ensure_ascii=False)
    body.encode("utf-8")  # a lone surrogate would raise here
    assert all(_sqs_accepts(text) for text in _strings(example["event"]))


@pytest.mark.parametrize("example", VALID, ids=[example["name"] for example in VALID])
def test_valid_events_store_only_numbers_dynamodb_accepts(example: dict[str, Any]) -> None:
    """Every number the processor stores has <= 38 significant digits and a magnitude of 0 or 1E-130..1E+126."""
    event = MODELS.parse_event(body_of(example))
    for name in ("timestamp", "schemaVersion", "latencyMs", "matchScore"):
        value = getattr(event, name, None)
        if value is None:
            continue
        number = Decimal(repr(value)).normalize()
        assert number == 0 or Decimal("1E-130") <= abs(number) < Decimal("1E+126"), name
        assert len(number.as_tuple().digits) <= 38, name


def test_a_character_sqs_refuses_is_refused_in_every_string_field() -> None:
    """Sweep each refused range's edges through every text field of both event types."""
    refused = ["\x00", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\ud800", "\udbff", "\udc00", "\udfff", "\ufffe", "\uffff"]
    base = {"query": VALID[0]["event"], "response": VALID[1]["event"]}
    for char in refused:
        for event_type, field in (("query", "query"), ("response", "reasoning"), ("query", "source"), ("query", "sessionId")):
            example = {"event": {**base[event_type], field: f"a{char}b"}}
            assert not any(verdicts(example).values()), (event_type, field, hex(ord(char)))
