"""No event can stop the producer, and no failure at any step of the sender can stop its thread.

Each scenario ends with the counters adding up exactly (accepted == sent + failed + queued, with
nothing queued), the undelivered events reported to on_error exactly once, and the sender still
delivering what is logged after the fault.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from analytics_producer import AnalyticsLogger, InvalidEventError, LoggerClosedError, UnsendableEventError, client_config
from analytics_producer import logger as logger_module
from analytics_producer import sender as sender_module
from analytics_producer.logger import DEFAULT_CLOSE_TIMEOUT_S
from testkit.faults import SilentServer
from tests.producer.conftest import REGION, TRANSPORTS, Queue

QUEUE_URL = "http://127.0.0.1:1/123456789012/q.fifo"


def query(request_id: str, text: str = "Does the candidate know Python?", **extra: Any) -> dict[str, Any]:
    return {"eventType": "query", "requestId": request_id, "timestamp": 1_767_225_600_000, "query": text, **extra}


class FakeClient:
    """A stand-in SQS client: each call runs the next scripted behaviour (default: every entry succeeds)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[list[str]] = []  # the requestIds of each call
        self.lock = threading.Lock()

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> Any:  # boto3's parameter names
        with self.lock:
            self.calls.append([json.loads(entry["MessageBody"])["requestId"] for entry in Entries])
            step = self.script.pop(0) if self.script else None
        if step is None:
            return {"Successful": [{"Id": entry["Id"], "MessageId": "m", "MD5OfMessageBody": "x"} for entry in Entries], "Failed": []}
        if isinstance(step, BaseException):
            raise step
        return step(Entries) if callable(step) else step

    def delivered(self) -> set[str]:
        return {request_id for call in self.calls for request_id in call}


class Reports:
    """on_error that records (error type, requestIds) of every report."""

    def __init__(self) -> None:
        self.items: list[tuple[type, list[str]]] = []
        self.lock = threading.Lock()

    def __call__(self, error: BaseException, events: list[dict[str, Any]]) -> None:
        with self.lock:
            self.items.append((type(error), [event["requestId"] for event in events]))

    def ids(self) -> list[str]:
        return sorted(request_id for _, ids in self.items for request_id in ids)


def assert_settled(logger: AnalyticsLogger, *, accepted: int, sent: int, failed: int) -> None:
    stats = logger.stats()
    assert (stats["accepted"], stats["sent"], stats["failed"], stats["queued"]) == (accepted, sent, failed, 0), stats
    assert stats["accepted"] == stats["sent"] + stats["failed"] + stats["queued"]


def assert_still_delivers(logger: AnalyticsLogger, client: FakeClient, prefix: str) -> None:
    """After the fault the same sender thread delivers new events."""
    before = logger.stats()["sent"]
    for index in range(3):
        assert logger.log(query(f"{prefix}-after-{index}"))
    assert logger.flush(timeout=5), "the sender thread survived"
    assert logger._sender.alive()
    assert logger.stats()["sent"] == before + 3
    assert {f"{prefix}-after-{index}" for index in range(3)} <= client.delivered()


# -- an event with a lone surrogate ----------------------------------------------------------------


def test_log_rejects_a_lone_surrogate_at_once_and_never_names_the_value() -> None:
    client = FakeClient()
    with AnalyticsLogger(QUEUE_URL, client=client) as logger:
        assert logger.log_query("r", "is \ud800 ok?") is False
        assert logger.log_query("r2", "a NUL \x00 too") is False
        stats = logger.stats()
        assert (stats["accepted"], stats["dropped_invalid"]) == (0, 2)
        assert_still_delivers(logger, client, "surrogate")
    with AnalyticsLogger(QUEUE_URL, client=FakeClient(), strict=True) as strict, pytest.raises(InvalidEventError) as raised:
        strict.log_query("r", "secret \ud800 question")
    message = str(raised.value)
    assert message.startswith("query:") and "SQS-safe" in message and "secret" not in message
    message.encode("utf-8")  # the message itself is safe to log


