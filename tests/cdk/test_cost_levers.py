"""The cost levers (docs/cost.md, "What each lever saves"): each one a setting, each setting followed by the template.

- ``tableDayIndex``: the table's ``byDay`` index, or none (every write then one WRU instead of two);
- ``processorSystemLogLevel``: Lambda's own records (``LoggingConfig.SystemLogLevel``; at WARN no START/REPORT);
- ``processorLogLevel``: the processor's Powertools level (``POWERTOOLS_LOG_LEVEL``; at WARNING no "Batch processed").

The constructs are built here on fresh stacks from explicit props; the app's wiring of each setting into them, from each
stage's defaults, is asserted in test_cost_levers_app.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs

from stacks.event_table import DAY_INDEX, DAY_INDEX_ATTRIBUTES, EventTable, EventTableProps
from stacks.processor import Processor, ProcessorProps
from stacks.settings import Settings, SettingsError
from tests.cdk.conftest import one_of, templates_of


@pytest.fixture(scope="module")
def tables() -> dict[str, Any]:
    app = App()
    with_index, without_index = Stack(app, "WithIndex"), Stack(app, "WithoutIndex")
    EventTable(with_index, "Events", EventTableProps(protect_data=False))
    EventTable(without_index, "Events", EventTableProps(protect_data=False, day_index=False))
    return templates_of(app)


LAYER = "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:7"


def _processor(stack: Stack, **levers: str) -> Processor:
    queue = sqs.Queue(stack, "Events", fifo=True)
    table = dynamodb.Table(stack, "Table", partition_key=dynamodb.Attribute(name="requestId", type=dynamodb.AttributeType.STRING))
    props = ProcessorProps(
        events_queue=queue,
        events_table=table,
        python_runtime="python3.13",
        timeout_s=30,
        memory_mb=256,
        max_concurrency=2,
        log_retention_days=14,
        table_retention_days=30,
        metrics_namespace="Test",
        retain_logs=False,
        lake_stream_name="lake",
        lake_stream_arn="arn:aws:firehose:us-east-1:111122223333:deliverystream/lake",
        powertools_layer=LAYER,
        **levers,
    )
    return Processor(stack, "Processor", props)


@pytest.fixture(scope="module")
def functions() -> dict[str, dict]:
    app = App()
    built = {
        "default": Stack(app, "DefaultLevels"),
        "quiet": Stack(app, "QuietLevels"),
        "verbose": Stack(app, "VerboseLevels"),
    }
    _processor(built["default"])
    _processor(built["quiet"], system_log_level="WARN", log_level="WARNING")
    _processor(built["verbose"], system_log_level="DEBUG", log_level="DEBUG")
    templates = templates_of(app)
    return {name: one_of(templates[stack.stack_name], "AWS::Lambda::Function")[1]["Properties"] for name, stack in built.items()}


@pytest.mark.parametrize(
    ("name", "system", "application"), [("default", "INFO", "INFO"), ("quiet", "WARN", "WARNING"), ("verbose", "DEBUG", "DEBUG")]
)
def test_the_processor_logs_at_its_props_levels(functions: dict[str, dict], name: str, system: str, application: str) -> None:
    function = functions[name]
    assert function["LoggingConfig"]["LogFormat"] == "JSON"  # level filtering needs JSON logs
    assert function["LoggingConfig"]["SystemLogLevel"] == system
    assert "ApplicationLogLevel" not in function["LoggingConfig"]
    assert function["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == application


def _table(template: Any) -> dict:
    return one_of(template, "AWS::DynamoDB::Table")[1]["Properties"]


def test_the_table_has_the_day_index_by_default(tables: dict[str, Any]) -> None:
    [index] = _table(tables["WithIndex"])["GlobalSecondaryIndexes"]
    assert index["IndexName"] == DAY_INDEX
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(DAY_INDEX_ATTRIBUTES)}


def test_without_the_day_index_the_table_has_no_index_and_keeps_everything_else(tables: dict[str, Any]) -> None:
    plain, bare = _table(tables["WithIndex"]), _table(tables["WithoutIndex"])
    assert "GlobalSecondaryIndexes" not in bare
    # only the index and the attribute it alone defines go: keys, billing, PITR, TTL and encryption stay
    assert bare["AttributeDefinitions"] == [{"AttributeName": "requestId", "AttributeType": "S"}]
    for key in ("KeySchema", "BillingMode", "PointInTimeRecoverySpecification", "TimeToLiveSpecification", "SSESpecification"):
        assert bare[key] == plain[key], key


def test_the_levers_defaults_follow_the_stage() -> None:
    dev, prod = Settings.from_context({"stage": "dev"}), Settings.from_context({"stage": "prod"})
    assert (dev.table_day_index, dev.processor_system_log_level, dev.processor_log_level) == (True, "INFO", "INFO")
    assert (prod.table_day_index, prod.processor_system_log_level, prod.processor_log_level) == (False, "WARN", "WARNING")


def test_the_levers_take_command_line_strings_in_any_case() -> None:
    settings = Settings.from_context(
        {"stage": "prod", "tableDayIndex": "true", "processorSystemLogLevel": "info", "processorLogLevel": "debug"}
    )
    assert (settings.table_day_index, settings.processor_system_log_level, settings.processor_log_level) == (True, "INFO", "DEBUG")


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"tableDayIndex": "no"}, "context key 'tableDayIndex': expected true or false, got 'no'"),
        ({"processorSystemLogLevel": "ERROR"}, "context key 'processorSystemLogLevel': 'ERROR' is not one of DEBUG, INFO, WARN"),
        ({"processorLogLevel": "WARN"}, "context key 'processorLogLevel': 'WARN' is not one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_a_bad_lever_names_its_key(context: dict, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_context(context)
    assert str(raised.value) == message
