"""The event contract: models, the checked-in JSON Schema, and the Lambda asset's imports."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from schema import generate
from testkit.events import query_body, response_body
from tests.processor.conftest import PROCESSOR_DIR, Processor

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "schema" / "analytics-event.schema.json"

VALID = [
    query_body("r-1"),
    query_body("r-1", source="cv-worker", sessionId="s" * 128, latencyMs=0, futureField={"x": 1}),
    query_body("r" * 128, query="q" * 4096, source=None),
    response_body("r-1"),
    response_body("r-1", match_type="none", match_score=0, reasoning=""),
    response_body("r-1", match_type="partial", match_score=49.5, reasoning="x" * 4096, latencyMs=12.25),
    {k: v for k, v in query_body("r-1").items() if k != "schemaVersion"},
]
INVALID = [
    {k: v for k, v in query_body("r-1").items() if k != "requestId"},
    {k: v for k, v in response_body("r-1").items() if k != "matchScore"},
    query_body("has space"),
    query_body(""),
    query_body("r" * 129),
    query_body("r-ü"),
    query_body("r-1", query=""),
    query_body("r-1", query="q" * 4097),
    query_body("r-1", timestamp="1767225600000"),
    query_body("r-1", timestamp=1.5),
    query_body("r-1", timestamp=-1),
    query_body("r-1", source="s" * 65),
    query_body("r-1", sessionId="s" * 129),
    query_body("r-1", latencyMs=-1),
    query_body("r-1", latencyMs="3"),
    query_body("r-1", schemaVersion=0),
    response_body("r-1", match_type="great"),
    response_body("r-1", match_score=100.01),
    response_body("r-1", match_score=-0.5),
    response_body("r-1", match_score="90"),
    response_body("r-1", reasoning="x" * 4097),
    {**query_body("r-1"), "eventType": "click"},
    {k: v for k, v in query_body("r-1").items() if k != "eventType"},
    [query_body("r-1")],
    "query",
]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_file_is_in_sync_with_the_models(processor: Processor) -> None:
    generator = generate
    assert SCHEMA_FILE.read_text(encoding="utf-8") == generator.render(), "run: .venv/bin/python schema/generate.py"
    assert generator.main(["--check"]) == 0, "the operations CLI's packaged copy is stale: run schema/generate.py"


def test_schema_is_draft_2020_12_with_a_discriminator_on_event_type(validator: jsonschema.Draft202012Validator) -> None:
    schema = validator.schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["discriminator"]["propertyName"] == "eventType"
    assert {ref["$ref"] for ref in schema["oneOf"]} == {"#/$defs/QueryEvent", "#/$defs/ResponseEvent"}


@pytest.mark.parametrize("body", VALID, ids=range(len(VALID)))
def test_valid_events_pass_both_the_schema_and_the_models(
    processor: Processor, validator: jsonschema.Draft202012Validator, body: dict
) -> None:
    validator.validate(body)
    event = processor.models.parse_event(json.dumps(body))
    assert event.eventType == body["eventType"] and event.requestId == body["requestId"]
    assert event.schemaVersion == body.get("schemaVersion", 1)


@pytest.mark.parametrize("body", INVALID, ids=range(len(INVALID)))
def test_invalid_events_fail_both_the_schema_and_the_models(
    processor: Processor, validator: jsonschema.Draft202012Validator, body: object
) -> None:
    assert not validator.is_valid(body)
    with pytest.raises(ValidationError):
        processor.models.parse_event(json.dumps(body))


def test_bodies_that_are_not_json_are_validation_errors(processor: Processor) -> None:
    for body in ("", "not json", '{"eventType": "query", "requestId": "r-1",', '{"latencyMs": NaN}'):
        with pytest.raises(ValidationError):
            processor.models.parse_event(body)


def test_extra_fields_are_ignored(processor: Processor) -> None:
    event = processor.models.parse_event(json.dumps(query_body("r-1", model="v2", nested={"a": [1]})))
    assert not hasattr(event, "model") and event.query == "Does the candidate know Python?"


def test_the_lambda_asset_imports_only_itself_stdlib_boto3_and_powertools() -> None:
    """Only lambda_src/ ships: the package imports its own modules (relative or ``chat_processor.``), the standard
    library, boto3/botocore (in Lambda's runtime) and Powertools with pydantic (its layer), nothing else."""
    allowed = (
        {"chat_processor"} | set(sys.stdlib_module_names) | {"boto3", "botocore", "aws_lambda_powertools", "pydantic", "pydantic_core"}
    )
    assert sorted(path.name for path in PROCESSOR_DIR.parent.iterdir() if path.name != "__pycache__") == ["chat_processor"]
    for path in PROCESSOR_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # a sibling in the package
                    assert node.level == 1, f"{path.name}: imports from above the package"
                    continue
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{path.name} imports {roots - allowed}"
