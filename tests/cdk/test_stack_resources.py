"""Each property of the stack that matters, asserted on the synthesized templates."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from stacks.event_table import DAY_INDEX, DAY_INDEX_ATTRIBUTES
from stacks.processor import ASSET_DIR, powertools_layer_parameter
from tests.cdk.conftest import REPO, Synthesized, only_resource, resources_of

EVENTS_QUEUE = "ChatAnalytics-{stage}-events.fifo"
DLQ = "ChatAnalytics-{stage}-dlq.fifo"


def template(s: Synthesized) -> Template:
    """The assertions ``Template`` (``Synthesized.template`` is typed ``object`` to import it lazily)."""
    assert isinstance(s.template, Template)
    return s.template


def queue(s: Synthesized, stage: str, pattern: str) -> tuple[str, dict]:
    return only_resource(s.raw, "AWS::SQS::Queue", QueueName=pattern.format(stage=stage))


def function(s: Synthesized) -> tuple[str, dict]:
    functions = resources_of(s.raw, "AWS::Lambda::Function")
    assert len(functions) == 1, "the stack has exactly one function: the processor"
    return next(iter(functions.items()))


def tls_only_policy_for(s: Synthesized, queue_id: str) -> dict:
    policies = [p for p in resources_of(s.raw, "AWS::SQS::QueuePolicy").values() if p["Properties"]["Queues"] == [{"Ref": queue_id}]]
    assert len(policies) == 1
    return policies[0]["Properties"]["PolicyDocument"]


def assert_denies_insecure_transport(document: dict, queue_id: str) -> None:
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    } in document["Statement"]


# 1. Events queue ----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_events_queue_is_high_throughput_fifo_with_sse_and_explicit_dedup(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    _, events = queue(s, stage, EVENTS_QUEUE)
    props = events["Properties"]
    assert props["FifoQueue"] is True
    assert props["SqsManagedSseEnabled"] is True
    assert props["DeduplicationScope"] == "messageGroup"
    assert props["FifoThroughputLimit"] == "perMessageGroupId"
    assert props["ContentBasedDeduplication"] is False


def test_events_queue_enforces_tls(dev: Synthesized) -> None:
    events_id, _ = queue(dev, "dev", EVENTS_QUEUE)
    assert_denies_insecure_transport(tls_only_policy_for(dev, events_id), events_id)


def test_the_queue_props_derive_and_check_the_six_times_visibility_rule() -> None:
    from stacks.queues import EventQueuesProps

    props = EventQueuesProps(name_prefix="x", processor_timeout_s=30, retain_dead_letters=False)
    assert props.events_visibility_timeout_s == 6 * 30
    assert EventQueuesProps("x", 30, False, visibility_timeout_s=200).events_visibility_timeout_s == 200
    with pytest.raises(ValueError, match="under 6 x the processor's timeout"):
        EventQueuesProps("x", 30, False, visibility_timeout_s=179)


def test_events_queue_visibility_timeout_is_at_least_six_processor_timeouts(dev: Synthesized) -> None:
    _, events = queue(dev, "dev", EVENTS_QUEUE)
    _, fn = function(dev)
    assert events["Properties"]["VisibilityTimeout"] >= 6 * fn["Properties"]["Timeout"]


# 2. Dead-letter queue -------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_dead_letter_queue_is_fifo_encrypted_kept_14_days_and_tls_only(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    dlq_id, dlq = queue(s, stage, DLQ)
    props = dlq["Properties"]
    assert props["FifoQueue"] is True
    assert props["SqsManagedSseEnabled"] is True
    assert props["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert_denies_insecure_transport(tls_only_policy_for(s, dlq_id), dlq_id)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_events_queue_redrives_to_dlq_after_three_receives_and_dlq_accepts_only_it(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    dlq_id, dlq = queue(s, stage, DLQ)
    _, events = queue(s, stage, EVENTS_QUEUE)
    assert events["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 3}
    allow = dlq["Properties"]["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    assert len(allow["sourceQueueArns"]) == 1
    arn_parts = allow["sourceQueueArns"][0]["Fn::Join"][1]
    assert arn_parts[-1] == f":{EVENTS_QUEUE.format(stage=stage)}"
    assert {"Ref": "AWS::Region"} in arn_parts and {"Ref": "AWS::AccountId"} in arn_parts


def test_dead_letter_queue_survives_stack_deletion_in_prod_only(dev: Synthesized, prod: Synthesized) -> None:
    _, prod_dlq = queue(prod, "prod", DLQ)
    _, dev_dlq = queue(dev, "dev", DLQ)
    assert (prod_dlq["DeletionPolicy"], prod_dlq["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert dev_dlq["DeletionPolicy"] == "Delete"


# 3. Table -------------------------------------------------------------------------------------


def test_table_is_on_demand_with_pitr_ttl_request_key_and_day_index(dev: Synthesized) -> None:
    template(dev).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "requestId", "KeyType": "HASH"}],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "GlobalSecondaryIndexes": [
                Match.object_like(
                    {
                        "IndexName": DAY_INDEX,
                        "KeySchema": [{"AttributeName": "day", "KeyType": "HASH"}, {"AttributeName": "requestId", "KeyType": "RANGE"}],
                        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(DAY_INDEX_ATTRIBUTES)},
                    }
                )
            ],
        },
    )
    assert len(resources_of(dev.raw, "AWS::DynamoDB::GlobalTable")) == 0


def test_the_day_index_projects_what_the_report_reads_and_not_the_reasoning(dev: Synthesized) -> None:
    """A Query on a GSI returns only projected attributes; one the report asks for and the index lacks
    would silently read as missing (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Projections)."""
    from chat_analytics_ops.table_engine import PROJECTED

    [table] = resources_of(dev.raw, "AWS::DynamoDB::Table").values()
    [index] = table["Properties"]["GlobalSecondaryIndexes"]
    keys = {key["AttributeName"] for key in index["KeySchema"]} | {"requestId"}
    available = keys | set(index["Projection"]["NonKeyAttributes"])
    assert set(PROJECTED) <= available
    assert "reasoning" not in available and "sessionId" not in available


def test_table_is_protected_and_retained_in_prod_only(dev: Synthesized, prod: Synthesized) -> None:
    (_, prod_table), (_, dev_table) = (next(iter(resources_of(x.raw, "AWS::DynamoDB::Table").items())) for x in (prod, dev))
    assert prod_table["Properties"]["DeletionProtectionEnabled"] is True
    assert (prod_table["DeletionPolicy"], prod_table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert dev_table["Properties"]["DeletionProtectionEnabled"] is False
    assert dev_table["DeletionPolicy"] == "Delete"


# 4. Processor ---------------------------------------------------------------------------------


def test_processor_runtime_arch_limits_and_environment(dev: Synthesized) -> None:
    _, fn = function(dev)
    props = fn["Properties"]
    assert props["Runtime"].startswith("python3.")
    assert props["Architectures"] == ["arm64"]
    assert props["Timeout"] == 30 and props["MemorySize"] == 256
    assert props["Handler"] == "chat_processor.handler.handler"
    env = props["Environment"]["Variables"]
    table_id = next(iter(resources_of(dev.raw, "AWS::DynamoDB::Table")))
    assert env["TABLE_NAME"] == {"Ref": table_id}
    assert env["POWERTOOLS_SERVICE_NAME"] == "chat-analytics-processor"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "ChatAnalytics"
    assert env["EVENT_RETENTION_DAYS"] == "30"


def test_processor_uses_the_public_powertools_layer_resolved_from_ssm_at_deploy_time(dev: Synthesized) -> None:
    _, fn = function(dev)
    runtime = fn["Properties"]["Runtime"]
    [layer] = fn["Properties"]["Layers"]
    parameter = dev.raw["Parameters"][layer["Ref"]]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert parameter["Default"] == powertools_layer_parameter(runtime) == f"/aws/service/powertools/python/arm64/{runtime}/latest"


def test_processor_has_its_own_log_group_with_retention(dev: Synthesized, prod: Synthesized) -> None:
    for s, days in ((dev, 14), (prod, 90)):
        _, fn = function(s)
        log_id = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert s.raw["Resources"][log_id]["Type"] == "AWS::Logs::LogGroup"
        assert s.raw["Resources"][log_id]["Properties"]["RetentionInDays"] == days


def test_processor_code_asset_is_exactly_lambda_src_and_its_handler_is_in_the_package(dev: Synthesized) -> None:
    _, fn = function(dev)
    asset_hash = fn["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    staged = dev.assembly_dir / f"asset.{asset_hash}"
    shipped = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    expected = sorted(p.relative_to(ASSET_DIR).as_posix() for p in ASSET_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert shipped == expected
    # Lambda imports "module.function" from the asset's root: chat_processor/handler.py's handler.
    assert fn["Properties"]["Handler"] == "chat_processor.handler.handler"
    assert {"chat_processor/__init__.py", "chat_processor/handler.py"} <= set(shipped)


def test_processor_role_can_update_the_table_read_the_queue_and_write_its_logs_only(dev: Synthesized) -> None:
    _fn_id, fn = function(dev)
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    role = dev.raw["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    policies = [
        p["Properties"] for p in resources_of(dev.raw, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"].get("Roles", [])
    ]
    statements = [st for p in policies for st in p["PolicyDocument"]["Statement"]]
    events_id, _ = queue(dev, "dev", EVENTS_QUEUE)
    table_id = next(iter(resources_of(dev.raw, "AWS::DynamoDB::Table")))
    log_id = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    stream_id, rejected_id = resources_of(dev.raw, "AWS::KinesisFirehose::DeliveryStream")  # requests, rejected
    by_resource = {json.dumps(st["Resource"], sort_keys=True): sorted(_as_list(st["Action"])) for st in statements}
    assert all(st["Effect"] == "Allow" and "Condition" not in st for st in statements)
    assert by_resource == {
        json.dumps({"Fn::GetAtt": [log_id, "Arn"]}): ["logs:CreateLogStream", "logs:PutLogEvents"],
        json.dumps({"Fn::GetAtt": [table_id, "Arn"]}): ["dynamodb:UpdateItem"],
        json.dumps([{"Fn::GetAtt": [stream_id, "Arn"]}, {"Fn::GetAtt": [rejected_id, "Arn"]}]): ["firehose:PutRecordBatch"],
        json.dumps({"Fn::GetAtt": [events_id, "Arn"]}): sorted(
            ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
        ),
    }


@pytest.mark.parametrize(("stage", "concurrency"), [("dev", 2), ("prod", 10)])
def test_event_source_batches_10_reports_item_failures_and_caps_concurrency(
    stage: str, concurrency: int, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    fn_id, _ = function(s)
    events_id, _ = queue(s, stage, EVENTS_QUEUE)
    template(s).has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "BatchSize": 10,
            "EventSourceArn": {"Fn::GetAtt": [events_id, "Arn"]},
            "FunctionName": {"Ref": fn_id},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": concurrency},
        },
    )


# 5. Producer credentials -----------------------------------------------------------------------


def producer_statements(s: Synthesized) -> tuple[str, list[dict]]:
    [(user_id, user)] = resources_of(s.raw, "AWS::IAM::User").items()
    assert set(user.get("Properties", {})) <= {"Tags"}, "no inline policies, managed policies, groups or login profile"
    attached = [
        p["Properties"] for p in resources_of(s.raw, "AWS::IAM::Policy").values() if {"Ref": user_id} in p["Properties"].get("Users", [])
    ]
    assert not [g for g in resources_of(s.raw, "AWS::IAM::Group")], "no group could grant the user more"
    assert not [p for p in resources_of(s.raw, "AWS::IAM::ManagedPolicy").values() if {"Ref": user_id} in p["Properties"].get("Users", [])]
    return user_id, [st for p in attached for st in p["PolicyDocument"]["Statement"]]


def test_producer_user_can_only_send_to_the_events_queue(dev: Synthesized) -> None:
    _, statements = producer_statements(dev)
    events_id, _ = queue(dev, "dev", EVENTS_QUEUE)
    assert statements == [
        {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": {"Fn::GetAtt": [events_id, "Arn"]}, "Sid": "SendAnalyticsEvents"}
    ]


def test_producer_user_is_limited_to_source_cidrs_when_given(prod: Synthesized) -> None:
    _, [statement] = producer_statements(prod)
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"IpAddress": {"aws:SourceIp": ["198.51.100.0/24", "2001:db8::/32"]}}


def test_access_key_serial_comes_from_context(dev: Synthesized, prod: Synthesized) -> None:
    for s, serial in ((dev, 1), (prod, 4)):
        user_id, _ = producer_statements(s)
        template(s).has_resource_properties("AWS::IAM::AccessKey", {"Serial": serial, "UserName": {"Ref": user_id}})


def test_secret_holds_the_four_values_the_worker_reads(dev: Synthesized) -> None:
    [(_secret_id, secret)] = resources_of(dev.raw, "AWS::SecretsManager::Secret").items()
    [(key_id, _)] = resources_of(dev.raw, "AWS::IAM::AccessKey").items()
    events_id, _ = queue(dev, "dev", EVENTS_QUEUE)
    assert secret["Properties"]["Name"] == "ChatAnalytics-dev/producer-credentials"
    parts = secret["Properties"]["SecretString"]["Fn::Join"][1]
    literal = "".join(p for p in parts if isinstance(p, str))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SQS_URL", "AWS_REGION"):
        assert f'"{name}":"' in literal
    assert {"Ref": key_id} in parts
    assert {"Fn::GetAtt": [key_id, "SecretAccessKey"]} in parts
    assert {"Ref": events_id} in parts
    assert {"Ref": "AWS::Region"} in parts


def test_outputs_are_the_documented_ones_and_reveal_no_secret(dev: Synthesized) -> None:
    assert set(dev.raw["Outputs"]) == {
        "EventsQueueUrl",
        "DeadLetterQueueUrl",
        "EventsTableName",
        "ProducerSecretName",
        "DashboardName",
        "AlarmTopicArn",
        "RecoveryRuleName",
        "RecoveryDeadLetterQueueUrl",
        "ProcessorFunctionName",
        "LakeBucketName",
        "LakeDatabaseName",
        "LakeTableName",
        "AthenaWorkGroupName",
        "LakeStreamName",
        "RejectedTableName",
        "RejectedStreamName",
        "ReportReaderPolicyArn",
        "ErasurePolicyArn",
        "CompactionSchedule",  # with lakeCompaction (default true): the schedule `chat-analytics check` reads
    }
    [schedule] = [
        s for s in resources_of(dev.raw, "AWS::Scheduler::Schedule").values() if s["Properties"]["Name"].endswith("-lake-compaction")
    ]
    group, name = schedule["Properties"]["GroupName"], schedule["Properties"]["Name"]
    assert (
        dev.raw["Outputs"]["CompactionSchedule"]["Value"] == f"{group}/{name}" == "ChatAnalytics-dev-lake/ChatAnalytics-dev-lake-compaction"
    )
    [(key_id, _)] = resources_of(dev.raw, "AWS::IAM::AccessKey").items()
    [(secret_id, _)] = resources_of(dev.raw, "AWS::SecretsManager::Secret").items()
    outputs = json.dumps(dev.raw["Outputs"])
    assert key_id not in outputs and "SecretAccessKey" not in outputs and "SecretString" not in outputs
    assert secret_id not in outputs, "not even the secret's ARN: the name is enough to read it with permission"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_secret_material_outside_the_secret(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    [(_key_id, _)] = resources_of(s.raw, "AWS::IAM::AccessKey").items()
    [(secret_id, _)] = resources_of(s.raw, "AWS::SecretsManager::Secret").items()
    for name, resource in s.raw["Resources"].items():
        if name != secret_id:
            assert "SecretAccessKey" not in json.dumps(resource), f"{name} references the secret access key"
    text = json.dumps(s.raw)
    assert not re.search(r"AKIA[0-9A-Z]{16}", text), "an access key id is written into the template"
    logical_ids = set(s.raw["Resources"]) | set(s.raw.get("Parameters", {})) | set(s.raw.get("Outputs", {}))
    secret_like = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")
    suspicious = [v for v in _strings(s.raw) if v not in logical_ids and secret_like.search(v)]
    assert suspicious == [], "40-character secret-like strings in the template"
    for parameter in s.raw.get("Parameters", {}).values():
        assert parameter.get("NoEcho") is not True and "secret" not in str(parameter.get("Default", "")).lower()


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_policy_statement_anywhere_allows_every_action(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    documents = []
    for resource in s.raw["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument"):
            if key in props:
                documents.append(props[key])
        documents.extend(p["PolicyDocument"] for p in props.get("Policies", []))
    assert documents
    for document in documents:
        for statement in document["Statement"]:
            actions = _as_list(statement.get("Action", []))
            assert "*" not in actions and "NotAction" not in statement
            if statement["Effect"] == "Allow" and statement.get("Principal") != {
                "AWS": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}
            }:
                assert not any(a.endswith(":*") for a in actions), statement


# 6. Monitoring ---------------------------------------------------------------------------------


def test_alarm_topic_is_kms_encrypted_and_tls_only(dev: Synthesized) -> None:
    [(topic_id, topic)] = resources_of(dev.raw, "AWS::SNS::Topic").items()
    [(key_id, key)] = resources_of(dev.raw, "AWS::KMS::Key").items()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    cloudwatch = [
        st for st in key["Properties"]["KeyPolicy"]["Statement"] if st.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch and sorted(cloudwatch[0]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    template(dev).has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [{"Ref": topic_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )


def test_email_subscription_only_when_alarm_email_is_set(dev: Synthesized, prod: Synthesized) -> None:
    assert resources_of(dev.raw, "AWS::SNS::Subscription") == {}
    template(prod).has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"})


def alarms_by_metric(s: Synthesized) -> dict[str, dict]:
    alarms = {}
    for alarm in resources_of(s.raw, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        alarms[f"{props['Namespace']}/{props['MetricName']}/{props['Dimensions'][0]['Value']}"] = props
    return alarms


@pytest.mark.parametrize(("stage", "age_threshold"), [("dev", 300), ("prod", 600)])
def test_alarms_thresholds_and_notifications(stage: str, age_threshold: int, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    [topic_id] = resources_of(s.raw, "AWS::SNS::Topic")
    events_id, _ = queue(s, stage, EVENTS_QUEUE)
    dlq_id, _ = queue(s, stage, DLQ)
    fn_id, fn = function(s)
    stream_id = next(name for name in resources_of(s.raw, "AWS::KinesisFirehose::DeliveryStream") if not name.startswith("LakeRejected"))
    stream = json.dumps({"Ref": stream_id})
    [recovery_dlq_id] = [
        name
        for name, r in resources_of(s.raw, "AWS::SQS::Queue").items()
        if r["Properties"]["QueueName"] == f"ChatAnalytics-{stage}-alarm-recovered-dlq"
    ]
    alarms = alarms_by_metric(s)
    above, at_least = "GreaterThanThreshold", "GreaterThanOrEqualToThreshold"
    expected = {
        f"AWS/SQS/ApproximateAgeOfOldestMessage/{json.dumps({'Fn::GetAtt': [events_id, 'QueueName']})}": (
            "Maximum",
            age_threshold,
            60,
            above,
        ),
        f"AWS/SQS/ApproximateNumberOfMessagesVisible/{json.dumps({'Fn::GetAtt': [dlq_id, 'QueueName']})}": ("Maximum", 0, 60, above),
        f"AWS/Lambda/Errors/{json.dumps({'Ref': fn_id})}": ("Sum", 0, 60, above),
        f"AWS/Lambda/Throttles/{json.dumps({'Ref': fn_id})}": ("Sum", 0, 60, above),
        f"AWS/Lambda/Duration/{json.dumps({'Ref': fn_id})}": ("p99", fn["Properties"]["Timeout"] * 1000 * 0.8, 60, above),
        # The event lake (tests/cdk/test_lake.py): over 5 minutes.
        "ChatAnalytics/LakeDeliveryFailures/chat-analytics-processor": ("Sum", 1, 300, at_least),
        f"AWS/Firehose/DeliveryToS3.DataFreshness/{stream}": ("Maximum", 1800, 300, above),
        f"AWS/Firehose/FailedConversion.Records/{stream}": ("Sum", 1, 300, at_least),
        # The alarm-recovered rule's delivery (tests/cdk/test_aws_rules.py): over 5 minutes.
        f"AWS/Events/FailedInvocations/ChatAnalytics-{stage}-alarm-recovered": ("Sum", 1, 300, at_least),
        f"AWS/SQS/ApproximateNumberOfMessagesVisible/{json.dumps({'Fn::GetAtt': [recovery_dlq_id, 'QueueName']})}": (
            "Maximum",
            0,
            300,
            above,
        ),
        # The lake's daily compaction (tests/cdk/test_compaction.py): over an hour, one failed query or one
        # invocation the schedule gave up on is an alarm.
        "AWS/Athena/TotalExecutionTime/FAILED": ("SampleCount", 1, 3600, at_least),
        f"AWS/Scheduler/InvocationDroppedCount/ChatAnalytics-{stage}-lake": ("Sum", 1, 3600, at_least),
    }
    normalized = {
        re.sub(r"/(\{.*\})$", lambda m: "/" + json.dumps(json.loads(m.group(1).replace("'", '"'))), k): v for k, v in alarms.items()
    }
    assert set(normalized) == set(expected)
    for key, (statistic, threshold, period, comparison) in expected.items():
        props = normalized[key]
        assert props.get("Statistic", props.get("ExtendedStatistic")) == statistic
        assert props["Threshold"] == threshold
        assert props["ComparisonOperator"] == comparison
        assert props["Period"] == period and props["EvaluationPeriods"] == 1
        assert props["TreatMissingData"] == "notBreaching"
        assert props["AlarmActions"] == [{"Ref": topic_id}]
        assert "OKActions" not in props, "recoveries go through the ALARM -> OK rule (tests/cdk/test_aws_rules.py)"
    assert len(resources_of(s.raw, "AWS::CloudWatch::Alarm")) == len(expected) == 12
    # Athena publishes a workgroup's per-query metrics (PublishCloudWatchMetricsEnabled) with the query's state
    # and type; EventBridge Scheduler its dropped invocations per schedule group.
    failed = normalized["AWS/Athena/TotalExecutionTime/FAILED"]
    assert failed["AlarmName"] == f"ChatAnalytics-{stage}-LakeCompactionFailed"
    assert sorted((d["Name"], d["Value"]) for d in failed["Dimensions"]) == [
        ("QueryState", "FAILED"),
        ("QueryType", "DML"),
        ("WorkGroup", f"ChatAnalytics-{stage}-compaction"),
    ]
    dropped = normalized[f"AWS/Scheduler/InvocationDroppedCount/ChatAnalytics-{stage}-lake"]
    assert dropped["AlarmName"] == f"ChatAnalytics-{stage}-LakeCompactionNotStarted"
    assert dropped["Dimensions"] == [{"Name": "ScheduleGroup", "Value": f"ChatAnalytics-{stage}-lake"}]


def test_the_cost_bench_prices_every_alarm_the_stack_has(dev: Synthesized, prod: Synthesized) -> None:
    """Alarms are billed per alarm-month: ``bench/cost_bench.py`` prices as many as each stage deploys."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("cost_bench_for_alarms", REPO / "bench" / "cost_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    try:
        spec.loader.exec_module(bench)
    finally:
        del sys.modules[spec.name]
    for s in (dev, prod):
        assert bench.FIXED["alarms"] == len(resources_of(s.raw, "AWS::CloudWatch::Alarm")) == 12


