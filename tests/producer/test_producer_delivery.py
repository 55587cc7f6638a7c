"""Delivery to a real (moto) FIFO queue: everything once, with the right ids, in batches."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time

import pytest

from analytics_producer import AnalyticsLogger, deduplication_id
from tests.producer.conftest import TRANSPORTS, Queue, logger_for


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_events_from_many_threads_arrive_once_with_their_ids_and_valid_bodies(queue: Queue, event_schema, transport: str) -> None:
    with logger_for(queue, transport) as logger:

        def work(thread: int) -> None:
            for index in range(50):
                request_id = f"req-{thread}-{index}"
                assert logger.log_query(request_id, f"Does the candidate know Python? {index}", source="test", session_id=f"s{thread}")
                assert logger.log_response(request_id, "partial", 50.5, "matched 1 of 2 skills", latency_ms=11.8)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert logger.flush(timeout=30)
        stats = logger.stats()
    assert stats == {**stats, "accepted": 400, "sent": 400, "failed": 0, "dropped_full": 0, "dropped_invalid": 0, "queued": 0}
    messages = queue.drain(expected=400)
    assert len(messages) == 400
    seen = set()
    for message in messages:
        body = json.loads(message["Body"])
        errors = sorted(e.message for e in event_schema.iter_errors(body))
        assert errors == [], errors
        attributes = message["Attributes"]
        assert attributes["MessageGroupId"] == body["requestId"]
        assert attributes["MessageDeduplicationId"] == f"{body['requestId']}:{body['eventType']}"
        seen.add(attributes["MessageDeduplicationId"])
    assert len(seen) == 400, "the query and the response of every request both arrived, once"


def test_about_one_request_per_ten_events_under_load(queue: Queue) -> None:
    with AnalyticsLogger(queue.url, client=queue.client()) as logger:
        for index in range(500):
            logger.log_query(f"load-{index}", "Rust?")
        assert logger.flush(timeout=30)
        stats = logger.stats()
    assert stats["sent"] == 500
    assert stats["requests"] <= 55, stats
    assert len(queue.drain(expected=500)) == 500


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_long_ids_are_hashed_and_a_custom_group_key_is_used(queue: Queue, transport: str) -> None:
    long_id = "r" * 128
    with logger_for(queue, transport, group_id=lambda event: event.get("sessionId") or event["requestId"]) as logger:
        assert logger.log_query(long_id, "Python? Ünïcödé ✓ 😀", session_id="conversation-7")
        assert logger.flush(timeout=10)
    [message] = queue.drain(expected=1)
    assert json.loads(message["Body"])["query"] == "Python? Ünïcödé ✓ 😀", "non-ASCII text arrives intact"
    assert message["Attributes"]["MessageDeduplicationId"] == hashlib.sha256(f"{long_id}:query".encode()).hexdigest()
    assert message["Attributes"]["MessageGroupId"] == "conversation-7"
    assert deduplication_id({"requestId": "a", "eventType": "query"}) == "a:query"


def test_a_retried_send_inside_the_window_is_not_a_duplicate(queue: Queue) -> None:
    """Two loggers (or a retry) sending the same event: SQS keeps one, by the deterministic id (whichever transport sent it)."""
    for transport in TRANSPORTS:
        with logger_for(queue, transport) as logger:
            logger.log({"eventType": "query", "requestId": "same", "timestamp": 1, "query": "Go?"})
            assert logger.flush(timeout=10)
    assert len(queue.drain()) == 1


def test_log_is_safe_inside_an_asyncio_event_loop(queue: Queue) -> None:
    async def handler(logger: AnalyticsLogger) -> float:
        started = time.perf_counter()
        for index in range(100):
            assert logger.log_query(f"async-{index}", "Scala?")
        return time.perf_counter() - started

    with AnalyticsLogger(queue.url, client=queue.client()) as logger:
        elapsed = asyncio.run(handler(logger))
        assert logger.flush(timeout=10)
    assert elapsed < 0.5, "100 calls inside the loop never wait on the network"
    assert len(queue.drain(expected=100)) == 100


def test_from_env_reads_the_seed_variables(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SQS_URL", queue.endpoint_url + "/" + "/".join(queue.url.rsplit("/", 2)[-2:]))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret")
    with AnalyticsLogger.from_env() as logger:
        assert logger.endpoint_url == queue.endpoint_url
        assert logger.transport == "lean" and logger._client.endpoint_url == queue.endpoint_url
        assert logger._client.credentials.get_frozen_credentials().access_key == "AKIDFROMENV"
        assert logger.log_query("env-1", "Python?")
        assert logger.flush(timeout=10)
    assert len(queue.drain(expected=1)) == 1
