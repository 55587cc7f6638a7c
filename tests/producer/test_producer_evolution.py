"""The Python producer and the contract's revisions (docs/contracts.md, "How the contract evolves").

Contract 1.1 added one optional field, the response's ``model``: ``log_response(..., model=...)`` sends it, a
call without it sends the 1.0 event it always sent (an old caller keeps working, unchanged), an application that
passed it as ``extra={"model": ...}`` before 1.1 existed keeps working too, and a major version the processor
does not know is refused here, before it is sent, as the processor would refuse it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from analytics_producer import AnalyticsLogger, InvalidEventError, response_event, validate
from tests.producer.conftest import Queue, logger_for

RESPONSE: dict[str, Any] = {
    "eventType": "response",
    "requestId": "r-1",
    "timestamp": 1_767_225_600_012,
    "matchType": "partial",
    "matchScore": 50,
    "reasoning": "matched 1 of 2 skills",
}


def disabled() -> AnalyticsLogger:
    return AnalyticsLogger("https://sqs.eu-west-2.amazonaws.com/123456789012/events.fifo", disabled=True, strict=True)


def test_log_response_sends_the_model_and_a_call_without_it_sends_the_same_1_0_event_as_before(
    queue: Queue, event_schema: Draft202012Validator
) -> None:
    with logger_for(queue, "lean") as logger:
        assert logger.log_response("r-11", "full", 100, "matched 1 of 1 skills", model="@cf/meta/llama-3.1-8b-instruct", timestamp=5)
        assert logger.log_response("r-10", "none", 0, "no skill named", timestamp=5)  # a caller written for 1.0
        assert logger.flush(timeout=30)
    bodies = {body["requestId"]: body for body in (json.loads(message["Body"]) for message in queue.drain(expected=2))}
    assert bodies["r-11"]["model"] == "@cf/meta/llama-3.1-8b-instruct"
    assert bodies["r-10"] == {
        "schemaVersion": 1,
        "eventType": "response",
        "requestId": "r-10",
        "timestamp": 5,
        "matchType": "none",
        "matchScore": 0,
        "reasoning": "no skill named",
    }, "without model= the event is exactly a 1.0 event"
    for body in bodies.values():
        assert event_schema.is_valid(body)


def test_the_model_is_checked_by_its_rules() -> None:
    logger = disabled()
    assert logger.log_response("r-1", "full", 100, "", model="m" * 128) is True
    for bad, message in (
        ("", "model: optional; a string of 1 to 128 characters"),
        ("m" * 129, "model: optional; a string of 1 to 128 characters"),
    ):
        with pytest.raises(InvalidEventError) as raised:
            logger.log_response("r-1", "full", 100, "", model=bad)
        assert str(raised.value) == message
    with pytest.raises(InvalidEventError, match=r"^model: must be SQS-safe text"):
        logger.log_response("r-1", "full", 100, "", model="gpt\x07")
    with pytest.raises(InvalidEventError, match=r"^model: optional; a string"):
        validate({**RESPONSE, "model": 3})
    validate({**RESPONSE, "model": None})  # null is "not given"


def test_a_model_passed_as_extra_before_1_1_existed_still_works_as_the_field() -> None:
    """The README of 1.0 showed ``extra={"model": "v2"}``: after the upgrade that call sends the same event."""
    event = response_event("r-1", "full", 100, "", timestamp=5, extra={"model": "v2"})
    assert event["model"] == "v2"
    assert disabled().log_response("r-1", "full", 100, "", extra={"model": "v2"}) is True
    with pytest.raises(InvalidEventError, match="pass it as its own argument"):  # both ways at once is ambiguous
        response_event("r-1", "full", 100, "", model="a", extra={"model": "b"})
    with pytest.raises(InvalidEventError, match="model: optional; a string"):  # and it obeys the field's rules now
        disabled().log_response("r-1", "full", 100, "", extra={"model": 2})


def test_a_later_minors_field_is_sent_as_an_extra_field_and_model_on_a_query_is_one_too() -> None:
    validate({**RESPONSE, "model": "x", "tokensUsed": 412})
    validate({"eventType": "query", "requestId": "r-1", "timestamp": 5, "query": "Python?", "model": 7})


@pytest.mark.parametrize("version", [2, 2.0, 999])
def test_a_major_version_the_processor_does_not_know_is_refused_before_it_is_sent(version: float) -> None:
    with pytest.raises(InvalidEventError) as raised:
        disabled().log({**RESPONSE, "schemaVersion": version})
    assert str(raised.value) == f"schemaVersion: {int(version)} is a major version the processor does not know (it knows 1)"
    validate({**RESPONSE, "schemaVersion": 1.0})
    with pytest.raises(InvalidEventError, match=r"^schemaVersion: absent or an integer from 1 to 999$"):
        validate({**RESPONSE, "schemaVersion": 1000})