def test_an_event_that_cannot_be_encoded_fails_alone_and_the_rest_of_its_batch_is_sent(queue: Queue) -> None:
    """Past log() (a nested value changed after it), a lone surrogate used to stop the sender for good."""
    reports = Reports()
    notes: list[str] = ["fine"]
    with AnalyticsLogger(queue.url, client=queue.client(), flush_interval_s=30, on_error=reports) as logger:
        for index in range(4):
            assert logger.log(query(f"before-{index}"))
        assert logger.log(query("bad", notes=notes))
        notes.append("is \ud800 ok?")  # after validate(): the body cannot be encoded as UTF-8
        for index in range(5):
            assert logger.log(query(f"after-{index}"))
        assert logger.flush(timeout=10), "the sender neither loops nor loses the batch"
        assert_settled(logger, accepted=10, sent=9, failed=1)
        assert reports.items == [(UnsendableEventError, ["bad"])]
        assert logger._sender.alive()
    bodies = [json.loads(message["Body"])["requestId"] for message in queue.drain(expected=9)]
    assert sorted(bodies) == sorted([f"before-{i}" for i in range(4)] + [f"after-{i}" for i in range(5)])


def test_a_with_block_returns_after_an_unencodable_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with validate() out of the way, flush() and leaving the block return promptly."""
    monkeypatch.setattr(logger_module, "validate", lambda event: None)
    reports = Reports()
    client = FakeClient()
    started = time.monotonic()
    with AnalyticsLogger(QUEUE_URL, client=client, on_error=reports) as logger:
        assert logger.log_query("good-1", "Rust?")
        assert logger.log_query("bad", "is \ud800 ok?")
        assert logger.log(query("also-bad", text="\ufffe"))  # SQS refuses U+FFFE in a body: caught before sending
        assert logger.log_query("good-2", "Go?")
        assert logger.flush(timeout=5)
    assert time.monotonic() - started < 3
    assert_settled(logger, accepted=4, sent=2, failed=2)
    assert reports.ids() == ["also-bad", "bad"] and {kind for kind, _ in reports.items} == {UnsendableEventError}
    assert client.delivered() == {"good-1", "good-2"}


# -- an exception at each step of the sender -----------------------------------------------------


def test_an_exception_while_serializing_fails_that_event_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sender_module.to_entry

    def to_entry(event, group_key):
        if event["requestId"] == "boom":
            raise RuntimeError("a serializer bug")
        return real(event, group_key)

    monkeypatch.setattr(sender_module, "to_entry", to_entry)
    reports = Reports()
    client = FakeClient()
    with AnalyticsLogger(QUEUE_URL, client=client, on_error=reports) as logger:
        for request_id in ("a", "b", "boom", "c", "d"):
            assert logger.log(query(request_id))
        assert logger.flush(timeout=5)
        assert_settled(logger, accepted=5, sent=4, failed=1)
        assert reports.items == [(UnsendableEventError, ["boom"])]
        assert client.calls == [["a", "b", "c", "d"]]
        assert_still_delivers(logger, client, "serialize")


def test_a_group_id_callable_that_raises_or_returns_garbage_fails_that_event_alone() -> None:
    def group_id(event):
        if event["requestId"] == "raises":
            raise KeyError("conversation")
        return "has space" if event["requestId"] == "garbage" else "conversation-1"

    reports = Reports()
    client = FakeClient()
    with AnalyticsLogger(QUEUE_URL, client=client, on_error=reports, group_id=group_id) as logger:
        for request_id in ("a", "raises", "garbage", "b"):
            assert logger.log(query(request_id))
        assert logger.flush(timeout=5)
        assert_settled(logger, accepted=4, sent=2, failed=2)
        assert reports.ids() == ["garbage", "raises"]
        assert_still_delivers(logger, client, "group")


@pytest.mark.parametrize("raised", [RuntimeError("a client bug"), KeyError("Entries"), MemoryError()])
def test_an_exception_from_the_request_fails_its_batch_and_the_sender_goes_on(raised: BaseException) -> None:
    reports = Reports()
    client = FakeClient(raised)
    with AnalyticsLogger(QUEUE_URL, client=client, on_error=reports, backoff_base_s=0.01) as logger:
        for index in range(3):
            assert logger.log(query(f"request-{index}"))
        assert logger.flush(timeout=5)
        assert_settled(logger, accepted=3, sent=0, failed=3)
        assert reports.items == [(type(raised), ["request-0", "request-1", "request-2"])]
        assert_still_delivers(logger, client, "request")


def test_a_response_that_is_not_a_response_fails_its_batch_and_the_sender_goes_on() -> None:
    reports = Reports()
    client = FakeClient(lambda entries: None, lambda entries: {"Successful": 7})
    with AnalyticsLogger(QUEUE_URL, client=client, on_error=reports, batch_size=2) as logger:
        for index in range(4):
            assert logger.log(query(f"garbage-{index}"))
        assert logger.flush(timeout=5)
        assert_settled(logger, accepted=4, sent=0, failed=4)
        assert reports.ids() == [f"garbage-{index}" for index in range(4)]
        assert_still_delivers(logger, client, "response")


def test_malformed_items_of_a_response_are_not_trusted_and_their_entries_are_sent_again() -> None:
    def partly_garbage(entries):
        return {
            "Successful": [{"Id": "0", "MessageId": "m"}, None, {"Id": ["1"]}, "3"],
            "Failed": ["garbage", {"Id": "2", "SenderFault": True, "Code": "InvalidMessageContents"}, {"Id": 3}],
        }

    reports = Reports()
    client = FakeClient(partly_garbage)
    with AnalyticsLogger(QUEUE_URL, client=client, on_error=reports, backoff_base_s=0.01) as logger:
        for index in range(4):
            assert logger.log(query(f"item-{index}"))
        assert logger.flush(timeout=5)
        assert_settled(logger, accepted=4, sent=3, failed=1)
        assert reports.ids() == ["item-2"], "only the entry SQS refused for the sender's fault fails"
        assert client.calls[1] == ["item-1", "item-3"], "entries the response does not confirm are sent again"
        assert logger.stats()["retried"] == 2
        assert_still_delivers(logger, client, "items")


def test_an_unexpected_exception_while_retrying_fails_exactly_the_unsettled_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries 0 and 2 were delivered, 1 is to be retried when the backoff breaks: only 1 fails."""
    first = {
        "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}, {"Id": "2", "MessageId": "m2", "MD5OfMessageBody": "x"}],
        "Failed": [{"Id": "1", "SenderFault": False, "Code": "InternalError"}],
    }
    calls = {"backoff": 0}

    def broken_backoff(self, attempt):
        calls["backoff"] += 1
        raise RuntimeError("a backoff bug")

    monkeypatch.setattr(sender_module.Sender, "_backoff", broken_backoff)
    reports = Reports()
    client = FakeClient(first)
    with AnalyticsLogger(QUEUE_URL, client=client, on_error=reports) as logger:
        for index in range(3):
            assert logger.log(query(f"retry-{index}"))
        assert logger.flush(timeout=5)
        assert_settled(logger, accepted=3, sent=2, failed=1)
        assert reports.items == [(RuntimeError, ["retry-1"])]
        assert_still_delivers(logger, client, "backoff")
    assert calls["backoff"] == 1


