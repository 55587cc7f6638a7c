"""What AWS enforces on the template and moto does not: every resource and key policy, checked for what
each service principal needs on real AWS, and nothing more.

moto's CloudFormation creates none of the topic policy, the alarms or their notifications, and
checks no resource policy for a service principal, so these rules are asserted here, each with the
AWS documentation page it comes from.
"""

from __future__ import annotations

import json

import pytest

from tests.cdk.conftest import REPO, Synthesized, resources_of

ACCOUNT = {"Ref": "AWS::AccountId"}
ROOT = {"AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", ACCOUNT, ":root"]]}}


def alarm_arn_prefix(stage: str) -> dict:
    return {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:", {"Ref": "AWS::Region"}, ":", ACCOUNT, f":alarm:ChatAnalytics-{stage}-"],
        ]
    }


def alarms_of_this_stack(stage: str) -> dict:
    """``aws:SourceAccount`` and ``aws:SourceArn`` naming this stack's alarms (confused-deputy protection)."""
    parts = alarm_arn_prefix(stage)["Fn::Join"][1]
    pattern = {"Fn::Join": ["", [*parts[:-1], parts[-1] + "*"]]}
    return {"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {"aws:SourceArn": pattern}}


def topic_and_key(s: Synthesized) -> tuple[str, str, dict]:
    [topic_id] = resources_of(s.raw, "AWS::SNS::Topic")
    [(key_id, key)] = resources_of(s.raw, "AWS::KMS::Key").items()
    return topic_id, key_id, key


def topic_policy_statements(s: Synthesized) -> list[dict]:
    topic_id, _, _ = topic_and_key(s)
    [policy] = resources_of(s.raw, "AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    return policy["Properties"]["PolicyDocument"]["Statement"]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cloudwatch_may_publish_to_the_alarm_topic_for_this_stacks_alarms_only(stage: str, request: pytest.FixtureRequest) -> None:
    """A CloudFormation topic policy replaces SNS's default policy, so it must grant CloudWatch
    ``sns:Publish`` itself, or every alarm fails with "not authorized to perform SNS:Publish"
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html,
    https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html#source-account-versus-source-owner)."""
    s: Synthesized = request.getfixturevalue(stage)
    topic_id, _, _ = topic_and_key(s)
    statements = topic_policy_statements(s)
    allows = [st for st in statements if st["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "AllowCloudWatchAlarmsToPublish",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": {"Ref": topic_id},
            "Condition": alarms_of_this_stack(stage),
        }
    ]
    [deny] = [st for st in statements if st["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Principal"] == "*"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_alarm_name_falls_under_the_grants_source_arn(stage: str, request: pytest.FixtureRequest) -> None:
    """The conditions match alarms by name; an alarm outside the prefix would notify nobody."""
    s: Synthesized = request.getfixturevalue(stage)
    alarms = resources_of(s.raw, "AWS::CloudWatch::Alarm").values()
    assert len(alarms) == 8
    for alarm in alarms:
        assert alarm["Properties"]["AlarmName"].startswith(f"ChatAnalytics-{stage}-")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_topic_key_lets_cloudwatch_encrypt_for_this_stacks_alarms_only(stage: str, request: pytest.FixtureRequest) -> None:
    """CloudWatch publishing to an SSE-KMS topic needs kms:Decrypt and kms:GenerateDataKey* on the key
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services),
    conditioned like the topic grant. The administrators' statement (account root) is what lets IAM
    policies, such as the recovery rule's role, use the key."""
    s: Synthesized = request.getfixturevalue(stage)
    _, _, key = topic_and_key(s)
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert [st["Principal"] for st in statements] == [ROOT, {"Service": "cloudwatch.amazonaws.com"}]
    cloudwatch = statements[1]
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"] == alarms_of_this_stack(stage)


def test_the_topic_key_does_not_outlive_a_dev_stack(dev: Synthesized, prod: Synthesized) -> None:
    """A retained KMS key costs $1 a month after its stack is gone; dev's is scheduled for deletion with
    the 7-day minimum waiting period (https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html)."""
    for s, policy in ((dev, "Delete"), (prod, "Retain")):
        _, _, key = topic_and_key(s)
        assert key["DeletionPolicy"] == policy and key["UpdateReplacePolicy"] == policy
        assert key["Properties"]["PendingWindowInDays"] == 7


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_alarms_notify_on_alarm_and_recoveries_only_after_an_alarm(stage: str, request: pytest.FixtureRequest) -> None:
    """An OK action fires on every transition into OK, INSUFFICIENT_DATA -> OK included, so a fresh deploy
    would mail five "OK" messages (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html).
    Alarms act on ALARM only; an EventBridge rule forwards ALARM -> OK and nothing else
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html)."""
    s: Synthesized = request.getfixturevalue(stage)
    topic_id, key_id, _ = topic_and_key(s)
    for alarm in resources_of(s.raw, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": topic_id}]
        assert "OKActions" not in props and "InsufficientDataActions" not in props
    [rule] = resources_of(s.raw, "AWS::Events::Rule").values()
    props = rule["Properties"]
    assert props["Name"] == f"ChatAnalytics-{stage}-alarm-recovered" and props["State"] == "ENABLED"
    assert props["EventPattern"] == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [{"prefix": alarm_arn_prefix(stage)}],
        "detail": {"state": {"value": ["OK"]}, "previousState": {"value": ["ALARM"]}},
    }
    [target] = props["Targets"]
    assert target["Arn"] == {"Ref": topic_id}
    assert "alarmName" in json.dumps(target["InputTransformer"])
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = s.raw["Resources"][role_id]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    rule_arn = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":events:",
                {"Ref": "AWS::Region"},
                ":",
                ACCOUNT,
                f":rule/ChatAnalytics-{stage}-alarm-recovered",
            ],
        ]
    }
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": rule_arn}}
    [policy] = [
        p["Properties"] for p in resources_of(s.raw, "AWS::IAM::Policy").values() if p["Properties"].get("Roles") == [{"Ref": role_id}]
    ]
    assert sorted(json.dumps(st, sort_keys=True) for st in policy["PolicyDocument"]["Statement"]) == sorted(
        json.dumps(st, sort_keys=True)
        for st in [
            {"Action": "sns:Publish", "Effect": "Allow", "Resource": {"Ref": topic_id}},
            {"Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Effect": "Allow", "Resource": {"Fn::GetAtt": [key_id, "Arn"]}},
        ]
    )


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_resource_policy_grants_exactly_what_its_service_needs(stage: str, request: pytest.FixtureRequest) -> None:
    """The full inventory of resource-based grants. Anything new must be added here on purpose:

    * queues: TLS-only denies, no allow (the processor reads through its role; SSE-SQS needs no key grant,
      https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-server-side-encryption.html);
    * the topic and its key: CloudWatch, conditioned (above); the key's administrators;
    * role trust: Lambda for the processor, EventBridge (conditioned) for the recovery rule, Firehose
      (conditioned on this account) for the lake's delivery stream;
    * the lake bucket: a TLS-only deny, no allow (Firehose and the report readers go through IAM);
    * identity policies (``AWS::IAM::Policy``, the report reader's ``AWS::IAM::ManagedPolicy``) name no principal;
    * no secret, table, function or log-group resource policy, no Lambda permission (an SQS event source
      polls with the function's role: https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#events-sqs-permissions).
    """
    s: Synthesized = request.getfixturevalue(stage)
    grants = []
    for logical_id, resource in s.raw["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        for key in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument"):
            if key not in props or kind in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
                continue
            for statement in props[key]["Statement"]:
                if statement["Effect"] == "Allow":
                    grants.append((kind, json.dumps(statement["Principal"], sort_keys=True), bool(statement.get("Condition"))))
        assert kind not in {"AWS::Lambda::Permission", "AWS::SecretsManager::ResourcePolicy", "AWS::Logs::ResourcePolicy"}, logical_id
        assert "ResourcePolicy" not in props, logical_id
    assert sorted(grants) == sorted(
        [
            ("AWS::SNS::TopicPolicy", json.dumps({"Service": "cloudwatch.amazonaws.com"}), True),
            ("AWS::KMS::Key", json.dumps(ROOT, sort_keys=True), False),
            ("AWS::KMS::Key", json.dumps({"Service": "cloudwatch.amazonaws.com"}), True),
            ("AWS::IAM::Role", json.dumps({"Service": "lambda.amazonaws.com"}), False),
            ("AWS::IAM::Role", json.dumps({"Service": "events.amazonaws.com"}), True),
            ("AWS::IAM::Role", json.dumps({"Service": "firehose.amazonaws.com"}), True),
        ]
    )
    for policy in resources_of(s.raw, "AWS::SQS::QueuePolicy").values():
        assert {st["Effect"] for st in policy["Properties"]["PolicyDocument"]["Statement"]} == {"Deny"}
    [bucket_policy] = resources_of(s.raw, "AWS::S3::BucketPolicy").values()
    assert {st["Effect"] for st in bucket_policy["Properties"]["PolicyDocument"]["Statement"]} == {"Deny"}
    for policy in resources_of(s.raw, "AWS::IAM::ManagedPolicy").values():
        assert all("Principal" not in st for st in policy["Properties"]["PolicyDocument"]["Statement"])


def test_the_processor_role_has_what_an_sqs_event_source_needs(dev: Synthesized) -> None:
    """Lambda's SQS poller uses the function's role: sqs:ReceiveMessage, sqs:DeleteMessage and
    sqs:GetQueueAttributes on the queue (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#events-sqs-permissions)."""
    [queue_id] = [
        name for name, r in resources_of(dev.raw, "AWS::SQS::Queue").items() if r["Properties"]["QueueName"].endswith("-events.fifo")
    ]
    actions = set()
    for policy in resources_of(dev.raw, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Resource") == {"Fn::GetAtt": [queue_id, "Arn"]} and statement["Action"] != "sqs:SendMessage":
                actions |= set(statement["Action"])
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= actions


def test_cdk_json_sets_only_real_feature_flags() -> None:
    """``@aws-cdk/aws-sqs:enforceTLS`` is not a CDK feature flag (TLS is enforced by ``enforce_ssl``)."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    assert "@aws-cdk/aws-sqs:enforceTLS" not in context
