"""``Monitoring`` as a construct: built on a fresh stack from explicit props, with stand-in queues and function
made in the test stack, and each property that matters asserted with ``aws_cdk.assertions.Template`` (as AWS
Solutions Constructs test their patterns). The whole-app checks, with the AWS pages behind each grant, are in
test_aws_rules.py and test_stack_resources.py; these show what the construct itself makes of its props.

One app, two stacks, one synth for the module: ``MailStack`` (an e-mail subscriber, the key retained) and
``QuietStack`` (no subscriber, the key deleted with the stack).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from stacks.monitoring import Monitoring, MonitoringProps
from tests.cdk.conftest import logical_id, one_of, templates_of

ACCOUNT = {"Ref": "AWS::AccountId"}
PARTITION = {"Ref": "AWS::Partition"}
REGION = {"Ref": "AWS::Region"}
PREFIX = "Mon"
GREATER = "GreaterThanThreshold"
AT_LEAST = "GreaterThanOrEqualToThreshold"


@dataclass(frozen=True)
class Built:
    stack: Stack
    monitoring: Monitoring
    events_queue: sqs.Queue
    dead_letter_queue: sqs.Queue
    function: lambda_.Function
    template: Template

    def logical_id(self, construct: Any) -> str:
        return logical_id(self.stack, construct)

    def only(self, resource_type: str) -> tuple[str, dict]:
        return one_of(self.template, resource_type)


def build(app: App, name: str, *, alarm_email: str | None, retain_topic_key: bool) -> tuple[Stack, Monitoring, Any, Any, Any]:
    stack = Stack(app, name)
    events_queue = sqs.Queue(stack, "EventsQueue")
    dead_letter_queue = sqs.Queue(stack, "DeadLetterQueue")
    function = lambda_.Function(
        stack,
        "Function",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
    )
    monitoring = Monitoring(
        stack,
        "Monitoring",
        MonitoringProps(
            name_prefix=PREFIX,
            retain_topic_key=retain_topic_key,
            events_queue=events_queue,
            dead_letter_queue=dead_letter_queue,
            function=function,
            processor_timeout_s=20,
            oldest_message_age_threshold_s=120,
            alarm_email=alarm_email,
            dashboard_name=f"{name}-dashboard",
            metrics_namespace="TestNamespace",
            service_name="test-service",
            lake_stream_name="test-lake-stream",
        ),
    )
    return stack, monitoring, events_queue, dead_letter_queue, function


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    app = App()
    parts = {
        "mail": build(app, "MailStack", alarm_email="oncall@example.com", retain_topic_key=True),
        "quiet": build(app, "QuietStack", alarm_email=None, retain_topic_key=False),
    }
    templates = templates_of(app)
    return {key: Built(*part, templates[part[0].stack_name]) for key, part in parts.items()}


@pytest.fixture(scope="module")
def mail(built: dict[str, Built]) -> Built:
    return built["mail"]


def alarm_arn_pattern() -> dict:
    return {"Fn::Join": ["", ["arn:", PARTITION, ":cloudwatch:", REGION, ":", ACCOUNT, f":alarm:{PREFIX}-*"]]}


def rule_arn() -> dict:
    return {"Fn::Join": ["", ["arn:", PARTITION, ":events:", REGION, ":", ACCOUNT, f":rule/{PREFIX}-alarm-recovered"]]}


# What it makes --------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "subscriptions"), [("mail", 1), ("quiet", 0)])
def test_monitoring_makes_ten_alarms_one_topic_one_rule_one_queue_and_no_role(
    variant: str, subscriptions: int, built: dict[str, Built]
) -> None:
    """Beside the stand-ins (two queues, a function and its role): the key, the topic and its policy, ten alarms,
    the recovery rule and its dead-letter queue with its policy, the dashboard; the rule's target has no role."""
    b = built[variant]
    expected = {
        "AWS::KMS::Key": 1,
        "AWS::SNS::Topic": 1,
        "AWS::SNS::TopicPolicy": 1,
        "AWS::SNS::Subscription": subscriptions,
        "AWS::CloudWatch::Alarm": 10,
        "AWS::Events::Rule": 1,
        "AWS::SQS::Queue": 3,
        "AWS::SQS::QueuePolicy": 1,
        "AWS::CloudWatch::Dashboard": 1,
        "AWS::IAM::Role": 1,
        "AWS::Lambda::Function": 1,
    }
    for resource_type, count in expected.items():
        b.template.resource_count_is(resource_type, count)
    types = {resource["Type"] for resource in b.template.to_json()["Resources"].values()}
    assert types == {t for t, count in expected.items() if count}
    [role_id] = b.template.find_resources("AWS::IAM::Role")
    assert role_id == b.logical_id(b.function.role), "the only role is the stand-in function's"


