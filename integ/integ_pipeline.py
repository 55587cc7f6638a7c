#!/usr/bin/env python3
"""Integration test on a real account: ``integ-runner`` deploys ``ChatAnalytics-integ``, runs these assertions, destroys it.

Without ``--update-on-failed`` integ-runner only synthesizes this app and compares it with the committed
``integ_pipeline.py.snapshot/`` (no AWS call): that is what ``tests/cdk/test_integ_snapshot.py`` runs.
``docs/integ.md`` says how to run it for real (``make integ``), what it costs and how long it takes.

Three chains of assertions run in parallel once the stack is up (each step waits for the one before):

1. **events reach the table and the lake**: the probe sends one ``SendMessageBatch`` signed with the
   producer's key from the producer secret -> the processor's item is in the table (``GetItem``) -> the
   lake's files are Parquet, Athena reads them, and the report through Athena equals the report from
   the table (``chat_analytics_ops``'s own code, in the probe).
2. **notifications, both ways**: ``SetAlarmState`` ALARM -> the test subscriber got CloudWatch's ALARM
   message -> ``SetAlarmState`` OK -> it got the recovery rule's ``OK: ... recovered`` line.
3. **a poison message dead-letters after 3 receives**: the producer's key sends an event without its
   question -> it is in the DLQ -> the processor logged it as invalid exactly 3 times.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # integ-runner runs this file from integ/
    sys.path.insert(0, str(REPO))

import aws_cdk as cdk  # noqa: E402
from aws_cdk.cloud_assembly_schema import (  # noqa: E402
    CdkCommands,
    DeployCommand,
    DeployOptions,
    DestroyCommand,
    DestroyOptions,
    RequireApproval,
)
from aws_cdk.integ_tests_alpha import ExpectedResult, IApiCall, IntegTest, Match  # noqa: E402

from integ.harness import IntegHarness, integ_stack  # noqa: E402
from integ.probe.probe import REQUESTS  # noqa: E402

# How long each wait may take, and how often it looks.
STORED_WAIT = (cdk.Duration.minutes(5), cdk.Duration.seconds(10))
# The lake: 60 s of buffer, the Parquet conversion, then S3 (Firehose's freshness is usually under 2 min).
LAKE_WAIT = (cdk.Duration.minutes(15), cdk.Duration.seconds(30))
NOTIFY_WAIT = (cdk.Duration.minutes(5), cdk.Duration.seconds(10))
# Three receives 180 s apart (the queue's visibility timeout is 6 x the processor's 30 s), then the move.
DEAD_LETTER_WAIT = (cdk.Duration.minutes(20), cdk.Duration.seconds(30))
LOGS_WAIT = (cdk.Duration.minutes(3), cdk.Duration.seconds(15))


def feature_flags() -> dict[str, object]:
    """cdk.json's context (feature flags, default settings): the integ stack synthesizes as ``cdk deploy`` would.

    Passed as ``post_cli_context`` so it wins over the recommended flags integ-runner passes."""
    return json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))["context"]


def payload(pattern: dict[str, object]) -> ExpectedResult:
    """An ``invoke_function`` answer whose JSON payload has (at least) ``pattern``."""
    return ExpectedResult.object_like({"Payload": Match.serialized_json(Match.object_like(pattern))})


def wait(call: IApiCall, timing: tuple[cdk.Duration, cdk.Duration]) -> IApiCall:
    total, interval = timing
    return call.wait_for_assertions(total_timeout=total, interval=interval, backoff_rate=1)


def build(app: cdk.App) -> IntegTest:
    stack, harness = integ_stack(app)
    integ = IntegTest(
        app,
        "ChatAnalyticsInteg",
        test_cases=[stack],
        # Deploy once, from nothing: the update workflow would first deploy the previous snapshot.
        stack_update_workflow=False,
        cdk_command_options=CdkCommands(
            deploy=DeployCommand(args=DeployOptions(require_approval=RequireApproval.NEVER)),
            destroy=DestroyCommand(args=DestroyOptions(force=True)),
        ),
    )
    add_assertions(integ, stack.table.events_table.table_name, harness)
    return integ


def invoke(integ: IntegTest, harness: IntegHarness, action: str) -> IApiCall:
    return integ.assertions.invoke_function(function_name=harness.probe.function_name, payload=json.dumps({"action": action}))


def add_assertions(integ: IntegTest, table_name: str, harness: IntegHarness) -> None:
    assertions = integ.assertions
    full = REQUESTS[0]

    # 1. A signed SendMessageBatch -> the table -> the lake (Parquet, read by Athena) -> equal reports.
    send = invoke(integ, harness, "send").expect(payload({"sent": 2 * len(REQUESTS), "failed": []}))
    stored = assertions.aws_api_call(
        "DynamoDB",
        "getItem",
        {"TableName": table_name, "Key": {"requestId": {"S": full["requestId"]}}, "ConsistentRead": True},
    ).expect(
        ExpectedResult.object_like(
            {
                "Item": {
                    "requestId": {"S": full["requestId"]},
                    "query": {"S": full["query"]},
                    "matchType": {"S": full["matchType"]},
                    "matchScore": {"N": str(full["matchScore"])},
                }
            }
        )
    )
    reports = invoke(integ, harness, "reports").expect(
        payload({"equal": True, "requests": len(REQUESTS), "lakeRequests": len(REQUESTS), "otherFiles": 0})
    )
    send.next(wait(stored, STORED_WAIT)).next(wait(reports, LAKE_WAIT))

    # 2. ALARM reaches the subscriber through CloudWatch's action, ALARM -> OK through the recovery rule.
    alarm = harness.notify_alarm_name
    set_alarm = assertions.aws_api_call(
        "CloudWatch", "setAlarmState", {"AlarmName": alarm, "StateValue": "ALARM", "StateReason": "integration test: ALARM"}
    )
    alarmed = invoke(integ, harness, "notifications").expect(payload({"alarm": Match.array_with([alarm])}))
    set_ok = assertions.aws_api_call(
        "CloudWatch", "setAlarmState", {"AlarmName": alarm, "StateValue": "OK", "StateReason": "integration test: back to OK"}
    )
    recovered = invoke(integ, harness, "notifications").expect(payload({"recovered": Match.array_with([alarm])}))
    set_alarm.next(wait(alarmed, NOTIFY_WAIT)).next(set_ok).next(wait(recovered, NOTIFY_WAIT))

    # 3. A poison message: refused on each of its 3 receives, then in the DLQ.
    poison = invoke(integ, harness, "poison").expect(payload({"sent": 1}))
    dead_lettered = assertions.aws_api_call(
        "SQS",
        "getQueueAttributes",
        {"QueueUrl": harness.dead_letter_queue_url, "AttributeNames": ["ApproximateNumberOfMessages"]},
    ).expect(ExpectedResult.object_like({"Attributes": {"ApproximateNumberOfMessages": "1"}}))
    receives = invoke(integ, harness, "receives").expect(payload({"invalidReceives": 3}))
    poison.next(wait(dead_lettered, DEAD_LETTER_WAIT)).next(wait(receives, LOGS_WAIT))


def main() -> int:
    app = cdk.App(post_cli_context=feature_flags())
    build(app)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
