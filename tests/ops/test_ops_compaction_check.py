"""``check``'s "lake compaction" row against moto's Scheduler, Athena and Glue (in-process).

moto stores a schedule and never runs it; what the row judges is the schedule's configuration, so a stored one is
enough: enabled, Athena's ``StartQueryExecution`` as its universal target
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html), the compaction
statement in an enabled workgroup, the ``compacted`` table in place; and the same of the summary schedule beside it
(``INSERT INTO compacted_sections``, the ``compacted_sections`` table).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chat_analytics_ops.compaction_check import judge_compaction
from chat_analytics_ops.contract import COMPACTION_SCHEDULE

REGION = "us-east-1"
GROUP, NAME, WORK_GROUP, DATABASE = "ChatAnalytics-dev-lake", "ChatAnalytics-dev-lake-compaction", "ChatAnalytics-dev-compaction", "db"
TARGET = "arn:aws:scheduler:::aws-sdk:athena:startQueryExecution"
INPUT = {"QueryString": "INSERT INTO compacted SELECT 1", "WorkGroup": WORK_GROUP, "QueryExecutionContext": {"Database": DATABASE}}
SUMMARY_NAME = "ChatAnalytics-dev-lake-summary"
SUMMARY_INPUT = {**INPUT, "QueryString": "INSERT INTO compacted_sections\nSELECT 1"}


@pytest.fixture
def clients() -> Iterator[dict[str, Any]]:
    with mock_aws():
        made = {service: boto3.client(service, region_name=REGION) for service in ("scheduler", "athena", "glue")}
        made["scheduler"].create_schedule_group(Name=GROUP)
        made["athena"].create_work_group(Name=WORK_GROUP)
        made["glue"].create_database(DatabaseInput={"Name": DATABASE})
        made["glue"].create_table(DatabaseName=DATABASE, TableInput={"Name": "compacted"})
        made["glue"].create_table(DatabaseName=DATABASE, TableInput={"Name": "compacted_sections"})
        yield made


def schedule(
    clients: dict[str, Any],
    *,
    state: str = "ENABLED",
    target: str = TARGET,
    body: dict[str, Any] | None = None,
    name: str = NAME,
    summary: dict[str, Any] | None = SUMMARY_INPUT,
) -> None:
    """The compaction's schedule (``name``, ``body``) and, unless ``summary`` is None, the summary's with that input."""
    clients["scheduler"].create_schedule(
        Name=name,
        GroupName=GROUP,
        ScheduleExpression="cron(0 2 * * ? *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        State=state,
        Target={"Arn": target, "RoleArn": "arn:aws:iam::123456789012:role/compaction", "Input": json.dumps(body or INPUT)},
    )
    if summary is not None and name == NAME:
        schedule(clients, name=SUMMARY_NAME, body=summary, summary=None)


def judge(clients: dict[str, Any], outputs: dict[str, str] | None = None) -> tuple[str, str]:
    outputs = {COMPACTION_SCHEDULE: f"{GROUP}/{NAME}"} if outputs is None else outputs
    return judge_compaction(clients["scheduler"], clients["athena"], clients["glue"], outputs)


def test_an_enabled_schedule_running_the_compaction_is_ok(clients: dict[str, Any]) -> None:
    schedule(clients)
    status, detail = judge(clients)
    assert status == "OK", detail
    assert f"{GROUP}/{NAME} enabled" in detail and WORK_GROUP in detail
    assert f"{GROUP}/{SUMMARY_NAME} enabled" in detail and "runs INSERT INTO compacted_sections" in detail


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (None, f"schedule {GROUP}/{SUMMARY_NAME} does not exist: deploy again"),
        (INPUT, f"schedule {GROUP}/{SUMMARY_NAME}'s input does not run INSERT INTO compacted_sections"),
        ({**SUMMARY_INPUT, "WorkGroup": "missing"}, "every summary would fail"),
    ],
)
def test_a_missing_or_broken_summary_schedule_fails_naming_it(clients: dict[str, Any], summary: Any, expected: str) -> None:
    schedule(clients, summary=summary)
    status, detail = judge(clients)
    assert status == "FAIL" and expected in detail and "reports read the compacted days from their rows" in detail, detail


def test_a_summary_statement_is_not_taken_for_the_compaction(clients: dict[str, Any]) -> None:
    schedule(clients, body=SUMMARY_INPUT)
    status, detail = judge(clients)
    assert status == "FAIL" and f"{GROUP}/{NAME}'s input does not run INSERT INTO compacted in" in detail, detail


def test_a_stack_without_compaction_is_a_skip(clients: dict[str, Any]) -> None:
    status, detail = judge(clients, {})
    assert status == "SKIP" and "lakeCompaction" in detail


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"state": "DISABLED"}, "is DISABLED"),
        ({"target": "arn:aws:scheduler:::aws-sdk:athena:getQueryExecution"}, "not Athena's StartQueryExecution"),
        ({"body": {**INPUT, "QueryString": "SELECT 1"}}, "does not run INSERT INTO compacted"),
        ({"body": {**INPUT, "WorkGroup": "missing"}}, "workgroup missing does not exist"),
    ],
)
def test_each_broken_part_fails_the_row_naming_it(clients: dict[str, Any], change: dict[str, Any], expected: str) -> None:
    schedule(clients, **change)
    status, detail = judge(clients)
    assert status == "FAIL" and expected in detail, detail


def test_a_missing_schedule_or_table_fails(clients: dict[str, Any]) -> None:
    status, detail = judge(clients)
    assert status == "FAIL" and "does not exist" in detail
    schedule(clients)
    clients["glue"].delete_table(DatabaseName=DATABASE, Name="compacted_sections")
    status, detail = judge(clients)
    assert status == "FAIL" and f"{DATABASE}.compacted_sections does not exist: the summary has nowhere to write" in detail
    clients["glue"].delete_table(DatabaseName=DATABASE, Name="compacted")
    status, detail = judge(clients)
    assert status == "FAIL" and f"{DATABASE}.compacted does not exist" in detail
