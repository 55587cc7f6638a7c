"""The cost levers as the app wires them (docs/cost.md, "What each lever saves"): each stage's defaults, and a setting
overriding them, followed by the whole template (the constructs alone: test_cost_levers.py)."""

from __future__ import annotations

import pytest

from stacks.event_table import DAY_INDEX
from tests.cdk.conftest import Synthesized, only_resource


def _function(synthesized: Synthesized) -> dict:
    return only_resource(synthesized.raw, "AWS::Lambda::Function", Handler="chat_processor.handler.handler")[1]["Properties"]


def test_dev_keeps_the_day_index_and_every_log_line(dev: Synthesized) -> None:
    [table] = [r for r in dev.raw["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert [i["IndexName"] for i in table["Properties"]["GlobalSecondaryIndexes"]] == [DAY_INDEX]
    function = _function(dev)
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert function["LoggingConfig"]["SystemLogLevel"] == "INFO"
    assert function["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_prod_drops_the_day_index_and_logs_warnings_only(prod: Synthesized) -> None:
    [table] = [r for r in prod.raw["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert "GlobalSecondaryIndexes" not in table["Properties"]
    function = _function(prod)
    assert function["LoggingConfig"]["SystemLogLevel"] == "WARN"
    assert function["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "WARNING"


def test_the_application_log_level_is_never_set(dev: Synthesized, prod: Synthesized) -> None:
    """Lambda's application log filter would drop the metrics: a line without a ``level`` key, as every
    Embedded Metric Format document is, counts as INFO, so ``ApplicationLogLevel: WARN`` drops it; and
    Powertools follows ``AWS_LAMBDA_LOG_LEVEL`` (what ``ApplicationLogLevel`` sets) before
    ``POWERTOOLS_LOG_LEVEL``. The processor's own level is the lever instead.
    https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html"""
    for synthesized in (dev, prod):
        assert "ApplicationLogLevel" not in _function(synthesized)["LoggingConfig"]


def test_the_erasure_policy_names_the_index_only_when_it_exists(dev: Synthesized, prod: Synthesized) -> None:
    def index_resources(synthesized: Synthesized) -> list[str]:
        text = str(synthesized.raw["Resources"])
        return [part for part in text.split("'") if part.endswith(f"/index/{DAY_INDEX}")]

    assert index_resources(dev)
    assert not index_resources(prod)


@pytest.fixture(scope="module")
def prod_with_the_old_levers(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from tests.conftest import synthesize

    context = {"stage": "prod", "tableDayIndex": True, "processorSystemLogLevel": "INFO", "processorLogLevel": "INFO"}
    return synthesize(context, tmp_path_factory.mktemp("cdk-prod-levers"))


def test_prod_can_keep_the_index_and_every_log_line(prod_with_the_old_levers: Synthesized) -> None:
    synthesized = prod_with_the_old_levers
    [table] = [r for r in synthesized.raw["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    assert [i["IndexName"] for i in table["Properties"]["GlobalSecondaryIndexes"]] == [DAY_INDEX]
    function = _function(synthesized)
    assert function["LoggingConfig"]["SystemLogLevel"] == "INFO"
    assert function["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "INFO"
