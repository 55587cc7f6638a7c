"""No invocation outlives its timeout: every DynamoDB and Firehose call the processor makes ends before
the invocation's deadline, counting its client's attempts, timeouts and retry backoff.

Lambda ends an invocation at its timeout; the whole batch then returns to the queue and the invocation
counts as a function error (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html),
which is what failing the unfinished records instead avoids. No emulator enforces that timeout, so these
tests assert the rule itself: the handler returns before its context's deadline, with an endpoint that
accepts connections and never answers (``testkit.faults.SilentEndpoint``, on 127.0.0.1), while the client's
configured worst case is longer than the time the invocation has. They count the attempts the endpoint
saw and assert the configured timeouts; they set no budget on how long anything takes.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.retries import standard

from local.emulator.esm import EventSourceMappingEmulator
from testkit.events import LambdaContext, log_records, metric_values, query_body, redelivered, sqs_record
from testkit.faults import SilentEndpoint
from tests.processor.conftest import REGION, Processor, Table, run
from tests.processor.test_processor_lake import STREAM, Lake


class DeadlineContext(LambdaContext):
    """A Lambda context whose remaining time runs out ``seconds`` from now, as Lambda's does."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def ids(*records: dict) -> list[str]:
    return [record["messageId"] for record in records]


@pytest.fixture
def silent_table(processor: Processor, monkeypatch: pytest.MonkeyPatch):
    """The handler's own store (built from the environment, ``clients.DYNAMODB_CONFIG``) pointed at an endpoint that never answers."""
    with SilentEndpoint() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        monkeypatch.delenv("LAKE_STREAM_NAME", raising=False)
        processor.reset()
        try:
            yield server
        finally:
            processor.reset()


def test_the_configured_clients_could_outlive_the_invocation_without_the_guard(processor: Processor) -> None:
    """What the guard is for: three attempts of 2 s + 4 s and botocore's backoff (under 1 s, then under 2 s)
    take up to 21 s, more than the time the tests below give an invocation."""
    for config in (processor.clients.DYNAMODB_CONFIG, processor.clients.FIREHOSE_CONFIG):
        limits = processor.clients.CallLimits.of(config)
        assert (limits.connect_timeout_s, limits.read_timeout_s, limits.total_max_attempts) == (2, 4, 3)
        assert (limits.attempt_s, limits.worst_case_s()) == (6, 3 * 6 + 1 + 2)


def test_a_silent_table_ends_the_invocation_before_its_deadline(
    processor: Processor, silent_table: SilentEndpoint, capsys: pytest.CaptureFixture
) -> None:
    """15 s left (14 s for network waits, ``RETURN_RESERVE_MS`` kept): each group's first write starts (6 s
    fit), times out after 4 s, is retried once (up to 1 s of backoff and 6 s end before 14 s) and not a third
    time (up to 2 s and 6 s after the second timeout, about 8-9 s in, do not). The groups' failed writes fail
    them whole; the store's client is the real one, with the configured timeouts."""
    config = processor.built_store.client.meta.config
    assert (config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]) == (2, 4, 3)
    context = DeadlineContext(15)
    assert processor.clients.CallLimits.of(config).worst_case_s() > 15
    records = [
        sqs_record(query_body("r-1"), group="session-1"),
        sqs_record(query_body("r-2"), group="session-1"),
        sqs_record(query_body("r-3"), group="session-2"),
    ]
    failed = run(processor, *records, context=context)
    returned = time.monotonic()
    assert returned < context.deadline, "the handler returned before Lambda would have ended it"
    assert failed == ids(*records)
    assert silent_table.actions == ["UpdateItem"] * 4, "two attempts for each group's first write, none for r-2"
    out = capsys.readouterr().out
    warnings = [log for log in log_records(out) if log["message"] == "Event not stored"]
    assert sorted(log["correlation_id"] for log in warnings) == ["r-1", "r-3"]
    assert {(log["errorCode"], log["transient"]) for log in warnings} == {("ReadTimeoutError", True)}
    assert "QueryEvents" not in metric_values(out), "nothing stored, nothing counted"


