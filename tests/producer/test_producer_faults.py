"""Faults: SQS down, slow, throttling or failing, refusing; a full buffer; invalid events.

In each, ``log()`` never raises and stays fast, and the counters say exactly what happened.
"""

from __future__ import annotations

import logging
import time

import pytest
from botocore.stub import Stubber

from analytics_producer import AnalyticsLogger, InvalidEventError
from testkit.faults import DelayProxy, closed_port
from testkit.moto import moto_thread
from tests.producer.conftest import TRANSPORTS, Queue, create_queue, logger_at, sqs_client

SLOW_CALL_S = 0.05  # generous: a call that waited on the network would take far longer


def log_many(logger: AnalyticsLogger, count: int, prefix: str) -> float:
    """Log ``count`` query events; returns the slowest call in seconds."""
    slowest = 0.0
    for index in range(count):
        started = time.perf_counter()
        assert logger.log_query(f"{prefix}-{index}", "Does the candidate know Go?") is True
        slowest = max(slowest, time.perf_counter() - started)
    return slowest


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_endpoint_down_then_up_delivers_everything(queue: Queue, transport: str) -> None:
    """The queue exists (moto's state is per process); its endpoint comes up on a port that was closed."""
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    queue_url = f"{endpoint}/{'/'.join(queue.url.rsplit('/', 2)[-2:])}"
    logger = logger_at(transport, queue_url, endpoint, max_retries=100, backoff_base_s=0.05, backoff_max_s=0.3)
    try:
        assert log_many(logger, 30, "down") < SLOW_CALL_S
        time.sleep(1.0)
        assert logger.stats()["sent"] == 0 and logger.stats()["retried"] > 0
        with moto_thread(port):  # the same process: the queue made before is there
            assert logger.flush(timeout=20)
            stats = logger.stats()
            assert (stats["sent"], stats["failed"], stats["queued"]) == (30, 0, 0)
            assert len(Queue(queue_url, endpoint).drain(expected=30)) == 30
    finally:
        logger.close(timeout=1)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_slow_endpoint_never_slows_the_caller(queue: Queue, transport: str) -> None:
    port = int(queue.endpoint_url.rsplit(":", 1)[1])
    with DelayProxy(port, delay_s=1.0) as proxy, logger_at(transport, queue.url, f"http://127.0.0.1:{proxy.port}") as logger:
        assert log_many(logger, 40, "slow") < SLOW_CALL_S
        assert logger.stats()["sent"] < 40, "the sends are still waiting on the slow endpoint"
        assert logger.flush(timeout=30)
        assert logger.stats()["sent"] == 40
    assert len(queue.drain(expected=40)) == 40


def stubbed(**kwargs) -> tuple[AnalyticsLogger, Stubber]:
    client = sqs_client("http://127.0.0.1:1")
    stubber = Stubber(client)
    stubber.activate()
    return AnalyticsLogger("http://127.0.0.1:1/123456789012/q.fifo", client=client, backoff_base_s=0.01, **kwargs), stubber


def ok(count: int) -> dict:
    return {"Successful": [{"Id": str(i), "MessageId": f"m{i}", "MD5OfMessageBody": "x"} for i in range(count)], "Failed": []}


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalError", 500), ("ServiceUnavailable", 503)])
def test_throttling_and_server_errors_are_retried_then_delivered(code: str, status: int) -> None:
    logger, stubber = stubbed()
    stubber.add_client_error("send_message_batch", service_error_code=code, http_status_code=status)
    stubber.add_client_error("send_message_batch", service_error_code=code, http_status_code=status)
    stubber.add_response("send_message_batch", ok(3))
    with logger:
        log_many(logger, 3, code)
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert (stats["sent"], stats["failed"], stats["retried"], stats["requests"]) == (3, 0, 6, 3)
    stubber.assert_no_pending_responses()


def test_failed_entries_of_a_batch_are_retried_on_their_own() -> None:
    logger, stubber = stubbed()
    first = {
        "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}, {"Id": "2", "MessageId": "m2", "MD5OfMessageBody": "x"}],
        "Failed": [{"Id": "1", "SenderFault": False, "Code": "InternalError"}],
    }
    stubber.add_response("send_message_batch", first)
    stubber.add_response("send_message_batch", {"Successful": [{"Id": "1", "MessageId": "m1", "MD5OfMessageBody": "x"}], "Failed": []})
    sent_entries: list[list[str]] = []
    logger._client.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch",
        lambda params, **_: sent_entries.append([e["MessageDeduplicationId"] for e in params["Entries"]]),
    )
    with logger:
        log_many(logger, 3, "entry")
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert sent_entries == [["entry-0:query", "entry-1:query", "entry-2:query"], ["entry-1:query"]], "the retry reuses its id"
    assert (stats["sent"], stats["retried"], stats["failed"]) == (3, 1, 0)