def test_the_email_subscriber_is_the_props_address(mail: Built) -> None:
    mail.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": {"Ref": mail.logical_id(mail.monitoring.alarm_topic)}},
    )


@pytest.mark.parametrize(("variant", "policy"), [("mail", "Retain"), ("quiet", "Delete")])
def test_the_topic_key_rotates_and_is_retained_only_when_the_props_say_so(variant: str, policy: str, built: dict[str, Built]) -> None:
    b = built[variant]
    b.template.has_resource(
        "AWS::KMS::Key",
        {
            "DeletionPolicy": policy,
            "UpdateReplacePolicy": policy,
            "Properties": Match.object_like({"EnableKeyRotation": True, "PendingWindowInDays": 7}),
        },
    )
    b.template.has_resource_properties(
        "AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [b.logical_id(b.monitoring.topic_key), "Arn"]}, "TopicName": Match.absent()}
    )


def test_the_topic_and_key_grant_cloudwatch_for_this_prefixs_alarms_and_eventbridge_for_the_recovery_rule(mail: Built) -> None:
    """The grants, by principal and condition (the pages behind them: test_aws_rules.py)."""
    topic_id = mail.logical_id(mail.monitoring.alarm_topic)
    alarms_of_this_stack = {"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {"aws:SourceArn": alarm_arn_pattern()}}
    _, topic_policy = mail.only("AWS::SNS::TopicPolicy")
    assert topic_policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    grants = {st["Sid"]: st for st in topic_policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"}
    assert grants == {
        "AllowCloudWatchAlarmsToPublish": {
            "Sid": "AllowCloudWatchAlarmsToPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": {"Ref": topic_id},
            "Condition": alarms_of_this_stack,
        },
        "AllowAlarmRecoveredRuleToPublish": {
            "Sid": "AllowAlarmRecoveredRuleToPublish",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": {"Ref": topic_id},
            "Condition": {"ArnEqualsIfExists": {"aws:SourceArn": rule_arn()}, "StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}},
        },
    }
    [deny] = [st for st in topic_policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    _, key = mail.only("AWS::KMS::Key")
    statements = {st["Sid"]: st for st in key["Properties"]["KeyPolicy"]["Statement"] if "Sid" in st}
    assert statements["AllowCloudWatchAlarmsToUseTheKey"] == {
        "Sid": "AllowCloudWatchAlarmsToUseTheKey",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": alarms_of_this_stack,
    }
    topics_of_this_stack = {"Fn::Join": ["", ["arn:", PARTITION, ":sns:", REGION, ":", ACCOUNT, ":MailStack-*"]]}
    assert statements["AllowEventBridgeToUseTheKeyForThisStacksTopics"] == {
        "Sid": "AllowEventBridgeToUseTheKeyForThisStacksTopics",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"StringLike": {"kms:EncryptionContext:aws:sns:topicArn": topics_of_this_stack}},
    }
    assert len(key["Properties"]["KeyPolicy"]["Statement"]) == 3, "the account's root statement and these two"


def expected_alarms(b: Built) -> dict[str, tuple]:
    """Alarm name -> (namespace, metric, statistic, period, dimensions, threshold, comparison), from the props."""
    events_queue = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [b.logical_id(b.events_queue), "QueueName"]}}]
    dead_letters = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [b.logical_id(b.dead_letter_queue), "QueueName"]}}]
    recovery_dlq = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [b.logical_id(b.monitoring.recovery_dead_letter_queue), "QueueName"]}}]
    function = [{"Name": "FunctionName", "Value": {"Ref": b.logical_id(b.function)}}]
    stream = [{"Name": "DeliveryStreamName", "Value": "test-lake-stream"}]
    return {
        "OldestMessageAge": ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", 60, events_queue, 120, GREATER),
        "DeadLetters": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 60, dead_letters, 0, GREATER),
        "ProcessorErrors": ("AWS/Lambda", "Errors", "Sum", 60, function, 0, GREATER),
        "ProcessorThrottles": ("AWS/Lambda", "Throttles", "Sum", 60, function, 0, GREATER),
        "ProcessorDuration": ("AWS/Lambda", "Duration", "p99", 60, function, 16000, GREATER),  # 80% of 20 s
        "LakeDeliveryFailures": (
            "TestNamespace",
            "LakeDeliveryFailures",
            "Sum",
            300,
            [{"Name": "service", "Value": "test-service"}],
            1,
            AT_LEAST,
        ),
        "LakeFreshness": ("AWS/Firehose", "DeliveryToS3.DataFreshness", "Maximum", 300, stream, 1800, GREATER),
        "LakeConversionFailures": ("AWS/Firehose", "FailedConversion.Records", "Sum", 300, stream, 1, AT_LEAST),
        "RecoveryFailedInvocations": (
            "AWS/Events",
            "FailedInvocations",
            "Sum",
            300,
            [{"Name": "RuleName", "Value": f"{PREFIX}-alarm-recovered"}],
            1,
            AT_LEAST,
        ),
        "RecoveryDeadLetters": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 300, recovery_dlq, 0, GREATER),
    }


