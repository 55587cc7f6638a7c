"""The processor and the contract's revisions (docs/contracts.md, "How the contract evolves").

1.0 events (no ``model``) are stored as before; a 1.1 response's ``model`` reaches the table item and the lake's last
column, whichever order the events come in; a field of a minor this processor does not know is ignored; a major it
does not know is refused for that alone (``unknown_major_version``): logged, counted, a rejected row, the record
failed (so SQS dead-letters it), never stored, never a crash, and the other records of the batch unaffected.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from testkit.events import metric_values, query_body, response_body, sqs_record
from tests.processor.conftest import FakeClock, Processor, Table, run
from tests.processor.test_processor_lake import Lake, lake  # noqa: F401 (the fixture)
from tests.processor.test_processor_rejected import RejectedLake, rejected  # noqa: F401 (the fixture)

MODEL = "@cf/meta/llama-3.1-8b-instruct"


def test_a_1_1_response_stores_its_model_in_the_item_and_the_lakes_last_column(
    processor: Processor,
    table: Table,
    lake: Lake,  # noqa: F811
    clock: FakeClock,
) -> None:
    assert run(processor, sqs_record(query_body("r-1")), sqs_record(response_body("r-1", model=MODEL))) == []
    assert (table.item("r-1") or {}).get("model") == {"S": MODEL}
    (row,) = lake.rows()
    assert list(row)[-1] == "model" and row["model"] == MODEL
    assert [name for name, _ in processor.lake.LAKE_COLUMNS][-1] == "model", "an added column is appended"


@pytest.mark.parametrize("order", ["query first", "response first"])
def test_the_model_is_the_responses_whichever_order_the_events_arrive_in(
    processor: Processor,
    table: Table,
    lake: Lake,  # noqa: F811
    order: str,
) -> None:
    events = [query_body("r-1"), response_body("r-1", model=MODEL)]
    for event in events if order == "query first" else reversed(events):
        assert run(processor, sqs_record(event)) == []
    assert (table.item("r-1") or {}).get("model") == {"S": MODEL}
    final = [row for row in lake.rows() if row["complete"]]
    assert final and all(row["model"] == MODEL for row in final)


def test_a_1_0_event_is_stored_as_before_with_no_model(
    processor: Processor,
    table: Table,
    lake: Lake,  # noqa: F811
) -> None:
    old_query = {key: value for key, value in query_body("r-1").items() if key != "schemaVersion"}  # 1.0 producers may omit it
    assert run(processor, sqs_record(old_query), sqs_record(response_body("r-1", model=None)), sqs_record(response_body("r-2"))) == []
    for request_id in ("r-1", "r-2"):
        item = table.item(request_id)
        assert item is not None and "model" not in item and item["schemaVersion"] == {"N": "1"}
    assert all(row["model"] is None for row in lake.rows())


def test_a_field_of_a_minor_this_processor_does_not_know_is_ignored_and_the_rest_stored(processor: Processor, table: Table) -> None:
    assert run(processor, sqs_record(response_body("r-1", model="m", tokensUsed=412, cacheHit=False))) == []
    item = table.item("r-1")
    assert item is not None and item["model"] == {"S": "m"} and "tokensUsed" not in item and "cacheHit" not in item


def bodies_of_an_unknown_major() -> list[dict[str, Any]]:
    return [
        query_body("v2-a", schemaVersion=2),  # a 1.x shape under a new major: still refused
        {"schemaVersion": 2.0, "eventType": "feedback", "requestId": "v2-b", "rating": 5},  # a new major's own shape
        response_body("v2-c", schemaVersion=999, matchScore="high"),  # its other errors are not the reason
    ]


def test_an_unknown_major_is_refused_with_its_reason_and_never_stored(
    processor: Processor,
    table: Table,
    rejected: RejectedLake,  # noqa: F811
    clock: FakeClock,
    capsys: pytest.CaptureFixture,
) -> None:
    unknown = [sqs_record(body) for body in bodies_of_an_unknown_major()]
    valid = sqs_record(query_body("v1-ok"))
    capsys.readouterr()
    assert run(processor, *unknown, valid) == [record["messageId"] for record in unknown], "refused records fail: SQS dead-letters them"
    assert table.item("v1-ok") is not None and table.count() == 1, "nothing of the unknown major is stored; the valid record is"
    rows = {row["message_id"]: row for row in rejected.rows()}
    for record, version in zip(unknown, (2, 2, 999), strict=True):
        row = rows[record["messageId"]]
        assert (row["reason"], row["field_path"]) == ("unknown_major_version", "$.schemaVersion")
        assert row["schema_version"] in (version, None)  # 2.0 is read as no integer
    assert "unknown_major_version" in processor.invalid.REASONS
    output = capsys.readouterr().out
    assert sum(metric_values(output)["InvalidEvents"]) == 3
    errors = [json.loads(line) for line in output.splitlines() if '"Invalid event"' in line]
    assert len(errors) == 3 and all((error["reason"], error["field"]) == ("unknown_major_version", "$.schemaVersion") for error in errors)


def test_the_models_refuse_an_unknown_major_and_bound_the_model(processor: Processor) -> None:
    models = processor.models
    for body in bodies_of_an_unknown_major():
        with pytest.raises(ValidationError):
            models.parse_event(json.dumps(body))
    assert models.parse_event(json.dumps(query_body("r-1", schemaVersion=1.0))).schemaVersion == 1
    assert models.parse_event(json.dumps(response_body("r-1", model="m" * 128))).model == "m" * 128
    for bad in ("", "m" * 129, 3, "gpt\u0007"):
        with pytest.raises(ValidationError):
            models.parse_event(json.dumps(response_body("r-1", model=bad)))
    schema = models.json_schema()["$defs"]
    assert schema["ResponseEvent"]["properties"]["schemaVersion"]["maximum"] == 1
    assert "model" in schema["ResponseEvent"]["properties"] and "model" not in schema["QueryEvent"]["properties"]


def test_a_malformed_version_keeps_its_own_reason(processor: Processor) -> None:
    """0, 1000 or a fraction is not a version at all: ``unsupported_schema_version``, not an unknown major."""
    for version in (0, 1000, 1.5, "2", True):
        body = json.dumps(query_body("r-1", schemaVersion=version))
        with pytest.raises(ValidationError) as raised:
            processor.models.parse_event(body)
        assert processor.invalid.reason_code(raised.value, json.loads(body)) == ("unsupported_schema_version", "$.schemaVersion"), version
