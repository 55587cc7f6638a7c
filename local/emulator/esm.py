"""An event-source-mapping emulator: Lambda's SQS FIFO poller, calling the real handler in-process.

It behaves like the managed poller for the parts the pipeline relies on: long-poll receives of
up to the mapping's batch size, the exact event shape Lambda delivers for SQS, a Lambda-like
context (its timeout counted from when the handler starts, not from the receive), successes deleted, partial failures (``batchItemFailures``) left on the queue, and the
whole batch left on the queue when the handler raises. Moving a message to the DLQ after
``maxReceiveCount`` receives is done by the queue's redrive policy (moto implements it on receive,
as SQS does), not by the emulator.

One deliberate difference: Lambda leaves a failed message invisible for the rest of the queue's
visibility timeout (6x the function timeout: 3 minutes here). The emulator shortens that to
``failure_visibility_s`` (default 1 s) with ChangeMessageVisibility, so retries and the DLQ can be
seen within a demo or a test. Set it to ``None`` to keep AWS's timing.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

Handler = Callable[[dict, Any], dict | None]


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 256
    timeout_s: int = 30
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _deadline: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class EsmStats:
    invocations: int = 0
    records: int = 0
    succeeded: int = 0
    failed: int = 0
    handler_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {k: getattr(self, k) for k in ("invocations", "records", "succeeded", "failed", "handler_errors")}


def to_lambda_record(message: dict, queue_arn: str, region: str) -> dict:
    """One SQS message as Lambda's SQS event source delivers it."""
    attributes = message.get("Attributes", {})
    record_attributes = {
        key: attributes[key]
        for key in (
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
            "SequenceNumber",
            "MessageGroupId",
            "MessageDeduplicationId",
        )
        if key in attributes
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": record_attributes,
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class EventSourceMappingEmulator:
    """Pollers (one per unit of ``max_concurrency``) that feed the handler until ``stop()``."""

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        max_concurrency: int = 2,
        report_batch_item_failures: bool = True,
        function_name: str = "processor",
        function_timeout_s: int = 30,
        wait_time_s: int = 1,
        failure_visibility_s: int | None = 1,
        region: str = "us-east-1",
        enabled: Callable[[], bool] | None = None,
    ) -> None:
        self.sqs = sqs_client
        self.enabled = enabled  # the mapping's state (Lambda's API): a disabled mapping receives nothing
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.max_concurrency = max_concurrency
        self.report_batch_item_failures = report_batch_item_failures
        self.function_name = function_name
        self.function_timeout_s = function_timeout_s
        self.wait_time_s = wait_time_s
        self.failure_visibility_s = failure_visibility_s
        self.region = region
        self.queue_arn = f"arn:aws:sqs:{region}:{queue_url.rsplit('/', 2)[-2]}:{queue_url.rsplit('/', 1)[-1]}"
        self.stats = EsmStats()
        self.deliveries: collections.Counter[str] = collections.Counter()  # messageId -> times handed to the handler
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._handler_lock = threading.Lock()

    def start(self) -> EventSourceMappingEmulator:
        self._stop.clear()
        for index in range(self.max_concurrency):
            thread = threading.Thread(target=self._run, name=f"esm-poller-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def __enter__(self) -> EventSourceMappingEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def poll_once(self) -> int:
        """Receive one batch and process it; returns the number of records handled."""
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=self.wait_time_s,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except (BotoCoreError, ClientError) as error:
            log.warning("receive failed: %s", error)
            self._stop.wait(0.5)
            return 0
        messages = response.get("Messages", [])
        if messages and self.enabled is not None and not self.enabled():
            # Disabled while this receive was waiting: hand the messages back unprocessed, as a stopped
            # mapping does not invoke the function.
            self._hand_back(messages)
            return 0
        if messages:
            self._invoke(messages)
        return len(messages)

    def _hand_back(self, messages: list[dict]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(messages)]
        try:
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as error:
            log.warning("could not hand back %d messages: %s", len(messages), error)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.enabled is not None and not self.enabled():
                self._stop.wait(self.wait_time_s or 0.5)  # as Lambda's pollers: a disabled mapping stops receiving
                continue
            try:
                self.poll_once()
            except Exception:  # a poller never dies: like Lambda's, it logs and polls again
                log.exception("event source mapping poller error")
                self._stop.wait(0.5)

    def _invoke(self, messages: list[dict]) -> None:
        event = {"Records": [to_lambda_record(m, self.queue_arn, self.region) for m in messages]}
        by_id = {m["MessageId"]: m for m in messages}
        self.deliveries.update(by_id.keys())
        try:
            # Powertools' Metrics and Logger keep per-invocation state in module globals, as one
            # Lambda execution environment runs one invocation at a time; so does the emulator.
            with self._handler_lock:
                # The invocation's clock starts when the handler runs, as in Lambda: a batch waiting
                # for the lock has not been invoked yet, and gets its whole timeout.
                context = LambdaContext(function_name=self.function_name, timeout_s=self.function_timeout_s)
                response = self.handler(event, context) or {}
            failed_ids = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])} if self.report_batch_item_failures else set()
        except Exception as error:  # the whole batch fails, as in Lambda
            log.warning("handler raised %s: the whole batch of %d returns to the queue", type(error).__name__, len(messages))
            self.stats.add(invocations=1, records=len(messages), failed=len(messages), handler_errors=1)
            self._release([m["ReceiptHandle"] for m in messages])
            return
        unknown = failed_ids - set(by_id)
        if unknown:  # Lambda treats an unknown id as a failure of the whole batch
            failed_ids = set(by_id)
        succeeded = [m for m in messages if m["MessageId"] not in failed_ids]
        self._delete([m["ReceiptHandle"] for m in succeeded])
        self._release([by_id[i]["ReceiptHandle"] for i in failed_ids])
        self.stats.add(invocations=1, records=len(messages), succeeded=len(succeeded), failed=len(failed_ids))

    def _delete(self, receipts: list[str]) -> None:
        for start in range(0, len(receipts), 10):
            chunk = receipts[start : start + 10]
            if chunk:
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url, Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)]
                )

    def _release(self, receipts: list[str]) -> None:
        if self.failure_visibility_s is None or not receipts:
            return
        self.sqs.change_message_visibility_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": self.failure_visibility_s} for i, r in enumerate(receipts)],
        )

    def wait_until_drained(self, timeout: float = 30.0, settle_s: float = 0.5) -> bool:
        """True once the queue has no visible or in-flight messages (checked twice, ``settle_s`` apart)."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]) == 0 and int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_s:
                    return True
            else:
                quiet_since = None
            time.sleep(0.1)
        return False
