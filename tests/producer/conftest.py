"""A moto server on 127.0.0.1 and a fresh FIFO queue per test; loggers on either transport."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from jsonschema import Draft202012Validator

from analytics_producer import AnalyticsLogger
from local.emulator.template import events_queue_attributes
from testkit.moto import moto_process, moto_thread
from tests.conftest import Synthesized

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# One attempt per call: botocore's "max_attempts" counts retries (max_attempts=1 is two attempts),
# "total_max_attempts" counts attempts including the first (see test_producer_attempts.py).
ONE_ATTEMPT = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=3)
KEYS = {"aws_access_key_id": "AKIDPRODUCERTEST", "aws_secret_access_key": "producer-test-secret", "region_name": REGION}
# "lean": the logger's own transport (the default); "botocore": a boto3 client passed as client=.
TRANSPORTS = ("lean", "botocore")


def sqs_client(endpoint_url: str):
    return boto3.Session(**KEYS).client("sqs", endpoint_url=endpoint_url, config=ONE_ATTEMPT)


def logger_at(transport: str, queue_url: str, endpoint_url: str, **kwargs) -> AnalyticsLogger:
    """A logger sending to ``endpoint_url`` with the test keys: its own lean transport, or a boto3 client (``client=``)."""
    if transport == "botocore":
        return AnalyticsLogger(queue_url, client=sqs_client(endpoint_url), **kwargs)
    kwargs.setdefault("region_name", REGION)  # moto keeps a queue in the region it was created in, whatever AWS_REGION says
    logger = AnalyticsLogger(queue_url, endpoint_url=endpoint_url, session=boto3.Session(**KEYS), **kwargs)
    assert type(logger._client).__name__ == "SQSTransport"
    return logger


@dataclass
class Queue:
    url: str
    endpoint_url: str

    def client(self):
        return sqs_client(self.endpoint_url)

    def drain(self, expected: int | None = None, timeout: float = 30.0) -> list[dict]:
        """Every message in the queue (received and deleted), with its FIFO attributes."""

        sqs = self.client()
        messages: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
            )
            batch = response.get("Messages", [])
            if batch:
                messages += batch
                sqs.delete_message_batch(
                    QueueUrl=self.url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
                )
                continue
            if expected is None or len(messages) >= expected:
                break
            time.sleep(0.05)
        return messages


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_thread(fast_sqs=True) as endpoint:
        yield endpoint


def create_queue(endpoint_url: str, template: dict) -> Queue:
    """A queue of this test's own, with the attributes the synthesized template gives the events queue."""
    name = f"producer-{uuid.uuid4().hex[:10]}.fifo"
    url = sqs_client(endpoint_url).create_queue(QueueName=name, Attributes=events_queue_attributes(template))["QueueUrl"]
    return Queue(url, endpoint_url)


@pytest.fixture
def queue(moto_endpoint: str, dev: Synthesized) -> Queue:
    return create_queue(moto_endpoint, dev.raw)


def logger_for(queue: Queue, transport: str, **kwargs) -> AnalyticsLogger:
    return logger_at(transport, queue.url, queue.endpoint_url, **kwargs)


@pytest.fixture
def moto_with_iam() -> Iterator[str]:
    """A moto server in its own process (IAM enforcement is a process-wide moto setting); auth is off until reset-auth."""
    with moto_process() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def event_schema() -> Draft202012Validator:
    return Draft202012Validator(json.loads((REPO / "schema" / "analytics-event.schema.json").read_text()))


@pytest.fixture
def clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS settings from the machine: no keys, region, profile, endpoint or proxy, and empty config and
    credentials files. Returns the monkeypatch, for a test to set what it needs."""
    for name in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "HTTPS_PROXY",
        "https_proxy",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return monkeypatch
