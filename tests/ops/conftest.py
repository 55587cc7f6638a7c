"""A stack like ChatAnalytics-<stage> in moto, built from a small CloudFormation template.

The template has what the CLI reads (docs/contracts.md): two FIFO queues with the redrive policy,
the table with its ``byDay`` index, and the four outputs; the producer secret is created beside it. ``FakeProcessor``
stands in for the processor Lambda: it receives from the events queue and merges each event into
the table with the contract's attributes (or, when told to be broken, fails every record so SQS
dead-letters it after three receives).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chat_analytics_ops import dlq
from chat_analytics_ops.cli import main

STAGE = "test"
STACK_NAME = f"ChatAnalytics-{STAGE}"
REGION = "us-east-1"
SECRET_NAME = f"{STACK_NAME}/producer-credentials"
ACCESS_KEY_ID = "AKIDEXAMPLEPRODUCER"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def stack_template() -> dict[str, Any]:
    """The part of the real stack the CLI depends on, with the contract's output names."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "DeadLetterQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": f"{STACK_NAME}-dlq.fifo", "FifoQueue": True, "ContentBasedDeduplication": False},
            },
            "EventsQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": f"{STACK_NAME}-events.fifo",
                    "FifoQueue": True,
                    "ContentBasedDeduplication": False,
                    "VisibilityTimeout": 30,
                    "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}, "maxReceiveCount": 3},
                },
            },
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [
                        {"AttributeName": "requestId", "AttributeType": "S"},
                        {"AttributeName": "day", "AttributeType": "S"},
                    ],
                    "KeySchema": [{"AttributeName": "requestId", "KeyType": "HASH"}],
                    "GlobalSecondaryIndexes": [
                        {
                            "IndexName": "byDay",
                            "KeySchema": [
                                {"AttributeName": "day", "KeyType": "HASH"},
                                {"AttributeName": "requestId", "KeyType": "RANGE"},
                            ],
                            "Projection": {"ProjectionType": "ALL"},
                        }
                    ],
                },
            },
        },
        "Outputs": {
            "EventsQueueUrl": {"Value": {"Ref": "EventsQueue"}},
            "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
            "EventsTableName": {"Value": {"Ref": "Table"}},
            "ProducerSecretName": {"Value": SECRET_NAME},
        },
    }


@dataclass
class Stack:
    """The deployed test stack and clients for it."""

    sqs: Any
    dynamodb: Any
    outputs: dict[str, str]

    @property
    def events_url(self) -> str:
        return self.outputs["EventsQueueUrl"]

    @property
    def dlq_url(self) -> str:
        return self.outputs["DeadLetterQueueUrl"]

    @property
    def table(self) -> str:
        return self.outputs["EventsTableName"]

    def send(self, event: dict[str, Any] | str, *, group: str | None = None, dedup: str | None = None) -> None:
        """Send like a producer: group = requestId, dedup = requestId:eventType (the contract)."""
        body = event if isinstance(event, str) else json.dumps(event)
        parsed = event if isinstance(event, dict) else {}
        group = group or parsed["requestId"]
        dedup = dedup or f"{parsed['requestId']}:{parsed['eventType']}"
        self.sqs.send_message(QueueUrl=self.events_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup)

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def items(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=self.table)["Items"]


def deploy(cloudformation: Any, secretsmanager: Any) -> dict[str, str]:
    """Create the stack; the secret is made directly (moto's CloudFormation has no Secrets Manager type)."""
    cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(stack_template()))
    stack = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    secret = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SQS_URL": outputs["EventsQueueUrl"],
        "AWS_REGION": REGION,
    }
    secretsmanager.create_secret(Name=SECRET_NAME, SecretString=json.dumps(secret))
    return outputs


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region; no real AWS is ever reached. Long polls shortened for moto."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(dlq, "RECEIVE_WAIT_SECONDS", 0)