def test_access_denied_is_not_retried_and_reported_once_per_batch(caplog: pytest.LogCaptureFixture) -> None:
    reports = []
    logger, stubber = stubbed(on_error=lambda error, events: reports.append((type(error).__name__, len(events))))
    stubber.add_client_error("send_message_batch", service_error_code="AccessDenied", http_status_code=403)
    stubber.add_client_error("send_message_batch", service_error_code="AccessDenied", http_status_code=403)
    with caplog.at_level(logging.WARNING, logger="analytics_producer"), logger:
        log_many(logger, 10, "denied-a")
        assert logger.flush(timeout=10)
        log_many(logger, 10, "denied-b")
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert (stats["sent"], stats["failed"], stats["retried"], stats["requests"]) == (0, 20, 0, 2)
    assert reports == [("ClientError", 10), ("ClientError", 10)]
    warnings = [r for r in caplog.records if r.name == "analytics_producer"]
    assert len(warnings) == 1 and "AccessDenied" in warnings[0].getMessage(), "the warning is rate-limited"


def test_moto_403_from_iam_counts_as_not_retryable() -> None:
    """moto answers a denied SQS JSON request with an XML 403 that botocore reports as code '403'."""
    logger, stubber = stubbed()
    stubber.add_client_error("send_message_batch", service_error_code="403", http_status_code=403)
    with logger:
        log_many(logger, 2, "xml403")
        assert logger.flush(timeout=10)
        assert (logger.stats()["failed"], logger.stats()["retried"]) == (2, 0)


def test_a_full_buffer_drops_new_events_and_counts_them_exactly() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    logger = AnalyticsLogger(
        f"{endpoint}/123456789012/q.fifo", client=sqs_client(endpoint), max_queue_size=50, max_retries=1000, backoff_base_s=0.5
    )
    try:
        results = []
        slowest = 0.0
        for index in range(300):
            started = time.perf_counter()
            results.append(logger.log_query(f"full-{index}", "Java?"))
            slowest = max(slowest, time.perf_counter() - started)
        stats = logger.stats()
        assert slowest < SLOW_CALL_S
        assert stats["accepted"] == results.count(True)
        assert stats["dropped_full"] == results.count(False) > 0
        assert stats["accepted"] + stats["dropped_full"] == 300
        assert stats["accepted"] <= 50 + 10, "bounded: the buffer plus one batch in flight"
        assert stats["accepted"] == stats["sent"] + stats["failed"] + stats["queued"]
    finally:
        logger.close(timeout=0.5)
    assert logger.log_query("after-close", "Java?") is False
    assert logger.stats()["dropped_closed"] >= 1


@pytest.mark.parametrize(
    "event",
    [
        None,
        {"eventType": "query", "timestamp": 1, "query": "no request id"},
        {"eventType": "query", "requestId": "has space", "timestamp": 1, "query": "q"},
        {"eventType": "query", "requestId": "r", "timestamp": "yesterday", "query": "q"},
        {"eventType": "query", "requestId": "r", "timestamp": 1, "query": "q" * 4097},
        {"eventType": "response", "requestId": "r", "timestamp": 1, "matchType": "most", "matchScore": 1, "reasoning": ""},
        {"eventType": "response", "requestId": "r", "timestamp": 1, "matchType": "full", "matchScore": 101, "reasoning": ""},
        {"eventType": "response", "requestId": "r", "timestamp": 1, "matchType": "full", "matchScore": True, "reasoning": ""},
        {"eventType": "feedback", "requestId": "r", "timestamp": 1},
    ],
)
def test_invalid_events_are_rejected_and_counted_or_raised_when_strict(event) -> None:
    logger, _ = stubbed()
    with logger:
        assert logger.log(event) is False
        assert logger.stats()["dropped_invalid"] == 1 and logger.stats()["accepted"] == 0
    strict, _ = stubbed(strict=True)
    with strict, pytest.raises(InvalidEventError):
        strict.log(event)


def test_helpers_refuse_a_misspelled_keyword_at_the_call_and_reject_bad_values_without_raising() -> None:
    """A keyword the helpers do not have is a TypeError at the call (and a mypy error), never a silent drop;
    a field of your own goes through extra=; a bad value is rejected and counted."""
    logger, _ = stubbed()
    with logger:
        with pytest.raises(TypeError, match="colour"):
            logger.log_query("r", "q", colour="blue")  # type: ignore[call-arg]
        assert logger.log_response("r", "full", 100, "ok", latency_ms=-1) is False
        assert logger.log_query("r", "q", extra={"colour": "blue"}) is True
        assert logger.stats()["dropped_invalid"] == 1


def test_queue_attributes_come_from_the_template(moto_endpoint: str, dev) -> None:
    """The fixture the tests rely on: a queue of its own, configured as the synthesized events queue."""
    queue = create_queue(moto_endpoint, dev.raw)
    attributes = queue.client().get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true" and attributes["ContentBasedDeduplication"] == "false"
    assert (attributes["DeduplicationScope"], attributes["FifoThroughputLimit"]) == ("messageGroup", "perMessageGroupId")
    assert attributes["VisibilityTimeout"] == "180"  # 6 x the processor's 30 s timeout