@pytest.mark.parametrize("raised", [RuntimeError("a broken callback"), SystemExit(3)])
def test_an_on_error_callback_that_raises_does_not_stop_the_sender(raised: BaseException) -> None:
    seen: list[int] = []

    def on_error(error: BaseException, events: list[dict[str, Any]]) -> None:
        seen.append(len(events))
        raise raised

    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "SendMessageBatch")
    client = FakeClient(denied)
    with AnalyticsLogger(QUEUE_URL, client=client, on_error=on_error) as logger:
        for index in range(4):
            assert logger.log(query(f"callback-{index}"))
        assert logger.flush(timeout=5)
        assert_settled(logger, accepted=4, sent=0, failed=4)
        assert seen == [4]
        assert_still_delivers(logger, client, "callback")


# -- close() is bounded when SQS never answers ------------------------------------------------------


def silent_logger(server: SilentServer, reports: Reports, transport: str, **kwargs: Any) -> AnalyticsLogger:
    """A logger whose attempts hang far longer than any close bound (read timeout 60 s), on either transport."""
    session = boto3.Session(aws_access_key_id="AKIDSILENT", aws_secret_access_key="silent-secret", region_name=REGION)
    if transport == "lean":
        return AnalyticsLogger(
            server.queue_url, endpoint_url=server.endpoint_url, session=session, read_timeout_s=60, on_error=reports, **kwargs
        )
    sqs = session.client("sqs", endpoint_url=server.endpoint_url, config=client_config(connect_timeout_s=1, read_timeout_s=60))
    return AnalyticsLogger(server.queue_url, client=sqs, on_error=reports, **kwargs)


