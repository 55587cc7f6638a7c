"""Fixtures for the processor Lambda: its modules imported as Lambda imports them, and moto's DynamoDB.

The processor's modules are top-level (``handler``, ``models``, ``store``, ``invalid``), as in the
Lambda asset. They are imported fresh for this package, with this package's environment, and the
previous ones (e.g. the local stack's) are put back afterwards, so test packages do not leak into each other.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.template import table_arguments
from tests.conftest import Synthesized
from tests.processor.lambda_events import BASE_TS, REGION, LambdaContext, sqs_event
from tests.processor_modules import processor_modules

PROCESSOR_DIR = Path(__file__).resolve().parents[2] / "lambda_src" / "chat_processor"
TABLE = "chat-analytics-test-events"
NAMESPACE = "ChatAnalyticsTest"
SERVICE = "chat-analytics-processor"
ENV = {
    "TABLE_NAME": TABLE,
    "EVENT_RETENTION_DAYS": "30",
    "POWERTOOLS_SERVICE_NAME": SERVICE,
    "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}
UNSET = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_FIREHOSE",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "POWERTOOLS_METRICS_DISABLED",
    "HTTPS_PROXY",  # with a proxy the handler's clients are botocore's (clients.json_client)
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
)


@dataclass
class Processor:
    handler: ModuleType
    store: ModuleType
    models: ModuleType
    invalid: ModuleType
    lake: ModuleType
    transport: ModuleType
    clients: ModuleType


@pytest.fixture(scope="package")
def processor() -> Iterator[Processor]:
    patch = pytest.MonkeyPatch()
    for name, value in ENV.items():
        patch.setenv(name, value)
    for name in UNSET:
        patch.delenv(name, raising=False)
    try:
        with processor_modules() as handler:
            vars(handler)["_cold_start"] = False  # the execution environment is warm; test_processor_handler checks the first invocation
            yield Processor(
                handler,
                sys.modules["chat_processor.store"],
                sys.modules["chat_processor.models"],
                sys.modules["chat_processor.invalid"],
                sys.modules["chat_processor.lake"],
                sys.modules["chat_processor.transport"],
                sys.modules["chat_processor.clients"],
            )
    finally:
        patch.undo()


class FakeClock:
    """Processing time under the test's control, so whole items can be compared."""

    def __init__(self, now_ms: int = BASE_TS + 250) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.fixture
def clock(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(processor.handler, "clock", fake)
    return fake


@dataclass
class Table:
    client: Any
    name: str

    def item(self, request_id: str) -> dict | None:
        return self.client.get_item(TableName=self.name, Key={"requestId": {"S": request_id}}, ConsistentRead=True).get("Item")

    def delete(self, request_id: str) -> None:
        self.client.delete_item(TableName=self.name, Key={"requestId": {"S": request_id}})

    def count(self) -> int:
        return self.client.scan(TableName=self.name, Select="COUNT")["Count"]


def create_table(client: Any, template: dict, name: str = TABLE) -> None:
    """The table exactly as the synthesized template defines it (keys, ``byDay`` index and its projection, TTL)."""
    arguments, ttl_attribute = table_arguments(template, name)
    client.create_table(**arguments)
    if ttl_attribute:
        client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute})


@pytest.fixture
def table(processor: Processor, dev: Synthesized) -> Iterator[Table]:
    """An empty events table in moto; the handler builds its store from the environment, as in Lambda.
    The test's client has the processor's config, so an ``EventStore`` can bound its calls (``CallGuard``)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=processor.clients.DYNAMODB_CONFIG)
        create_table(client, dev.raw)
        processor.handler.stores.reset()
        try:
            yield Table(client, TABLE)
        finally:
            processor.handler.stores.reset()


def run(processor: Processor, *records: dict, context: Any = None) -> list[str]:
    """Invoke the handler with one batch; the failed message IDs, in batch order."""
    response = processor.handler.handler(sqs_event(*records), context or LambdaContext())
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