def test_a_write_that_cannot_end_before_the_deadline_is_not_started(
    processor: Processor, silent_table: SilentEndpoint, capsys: pytest.CaptureFixture
) -> None:
    """Less left than one attempt (6 s) and the reserve: no request is sent; the records fail at once."""
    context = DeadlineContext(6.5)
    records = [sqs_record(query_body("r-1"), group="g"), sqs_record(query_body("r-2"), group="g"), sqs_record(query_body("r-3"))]
    assert run(processor, *records, context=context) == ids(*records)
    assert time.monotonic() < context.deadline
    assert silent_table.actions == []
    warnings = [log for log in log_records(capsys.readouterr().out) if log["message"] == "Event not stored"]
    assert {(log["errorCode"], log["transient"]) for log in warnings} == {("NoTimeLeft", True)} and len(warnings) == 2


def test_a_silent_lake_ends_the_invocation_before_its_deadline_and_nothing_is_lost_or_counted_twice(
    processor: Processor, table: Table, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The measured failure: Firehose silent and 6.5 s left took the sink 13.7 s (three attempts). Now,
    with 9 s left (8 s for network waits), the writes (moto) succeed, one ``PutRecordBatch`` starts
    (6 s fit), times out after 4 s and is not retried (up to 1 s of backoff and 6 s do not fit): the
    stored records fail, with their groups. Delivered again with Firehose back, their rows reach the
    lake and the metrics do not count them again (the table already had them)."""
    with SilentEndpoint() as server:
        client = boto3.session.Session().client(
            "firehose", region_name=REGION, endpoint_url=server.url, config=processor.clients.FIREHOSE_CONFIG
        )
        processor.pin(lake=processor.lake.LakeSink(client, STREAM))
        records = [sqs_record(query_body("r-1"), group="g"), sqs_record(query_body("r-2"), group="g"), sqs_record(query_body("r-3"))]
        context = DeadlineContext(9)
        try:
            failed = run(processor, *records, context=context)
            returned = time.monotonic()
        finally:
            processor.pin(lake=None)
        assert returned < context.deadline, "the handler returned before Lambda would have ended it"
        assert server.actions == ["PutRecordBatch"]
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (2, 4)
    assert failed == ids(*records)
    assert all(table.item(request_id) is not None for request_id in ("r-1", "r-2", "r-3")), "the writes were done"
    out = capsys.readouterr().out
    values = metric_values(out)
    assert values["QueryEvents"] == [1, 1, 1] and values["LakeRows"] == [0] and values["LakeDeliveryFailures"] == [3]
    (error,) = [log for log in log_records(out) if log["message"] == "Rows not delivered to the lake"]
    assert error["errorCodes"] == ["ReadTimeoutError"]

    monkeypatch.setenv("LAKE_STREAM_NAME", STREAM)
    processor.reset()
    try:
        lake = Lake()
        assert run(processor, *(redelivered(record) for record in records)) == []
    finally:
        monkeypatch.delenv("LAKE_STREAM_NAME")
        processor.reset()
    assert sorted(row["request_id"] for row in lake.rows()) == ["r-1", "r-2", "r-3"]
    values = metric_values(capsys.readouterr().out)
    assert "QueryEvents" not in values and values["LakeRows"] == [3]


def test_the_backoff_bound_is_botocores_longest_sleep(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> None:
    """``CallLimits.backoff_s`` against botocore's own ``ExponentialBackoff.delay_amount``
    (``botocore/retries/standard.py``: ``random() * min(2 ** (attempt - 1), 20)``; with the new retries,
    a throttling factor of 1 and up to 5 s more for an ``x-amz-retry-after`` header), its ``random()`` at
    its supremum (1): the bound is the longest sleep, whichever retries the installed botocore runs."""
    backoff_s = processor.clients.CallLimits.backoff_s
    throttling = SimpleNamespace(is_throttling_error_from_context=lambda context: True)
    answer = SimpleNamespace(headers={"x-amz-retry-after": "3600000"}, status_code=400)  # an hour: capped at 5 s more
    expected = {False: [1, 2, 4, 8, 16, 20, 20, 20], True: [6, 7, 9, 13, 21, 25, 25, 25]}
    for new_retries, longest in expected.items():
        monkeypatch.setattr(standard, "NEW_RETRIES_ENABLED", new_retries)
        monkeypatch.setattr(processor.clients.configprovider, "NEW_RETRIES_ENABLED", new_retries, raising=False)
        backoff = standard.ExponentialBackoff(random=lambda: 1.0, service_name="dynamodb", throttling_detector=throttling)
        slept = [backoff.delay_amount(standard.RetryContext(attempt_number=n, http_response=answer)) for n in range(1, 9)]
        assert slept == [backoff_s(n) for n in range(1, 9)] == longest, new_retries


def test_only_the_standard_retry_mode_with_counted_attempts_is_accepted(processor: Processor) -> None:
    """Legacy and adaptive modes sleep by other rules (adaptive adds a client-side rate limiter), and
    ``max_attempts`` alone would be read as retries: the guard refuses what it cannot bound exactly."""
    for retries in ({"mode": "legacy", "total_max_attempts": 3}, {"mode": "adaptive", "total_max_attempts": 3}, {"mode": "standard"}):
        with pytest.raises(ValueError, match="standard"):
            processor.clients.CallLimits.of(Config(retries=retries, connect_timeout=1, read_timeout=1))
    with pytest.raises(ValueError, match="standard"):
        processor.store.EventStore(boto3.client("dynamodb", region_name=REGION), "t")
    retries_only = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1, read_timeout=1)
    with pytest.raises(ValueError, match="standard"):
        processor.clients.CallLimits.of(retries_only)
    client = boto3.client("dynamodb", region_name=REGION, config=retries_only)  # the client says what it will do
    limits = processor.store.EventStore(client, "t").guard.limits
    assert limits.total_max_attempts == 2, "botocore's Config max_attempts counts retries: 1 retry is 2 attempts"


class QuietSqs:
    """What the emulator calls on SQS after an invocation: deletes and visibility changes, accepted."""

    def delete_message_batch(self, **_: Any) -> dict:
        return {}

    def change_message_visibility_batch(self, **_: Any) -> dict:
        return {}


def message(number: int) -> dict:
    return {"MessageId": f"m-{number}", "ReceiptHandle": f"h-{number}", "Body": "{}", "MD5OfBody": "", "Attributes": {}}


def test_the_local_event_source_starts_an_invocations_clock_when_the_handler_runs() -> None:
    """In Lambda an invocation's timeout counts from when it starts. The emulator runs one invocation at a
    time; a batch that waited for the one before it must still get its whole timeout: its deadline is
    after the earlier invocation ended, although that one outlasted a whole timeout."""
    timeout_s = 2
    seen: list[tuple[float, int]] = []  # (monotonic time the handler started, remaining ms then)
    first_started, ended = threading.Event(), []

    def handler(event: dict, context: Any) -> dict:
        seen.append((time.monotonic(), context.get_remaining_time_in_millis()))
        if len(seen) == 1:
            first_started.set()
            time.sleep(timeout_s + 0.5)  # longer than a whole timeout: the queued batch would have none left
            ended.append(time.monotonic())
        return {"batchItemFailures": []}

    esm = EventSourceMappingEmulator(
        QuietSqs(), "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo", handler, function_timeout_s=timeout_s
    )
    first = threading.Thread(target=esm._invoke, args=([message(1)],))
    first.start()
    assert first_started.wait(10)
    second = threading.Thread(target=esm._invoke, args=([message(2)],))  # received while the first runs: it waits
    second.start()
    first.join(20)
    second.join(20)
    assert len(seen) == 2 and esm.stats.snapshot()["succeeded"] == 2
    (started, remaining_ms) = seen[1]
    assert remaining_ms > 0 and started + remaining_ms / 1000 > ended[0], "its deadline is after the first invocation ended"
