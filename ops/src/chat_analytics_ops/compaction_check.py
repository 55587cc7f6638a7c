"""``check``'s "lake compaction" row: the daily schedule that compacts the event lake is there and would work.

The compaction runs in AWS with nothing of ours running (stacks/compaction.py): an EventBridge Scheduler schedule
calls Athena's ``StartQueryExecution`` through the universal target with a fixed ``INSERT INTO compacted`` in the
compaction's own workgroup. What can be judged without waiting for 02:00 UTC: the schedule is enabled, its target is
that API, its input runs the compaction statement in an enabled workgroup of the stack, and the ``compacted`` table
the statement writes exists. A stack deployed with ``lakeCompaction`` false has no ``CompactionSchedule`` output:
the row is a SKIP, not a failure.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from chat_analytics_ops.contract import COMPACTION_SCHEDULE
from chat_analytics_ops.errors import error_code

UNIVERSAL_TARGET_SUFFIX = ":aws-sdk:athena:startQueryExecution"
COMPACTION_STATEMENT = "INSERT INTO compacted"
COMPACTED_TABLE = "compacted"


def judge_compaction(scheduler: Any, athena: Any, glue: Any, outputs: dict[str, str]) -> tuple[str, str]:
    """``(status, detail)`` for the compaction's schedule named by the ``CompactionSchedule`` output."""
    named = outputs.get(COMPACTION_SCHEDULE)
    if not named:
        return "SKIP", f"no {COMPACTION_SCHEDULE} output (the stack's lakeCompaction is false, or it predates compaction)"
    group, _, name = named.partition("/")
    try:
        schedule = scheduler.get_schedule(GroupName=group, Name=name)
    except ClientError as error:  # the schedule's absence is the finding
        if error_code(error) == "ResourceNotFoundException":
            return "FAIL", f"schedule {named} does not exist: deploy again"
        raise
    if schedule.get("State") != "ENABLED":
        return "FAIL", f"schedule {named} is {schedule.get('State')}: no day is compacted (enable it, or deploy again)"
    target = schedule.get("Target", {})
    if not str(target.get("Arn", "")).endswith(UNIVERSAL_TARGET_SUFFIX):
        return "FAIL", f"schedule {named} calls {target.get('Arn')}, not Athena's StartQueryExecution"
    try:
        request = json.loads(target.get("Input") or "{}")
    except ValueError:
        return "FAIL", f"schedule {named}'s input is not JSON: Athena would refuse it"
    query, work_group = str(request.get("QueryString", "")), request.get("WorkGroup")
    if COMPACTION_STATEMENT not in query or not work_group:
        return "FAIL", f"schedule {named}'s input does not run {COMPACTION_STATEMENT} in a workgroup"
    if not target.get("RoleArn"):
        return "FAIL", f"schedule {named} has no role: it cannot call Athena"
    try:
        found = athena.get_work_group(WorkGroup=work_group).get("WorkGroup")
    except ClientError as error:  # Athena answers InvalidRequestException for a workgroup that does not exist
        if error_code(error) not in ("InvalidRequestException", "ResourceNotFoundException"):
            raise
        found = None
    if not found:  # (moto answers an empty body instead)
        return "FAIL", f"workgroup {work_group} does not exist: every compaction would fail (LakeCompactionFailed)"
    state = found.get("State")
    if state != "ENABLED":
        return "FAIL", f"workgroup {work_group} is {state}: every compaction would fail (LakeCompactionFailed)"
    database = request.get("QueryExecutionContext", {}).get("Database")
    if database:
        try:
            glue.get_table(DatabaseName=database, Name=COMPACTED_TABLE)
        except ClientError as error:
            if error_code(error) == "EntityNotFoundException":
                return "FAIL", f"Glue table {database}.{COMPACTED_TABLE} does not exist: the compaction has nowhere to write"
            raise
    when = schedule.get("ScheduleExpression", "?")
    return "OK", f"schedule {named} enabled ({when} UTC), runs {COMPACTION_STATEMENT} in workgroup {work_group}"