def test_dashboard_shows_queue_dlq_lambda_and_processor_metrics(dev: Synthesized) -> None:
    [dashboard] = resources_of(dev.raw, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "ChatAnalytics-dev"
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible", "Errors", "Throttles", "Duration"):
        assert metric in body
    for metric in ("QueryEvents", "ResponseEvents", "InvalidEvents", "MatchFull", "MatchPartial", "MatchNone", "MatchScore", "IngestLagMs"):
        assert f'\\\\"{metric}\\\\"' in body or metric in body
    assert "ChatAnalytics" in body and "chat-analytics-processor" in body
    assert "ColdStart" in body and "cold starts per 100 invocations" in body
    assert "FailedInvocations" in body and "ChatAnalytics-dev-alarm-recovered" in body, "the recovery rule's alarms' metric"


def _strings(node: object) -> list[str]:
    """Every string value (not key) in a template."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [text for value in node.values() for text in _strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in _strings(value)]
    return []


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def test_an_explicit_powertools_layer_replaces_the_ssm_lookup(tmp_path: Path) -> None:
    """Regions without the public SSM parameter (aws-cn, GovCloud, me-south-1, me-central-1) take the
    layer's ARN from context; a release number pins the versioned public parameter instead of ``latest``
    (https://docs.aws.amazon.com/powertools/python/latest/#lambda-layer)."""
    from tests.cdk.conftest import synthesize

    arn = "arn:aws-cn:lambda:cn-north-1:498634801083:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:27"
    pinned = synthesize({"stage": "dev", "powertoolsLayer": arn}, tmp_path / "arn")
    _, fn = function(pinned)
    assert fn["Properties"]["Layers"] == [arn]
    assert not [p for p in pinned.raw.get("Parameters", {}).values() if "powertools" in str(p.get("Default", ""))]
    release = synthesize({"stage": "dev", "powertoolsLayer": "3.24.0"}, tmp_path / "release")
    defaults = [p["Default"] for p in release.raw["Parameters"].values() if "powertools" in str(p.get("Default", ""))]
    assert defaults == ["/aws/service/powertools/python/arm64/python3.14/3.24.0"]


def test_no_construct_module_imports_another_constructs_module() -> None:
    """docs/architecture.md: one construct per file, and what they share is in stacks/cdk_helpers.py, so each
    construct can be built and tested on its own stack (test_lake_construct.py, test_monitoring_construct.py)."""
    shared = {"stacks.cdk_helpers", "stacks.settings"}
    composers = {"analytics_stack", "cdk_helpers", "settings", "__init__"}
    modules = sorted(path for path in (REPO / "stacks").glob("*.py") if path.stem not in composers)
    assert {path.stem for path in modules} >= {"lake", "monitoring", "processor", "queues", "event_table", "producer_access"}
    imports = {
        path.stem: {
            node.module or ""
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stacks")
        }
        for path in modules
    }
    assert {name: found - shared for name, found in imports.items() if found - shared} == {}
