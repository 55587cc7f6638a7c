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
    allows = [st for st in statements if st["Effect"] == "Allow" and st["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
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
    """The conditions match alarms by name; an alarm outside the prefix would notify nobody. Twelve alarms:
    the ten of the pipeline and the lake compaction's two (``lakeCompaction``, on by default)."""
    s: Synthesized = request.getfixturevalue(stage)
    alarms = resources_of(s.raw, "AWS::CloudWatch::Alarm").values()
    assert len(alarms) == 12
    names = {alarm["Properties"]["AlarmName"] for alarm in alarms}
    assert {f"ChatAnalytics-{stage}-LakeCompactionFailed", f"ChatAnalytics-{stage}-LakeCompactionNotStarted"} <= names
    for alarm in alarms:
        assert alarm["Properties"]["AlarmName"].startswith(f"ChatAnalytics-{stage}-")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_topic_key_lets_cloudwatch_encrypt_for_this_stacks_alarms_only(stage: str, request: pytest.FixtureRequest) -> None:
    """CloudWatch publishing to an SSE-KMS topic needs kms:Decrypt and kms:GenerateDataKey* on the key
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services),
    conditioned like the topic grant. The administrators' statement (account root) is what lets IAM
    policies use the key; the third is EventBridge's (below)."""
    s: Synthesized = request.getfixturevalue(stage)
    _, _, key = topic_and_key(s)
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert [st["Principal"] for st in statements] == [ROOT, {"Service": "cloudwatch.amazonaws.com"}, {"Service": "events.amazonaws.com"}]
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
    would mail twelve "OK" messages (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html).
    Alarms act on ALARM only; an EventBridge rule forwards ALARM -> OK and nothing else
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html)."""
    s: Synthesized = request.getfixturevalue(stage)
    topic_id, _, _ = topic_and_key(s)
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


def rule_arn(stage: str) -> dict:
    return {
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


def recovery_target(s: Synthesized) -> dict:
    [rule] = resources_of(s.raw, "AWS::Events::Rule").values()
    [target] = rule["Properties"]["Targets"]
    return target


def recovery_dlq(s: Synthesized, stage: str) -> tuple[str, dict]:
    [(queue_id, queue)] = [
        (name, r)
        for name, r in resources_of(s.raw, "AWS::SQS::Queue").items()
        if r["Properties"]["QueueName"] == f"ChatAnalytics-{stage}-alarm-recovered-dlq"
    ]
    return queue_id, queue


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_recovery_rule_publishes_through_resource_policies_without_a_role(stage: str, request: pytest.FixtureRequest) -> None:
    """EventBridge's "Using resource-based policies" page says, in one version, not to give SNS targets a
    RoleArn ("event delivery may fail, particularly for ... Amazon SNS targets with AWS KMS encryption
    enabled. Use resource-based policies only"), in another that either works and that without an execution
    role EventBridge uses the target's resource-based policy
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html). No role satisfies
    both; a role fails under the first. So: no RoleArn, and no role anywhere that EventBridge can assume."""
    s: Synthesized = request.getfixturevalue(stage)
    assert "RoleArn" not in recovery_target(s)
    for role in resources_of(s.raw, "AWS::IAM::Role").values():
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            assert statement["Principal"] != {"Service": "events.amazonaws.com"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_topic_lets_eventbridge_publish_for_the_recovery_rule_whenever_it_names_the_rule(
    stage: str, request: pytest.FixtureRequest
) -> None:
    """The topic policy grants ``events.amazonaws.com`` ``sns:Publish`` (EventBridge's SNS permissions,
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions).
    That page says Condition blocks cannot be used in SNS topic policies for EventBridge (the publish may
    carry no aws:SourceArn or aws:SourceAccount), so a plain ``ArnEquals`` could deny every recovery. The
    conditions are ``...IfExists``: a request that names a rule or an account must name this stack's rule
    and this account (confused-deputy protection, https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html);
    one that names none is still delivered. The IfExists operators are IAM's
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists)."""
    s: Synthesized = request.getfixturevalue(stage)
    topic_id, _, _ = topic_and_key(s)
    [statement] = [st for st in topic_policy_statements(s) if st.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert statement == {
        "Sid": "AllowAlarmRecoveredRuleToPublish",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": {"Ref": topic_id},
        "Condition": {
            "ArnEqualsIfExists": {"aws:SourceArn": rule_arn(stage)},
            "StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT},
        },
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_topic_key_lets_eventbridge_encrypt_for_this_stacks_topics_only(stage: str, request: pytest.FixtureRequest) -> None:
    """EventBridge publishing to an SSE-KMS topic needs kms:Decrypt and kms:GenerateDataKey* on the topic's
    customer-managed key, and SNS's page says aws:SourceAccount and aws:SourceArn are not supported in the key
    policy for EventBridge-to-encrypted-topic delivery
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).
    What it allows: ``kms:EncryptionContext:aws:sns:topicArn``, the encryption context SNS sends with every
    data-key request (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-encryption-context).
    The key cannot name the topic (the topic names the key), so it names this stack's topics by the name
    CloudFormation generates for a topic without TopicName, which starts with the stack's name
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-sns-topic.html#cfn-sns-topic-topicname)."""
    s: Synthesized = request.getfixturevalue(stage)
    _, _, key = topic_and_key(s)
    [statement] = [st for st in key["Properties"]["KeyPolicy"]["Statement"] if st["Principal"] == {"Service": "events.amazonaws.com"}]
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert statement["Resource"] == "*"
    topics_of_this_stack = {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":sns:", {"Ref": "AWS::Region"}, ":", ACCOUNT, f":ChatAnalytics-{stage}-*"]]
    }
    assert statement["Condition"] == {"StringLike": {"kms:EncryptionContext:aws:sns:topicArn": topics_of_this_stack}}
    assert "aws:Source" not in json.dumps(statement)
    [topic] = resources_of(s.raw, "AWS::SNS::Topic").values()
    assert "TopicName" not in topic["Properties"], "a named topic would not match the stack-name pattern"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_recovery_target_retries_then_dead_letters_to_a_standard_sse_sqs_queue_only_the_rule_may_send_to(
    stage: str, request: pytest.FixtureRequest
) -> None:
    """EventBridge retries a failed delivery as its target's retry policy says (maximum event age 60 s to
    24 h, 0 to 185 attempts) and then sends the event to the target's dead-letter queue, which must be a
    standard queue in the same account and region, whose policy lets ``events.amazonaws.com``
    ``sqs:SendMessage`` with ``aws:SourceArn`` = the rule
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html,
    https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_RetryPolicy.html). The queue is encrypted
    with SSE-SQS, which needs no key grant for a service to send
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-server-side-encryption.html),
    and refuses plain HTTP like every queue of the stack."""
    s: Synthesized = request.getfixturevalue(stage)
    target = recovery_target(s)
    queue_id, queue = recovery_dlq(s, stage)
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    retry = target["RetryPolicy"]
    assert retry == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 24}
    assert 60 <= retry["MaximumEventAgeInSeconds"] <= 86400 and 0 <= retry["MaximumRetryAttempts"] <= 185
    props = queue["Properties"]
    assert "FifoQueue" not in props and not props["QueueName"].endswith(".fifo")
    assert props["SqsManagedSseEnabled"] is True and "KmsMasterKeyId" not in props
    assert props["MessageRetentionPeriod"] == 14 * 24 * 3600
    [policy] = [p for p in resources_of(s.raw, "AWS::SQS::QueuePolicy").values() if p["Properties"]["Queues"] == [{"Ref": queue_id}]]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    [allow] = [st for st in statements if st["Effect"] == "Allow"]
    assert allow == {
        "Sid": "AllowAlarmRecoveredRuleToDeadLetter",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn(stage)}},
    }
    [deny] = [st for st in statements if st["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Principal"] == {"AWS": "*"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_broken_recovery_path_is_alarmed_through_cloudwatch_not_through_the_rule(stage: str, request: pytest.FixtureRequest) -> None:
    """EventBridge counts deliveries that failed in ``FailedInvocations`` (namespace AWS/Events, dimension
    RuleName) (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html); what it gave up
    on waits in the dead-letter queue (``ApproximateNumberOfMessagesVisible``). Both alarms notify the topic
    through CloudWatch's own grant (above), so they mail even when the rule's grants are what broke; their
    runbook entries exist (docs/runbook.md)."""
    s: Synthesized = request.getfixturevalue(stage)
    topic_id, _, _ = topic_and_key(s)
    queue_id, _ = recovery_dlq(s, stage)
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in resources_of(s.raw, "AWS::CloudWatch::Alarm").values()}
    failed = alarms[f"ChatAnalytics-{stage}-RecoveryFailedInvocations"]
    assert (failed["Namespace"], failed["MetricName"], failed["Statistic"]) == ("AWS/Events", "FailedInvocations", "Sum")
    assert failed["Dimensions"] == [{"Name": "RuleName", "Value": f"ChatAnalytics-{stage}-alarm-recovered"}]
    assert (failed["Threshold"], failed["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    dead = alarms[f"ChatAnalytics-{stage}-RecoveryDeadLetters"]
    assert (dead["Namespace"], dead["MetricName"], dead["Statistic"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert (dead["Threshold"], dead["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    for alarm in (failed, dead):
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    runbook = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
    assert "### RecoveryFailedInvocations" in runbook and "### RecoveryDeadLetters" in runbook


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_resource_policy_grants_exactly_what_its_service_needs(stage: str, request: pytest.FixtureRequest) -> None:
    """The full inventory of resource-based grants. Anything new must be added here on purpose:

    * queues: TLS-only denies, no allow (the processor reads through its role; SSE-SQS needs no key grant,
      https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-server-side-encryption.html);
    * the topic and its key: CloudWatch and EventBridge, conditioned (above); the key's administrators;
    * the recovery rule's dead-letter queue: EventBridge, for that rule only (above);
    * role trust: Lambda for the processor, Firehose (conditioned on this account) for the lake's delivery
      stream, EventBridge Scheduler (conditioned on this account, below) for the lake's compaction; no role
      for EventBridge (the recovery rule has none);
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
            ("AWS::SNS::TopicPolicy", json.dumps({"Service": "events.amazonaws.com"}), True),
            ("AWS::KMS::Key", json.dumps(ROOT, sort_keys=True), False),
            ("AWS::KMS::Key", json.dumps({"Service": "cloudwatch.amazonaws.com"}), True),
            ("AWS::KMS::Key", json.dumps({"Service": "events.amazonaws.com"}), True),
            ("AWS::SQS::QueuePolicy", json.dumps({"Service": "events.amazonaws.com"}), True),
            ("AWS::IAM::Role", json.dumps({"Service": "lambda.amazonaws.com"}), False),
            ("AWS::IAM::Role", json.dumps({"Service": "firehose.amazonaws.com"}), True),
            ("AWS::IAM::Role", json.dumps({"Service": "scheduler.amazonaws.com"}), True),  # the compaction's schedule
            ("AWS::IAM::Role", json.dumps({"Service": "scheduler.amazonaws.com"}), True),  # the summaries' schedule
        ]
    )
    recovery_dlq_id, _ = recovery_dlq(s, stage)
    for policy in resources_of(s.raw, "AWS::SQS::QueuePolicy").values():
        if policy["Properties"]["Queues"] != [{"Ref": recovery_dlq_id}]:
            assert {st["Effect"] for st in policy["Properties"]["PolicyDocument"]["Statement"]} == {"Deny"}
    [bucket_policy] = resources_of(s.raw, "AWS::S3::BucketPolicy").values()
    assert {st["Effect"] for st in bucket_policy["Properties"]["PolicyDocument"]["Statement"]} == {"Deny"}
    for policy in resources_of(s.raw, "AWS::IAM::ManagedPolicy").values():
        assert all("Principal" not in st for st in policy["Properties"]["PolicyDocument"]["Statement"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_only_this_accounts_scheduler_may_assume_the_lake_schedules_roles(stage: str, request: pytest.FixtureRequest) -> None:
    """EventBridge Scheduler assumes a schedule's execution role as ``scheduler.amazonaws.com``. Its confused-deputy
    page recommends ``aws:SourceAccount`` and/or ``aws:SourceArn`` in the role's trust policy: ``aws:SourceAccount``
    lets any schedule of that account use the role, ``aws:SourceArn`` (a schedule group's ARN, never a schedule's)
    one group's only (https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html,
    https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role). As built:
    this account's schedules only (``StringEquals aws:SourceAccount``), so a schedule of another account naming
    these roles cannot assume them. The roles are the two lake schedules' targets' (the compaction's, the summaries'),
    one each; no other role trusts the scheduler."""
    s: Synthesized = request.getfixturevalue(stage)
    trusting = {
        role_id: role
        for role_id, role in resources_of(s.raw, "AWS::IAM::Role").items()
        if any(
            st["Principal"] == {"Service": "scheduler.amazonaws.com"} for st in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        )
    }
    assert len(trusting) == 2
    for role in trusting.values():
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            }
        ]
    schedules = {schedule["Properties"]["Name"]: schedule for schedule in resources_of(s.raw, "AWS::Scheduler::Schedule").values()}
    assert set(schedules) == {f"ChatAnalytics-{stage}-lake-compaction", f"ChatAnalytics-{stage}-lake-summary"}
    assert {schedule["Properties"]["GroupName"] for schedule in schedules.values()} == {f"ChatAnalytics-{stage}-lake"}
    targets = [schedule["Properties"]["Target"]["RoleArn"] for schedule in schedules.values()]
    assert sorted(json.dumps(target) for target in targets) == sorted(json.dumps({"Fn::GetAtt": [role_id, "Arn"]}) for role_id in trusting)


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
