"""The producer's key, as the template creates it, can send to the events queue and nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from local.emulator.stack import LocalStack, StackInfo
from tests.conftest import Synthesized


@pytest.fixture(scope="module")
def stack(local_template: Path) -> Iterator[StackInfo]:
    local = LocalStack(local_template, enforce_iam=True)
    try:
        yield local.deploy()
    finally:
        local.close()


def denied(call, **kwargs) -> None:
    """AccessDenied (moto answers SQS's JSON protocol with an XML 403, which botocore reports as code "403")."""
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    response = error.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] in {"AccessDenied", "AccessDeniedException", "403"}
    assert "not authorized" in str(error.value) or "AccessDenied" in str(error.value)


def test_every_resource_type_is_deployed_or_stood_in_for(stack: StackInfo, dev: Synthesized) -> None:
    report = "\n".join(stack.report)
    stood_in = (
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SecretsManager::Secret",
        "AWS::CloudWatch::Alarm",
        "AWS::S3::BucketPolicy",
        "AWS::Logs::LogStream",
        "AWS::KinesisFirehose::DeliveryStream",
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::Athena::WorkGroup",
    )
    for resource_type in stood_in:
        assert f"({resource_type})" in report
    assert "AWS::Lambda::EventSourceMapping): not created (the event-source-mapping emulator" in report
    alarms = stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    in_template = [r for r in dev.raw["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) == len(in_template) == 12 and all(a["TreatMissingData"] == "notBreaching" for a in alarms)
    stream = stack.client("firehose").describe_delivery_stream(DeliveryStreamName=stack.outputs["LakeStreamName"])
    assert stream["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE"
    table = stack.client("glue").get_table(DatabaseName=stack.outputs["LakeDatabaseName"], Name=stack.outputs["LakeTableName"])["Table"]
    assert table["Parameters"]["projection.enabled"] == "true" and table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    policy = json.loads(
        stack.client("sqs").get_queue_attributes(QueueUrl=stack.events_queue_url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_producer_key_sends_to_the_events_queue(stack: StackInfo) -> None:
    sqs = stack.client("sqs", stack.producer)
    sent = sqs.send_message(
        QueueUrl=stack.events_queue_url,
        MessageBody=json.dumps({"eventType": "query", "requestId": "iam-1", "timestamp": 1, "query": "python?"}),
        MessageGroupId="iam-1",
        MessageDeduplicationId="iam-1:query",
    )
    assert sent["MessageId"]
    batch = sqs.send_message_batch(
        QueueUrl=stack.events_queue_url,
        Entries=[{"Id": "0", "MessageBody": "{}", "MessageGroupId": "iam-2", "MessageDeduplicationId": "iam-2:query"}],
    )
    assert len(batch["Successful"]) == 1
    stack.client("sqs").purge_queue(QueueUrl=stack.events_queue_url)


def test_producer_key_is_denied_everything_else(stack: StackInfo) -> None:
    sqs = stack.client("sqs", stack.producer)
    denied(sqs.receive_message, QueueUrl=stack.events_queue_url)
    denied(sqs.delete_message, QueueUrl=stack.events_queue_url, ReceiptHandle="x")
    denied(sqs.purge_queue, QueueUrl=stack.events_queue_url)
    denied(sqs.send_message, QueueUrl=stack.dead_letter_queue_url, MessageBody="{}", MessageGroupId="g", MessageDeduplicationId="d")
    denied(sqs.get_queue_attributes, QueueUrl=stack.events_queue_url, AttributeNames=["All"])
    dynamodb = stack.client("dynamodb", stack.producer)
    denied(dynamodb.list_tables)
    denied(dynamodb.scan, TableName=stack.table_name)
    denied(dynamodb.put_item, TableName=stack.table_name, Item={"requestId": {"S": "x"}})
    denied(stack.client("secretsmanager", stack.producer).get_secret_value, SecretId=stack.outputs["ProducerSecretName"])
    denied(stack.client("iam", stack.producer).list_users)


def test_the_producer_has_exactly_the_templates_policy_and_may_send_batches(stack: StackInfo) -> None:
    """AWS authorizes SendMessageBatch with sqs:SendMessage; the local stack bridges moto's literal check
    without adding a policy (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html)."""
    iam = stack.client("iam")
    [user] = [u["UserName"] for u in iam.list_users()["Users"] if u["UserName"] != "local-admin"]
    names = iam.list_user_policies(UserName=user)["PolicyNames"]
    assert len(names) == 1
    document = iam.get_user_policy(UserName=user, PolicyName=names[0])["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert [s["Action"] for s in document["Statement"]] == ["sqs:SendMessage"]
    sqs = stack.client("sqs", stack.producer)
    entries = [{"Id": "0", "MessageBody": "{}", "MessageGroupId": "bridge", "MessageDeduplicationId": "bridge:0"}]
    assert sqs.send_message_batch(QueueUrl=stack.events_queue_url, Entries=entries)["Successful"]
    attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    assert attached == []


def test_the_secret_holds_the_local_queue_url(stack: StackInfo) -> None:
    """`chat-analytics credentials worker-env` against the local stack gives values that send to it, not to AWS."""
    secret = json.loads(stack.client("secretsmanager").get_secret_value(SecretId=stack.outputs["ProducerSecretName"])["SecretString"])
    assert secret["AWS_SQS_URL"] == stack.local_events_queue_url and secret["AWS_SQS_URL"].startswith(stack.endpoint_url)
    assert secret["AWS_ACCESS_KEY_ID"] == stack.producer.access_key_id
