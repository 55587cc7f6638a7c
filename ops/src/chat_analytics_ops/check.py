"""``chat-analytics check``: prove that a deployed stack works, end to end, in one command.

Each check is one row (name, OK/FAIL/SKIP, one line of detail):

* **stack outputs**: DescribeStacks has every output the checks need.
* **producer secret**: the secret holds the four producer values and names the stack's events queue (the
  same account and queue name, on an SQS host of the stack's region or on the endpoint the check talks to:
  a local stack's CloudFormation reports AWS's host, its producers send to the local endpoint).
* **canary sent**: a query and a response go out through the Python producer (``AnalyticsLogger``) with
  the credentials *from the secret*, as a chatbot sends them (``source`` ``chat-analytics-check``,
  left out of ``report``).
* **canary stored**: the processor merged both into one complete item (query, response and
  ``responseLatencyMs``) within ``--timeout`` seconds.
* **dead-letter queue**: reachable; its depth.
* **redrive policy**: the events queue dead-letters into the stack's DLQ after exactly 3 receives, and the
  DLQ (FIFO) lets it.
* **event source**: the processor has an enabled mapping from the events queue that reports partial batch
  failures, a visibility timeout covering its timeout, and writes the stack's table. When the canary is not
  stored, its row names the likeliest cause from the queues' depths (the DLQ grew: the processor fails;
  messages wait unconsumed: the consumer is stopped; in flight: slow or failing).
* **alarm actions**: every alarm named ``<stack>-*`` notifies the ``AlarmTopicArn`` topic on ALARM.
* **topic policy**: the topic's policy lets ``cloudwatch.amazonaws.com`` ``sns:Publish``, and its
  ``aws:SourceAccount``/``aws:SourceArn`` conditions cover every one of those alarms (a topic policy
  replaces SNS's default one: without that grant alarms notify nobody, silently).
* **recovery rule**: the EventBridge rule ``<stack>-alarm-recovered`` (ALARM -> OK mails) is enabled
  and targets the topic, with a dead-letter queue (the stack's) and a retry policy.
* **recovery grants**: the topic's policy lets ``events.amazonaws.com`` publish for that rule, and the topic's
  KMS key lets it encrypt for the topic (no role: ``recovery_checks.py`` says why).
* **recovery dead letters**: the rule's dead-letter queue is encrypted, only the rule may send to it, and it is
  empty (a message there is a recovery notice that never reached the topic).
* **event lake**: the lake's Firehose stream is active, its Glue table has the columns the report's SQL reads,
  and the Athena workgroup enforces a per-query scan limit.
* **lake compaction**: the daily schedule is enabled, calls Athena's StartQueryExecution with the compaction
  statement in an enabled workgroup, and the ``compacted`` table exists (``compaction_check.py``); SKIP when the
  stack has no compaction (``lakeCompaction`` false).
* **report reader**: against a local stack (``--endpoint-url``), the calls of ``report --engine athena``
  (Athena, Glue, S3) made by a temporary IAM user holding only the ``ReportReaderPolicyArn`` policy
  (``reader_check.py``); FAIL names each action the policy lacks and on what. On AWS: SKIP (``check``
  creates no IAM user in a real account; run ``report --engine athena`` as a principal holding the policy).
* **notification test** (``--notify-test``): one alarm is set to ALARM and back to OK
  (``SetAlarmState``); the check reports that both changes were accepted. Whether the mails arrived
  only a person can tell.

A failure while reading the stack itself (no such stack, an unreachable endpoint, no credentials)
ends the command with one line, as in every command; a failure inside one check fails that row and
the others still run, except that an endpoint which stopped answering ends the command at once.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chat_analytics_ops import compaction_check, credentials, lake, pipeline_checks, reader_check, recovery_checks
from chat_analytics_ops.contract import CANARY_SOURCE
from chat_analytics_ops.dlq import queue_state
from chat_analytics_ops.errors import UNREACHABLE_ERRORS, OpsError, describe, error_code
from chat_analytics_ops.outputs import (
    ALARM_TOPIC_ARN,
    ATHENA_WORK_GROUP_NAME,
    DEAD_LETTER_QUEUE_URL,
    EVENTS_QUEUE_URL,
    EVENTS_TABLE_NAME,
    LAKE_DATABASE_NAME,
    LAKE_STREAM_NAME,
    LAKE_TABLE_NAME,
    PROCESSOR_FUNCTION_NAME,
    PRODUCER_SECRET_NAME,
    RECOVERY_DEAD_LETTER_QUEUE_URL,
    RECOVERY_RULE_NAME,
    AwsContext,
)
from chat_analytics_ops.render import plural

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"
DEFAULT_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 1.0
SEND_TIMEOUT_S = 15.0  # the producer's retries of a throttle or a 5xx, bounded
SEND_RETRIES = 2
# The producer's own default transport (what a chatbot uses); "botocore" sends through a boto3 client
# (in-process moto intercepts only that one).
PRODUCER_TRANSPORT = "lean"
CANARY_QUESTION = "chat-analytics check: canary question"
CANARY_REASONING = "chat-analytics check: canary answer"
CANARY_RESPONSE_DELAY_MS = 7  # the canary's responseLatencyMs: a known value the item must carry
NOTIFY_REASON = "chat-analytics check --notify-test: proving the notification path"
PREFERRED_NOTIFY_ALARM = "DeadLetters"
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"
REQUIRED_OUTPUTS = (EVENTS_QUEUE_URL, DEAD_LETTER_QUEUE_URL, EVENTS_TABLE_NAME, PRODUCER_SECRET_NAME, ALARM_TOPIC_ARN)
ITEM_ATTRIBUTES = ("requestId", "query", "matchType", "responseLatencyMs", "source")


def pause(seconds: float) -> None:
    """The wait between two looks at the table (the processor works meanwhile); tests replace it."""
    time.sleep(seconds)


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class CheckReport:
    stack_name: str
    region: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    def add(self, name: str, status: str, detail: str) -> Check:
        check = Check(name, status, detail)
        self.checks.append(check)
        return check

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack_name, "region": self.region, "ok": self.ok, "checks": [check.to_json() for check in self.checks]}


def render_text(report: CheckReport) -> str:
    width = max(len(check.name) for check in report.checks)
    lines = [f"chat-analytics check {report.stack_name} ({report.region})", ""]
    lines += [f"  {check.name:<{width}}  {check.status:<4}  {check.detail}" for check in report.checks]
    failed = sum(1 for check in report.checks if check.status == FAIL)
    passed = sum(1 for check in report.checks if check.status == OK)
    skipped = len(report.checks) - failed - passed
    lines.append("")
    lines.append(
        f"{'FAILED' if failed else 'OK'}: {passed} passed, {failed} failed, {skipped} skipped" + ("" if failed else " (the stack works)")
    )
    return "\n".join(lines)


def _guarded(report: CheckReport, name: str, run: Callable[[], tuple[str, str]]) -> Check:
    """One check: its own failure is a FAIL row; an endpoint that stopped answering ends the command."""
    try:
        status, detail = run()
    except UNREACHABLE_ERRORS:
        raise
    except OpsError as error:
        status, detail = FAIL, str(error)
    except (ClientError, BotoCoreError) as error:
        status, detail = FAIL, describe(error)
    return report.add(name, status, detail)


def run_checks(ctx: AwsContext, *, timeout_s: float = DEFAULT_TIMEOUT_S, notify_test: bool = False) -> CheckReport:
    """Every check against ``ctx``'s stack, in order."""
    outputs = ctx.stack_outputs()  # DescribeStacks: its failure (no stack, no endpoint) ends the command with one line
    report = CheckReport(ctx.stack_name, ctx.region_name)
    values: dict[str, str] = {}
    for name in REQUIRED_OUTPUTS:
        with contextlib.suppress(OpsError):  # a missing output is this check's FAIL below
            values[name] = ctx.output(name)
    missing = [name for name in REQUIRED_OUTPUTS if name not in values]
    if missing:
        report.add("stack outputs", FAIL, f"{ctx.stack_name} lacks {', '.join(missing)} (has: {', '.join(sorted(outputs)) or 'none'})")
    else:
        report.add("stack outputs", OK, f"{', '.join(REQUIRED_OUTPUTS)}: all there")

    secret: dict[str, str] = {}

    def read_secret() -> tuple[str, str]:
        if PRODUCER_SECRET_NAME not in values:
            return SKIP, f"no {PRODUCER_SECRET_NAME} output"
        secret.update(credentials.read_worker_env(ctx.client("secretsmanager"), values[PRODUCER_SECRET_NAME]))
        key = credentials.mask("AWS_ACCESS_KEY_ID", secret["AWS_ACCESS_KEY_ID"])
        events_url = values.get(EVENTS_QUEUE_URL)
        if events_url:
            status, detail = pipeline_checks.judge_secret_queue(
                secret["AWS_SQS_URL"], secret["AWS_REGION"], events_url, ctx.region_name, ctx.endpoint_url
            )
            if status != OK:
                return status, detail
        return (
            OK,
            f"{values[PRODUCER_SECRET_NAME]}: key {key}, queue {secret['AWS_SQS_URL'].rsplit('/', 1)[-1]}, region {secret['AWS_REGION']}",
        )

    if _guarded(report, "producer secret", read_secret).status != OK:
        secret.clear()  # a canary sent elsewhere than the stack's queue would prove nothing

    request_id = f"{CANARY_SOURCE}-{uuid.uuid4().hex[:16]}"
    before = pipeline_checks.depths(ctx.client("sqs"), values.get(EVENTS_QUEUE_URL), values.get(DEAD_LETTER_QUEUE_URL))
    sent = _guarded(report, "canary sent", lambda: _send_canary(ctx, secret, request_id))
    if sent.status == OK and EVENTS_TABLE_NAME in values:
        _guarded(report, "canary stored", lambda: _wait_for_item(ctx, values, request_id, timeout_s, before))
    else:
        report.add("canary stored", SKIP, "no canary was sent" if sent.status != OK else f"no {EVENTS_TABLE_NAME} output")

    def dead_letters() -> tuple[str, str]:
        if DEAD_LETTER_QUEUE_URL not in values:
            return SKIP, f"no {DEAD_LETTER_QUEUE_URL} output"
        state = queue_state(ctx.client("sqs"), values[DEAD_LETTER_QUEUE_URL])
        name = state.url.rsplit("/", 1)[-1]
        if state.visible or state.in_flight:
            return OK, (
                f"{name} reachable: {plural(state.visible, 'message')} waiting, {state.in_flight} in flight"
                " (earlier failures: `dlq inspect`, then `dlq redrive`)"
            )
        return OK, f"{name} reachable: empty"

    _guarded(report, "dead-letter queue", dead_letters)

    def redrive() -> tuple[str, str]:
        if EVENTS_QUEUE_URL not in values or DEAD_LETTER_QUEUE_URL not in values:
            return SKIP, "no queue outputs"
        return pipeline_checks.judge_redrive(ctx.client("sqs"), values[EVENTS_QUEUE_URL], values[DEAD_LETTER_QUEUE_URL])

    _guarded(report, "redrive policy", redrive)

    def event_source() -> tuple[str, str]:
        function_name = outputs.get(PROCESSOR_FUNCTION_NAME)
        if not function_name or EVENTS_QUEUE_URL not in values:
            return SKIP, f"no {PROCESSOR_FUNCTION_NAME} or {EVENTS_QUEUE_URL} output"
        return pipeline_checks.judge_event_source(
            ctx.client("lambda"), ctx.client("sqs"), function_name, values[EVENTS_QUEUE_URL], values.get(EVENTS_TABLE_NAME)
        )

    _guarded(report, "event source", event_source)

    topic_arn = values.get(ALARM_TOPIC_ARN)
    alarms: list[dict[str, Any]] = []
    prefix = f"{ctx.stack_name}-"

    def alarm_actions() -> tuple[str, str]:
        if topic_arn is None:
            return SKIP, f"no {ALARM_TOPIC_ARN} output"
        alarms.extend(_alarms(ctx.client("cloudwatch"), prefix))
        return _judge_alarm_actions(alarms, topic_arn, prefix)

    _guarded(report, "alarm actions", alarm_actions)

    def topic_policy() -> tuple[str, str]:
        if topic_arn is None:
            return SKIP, f"no {ALARM_TOPIC_ARN} output"
        attributes = ctx.client("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]
        return judge_topic_policy(attributes.get("Policy"), topic_arn, [alarm["AlarmArn"] for alarm in alarms])

    _guarded(report, "topic policy", topic_policy)

    rule: dict[str, Any] = {}

    def recovery_rule() -> tuple[str, str]:
        if topic_arn is None:
            return SKIP, f"no {ALARM_TOPIC_ARN} output"
        name = outputs.get(RECOVERY_RULE_NAME, f"{ctx.stack_name}-alarm-recovered")
        dlq_url = outputs.get(RECOVERY_DEAD_LETTER_QUEUE_URL)
        dlq_arn = queue_state(ctx.client("sqs"), dlq_url).arn if dlq_url else None
        return _judge_recovery_rule(ctx.client("events"), name, topic_arn, dlq_arn, rule)

    _guarded(report, "recovery rule", recovery_rule)

    def recovery_grants() -> tuple[str, str]:
        if topic_arn is None or "Arn" not in rule:
            return SKIP, "no recovery rule (see above)"
        policy = ctx.client("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"].get("Policy")
        status, detail = recovery_checks.judge_topic_grant(policy, topic_arn, rule["Arn"])
        if status != OK:
            return status, detail
        key, key_policy = recovery_checks.topic_key_policy(ctx.client("sns"), ctx.client("kms"), topic_arn)
        if key is None:
            return OK, f"{detail} (the topic is not encrypted)"
        key_status, key_detail = recovery_checks.judge_key_grant(key_policy, topic_arn)
        if key_status != OK:
            return key_status, key_detail
        return OK, f"{detail}; {key_detail}"

    _guarded(report, "recovery grants", recovery_grants)

    def recovery_dead_letters() -> tuple[str, str]:
        dlq_url = outputs.get(RECOVERY_DEAD_LETTER_QUEUE_URL)
        if not dlq_url or "Arn" not in rule:
            return SKIP, f"no {RECOVERY_DEAD_LETTER_QUEUE_URL} output or no recovery rule"
        return recovery_checks.judge_recovery_dlq(ctx.client("sqs"), dlq_url, rule["Arn"])

    _guarded(report, "recovery dead letters", recovery_dead_letters)

    _guarded(report, "event lake", lambda: _judge_lake(ctx))
    _guarded(
        report,
        "lake compaction",
        lambda: compaction_check.judge_compaction(ctx.client("scheduler"), ctx.client("athena"), ctx.client("glue"), ctx.stack_outputs()),
    )
    _guarded(report, "report reader", lambda: reader_check.judge_report_reader(ctx))

    if notify_test:
        _guarded(report, "notification test", lambda: _notify_test(ctx, alarms, topic_arn, prefix))
    else:
        report.add("notification test", SKIP, "pass --notify-test to set one alarm to ALARM and back (mails the subscribers)")
    return report


# -- the event lake ----------------------------------------------------------------------------------


def _judge_lake(ctx: AwsContext) -> tuple[str, str]:
    """The lake's stream is active, its Glue table has the columns the report's SQL reads (by name and
    type, partition projection on), and the workgroup enforces its scan limit. The canary's row itself
    reaches the bucket only after Firehose's buffer (up to 15 minutes): not waited for here."""
    outputs = ctx.stack_outputs()
    names = (LAKE_STREAM_NAME, LAKE_DATABASE_NAME, LAKE_TABLE_NAME, ATHENA_WORK_GROUP_NAME)
    if not all(name in outputs for name in names):
        return SKIP, "the stack has no event lake outputs (deployed before the lake existed?)"
    stream = ctx.client("firehose").describe_delivery_stream(DeliveryStreamName=outputs[LAKE_STREAM_NAME])["DeliveryStreamDescription"]
    if stream["DeliveryStreamStatus"] != "ACTIVE":
        return FAIL, f"stream {outputs[LAKE_STREAM_NAME]} is {stream['DeliveryStreamStatus']}"
    table = ctx.client("glue").get_table(DatabaseName=outputs[LAKE_DATABASE_NAME], Name=outputs[LAKE_TABLE_NAME])["Table"]
    columns = tuple((column["Name"], column["Type"]) for column in table.get("StorageDescriptor", {}).get("Columns", []))
    if columns != lake.COLUMNS:
        return (
            FAIL,
            f"Glue table {outputs[LAKE_TABLE_NAME]}'s columns are not the lake's: {_column_difference(columns, lake.COLUMNS)}; deploy again",
        )
    if table.get("Parameters", {}).get("projection.enabled") != "true":
        return FAIL, f"Glue table {outputs[LAKE_TABLE_NAME]} has no partition projection: Athena would see no partition"
    group = ctx.client("athena").get_work_group(WorkGroup=outputs[ATHENA_WORK_GROUP_NAME])["WorkGroup"]
    limit = group.get("Configuration", {}).get("BytesScannedCutoffPerQuery")
    if not limit:
        return FAIL, f"workgroup {outputs[ATHENA_WORK_GROUP_NAME]} has no per-query scan limit"
    return OK, (
        f"stream {outputs[LAKE_STREAM_NAME]} active, Glue {outputs[LAKE_DATABASE_NAME]}.{outputs[LAKE_TABLE_NAME]} as the report reads it,"
        f" workgroup {outputs[ATHENA_WORK_GROUP_NAME]} stops queries past {int(limit) / 1024**3:g} GB"
    )


def _column_difference(actual: tuple[tuple[str, str], ...], expected: tuple[tuple[str, str], ...]) -> str:
    """What differs between two column lists, named: missing, unexpected, or the same columns in another order
    (Firehose writes Parquet in the table's order; the report reads the columns it needs contiguously)."""
    missing = [f"{name} {kind}" for name, kind in expected if (name, kind) not in actual]
    extra = [f"{name} {kind}" for name, kind in actual if (name, kind) not in expected]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""))
    if extra:
        parts.append("unexpected " + ", ".join(extra[:4]) + (" ..." if len(extra) > 4 else ""))
    if not parts:
        first = next(index for index, (a, b) in enumerate(zip(actual, expected, strict=True)) if a != b)
        parts.append(f"the same columns in another order (column {first + 1} is {actual[first][0]}, the lake's is {expected[first][0]})")
    return "; ".join(parts)


