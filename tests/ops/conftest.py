"""The real stack for the CLI's tests: the synthesized dev template deployed into moto, and the real processor.

The template is the one ``cdk deploy`` would ship (synthesized once per test session), deployed the way
the local stack deploys it (``local.emulator.stack.deploy_template``: moto's CloudFormation plus the explicit
stand-ins), so the CLI reads the outputs, queues, table, index and secret it will meet in AWS.
``Processor`` runs the real handler through the event-source-mapping emulator; ``broken=True`` models a
processor that fails every record (a bad deploy), so SQS dead-letters them after three receives.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
import pytest
from chat_processor.handler import processor_from_environment
from moto import mock_aws

from chat_analytics_ops import dlq
from chat_analytics_ops.cli import main
from local.emulator.esm import EventSourceMappingEmulator
from local.emulator.stack import Deployment, deploy_template, processor_environment
from testkit.events import CurrentStdout
from tests.conftest import Synthesized

STAGE = "dev"
STACK_NAME = f"ChatAnalytics-{STAGE}"
REGION = "us-east-1"


def deploy(dev: Synthesized, endpoint_url: str | None = None) -> Deployment:
    """The synthesized dev stack in moto: in-process (under ``mock_aws``) or on a server at ``endpoint_url``."""
    return deploy_template(boto3.Session(region_name=REGION), endpoint_url, dev.path)


@dataclass
class Stack:
    """The deployed test stack and clients for it."""

    sqs: Any
    dynamodb: Any
    outputs: dict[str, str]
    template: dict
    secret: dict[str, str]

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


def stack_for(deployment: Deployment, client: Any) -> Stack:
    outputs = deployment.outputs
    secret = json.loads(client("secretsmanager").get_secret_value(SecretId=outputs["ProducerSecretName"])["SecretString"])
    return Stack(client("sqs"), client("dynamodb"), outputs, deployment.template, secret)


@pytest.fixture
def stack(dev: Synthesized) -> Iterator[Stack]:
    """The stack deployed in an in-process moto."""
    with mock_aws():
        deployment = deploy(dev)
        yield stack_for(deployment, lambda service: boto3.client(service, region_name=REGION))


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class Cli(Protocol):
    """The ``cli`` fixture: ``cli("report", "--days", "1")``; ``stage=False`` leaves out ``--stage``."""

    def __call__(self, *argv: str, stage: bool = True) -> Result: ...


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``chat-analytics`` in-process with the test stack's stage; returns exit code, stdout, stderr."""

    def run(*argv: str, stage: bool = True) -> Result:
        capsys.readouterr()
        code = main([*(["--stage", STAGE] if stage else []), *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


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


class Processor:
    """The real processor (``lambda_src/chat_processor``) fed by the event-source-mapping emulator, with the
    function's environment from the template; or, ``broken``, one that fails every record."""

    def __init__(self, stack: Stack, *, broken: bool = False, endpoint_url: str | None = None) -> None:
        self.stack = stack
        self.broken = broken
        self.endpoint_url = endpoint_url
        self._handler: Any = None  # built at the first poll, then kept: one execution environment

    def poll(self) -> int:
        """One receive of up to 10 messages; returns how many the processor stored."""
        if self.broken:
            # Received and never deleted: SQS counts the receive, and after three it dead-letters the message.
            self.stack.sqs.receive_message(QueueUrl=self.stack.events_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
            return 0
        environment = processor_environment(self.stack.template, self.stack.outputs)
        environment.update(AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION)  # what the Lambda runtime sets
        if self.endpoint_url:
            environment["AWS_ENDPOINT_URL"] = self.endpoint_url
        saved = dict(os.environ)
        os.environ.update(environment)
        try:
            if self._handler is None:  # the function's cold start, under its environment
                processor = processor_from_environment()
                log_handler: Any = processor.logger.registered_handler  # a logging.StreamHandler
                log_handler.stream = CurrentStdout()  # each test's capture sees its logs
                self._handler = processor.handle
            esm = EventSourceMappingEmulator(
                self.stack.sqs, self.stack.events_url, self._handler, wait_time_s=0, failure_visibility_s=0, region=REGION
            )
            esm.poll_once()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return esm.stats.succeeded

    def drain(self, rounds: int = 6) -> int:
        return sum(self.poll() for _ in range(rounds))


def dead_letter(stack: Stack, *events: dict[str, Any] | str, group: str | None = None, dedup: str | None = None) -> None:
    """Send events and let a broken processor fail them until SQS moves them to the DLQ."""
    for event in events:
        stack.send(event, group=group, dedup=dedup)
    broken = Processor(stack, broken=True)
    # Three failed receives each, and a further receive moves them (moto moves lazily); a group's
    # later message is only delivered once the earlier one has gone, so this takes a few rounds.
    for _ in range(20):
        if stack.depth(stack.events_url) == 0:
            break
        broken.poll()
    assert stack.depth(stack.events_url) == 0
