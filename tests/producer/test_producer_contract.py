"""validate() implements the event contract exactly (docs/contracts.md), rule by rule.

Each rule has events on both sides of its bound; the shared examples every validator of the
repository agrees on (schema/analytics-event.examples.json) are judged alike. validate()'s message
names the field and the rule, never the value.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import pytest

from analytics_producer import AnalyticsLogger, InvalidEventError, validate
from analytics_producer.events import not_sqs_safe
from tests.producer.conftest import REPO

EXAMPLES = REPO / "schema" / "analytics-event.examples.json"
MAX_TIMESTAMP = 253_402_300_799_999
EMOJI = "\U0001f600"  # one code point, two UTF-16 units


def query(**fields: Any) -> dict[str, Any]:
    return {"eventType": "query", "requestId": "req-1", "timestamp": 1_767_225_600_000, "query": "Python?", **fields}


def response(**fields: Any) -> dict[str, Any]:
    event = {"eventType": "response", "requestId": "req-1", "timestamp": 1_767_225_600_000, "matchType": "full"}
    return {**event, "matchScore": 100, "reasoning": "", **fields}


def without(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != field}


def nested_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = {f"k{level}": value}
    return value


# Characters at the edges of what SQS accepts in a message body:
# #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
SQS_SAFE = ["\t", "\n", "\r", " ", "~", "\x7f", "\ud7ff", "\ue000", "\ufffd", "\U00010000", "\U0010ffff", EMOJI]
NOT_SQS_SAFE = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f", "\ud800", "\udbff", "\udc00", "\udfff", "\ufffe", "\uffff"]

# Over 64 ASCII characters: validate() checks these without the regular expression.
LONG_ASCII = "Does the candidate know Python, Go and Kubernetes? " * 2
ASCII_CONTROLS = [c for c in NOT_SQS_SAFE if c.isascii()]

VALID = {
    "query": query(),
    "response": response(),
    "response, partial, score 50.5": response(matchType="partial", matchScore=50.5),
    "response, none, score 0": response(matchType="none", matchScore=0),
    "requestId of 1 character": query(requestId="!"),
    "requestId of 128 characters from ! to ~": query(requestId=("!~" * 64)),
    "requestId with every printable ASCII character": query(requestId="".join(chr(c) for c in range(0x21, 0x7F))),
    "timestamp 0": query(timestamp=0),
    "timestamp at 9999-12-31": query(timestamp=MAX_TIMESTAMP),
    "timestamp 1.0 is an integer": query(timestamp=1.0),
    "timestamp 1e12 is an integer": query(timestamp=1e12),
    "schemaVersion absent": without(query(), "schemaVersion"),
    "schemaVersion 1": query(schemaVersion=1),
    "schemaVersion 1.0": query(schemaVersion=1.0),
    "response with model (1.1)": response(model="m" * 128),
    "response with model null": response(model=None),
    "query of 4096 code points (8192 UTF-16 units)": query(query=EMOJI * 4096),
    "query of 1 character": query(query="?"),
    "reasoning of 4096 characters": response(reasoning="r" * 4096),
    "matchScore 100.0": response(matchScore=100.0),
    "matchScore 1e-130": response(matchScore=1e-130),
    "matchScore -0.0": response(matchScore=-0.0),
    "source, sessionId and latencyMs absent": query(),
    "source, sessionId and latencyMs null": query(source=None, sessionId=None, latencyMs=None),
    "source empty, sessionId empty, latencyMs 0": query(source="", sessionId="", latencyMs=0),
    "source of 64, sessionId of 128 characters": query(source="s" * 64, sessionId="i" * 128),
    "latencyMs one day": response(latencyMs=86_400_000),
    "latencyMs 1e-130": response(latencyMs=1e-130),
    "latencyMs 11.8": response(latencyMs=11.8),
    **{f"query with SQS-safe U+{ord(c):04X}": query(query=f"a{c}b") for c in SQS_SAFE},
    **{f"long ASCII query with U+{ord(c):04X}": query(query=LONG_ASCII + c + LONG_ASCII) for c in "\t\n\r \x7f"},
    "long ASCII query of 4096 characters": query(query=(LONG_ASCII * 60)[:4096]),
    **{f"reasoning with SQS-safe U+{ord(c):04X}": response(reasoning=c) for c in SQS_SAFE},
    "extra fields of every JSON type": query(n=None, b=True, i=-3, f=2.5, s="text", a=[1, "x", None], o={"k": {"v": [False]}}),
    "extra tuple (a JSON array)": query(t=(1, 2)),
    "extra array nested 4 levels": query(x=nested_list(4)),
    "extra object nested 4 levels": query(x=nested_dict(4)),
    "extra mixed nesting, 4 levels": query(x={"a": [{"b": [1]}]}),
    "extra huge-but-finite numbers": query(big=10**300, small=5e-324, max=1.7976931348623157e308),
    "extra SQS-safe key and string": query(**{"caf\u00e9\U0001f600": "\ud7ff\ue000\U0010ffff"}),
    "a query carrying response-named fields (extra for it)": query(reasoning=5, matchScore="x"),
    "a response carrying a query field (extra for it)": response(query=["anything", 1]),
}

INVALID: dict[str, tuple[Any, str]] = {  # events of any shape: the validator's input is untyped
    # (event, field named at the start of the message)
    "not a dict": (["eventType", "query"], "event"),
    "None": (None, "event"),
    "eventType missing": (without(query(), "eventType"), "eventType"),
    "eventType unknown": (query(eventType="feedback"), "eventType"),
    "eventType not hashable": (query(eventType=["query"]), "eventType"),
    "requestId missing": (without(query(), "requestId"), "requestId"),
    "requestId empty": (query(requestId=""), "requestId"),
    "requestId of 129 characters": (query(requestId="r" * 129), "requestId"),
    "requestId with a space": (query(requestId="a b"), "requestId"),
    "requestId with DEL": (query(requestId="a\x7f"), "requestId"),
    "requestId with a line feed": (query(requestId="abc\n"), "requestId"),
    "requestId not ASCII": (query(requestId="caf\u00e9"), "requestId"),
    "requestId a number": (query(requestId=7), "requestId"),
    "timestamp missing": (without(query(), "timestamp"), "timestamp"),
    "timestamp negative": (query(timestamp=-1), "timestamp"),
    "timestamp after 9999-12-31": (query(timestamp=MAX_TIMESTAMP + 1), "timestamp"),
    "timestamp a fraction": (query(timestamp=1.5), "timestamp"),
    "timestamp a boolean": (query(timestamp=True), "timestamp"),
    "timestamp a string": (query(timestamp="1767225600000"), "timestamp"),
    "timestamp NaN": (query(timestamp=math.nan), "timestamp"),
    "timestamp infinite": (query(timestamp=math.inf), "timestamp"),
    "schemaVersion 0": (query(schemaVersion=0), "schemaVersion"),
    "schemaVersion 1000": (query(schemaVersion=1000), "schemaVersion"),
    "schemaVersion 2, a major the processor does not know": (query(schemaVersion=2), "schemaVersion"),
    "schemaVersion 2.0": (query(schemaVersion=2.0), "schemaVersion"),
    "schemaVersion 999": (query(schemaVersion=999), "schemaVersion"),
    "model empty": (response(model=""), "model"),
    "model over 128 characters": (response(model="m" * 129), "model"),
    "model a number": (response(model=7), "model"),
    "schemaVersion 1.5": (query(schemaVersion=1.5), "schemaVersion"),
    "schemaVersion 1e200": (query(schemaVersion=1e200), "schemaVersion"),
    "schemaVersion a boolean": (query(schemaVersion=True), "schemaVersion"),
    "schemaVersion null": (query(schemaVersion=None), "schemaVersion"),
    "query missing": (without(query(), "query"), "query"),
    "query empty": (query(query=""), "query"),
    "query of 4097 code points": (query(query=EMOJI * 4097), "query"),
    "query not a string": (query(query=["Python?"]), "query"),
    "matchType unknown": (response(matchType="most"), "matchType"),
    "matchType not hashable": (response(matchType=["full"]), "matchType"),
    "matchType missing": (without(response(), "matchType"), "matchType"),
    "matchScore missing": (without(response(), "matchScore"), "matchScore"),
    "matchScore negative": (response(matchScore=-1), "matchScore"),
    "matchScore over 100": (response(matchScore=100.001), "matchScore"),
    "matchScore 5e-324 (DynamoDB cannot store it)": (response(matchScore=5e-324), "matchScore"),
    "matchScore 1e-131": (response(matchScore=1e-131), "matchScore"),
    "matchScore a boolean": (response(matchScore=True), "matchScore"),
    "matchScore a string": (response(matchScore="50"), "matchScore"),
    "matchScore NaN": (response(matchScore=math.nan), "matchScore"),
    "reasoning missing": (without(response(), "reasoning"), "reasoning"),
    "reasoning null": (response(reasoning=None), "reasoning"),
    "reasoning of 4097 characters": (response(reasoning="r" * 4097), "reasoning"),
    "source of 65 characters": (query(source="s" * 65), "source"),
    "source a number": (query(source=1), "source"),
    "sessionId of 129 characters": (query(sessionId="i" * 129), "sessionId"),
    "sessionId a number": (query(sessionId=1), "sessionId"),
    "latencyMs negative": (query(latencyMs=-0.5), "latencyMs"),
    "latencyMs over one day": (query(latencyMs=86_400_000.5), "latencyMs"),
    "latencyMs 1e-200": (query(latencyMs=1e-200), "latencyMs"),
    "latencyMs infinite": (query(latencyMs=math.inf), "latencyMs"),
    "latencyMs a boolean": (query(latencyMs=False), "latencyMs"),
    "latencyMs a string": (query(latencyMs="11"), "latencyMs"),
    **{f"query with U+{ord(c):04X}": (query(query=f"a{c}b"), "query") for c in NOT_SQS_SAFE},
    **{f"long ASCII query with U+{ord(c):04X}": (query(query=LONG_ASCII + c), "query") for c in ASCII_CONTROLS},
    **{f"long ASCII reasoning with U+{ord(c):04X}": (response(reasoning=c + LONG_ASCII), "reasoning") for c in ASCII_CONTROLS},
    **{f"long ASCII extra string with U+{ord(c):04X}": (query(note=LONG_ASCII + c + LONG_ASCII), "extra field") for c in ASCII_CONTROLS},
    **{f"reasoning with U+{ord(c):04X}": (response(reasoning=c), "reasoning") for c in NOT_SQS_SAFE},
    **{f"source with U+{ord(c):04X}": (query(source=c), "source") for c in NOT_SQS_SAFE},
    **{f"sessionId with U+{ord(c):04X}": (query(sessionId=c), "sessionId") for c in NOT_SQS_SAFE},
    **{f"extra string with U+{ord(c):04X}": (query(note=["ok", c]), "extra field") for c in NOT_SQS_SAFE},
    **{f"extra key with U+{ord(c):04X}": (query(**{f"k{c}": 1}), "extra field") for c in NOT_SQS_SAFE},
    **{f"key inside an extra field with U+{ord(c):04X}": (query(meta={c: 1}), "extra field") for c in NOT_SQS_SAFE},
    "extra array nested 5 levels": (query(x=nested_list(5)), "extra field"),
    "extra object nested 5 levels": (query(x=nested_dict(5)), "extra field"),
    "extra mixed nesting, 5 levels": (query(x={"a": [{"b": [[1]]}]}), "extra field"),
    "extra NaN": (query(x=math.nan), "extra field"),
    "extra infinity inside an array": (query(x=[1, -math.inf]), "extra field"),
    "extra integer beyond a double (a JSON parser reads infinity)": (query(x=10**400), "extra field"),
    "extra key not a string": ({**query(), 1: "one"}, "extra field"),
    "key inside an extra field not a string": (query(x={1: "one"}), "extra field"),
    "extra set": (query(tags={"a"}), "extra field"),
    "extra bytes": (query(raw=b"abc"), "extra field"),
    "extra datetime": (query(at=datetime.datetime(2026, 1, 1)), "extra field"),
    "extra object": (query(thing=object()), "extra field"),
    "an invalid extra on a response": (response(query="\ud800"), "extra field"),
}


@pytest.mark.parametrize("length", [1, 64, 65, 4096])
def test_both_ways_of_checking_text_agree_on_every_character_of_the_rule(length: int) -> None:
    """Short or non-ASCII text goes through the regular expression, long ASCII text through bytes.translate."""
    for code in [*range(0x80), 0xD7FF, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xE000, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x10FFFF]:
        allowed = code in (0x09, 0x0A, 0x0D) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
        for text in (chr(code) * length, "a" * (length - 1) + chr(code), chr(code) + "a" * (length - 1)):
            assert not_sqs_safe(text) is (not allowed), (hex(code), length)


@pytest.mark.parametrize("event", VALID.values(), ids=VALID.keys())
def test_valid_events_pass(event: dict[str, Any]) -> None:
    validate(event)


@pytest.mark.parametrize(("event", "field"), INVALID.values(), ids=INVALID.keys())
def test_invalid_events_raise_naming_the_field_and_the_rule_never_the_value(event: Any, field: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        validate(event)
    message = str(raised.value)
    assert message.startswith(f"{field}"), message
    assert len(message) > len(field) + 10, "the rule is stated"
    message.encode("utf-8")  # safe to log: no lone surrogate from the event
    if isinstance(event, dict):
        for value in event.values():
            if isinstance(value, str) and len(value) >= 3 and value not in ("query", "response", "req-1", "full"):
                assert value not in message, "the message never repeats the value"


def test_the_message_of_a_long_or_secret_text_never_contains_it() -> None:
    secret = "my password is hunter2 " * 200
    for event in (query(query=secret), query(query="secret \x00 question"), response(reasoning=secret), query(note=[secret + "\ud800"])):
        with pytest.raises(InvalidEventError) as raised:
            validate(event)
        assert "hunter2" not in str(raised.value) and "secret" not in str(raised.value)


def test_log_drops_and_counts_what_validate_rejects_and_strict_raises_only_invalid_event_error() -> None:
    class Client:
        def send_message_batch(self, **_: Any) -> dict:
            return {"Successful": [], "Failed": []}

    with AnalyticsLogger("http://127.0.0.1:1/123456789012/q.fifo", client=Client(), max_retries=0) as logger:
        for event, _ in INVALID.values():
            assert logger.log(event) is False
        assert logger.stats()["dropped_invalid"] == len(INVALID)
        assert logger.stats()["accepted"] == 0
    with AnalyticsLogger("http://127.0.0.1:1/123456789012/q.fifo", client=Client(), strict=True) as strict:
        for event, _ in INVALID.values():
            with pytest.raises(InvalidEventError):
                strict.log(event)


# -- the shared examples ------------------------------------------------------------------------------


def examples() -> dict[str, list[dict[str, Any]]]:
    if not EXAMPLES.exists():
        pytest.skip(f"{EXAMPLES.name} is not there yet")
    return json.loads(EXAMPLES.read_text(encoding="utf-8"))


def test_every_valid_example_passes() -> None:
    valid = examples()["valid"]
    assert valid
    for example in valid:
        try:
            validate(example["event"])
        except InvalidEventError as error:
            pytest.fail(f"valid example {example['name']!r} rejected: {error}")


def test_every_invalid_example_event_raises_naming_its_field() -> None:
    invalid = [example for example in examples()["invalid"] if "event" in example]
    assert invalid
    for example in invalid:
        with pytest.raises(InvalidEventError) as raised:
            validate(example["event"])
        # Examples named "<field>: <reason>" name a field of the contract; the message starts with it.
        field, colon, _ = example["name"].partition(":")
        if colon and " " not in field:
            assert str(raised.value).startswith(f"{field}:"), (example["name"], str(raised.value))


def test_invalid_example_bodies_that_python_parses_into_an_object_are_rejected_too() -> None:
    """A body only a consumer sees; but what Python's json reads from it (NaN, 1e400 as inf, \\u escapes) must not pass."""
    checked = 0
    for example in examples()["invalid"]:
        if "body" not in example:
            continue
        try:
            event = json.loads(example["body"])
        except (ValueError, RecursionError):
            continue
        checked += 1
        with pytest.raises(InvalidEventError):
            validate(event)
    assert checked