# -- the canary --------------------------------------------------------------------------------------


def _send_canary(ctx: AwsContext, secret: dict[str, str], request_id: str) -> tuple[str, str]:
    """A query and its response through ``AnalyticsLogger`` with the secret's key, as a chatbot sends them."""
    if not secret:
        return SKIP, "no producer credentials (see producer secret)"
    try:
        from analytics_producer import AnalyticsLogger
    except ImportError:
        return FAIL, "needs the Python producer: pip install ./analytics_producer (the check sends through it)"
    errors: list[BaseException] = []
    session = boto3.session.Session(
        aws_access_key_id=secret["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret["AWS_SECRET_ACCESS_KEY"],
        region_name=secret["AWS_REGION"],
    )
    try:
        logger = AnalyticsLogger(
            secret["AWS_SQS_URL"],
            session=session,
            region_name=secret["AWS_REGION"],
            endpoint_url=ctx.endpoint_url,
            transport=PRODUCER_TRANSPORT,
            max_retries=SEND_RETRIES,
            flush_interval_s=0.05,
            source=CANARY_SOURCE,
            on_error=lambda error, events: errors.append(error),
            atexit_timeout_s=0.5,
            close_timeout_s=SEND_TIMEOUT_S,
        )
    except ValueError as error:  # the producer refuses its configuration (e.g. the secret's queue URL or region)
        return FAIL, f"AnalyticsLogger refused the secret's values: {error}"
    try:
        now_ms = time.time_ns() // 1_000_000
        logger.log_query(request_id, CANARY_QUESTION, timestamp=now_ms - CANARY_RESPONSE_DELAY_MS, source=CANARY_SOURCE)
        logger.log_response(request_id, "full", 100, CANARY_REASONING, timestamp=now_ms, source=CANARY_SOURCE, latency_ms=1)
        logger.flush(SEND_TIMEOUT_S)
    finally:
        logger.close(0.5)
    stats = logger.stats()
    key = credentials.mask("AWS_ACCESS_KEY_ID", secret["AWS_ACCESS_KEY_ID"])
    if stats["sent"] == 2:
        return OK, f"query and response of {request_id} sent by AnalyticsLogger with the producer key {key}"
    if errors:
        reason = describe(errors[0])
        hint = ""
        if isinstance(errors[0], ClientError) and "permission denied" in reason:
            hint = " (if producerSourceCidrs restricts the key, run check from an allowed address)"
        return FAIL, f"{stats['sent']} of 2 events sent with the producer key {key}: {reason}{hint}"
    return (
        FAIL,
        f"{stats['sent']} of 2 events sent with the producer key {key} within {SEND_TIMEOUT_S:.0f} s ({stats['dropped_invalid']} refused)",
    )


def _wait_for_item(
    ctx: AwsContext, values: dict[str, str], request_id: str, timeout_s: float, before: pipeline_checks.QueueDepths
) -> tuple[str, str]:
    """Look up the canary's item until it is complete (query, response, responseLatencyMs) or time is up."""
    dynamodb = ctx.client("dynamodb")
    table = values[EVENTS_TABLE_NAME]
    names = {f"#a{i}": name for i, name in enumerate(ITEM_ATTRIBUTES)}
    started = time.monotonic()
    deadline = started + timeout_s
    item: dict[str, Any] = {}
    while True:
        item = dynamodb.get_item(
            TableName=table,
            Key={"requestId": {"S": request_id}},
            ConsistentRead=True,
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
        ).get("Item", {})
        if all(name in item for name in ("query", "matchType", "responseLatencyMs")):
            waited = time.monotonic() - started
            latency = item["responseLatencyMs"].get("N", "?")
            return OK, f"item {request_id} complete after {waited:.1f} s (query, response, responseLatencyMs {latency} ms)"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        pause(min(POLL_INTERVAL_S, remaining))
    found = [part for part, name in (("query", "query"), ("response", "matchType")) if name in item]
    state = ("only the " + " and ".join(found) + " stored") if found else "nothing stored"
    after = pipeline_checks.depths(ctx.client("sqs"), values.get(EVENTS_QUEUE_URL), values.get(DEAD_LETTER_QUEUE_URL))
    cause = pipeline_checks.canary_diagnosis(before, after, ctx.stack_outputs().get(PROCESSOR_FUNCTION_NAME))
    return FAIL, f"no complete item {request_id} within {timeout_s:g} s ({state}): {cause}"


# -- alarms and their notification path --------------------------------------------------------------


def _alarms(cloudwatch: Any, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
        found += page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])
    return found