def wait_settled(logger: AnalyticsLogger, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while logger.stats()["queued"] and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["botocore"])  # the lean transport's hanging request: the with-block test below
def test_close_without_a_timeout_is_bounded_when_sqs_never_answers(transport: str) -> None:
    assert DEFAULT_CLOSE_TIMEOUT_S == 5.0
    reports = Reports()
    with SilentServer() as server:
        logger = silent_logger(server, reports, transport)
        for index in range(25):
            assert logger.log_query(f"silent-{index}", "Does the candidate know Ada?")
        started = time.monotonic()
        assert logger.close() is False
        elapsed = time.monotonic() - started
        stats = logger.stats()
        assert stats["accepted"] == stats["sent"] + stats["failed"] + stats["queued"] == 25
        assert (stats["sent"], stats["failed"], stats["queued"]) == (0, 15, 10), "the 10 on the wire are still in flight"
        assert server.counts()[1] == 1, "one request, hanging"
    # The server is gone: the request in flight fails now, without a retry (the logger is closed).
    wait_settled(logger)
    assert DEFAULT_CLOSE_TIMEOUT_S <= elapsed < DEFAULT_CLOSE_TIMEOUT_S + 5.0, f"close() took {elapsed:.2f} s"  # generous: a noisy machine
    assert_settled(logger, accepted=25, sent=0, failed=25)
    assert reports.ids() == sorted(f"silent-{index}" for index in range(25))
    assert LoggerClosedError in {kind for kind, _ in reports.items}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_leaving_a_with_block_is_bounded_when_sqs_never_answers(transport: str) -> None:
    reports = Reports()
    with SilentServer() as server:
        started = time.monotonic()
        with silent_logger(server, reports, transport, close_timeout_s=1.0) as logger:
            for index in range(12):
                assert logger.log_query(f"with-{index}", "Does the candidate know Lisp?")
        elapsed = time.monotonic() - started
    wait_settled(logger)
    assert elapsed < 5.0, f"leaving the with block took {elapsed:.2f} s"  # close_timeout_s 1.0, with generous slack
    assert_settled(logger, accepted=12, sent=0, failed=12)
    assert reports.ids() == sorted(f"with-{index}" for index in range(12))


# -- steady traffic: the sender looks by itself, callers stop waking it ------------------------------


def test_under_steady_traffic_log_stops_waking_the_sender_and_full_batches_still_go_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waking the sender thread is the largest part of log()'s p99 (bench/producer_bench.py): once full
    batches flow, the sender polls the buffer every few milliseconds and log() no longer sets its event.
    When traffic stops, the sender goes back to waiting and log() wakes it again."""
    client = FakeClient()
    with AnalyticsLogger("https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo", client=client, flush_interval_s=0.3) as logger:
        sender = logger._sender
        assert isinstance(sender, sender_module.Sender), "an enabled logger has a sender thread"
        sets: list[float] = []
        original_set = sender.wake.set

        def counted_set() -> None:
            sets.append(time.monotonic())
            original_set()

        monkeypatch.setattr(sender.wake, "set", counted_set)
        for index in range(10):
            assert logger.log(query(f"steady-{index}"))
        deadline = time.monotonic() + 5
        while not sender.polling and time.monotonic() < deadline:
            time.sleep(0.001)
        assert sender.polling, "a full batch taken: the sender polls"
        woken = len(sets)
        for index in range(10, 60):
            assert logger.log(query(f"steady-{index}"))
            time.sleep(0.0005)
        assert len(sets) == woken, "no wake-up from log() while traffic is steady"
        assert logger.flush(timeout=5)
        assert all(len(call) == 10 for call in client.calls), "batches stay full"
        time.sleep(0.5)  # longer than the flush interval without a full batch
        assert logger.log(query("after-the-pause"))  # the sender looks once more and stops polling
        deadline = time.monotonic() + 5
        while sender.polling and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not sender.polling
    assert_settled(logger, accepted=61, sent=61, failed=0)
