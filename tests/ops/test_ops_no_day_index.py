"""A stack without the table's day index (setting ``tableDayIndex`` false, prod's default since the lake reports).

``report --engine dynamodb`` has nothing to read and says so in one line, naming the engines that can;
``erase --question-contains`` finds the table's requests through the event lake and erases them by id. The
index is removed from the deployed dev stack with ``UpdateTable`` (what a deploy with the setting false leaves).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_analytics_ops.contract import DAY_INDEX
from tests.ops.conftest import Cli, Stack
from tests.ops.test_ops_erase import SECRET_QUESTION, SECRET_TEXT, day_start, drain, lake_day, send_pair, table_ids


@pytest.fixture
def indexless(stack: Stack) -> Stack:
    table = stack.outputs["EventsTableName"]
    stack.dynamodb.update_table(TableName=table, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": DAY_INDEX}}])
    indexes = stack.dynamodb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
    assert DAY_INDEX not in [index["IndexName"] for index in indexes]
    return stack


def test_the_table_engine_says_in_one_line_that_the_lake_engines_can(indexless: Stack, cli: Cli) -> None:
    result = cli("report", "--engine", "dynamodb")
    assert result.code != 0 and "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    assert f"has no {DAY_INDEX} index" in line and "tableDayIndex" in line
    assert "--engine athena" in line and "--engine duckdb" in line


def test_erase_by_question_finds_the_tables_requests_through_the_lake(stack: Stack, cli: Cli, tmp_path: Path) -> None:
    today = day_start(0) + 3_600_000
    send_pair(stack, "secret-1", today, SECRET_QUESTION)
    send_pair(stack, "other-1", today + 1000, "Does she know Go?")
    drain(stack)
    table = stack.outputs["EventsTableName"]
    stack.dynamodb.update_table(TableName=table, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": DAY_INDEX}}])

    result = cli(
        "erase", "--question-contains", SECRET_TEXT, "--from", lake_day(today), "--to", lake_day(today), "--yes", "--cache", str(tmp_path)
    )

    assert result.code == 0, result.err
    assert f"has no {DAY_INDEX} index: its requests are found through the event lake" in result.out
    assert "1 request asked" in result.out and SECRET_TEXT not in result.out
    assert table_ids(stack) == {"other-1"}
