"""The integration test's stack: the real ``ChatAnalyticsStack`` for a throwaway stage, plus what only the test needs.

``integ_stack`` builds ``ChatAnalyticsStack`` exactly as ``app.py`` does (same construct, same
settings code, same feature flags from ``cdk.json``), for the stage ``integ`` (stack
``ChatAnalytics-integ``: its queues, table, stream, workgroup, alarms and secret have names of their
own, apart from dev's and prod's), and then changes only what a throwaway copy needs:

* **the lake's buffer is 60 s** (Firehose's minimum) instead of 900, so a row reaches S3 within the
  test. There is no setting for it (``analytics_stack.py`` passes ``buffer_interval_s=900``): the
  delivery stream's ``BufferingHints.IntervalInSeconds`` is overridden here.
* **the lake bucket is deleted with the stack** (it is retained in every stage, see ``stacks/lake.py``):
  its removal policy becomes DESTROY and ``Custom::EmptyLakeBucket`` (the probe) empties it on delete.
  The delivery stream depends on that resource, so CloudFormation deletes the stream (no more writes)
  before the bucket is emptied, and empties it before deleting the bucket.
* **a test subscriber of the alarm topic**: an SQS queue (SSE-SQS, TLS only, raw delivery) that shows
  what the topic delivered, from CloudWatch (ALARM) and from the recovery rule (ALARM -> OK).
* **the probe** (``integ/probe/probe.py``): a Lambda the assertions invoke (see its docstring), with
  ``chat_analytics_ops``'s report code. Its role reads the producer secret, queries the table, runs
  Athena through the stack's own ``ReportReaderPolicy`` (so the test also proves that policy is
  enough for ``report --engine athena``), reads the subscriber queue and the processor's log group,
  and empties the lake bucket.

Everything else keeps the non-production defaults, which already delete with the stack: table, DLQ,
log groups; the topic's KMS key is scheduled for deletion (7 days, not billed meanwhile).
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.analytics_stack import ChatAnalyticsStack
from stacks.settings import Settings

REPO = Path(__file__).resolve().parent.parent
PROBE_SOURCE = Path(__file__).resolve().parent / "probe" / "probe.py"
OPS_PACKAGE = REPO / "ops" / "src" / "chat_analytics_ops"
# What the probe imports of the operations CLI: the report from the table and from the lake (boto3 only).
OPS_FILES = (
    "__init__.py",
    "contract.py",
    "errors.py",
    "timeouts.py",
    "render.py",
    "report_model.py",
    "table_engine.py",
    "lake.py",
    "lake-columns.json",
    "rejected-columns.json",
    "sql/report.sql",
    "sql/compacted_days.sql",
    "sql/rejected.sql",
)

STAGE = "integ"
LAKE_BUFFER_S = 60  # Firehose's minimum buffer interval
PROBE_TIMEOUT_S = 120
# The alarm the notification test sets to ALARM and back: idle in the test (nothing is throttled), so no
# real datapoint competes with SetAlarmState; DeadLetters fires for real when the poison message lands.
NOTIFY_ALARM = "ProcessorThrottles"


def integ_settings(app: cdk.App) -> Settings:
    """The settings ``app.py`` builds from cdk.json's context, with dev's defaults, for the stage ``integ``.

    ``from_context`` accepts only dev and prod; the stage only names things (stack, Glue database,
    workgroup, queues, alarms), so dev's settings are read and the stage name replaced afterwards."""
    dev = Settings.from_context(lambda key: "dev" if key == "stage" else app.node.try_get_context(key))
    return dataclasses.replace(dev, stage=STAGE)