@pytest.fixture
def stack() -> Iterator[Stack]:
    """The stack deployed in an in-process moto."""
    with mock_aws():
        outputs = deploy(boto3.client("cloudformation", region_name=REGION), boto3.client("secretsmanager", region_name=REGION))
        yield Stack(boto3.client("sqs", region_name=REGION), boto3.client("dynamodb", region_name=REGION), outputs)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``chat-analytics`` in-process with the test stack's stage; returns exit code, stdout, stderr."""

    def run(*argv: str, stage: bool = True) -> Result:
        capsys.readouterr()
        code = main([*(["--stage", STAGE] if stage else []), *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def query_event(request_id: str, timestamp: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"schemaVersion": 1, "eventType": "query", "requestId": request_id, "timestamp": timestamp, "query": text, **extra}


def response_event(request_id: str, timestamp: int, match_type: str, score: float, **extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "eventType": "response",
        "requestId": request_id,
        "timestamp": timestamp,
        "matchType": match_type,
        "matchScore": score,
        "reasoning": "matched against the CV",
        **extra,
    }


def put_item(dynamodb: Any, table: str, item: dict[str, Any]) -> None:
    """Write an item the way the processor leaves it (contract attribute names and types)."""
    encoded = {}
    for name, value in item.items():
        if value is None:
            continue
        encoded[name] = {"N": str(value)} if isinstance(value, int | float) else {"S": str(value)}
    dynamodb.put_item(TableName=table, Item=encoded)


def day_of(timestamp_ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp_ms // 1000))


class FakeProcessor:
    """The processor's contract, as far as the CLI can see it: one merged item per requestId.

    ``broken`` models a processor that fails every record (a bad deploy, a table it cannot write):
    messages stay, SQS counts receives, and the queue's redrive policy dead-letters them.
    """

    def __init__(self, stack: Stack, *, broken: bool = False, now_ms: int | None = None) -> None:
        self.stack = stack
        self.broken = broken
        self.now_ms = now_ms

    def poll(self) -> int:
        """One receive of up to 10 messages; returns how many it stored."""
        response = self.stack.sqs.receive_message(
            QueueUrl=self.stack.events_url, MaxNumberOfMessages=10, VisibilityTimeout=0 if self.broken else 30, WaitTimeSeconds=0
        )
        stored = 0
        for message in response.get("Messages", []):
            if self.broken:
                continue
            try:
                event = json.loads(message["Body"])
                self.merge(event)
            except (ValueError, KeyError):
                continue  # left for SQS to retry and dead-letter
            self.stack.sqs.delete_message(QueueUrl=self.stack.events_url, ReceiptHandle=message["ReceiptHandle"])
            stored += 1
        return stored

    def drain(self, rounds: int = 6) -> int:
        return sum(self.poll() for _ in range(rounds))

    def merge(self, event: dict[str, Any]) -> None:
        now = self.now_ms or time.time_ns() // 1_000_000
        key = {"requestId": {"S": event["requestId"]}}
        ts = event["timestamp"]
        values: dict[str, Any] = {":day": {"S": day_of(ts)}, ":ts": {"N": str(ts)}, ":now": {"N": str(now)}}
        if event["eventType"] == "query":
            expression = "SET #day = :day, #query = :q, queryTimestamp = :ts, queryIngestedAt = if_not_exists(queryIngestedAt, :now)"
            values[":q"] = {"S": event["query"]}
            names = {"#day": "day", "#query": "query"}
        else:
            expression = (
                "SET #day = if_not_exists(#day, :day), matchType = :mt, matchScore = :ms, reasoning = :r,"
                " responseTimestamp = :ts, responseIngestedAt = if_not_exists(responseIngestedAt, :now)"
            )
            values.update({":mt": {"S": event["matchType"]}, ":ms": {"N": str(event["matchScore"])}, ":r": {"S": event["reasoning"]}})
            names = {"#day": "day"}
            if event.get("latencyMs") is not None:
                expression += ", latencyMs = :lat"
                values[":lat"] = {"N": str(event["latencyMs"])}
        old = self.stack.dynamodb.update_item(
            TableName=self.stack.table,
            Key=key,
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
        if "queryTimestamp" in old and "responseTimestamp" in old:
            latency = int(old["responseTimestamp"]["N"]) - int(old["queryTimestamp"]["N"])
            self.stack.dynamodb.update_item(
                TableName=self.stack.table,
                Key=key,
                UpdateExpression="SET responseLatencyMs = :l",
                ExpressionAttributeValues={":l": {"N": str(latency)}},
            )


def dead_letter(stack: Stack, *events: dict[str, Any] | str, group: str | None = None, dedup: str | None = None) -> None:
    """Send events and let a broken processor fail them until SQS moves them to the DLQ."""
    for event in events:
        stack.send(event, group=group, dedup=dedup)
    broken = FakeProcessor(stack, broken=True)
    # Three failed receives each, and a further receive moves them (moto moves lazily); a group's
    # later message is only delivered once the earlier one has gone, so this takes a few rounds.
    for _ in range(20):
        if stack.depth(stack.events_url) == 0:
            break
        broken.poll()
    assert stack.depth(stack.events_url) == 0
