"""``check``'s "lake compaction" row: the daily schedule that compacts the event lake is there and would work.

The compaction runs in AWS with nothing of ours running (stacks/compaction.py): an EventBridge Scheduler schedule
calls Athena's ``StartQueryExecution`` through the universal target with a fixed ``INSERT INTO compacted`` in the
compaction's own workgroup. What can be judged without waiting for 02:00 UTC: the schedule is enabled, its target is
that API, its input runs the compaction statement in an enabled workgroup of the stack, and the ``compacted`` table
the statement writes exists. The same for the second schedule of the group, which summarizes the compacted days
(``<prefix>-lake-summary``, ``INSERT INTO compacted_sections``): a stack without it (deployed before the summaries)
FAILs with "deploy again" (its reports read every compacted day from its rows: right, but slower). A stack deployed
with ``lakeCompaction`` false has no ``CompactionSchedule`` output: the row is a SKIP, not a failure.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError

from chat_analytics_ops.contract import COMPACTION_SCHEDULE
from chat_analytics_ops.errors import error_code

UNIVERSAL_TARGET_SUFFIX = ":aws-sdk:athena:startQueryExecution"
COMPACTION_STATEMENT = "INSERT INTO compacted"
COMPACTED_TABLE = "compacted"
SUMMARY_STATEMENT = "INSERT INTO compacted_sections"
SECTIONS_TABLE = "compacted_sections"
# The summary schedule is named as the compaction's (stacks/compaction.py): <prefix>-lake-compaction, <prefix>-lake-summary.
COMPACTION_SUFFIX, SUMMARY_SUFFIX = "-lake-compaction", "-lake-summary"


def judge_compaction(scheduler: Any, athena: Any, glue: Any, outputs: dict[str, str]) -> tuple[str, str]:
    """``(status, detail)`` for the compaction's schedule named by the ``CompactionSchedule`` output, and the summary
    schedule beside it in its group."""
    named = outputs.get(COMPACTION_SCHEDULE)
    if not named:
        return "SKIP", f"no {COMPACTION_SCHEDULE} output (the stack's lakeCompaction is false, or it predates compaction)"
    status, detail = _judge_schedule(scheduler, athena, glue, named, COMPACTION_STATEMENT, COMPACTED_TABLE, "compaction")
    if status != "OK":
        return status, detail
    group, _, name = named.partition("/")
    summary = f"{group}/{name.removesuffix(COMPACTION_SUFFIX)}{SUMMARY_SUFFIX}"
    summary_status, summary_detail = _judge_schedule(scheduler, athena, glue, summary, SUMMARY_STATEMENT, SECTIONS_TABLE, "summary")
    if summary_status != "OK":
        return summary_status, summary_detail + " (the compaction's schedule is fine; reports read the compacted days from their rows)"
    return "OK", f"{detail}; {summary_detail}"


def _judge_schedule(scheduler: Any, athena: Any, glue: Any, named: str, statement: str, table: str, what: str) -> tuple[str, str]:
    group, _, name = named.partition("/")
    try:
        schedule = scheduler.get_schedule(GroupName=group, Name=name)
    except ClientError as error:  # the schedule's absence is the finding
        if error_code(error) == "ResourceNotFoundException":
            return "FAIL", f"schedule {named} does not exist: deploy again"
        raise
    if schedule.get("State") != "ENABLED":
        return (
            "FAIL",
            f"schedule {named} is {schedule.get('State')}: no day is {'compacted' if what == 'compaction' else 'summarized'} (enable it, or deploy again)",
        )
    target = schedule.get("Target", {})
    if not str(target.get("Arn", "")).endswith(UNIVERSAL_TARGET_SUFFIX):
        return "FAIL", f"schedule {named} calls {target.get('Arn')}, not Athena's StartQueryExecution"
    try:
        request = json.loads(target.get("Input") or "{}")
    except ValueError:
        return "FAIL", f"schedule {named}'s input is not JSON: Athena would refuse it"
    query, work_group = str(request.get("QueryString", "")), request.get("WorkGroup")
    if not re.search(re.escape(statement) + r"\b", query) or not work_group:
        return "FAIL", f"schedule {named}'s input does not run {statement} in a workgroup"
    if not target.get("RoleArn"):
        return "FAIL", f"schedule {named} has no role: it cannot call Athena"
    try:
        found = athena.get_work_group(WorkGroup=work_group).get("WorkGroup")
    except ClientError as error:  # Athena answers InvalidRequestException for a workgroup that does not exist
        if error_code(error) not in ("InvalidRequestException", "ResourceNotFoundException"):
            raise
        found = None
    if not found:  # (moto answers an empty body instead)
        return "FAIL", f"workgroup {work_group} does not exist: every {what} would fail (LakeCompactionFailed)"
    state = found.get("State")
    if state != "ENABLED":
        return "FAIL", f"workgroup {work_group} is {state}: every {what} would fail (LakeCompactionFailed)"
    database = request.get("QueryExecutionContext", {}).get("Database")
    if database:
        try:
            glue.get_table(DatabaseName=database, Name=table)
        except ClientError as error:
            if error_code(error) == "EntityNotFoundException":
                return "FAIL", f"Glue table {database}.{table} does not exist: the {what} has nowhere to write"
            raise
    when = schedule.get("ScheduleExpression", "?")
    return "OK", f"schedule {named} enabled ({when} UTC), runs {statement} in workgroup {work_group}"