def stage_probe_asset() -> str:
    """A directory holding the probe and the part of ``chat_analytics_ops`` it imports.

    Only these files, copied by name: the asset's hash is the hash of their contents and relative
    paths, the same on every machine (no ``__pycache__`` or editor files can slip in)."""
    staging = Path(tempfile.mkdtemp(prefix="integ-probe-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)
    shutil.copyfile(PROBE_SOURCE, staging / "probe.py")
    for name in OPS_FILES:
        target = staging / "chat_analytics_ops" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(OPS_PACKAGE / name, target)
    return str(staging)


class IntegHarness(Construct):
    """The test-only additions to ``stack`` (see the module docstring): ``probe``, ``notification_queue``."""

    def __init__(self, stack: ChatAnalyticsStack, construct_id: str) -> None:
        super().__init__(stack, construct_id)
        settings = stack.settings
        lake = stack.lake
        self.notify_alarm_name = stack.monitoring.alarms[NOTIFY_ALARM].alarm_name
        self.dead_letter_queue_url = stack.queues.dead_letter_queue.queue_url

        lake.delivery_stream.add_property_override("ExtendedS3DestinationConfiguration.BufferingHints.IntervalInSeconds", LAKE_BUFFER_S)
        lake.lake_bucket.apply_removal_policy(cdk.RemovalPolicy.DESTROY)

        self.notification_queue = sqs.Queue(
            self,
            "AlarmNotifications",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.hours(2),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        stack.monitoring.alarm_topic.add_subscription(subscriptions.SqsSubscription(self.notification_queue, raw_message_delivery=True))

        log_group = logs.LogGroup(self, "ProbeLogGroup", retention=logs.RetentionDays.ONE_DAY, removal_policy=cdk.RemovalPolicy.DESTROY)
        self.probe = lambda_.Function(
            self,
            "Probe",
            description="Integration test probe: sends as the producer, compares the reports, reads notifications, empties the lake",
            runtime=lambda_.Runtime(settings.python_runtime, lambda_.RuntimeFamily.PYTHON),
            architecture=lambda_.Architecture.ARM_64,
            handler="probe.handler",
            code=lambda_.Code.from_asset(stage_probe_asset()),
            timeout=cdk.Duration.seconds(PROBE_TIMEOUT_S),
            memory_size=256,
            log_group=log_group,
            environment={
                "STACK_NAME": settings.stack_name,
                "PRODUCER_SECRET_NAME": stack.producer.secret_name,
                "TABLE_NAME": stack.table.events_table.table_name,
                "WORK_GROUP": lake.work_group.ref,
                "LAKE_DATABASE": lake.lake_database.ref,
                "LAKE_BUCKET": lake.lake_bucket.bucket_name,
                "NOTIFICATION_QUEUE_URL": self.notification_queue.queue_url,
                "PROCESSOR_LOG_GROUP": stack.processor.log_group.log_group_name,
            },
        )
        role = self.probe.role
        assert role is not None
        stack.producer.producer_secret.grant_read(role)
        stack.table.events_table.grant(role, "dynamodb:Query")
        role.add_managed_policy(lake.report_reader_policy)
        self.notification_queue.grant(role, "sqs:ReceiveMessage")
        stack.processor.log_group.grant(role, "logs:FilterLogEvents")
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[lake.lake_bucket.bucket_arn]))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[lake.lake_bucket.arn_for_objects("*")]))

        # On delete: after the delivery stream is gone, before the bucket is.
        emptier = cdk.CustomResource(
            self,
            "EmptyLakeBucket",
            service_token=self.probe.function_arn,
            resource_type="Custom::EmptyLakeBucket",
            properties={"BucketName": lake.lake_bucket.bucket_name},
        )
        emptier.node.add_dependency(self.probe)
        lake.delivery_stream.node.add_dependency(emptier)


def integ_stack(app: cdk.App) -> tuple[ChatAnalyticsStack, IntegHarness]:
    settings = integ_settings(app)
    stack = ChatAnalyticsStack(app, settings.stack_name, settings=settings, description="Chat analytics integration test (throwaway stage)")
    cdk.Tags.of(stack).add("project", "chat-analytics")
    cdk.Tags.of(stack).add("stage", settings.stage)
    return stack, IntegHarness(stack, "Integ")
