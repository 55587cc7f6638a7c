"""Fixtures for the processor Lambda: its package imported as Lambda imports it (lambda_src/ on the path),
a ``handler.Processor`` built from explicit parts for each test, and moto's DynamoDB.

The parts a test does not give (``Processor.pin``) are built from this package's environment when the
processor is first used after a ``reset``, as an execution environment's cold start builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from chat_processor import clients, fifo_batch, handler, invalid, lake, models, store, transport
from chat_processor.handler import Processor as ProcessorApp
from chat_processor.lake import LakeSink
from chat_processor.store import EventStore
from moto import mock_aws

from testkit.events import BASE_TS, REGION, CurrentStdout, LambdaContext, sqs_event
from testkit.tables import create_table
from tests.conftest import Synthesized

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
    """The processor's modules, and the ``handler.Processor`` under test (``app``): built on first use from the
    pinned parts (``pin``) and, for the others, the environment as it is then; ``reset`` starts a new one."""

    logger: Logger
    metrics: Metrics
    handler: ModuleType = handler
    store: ModuleType = store
    models: ModuleType = models
    invalid: ModuleType = invalid
    lake: ModuleType = lake
    transport: ModuleType = transport
    clients: ModuleType = clients
    fifo_batch: ModuleType = fifo_batch
    clock: Callable[[], int] = handler.epoch_ms
    pinned: dict[str, Any] = field(default_factory=dict)
    _app: ProcessorApp | None = None

    @property
    def app(self) -> ProcessorApp:
        if self._app is None:
            pinned = self.pinned
            self._app = ProcessorApp(
                pinned["store"] if "store" in pinned else store.store_from_environment(),
                pinned["lake"] if "lake" in pinned else lake.sink_from_environment(),
                pinned["rejected"] if "rejected" in pinned else lake.rejected_sink_from_environment(),
                logger=self.logger,
                metrics=self.metrics,
                clock=lambda: self.clock(),
            )
            self._app.cold_start = False  # the execution environment is warm; test_processor_handler checks the first invocation
        return self._app

    @property
    def built_store(self) -> EventStore:
        """The processor's store as built from the environment (an ``EventStore``, its client included)."""
        built = self.app.store
        assert isinstance(built, EventStore)
        return built

    @property
    def built_lake(self) -> LakeSink:
        """The processor's lake sink as built from the environment (``LAKE_STREAM_NAME`` set)."""
        built = self.app.lake
        assert isinstance(built, LakeSink)
        return built

    def pin(self, **parts: Any) -> None:
        """Use these parts (``store``, ``lake``, ``rejected``) from now on; None: the environment's again."""
        for name, value in parts.items():
            if value is None:
                self.pinned.pop(name, None)
            else:
                self.pinned[name] = value
        self._drop()

    def reset(self) -> None:
        """A new execution environment: nothing pinned, every part built from the environment as it is at the next use."""
        self.pinned.clear()
        self._drop()

    def _drop(self) -> None:
        if self._app is not None:
            self._app.close()
        self._app = None


@pytest.fixture(scope="package")
def processor() -> Iterator[Processor]:
    patch = pytest.MonkeyPatch()
    for name, value in ENV.items():
        patch.setenv(name, value)
    for name in UNSET:
        patch.delenv(name, raising=False)
    try:
        logger = Logger(service=SERVICE, level="INFO")
        logger.setLevel("INFO")  # Powertools configures a service's logging.Logger once per process: the level is ours
        log_handler: Any = logger.registered_handler  # a logging.StreamHandler
        log_handler.stream = CurrentStdout()  # each test's capture sees its logs
        under_test = Processor(logger, Metrics(namespace=NAMESPACE, service=SERVICE))
        yield under_test
        under_test.reset()
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
    monkeypatch.setattr(processor, "clock", fake)
    return fake


@dataclass
class Table:
    client: Any
    name: str

    def item(self, request_id: str) -> Any:  # DynamoDB JSON (a dict), or None when there is no item
        return self.client.get_item(TableName=self.name, Key={"requestId": {"S": request_id}}, ConsistentRead=True).get("Item")

    def delete(self, request_id: str) -> None:
        self.client.delete_item(TableName=self.name, Key={"requestId": {"S": request_id}})

    def count(self) -> int:
        return self.client.scan(TableName=self.name, Select="COUNT")["Count"]


@pytest.fixture
def table(processor: Processor, dev: Synthesized) -> Iterator[Table]:
    """An empty events table in moto; the processor builds its store from the environment, as in Lambda.
    The test's client has the processor's config, so an ``EventStore`` can bound its calls (``CallGuard``)."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION, config=processor.clients.DYNAMODB_CONFIG)
        create_table(client, dev.raw, TABLE)
        processor.reset()
        try:
            yield Table(client, TABLE)
        finally:
            processor.reset()


def run(processor: Processor, *records: dict, context: Any = None) -> list[str]:
    """Invoke the handler with one batch; the failed message IDs, in batch order."""
    lambda_context: Any = context or LambdaContext()  # the attributes Powertools' LambdaContext has
    response = processor.app.handle(sqs_event(*records), lambda_context)
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