def _judge_alarm_actions(alarms: list[dict[str, Any]], topic_arn: str, prefix: str) -> tuple[str, str]:
    if not alarms:
        return FAIL, f"no alarm named {prefix}*: the stack's alarms are missing"
    without = [alarm["AlarmName"] for alarm in alarms if topic_arn not in alarm.get("AlarmActions", [])]
    disabled = [alarm["AlarmName"] for alarm in alarms if alarm.get("ActionsEnabled") is False]
    problems = []
    if without:
        problems.append(f"no ALARM action to the alarm topic: {', '.join(without)}")
    if disabled:
        problems.append(f"actions disabled: {', '.join(disabled)}")
    if problems:
        return FAIL, f"{plural(len(alarms), 'alarm')}; " + "; ".join(problems)
    short = ", ".join(alarm["AlarmName"].removeprefix(prefix) for alarm in alarms)
    return OK, f"{plural(len(alarms), 'alarm')} notify {topic_arn.rsplit(':', 1)[-1]} on ALARM: {short}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches(pattern: str, value: str) -> bool:
    """IAM's ``*``/``?`` wildcards (ArnLike, StringLike); ``[`` is literal in IAM, unlike fnmatch."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


# Condition operators the check evaluates, and whether each takes wildcards.
_OPERATORS = {"StringEquals": False, "ArnEquals": False, "StringLike": True, "ArnLike": True}
_KEYS = ("aws:sourceaccount", "aws:sourcearn")


def judge_topic_policy(policy_text: str | None, topic_arn: str, alarm_arns: list[str]) -> tuple[str, str]:
    """Whether the topic policy lets CloudWatch publish for every one of ``alarm_arns``.

    A statement counts when it allows ``sns:Publish`` (or ``sns:*``, ``*``) on the topic to the
    service principal ``cloudwatch.amazonaws.com``, and its conditions are ones the check can evaluate
    (``aws:SourceAccount``, ``aws:SourceArn`` with StringEquals, StringLike, ArnEquals or ArnLike):
    each must hold for every alarm, from the alarm's own ARN.
    """
    if not policy_text:
        return FAIL, "the topic has no policy: CloudWatch cannot publish to it"
    try:
        policy = json.loads(policy_text)
    except ValueError:
        return FAIL, "the topic's policy is not JSON"
    grants = [statement for statement in _as_list(policy.get("Statement", [])) if _grants_publish(statement, topic_arn)]
    if not grants:
        return FAIL, f"no statement lets {CLOUDWATCH_PRINCIPAL} sns:Publish to the topic: the alarms notify nobody"
    reasons = []
    for grant in grants:
        uncovered, problem = _uncovered(grant.get("Condition", {}), alarm_arns)
        if problem is None and not uncovered:
            conditions = sorted({key for block in grant.get("Condition", {}).values() for key in block})
            scope = f" for {' and '.join(conditions)} covering" if conditions else " with no condition (any account's alarms),"
            return (
                OK,
                f"{CLOUDWATCH_PRINCIPAL} may sns:Publish{scope} all {plural(len(alarm_arns), 'alarm')} (statement {grant.get('Sid', '-')})",
            )
        reasons.append(problem or f"its conditions do not cover {', '.join(arn.rsplit(':', 1)[-1] for arn in uncovered)}")
    return FAIL, f"{CLOUDWATCH_PRINCIPAL} may sns:Publish, but " + "; ".join(reasons)


def _grants_publish(statement: dict[str, Any], topic_arn: str) -> bool:
    if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotPrincipal" in statement or "NotResource" in statement:
        return False
    principal = statement.get("Principal", {})
    services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
    if principal != "*" and CLOUDWATCH_PRINCIPAL not in services:
        return False
    actions = [str(action).lower() for action in _as_list(statement.get("Action", []))]
    if not any(action in {"sns:publish", "sns:*", "*"} for action in actions):
        return False
    return any(_matches(str(resource), topic_arn) for resource in _as_list(statement.get("Resource", [])))


def _uncovered(condition: dict[str, Any], alarm_arns: list[str]) -> tuple[list[str], str | None]:
    """The alarms the condition block would not let publish, or a reason the check cannot tell."""
    uncovered: set[str] = set()
    for operator, block in condition.items():
        if operator not in _OPERATORS:
            return [], f"its condition operator {operator} is not one the check evaluates"
        for key, expected in block.items():
            if key.lower() not in _KEYS:
                return [], f"its condition on {key} is not one the check evaluates"
            for arn in alarm_arns:
                actual = arn.split(":")[4] if key.lower() == "aws:sourceaccount" else arn
                allowed = [str(value) for value in _as_list(expected)]
                wildcards = _OPERATORS[operator]
                if not (any(_matches(pattern, actual) for pattern in allowed) if wildcards else actual in allowed):
                    uncovered.add(arn)
    return sorted(uncovered), None


def _judge_recovery_rule(events: Any, rule_name: str, topic_arn: str, dlq_arn: str | None, found: dict[str, Any]) -> tuple[str, str]:
    """The recovery rule is enabled and targets the topic with no role (resource policies only), a dead-letter
    queue and a retry policy; ``found`` receives the rule (its ARN conditions the grants)."""
    try:
        rule = events.describe_rule(Name=rule_name)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return FAIL, f"no EventBridge rule {rule_name}: recoveries (ALARM -> OK) are not mailed"
        raise
    found.update(rule)
    if rule.get("State") != "ENABLED":
        return FAIL, f"{rule_name} is {rule.get('State', 'not enabled')}: recoveries are not mailed"
    targets = [target for target in events.list_targets_by_rule(Rule=rule_name).get("Targets", []) if target.get("Arn") == topic_arn]
    if not targets:
        return FAIL, f"{rule_name} does not target the alarm topic"
    problems = recovery_checks.judge_rule_target(targets[0], dlq_arn)
    if problems:
        return FAIL, f"{rule_name}: " + "; ".join(problems)
    return OK, f"{rule_name} enabled, publishes ALARM -> OK recoveries to the topic (retried, then dead-lettered)"


def _notify_test(ctx: AwsContext, alarms: list[dict[str, Any]], topic_arn: str | None, prefix: str) -> tuple[str, str]:
    """Drive one alarm that is OK now to ALARM and back; the mails themselves are for a person to see."""
    if topic_arn is None or not alarms:
        return SKIP, "no alarms or no alarm topic (see above)"
    calm = [alarm for alarm in alarms if alarm.get("StateValue") == "OK" and "AlarmRule" not in alarm]
    if not calm:
        return SKIP, "no alarm is in state OK now: a test would hide a real one (wait until they are OK)"
    chosen = next((alarm for alarm in calm if alarm["AlarmName"] == prefix + PREFERRED_NOTIFY_ALARM), calm[0])
    name = chosen["AlarmName"]
    cloudwatch = ctx.client("cloudwatch")
    seen = []
    for state in ("ALARM", "OK"):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=NOTIFY_REASON)
        current = cloudwatch.describe_alarms(AlarmNames=[name]).get("MetricAlarms", [{}])
        seen.append(current[0].get("StateValue", "?") if current else "?")
    if seen != ["ALARM", "OK"]:
        return FAIL, f"{name}: set ALARM then OK, but the alarm reported {' then '.join(seen)}"
    subscriptions = _subscriptions(ctx.client("sns"), topic_arn)
    confirmed = [sub for sub in subscriptions if sub.get("SubscriptionArn", "").startswith("arn:")]
    if not confirmed:
        pending = len(subscriptions) - len(confirmed)
        return FAIL, (
            f"{name}: ALARM then OK accepted, but the topic has no confirmed subscription"
            f" ({pending} pending): nobody gets the mails (set alarmEmail and confirm the mail)"
        )
    protocols = ", ".join(sorted({str(sub.get("Protocol", "?")) for sub in confirmed}))
    return OK, (
        f"{name}: ALARM then OK accepted; a person must check that the ALARM mail and the recovery line"
        f" reached the topic's {plural(len(confirmed), 'confirmed subscription')} ({protocols})"
    )


def _subscriptions(sns: Any, topic_arn: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        found += page.get("Subscriptions", [])
    return found
