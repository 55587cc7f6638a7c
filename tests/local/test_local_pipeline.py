"""The whole pipeline on the local stack: producer -> SQS FIFO -> emulated event source -> processor -> DynamoDB."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from analytics_producer import AnalyticsLogger
from local.emulator.pipeline import LocalPipeline
from testkit.faults import DelayProxy


@pytest.fixture(scope="module")
def pipeline(local_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    log = tmp_path_factory.mktemp("local") / "processor.log"
    with LocalPipeline(template=local_template, failure_visibility_s=1, processor_log=log) as running:
        yield running


def items_with_prefix(pipeline: LocalPipeline, prefix: str) -> dict[str, dict]:
    dynamodb = pipeline.info.client("dynamodb")
    found, kwargs = {}, {"TableName": pipeline.info.table_name}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page["Items"]:
            if item["requestId"]["S"].startswith(prefix):
                found[item["requestId"]["S"]] = item
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def producer(pipeline: LocalPipeline, **kwargs) -> AnalyticsLogger:
    info = pipeline.info
    return AnalyticsLogger(info.events_queue_url, client=info.client("sqs", info.producer), **kwargs)


def test_1000_events_from_concurrent_threads_become_500_complete_items(pipeline: LocalPipeline) -> None:
    prefix = f"load-{uuid.uuid4().hex[:6]}-"
    before = pipeline.esm.stats.snapshot()
    with producer(pipeline) as logger:

        def work(thread: int) -> None:
            for index in range(125):
                request_id = f"{prefix}{thread}-{index}"
                assert logger.log_query(request_id, f"Does the candidate know Python? ({index})")
                assert logger.log_response(request_id, "partial", 50, "matched 1 of 2 skills", latency_ms=1.5)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert logger.flush(timeout=120)
        stats = logger.stats()
    assert stats["sent"] == 1000 and stats["failed"] == 0 and stats["dropped_full"] == 0
    assert pipeline.esm.wait_until_drained(timeout=180)
    items = items_with_prefix(pipeline, prefix)
    assert len(items) == 500
    assert all("query" in item and item["matchType"]["S"] == "partial" and "responseLatencyMs" in item for item in items.values())
    after = pipeline.esm.stats.snapshot()
    assert after["succeeded"] - before["succeeded"] == 1000, "each event processed exactly once"


def test_poison_message_reaches_the_dlq_after_exactly_3_receives_while_other_groups_flow(pipeline: LocalPipeline) -> None:
    info = pipeline.info
    sqs = info.client("sqs", info.producer)
    poison_group = f"poison-{uuid.uuid4().hex[:6]}"
    poison = sqs.send_message(
        QueueUrl=info.events_queue_url,
        MessageBody=json.dumps({"eventType": "query", "requestId": poison_group, "timestamp": "yesterday"}),
        MessageGroupId=poison_group,
        MessageDeduplicationId=f"{poison_group}:query",
    )["MessageId"]
    prefix = f"flow-{uuid.uuid4().hex[:6]}-"
    with producer(pipeline) as logger:
        for index in range(20):
            logger.log_query(f"{prefix}{index}", "Any Rust?")
        assert logger.flush(timeout=60)
    admin = info.client("sqs")
    deadline = time.monotonic() + 60
    moved: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not moved:
        response = admin.receive_message(
            QueueUrl=info.dead_letter_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0
        )
        moved = [m for m in response.get("Messages", []) if m["MessageId"] == poison]
    assert moved, "the poison message is in the DLQ"
    assert pipeline.esm.deliveries[poison] == 3
    assert len(items_with_prefix(pipeline, prefix)) == 20, "the other groups kept flowing"
    admin.purge_queue(QueueUrl=info.dead_letter_queue_url)


def test_the_same_event_twice_leaves_one_unchanged_item(pipeline: LocalPipeline) -> None:
    info = pipeline.info
    sqs = info.client("sqs", info.producer)
    request_id = f"dup-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"eventType": "query", "requestId": request_id, "timestamp": int(time.time() * 1000), "query": "Python?"})
    for dedup in (f"{request_id}:query", f"{request_id}:query"):  # inside SQS's deduplication window
        sqs.send_message(QueueUrl=info.events_queue_url, MessageBody=body, MessageGroupId=request_id, MessageDeduplicationId=dedup)
    assert pipeline.esm.wait_until_drained(timeout=30)
    first = items_with_prefix(pipeline, request_id)[request_id]
    # A replay past the window (a new deduplication id, as after a redrive) changes nothing either.
    sqs.send_message(
        QueueUrl=info.events_queue_url, MessageBody=body, MessageGroupId=request_id, MessageDeduplicationId=f"{request_id}:replay"
    )
    assert pipeline.esm.wait_until_drained(timeout=30)
    assert items_with_prefix(pipeline, request_id) == {request_id: first}


def test_moto_restart_mid_run_blocks_no_caller_and_buffered_events_arrive(pipeline: LocalPipeline) -> None:
    """The producer reaches moto through a proxy, so stopping the server also cuts its open
    keep-alive connections, as a crash would (werkzeug keeps serving them after shutdown)."""
    info = pipeline.info
    moto_port = int(info.endpoint_url.rsplit(":", 1)[1])
    prefix = f"restart-{uuid.uuid4().hex[:6]}-"
    with DelayProxy(moto_port, 0) as proxy:
        # Retries are the logger's: the given client must not retry on its own (as from_env builds it).
        no_retries = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=3)
        client = info.producer.session(info.region).client("sqs", endpoint_url=f"http://127.0.0.1:{proxy.port}", config=no_retries)
        with AnalyticsLogger(info.events_queue_url, client=client, max_retries=60, backoff_max_s=0.5) as logger:
            for index in range(10):
                logger.log_query(f"{prefix}{index}", "Kotlin?")
            assert logger.flush(timeout=60)
            # The poller pauses with the server: a batch caught mid-way would stay invisible for the
            # queue's 180 s visibility timeout, as in AWS, which is not what this test is about.
            pipeline.esm.stop()
            pipeline.stack.stop_server()
            proxy.drop_connections()
            slowest = 0.0
            try:
                probe = info.client("sqs")
                with pytest.raises(EndpointConnectionError):
                    probe.get_queue_url(QueueName=info.events_queue_url.rsplit("/", 1)[-1])
                for index in range(10, 60):
                    started = time.perf_counter()
                    accepted = logger.log_query(f"{prefix}{index}", "Kotlin?")
                    slowest = max(slowest, time.perf_counter() - started)
                    assert accepted
                time.sleep(1.5)
                assert logger.stats()["sent"] == 10, "nothing can be delivered while the server is down"
            finally:
                pipeline.stack.start_server()
                pipeline.esm.start()
            assert slowest < 0.05, f"log() blocked for {slowest * 1000:.1f} ms while SQS was down"
            assert logger.flush(timeout=60)
            stats = logger.stats()
    assert stats["sent"] == 60 and stats["failed"] == 0
    assert stats["retried"] > 0
    assert pipeline.esm.wait_until_drained(timeout=60)
    assert len(items_with_prefix(pipeline, prefix)) == 60


def test_moto_sqs_clock_is_strictly_increasing_in_every_thread() -> None:
    """``speed_up_moto_sqs``'s clock: each thread's readings strictly increase (moto releases a message, then reads
    the clock again in the same request to clear its in-flight mark: an equal reading left it marked), and
    threads read it side by side. It was behind one lock shared by every request thread: moto reads the clock
    for every message of a queue on every call, and a few thousand waiting messages made the threads spend
    their time contending in the kernel (the cost benchmark's 38/s run stalled)."""
    import moto.sqs.models as sqs_models

    from local.emulator.stack import speed_up_moto_sqs

    speed_up_moto_sqs()
    readings: dict[int, list[float]] = {}
    start = threading.Barrier(4)

    def read(index: int) -> None:
        start.wait()
        readings[index] = [sqs_models.unix_time_millis() for _ in range(20_000)]

    threads = [threading.Thread(target=read, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for values in readings.values():
        assert all(later > earlier for earlier, later in itertools.pairwise(values))
        assert abs(values[-1] - time.time() * 1000) < 60_000  # epoch milliseconds, as moto's own clock