def test_each_alarm_watches_its_metric_of_the_props_resources_with_its_threshold(mail: Built) -> None:
    found = {}
    for alarm in mail.template.find_resources("AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        statistic = p.get("Statistic") or p.get("ExtendedStatistic")
        found[p["AlarmName"]] = (
            p["Namespace"],
            p["MetricName"],
            statistic,
            p["Period"],
            p["Dimensions"],
            p["Threshold"],
            p["ComparisonOperator"],
        )
    assert found == {f"{PREFIX}-{name}": spec for name, spec in expected_alarms(mail).items()}
    assert list(mail.monitoring.alarms) == list(expected_alarms(mail))


def test_every_alarm_notifies_the_topic_on_alarm_only_and_treats_no_data_as_healthy(mail: Built) -> None:
    topic = {"Ref": mail.logical_id(mail.monitoring.alarm_topic)}
    for alarm in mail.template.find_resources("AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        assert p["AlarmActions"] == [topic]
        assert "OKActions" not in p and "InsufficientDataActions" not in p
        assert (p["EvaluationPeriods"], p["DatapointsToAlarm"], p["TreatMissingData"]) == (1, 1, "notBreaching")
        assert p["AlarmDescription"], p["AlarmName"]


def test_the_recovery_rule_forwards_alarm_to_ok_of_this_prefix_to_the_topic_without_a_role(mail: Built) -> None:
    topic_id = mail.logical_id(mail.monitoring.alarm_topic)
    dlq_id = mail.logical_id(mail.monitoring.recovery_dead_letter_queue)
    mail.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": f"{PREFIX}-alarm-recovered",
            "State": "ENABLED",
            "EventPattern": {
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": [
                    {"prefix": {"Fn::Join": ["", ["arn:", PARTITION, ":cloudwatch:", REGION, ":", ACCOUNT, f":alarm:{PREFIX}-"]]}}
                ],
                "detail": {"state": {"value": ["OK"]}, "previousState": {"value": ["ALARM"]}},
            },
            "Targets": [
                {
                    "Id": Match.any_value(),
                    "Arn": {"Ref": topic_id},
                    "RoleArn": Match.absent(),
                    "InputTransformer": Match.object_like({"InputPathsMap": Match.object_like({"detail-alarmName": "$.detail.alarmName"})}),
                    "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}},
                    "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 24},
                }
            ],
        },
    )
    assert mail.stack.resolve(mail.monitoring.recovery_rule.rule_name) == {"Ref": mail.only("AWS::Events::Rule")[0]}


def test_the_recovery_dead_letter_queue_takes_only_the_rules_messages(mail: Built) -> None:
    dlq_id = mail.logical_id(mail.monitoring.recovery_dead_letter_queue)
    mail.template.has_resource(
        "AWS::SQS::Queue",
        {
            "DeletionPolicy": "Delete",
            "Properties": {
                "QueueName": f"{PREFIX}-alarm-recovered-dlq",
                "SqsManagedSseEnabled": True,
                "MessageRetentionPeriod": 14 * 24 * 3600,
            },
        },
    )
    _, policy = mail.only("AWS::SQS::QueuePolicy")
    assert policy["Properties"]["Queues"] == [{"Ref": dlq_id}]
    [allow] = [st for st in policy["Properties"]["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"]
    assert allow == {
        "Sid": "AllowAlarmRecoveredRuleToDeadLetter",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn()}},
    }


def test_the_dashboard_has_the_props_name_and_shows_the_props_resources(mail: Built) -> None:
    _, dashboard = mail.only("AWS::CloudWatch::Dashboard")
    assert dashboard["Properties"]["DashboardName"] == "MailStack-dashboard"
    cfn_dashboard = mail.monitoring.dashboard.node.default_child
    assert isinstance(cfn_dashboard, cloudwatch.CfnDashboard)
    body = str(mail.stack.resolve(cfn_dashboard.dashboard_body))
    for shown in (
        mail.logical_id(mail.events_queue),
        mail.logical_id(mail.dead_letter_queue),
        mail.logical_id(mail.function),
        mail.logical_id(mail.monitoring.recovery_dead_letter_queue),
        "test-lake-stream",
        "TestNamespace",
        "test-service",
        f"{PREFIX}-alarm-recovered",
    ):
        assert shown in body, shown
