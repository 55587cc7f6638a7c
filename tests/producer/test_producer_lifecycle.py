"""Process lifecycle: exit flushes (bounded), a forked child starts clean."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from testkit.faults import closed_port
from tests.producer.conftest import REPO, TRANSPORTS, Queue, logger_for

CHILD = textwrap.dedent(
    """
    import sys, time
    import boto3
    from botocore.config import Config
    from analytics_producer import AnalyticsLogger

    endpoint, queue_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = boto3.Session(aws_access_key_id="AKIDCHILD", aws_secret_access_key="child-secret", region_name="us-east-1").client(
        "sqs", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=2)
    )
    logger = AnalyticsLogger(queue_url, client=client)
    for index in range(count):
        logger.log_query(f"exit-{index}", "Does the candidate know Python?")
    print("logged", time.monotonic(), flush=True)
    # no flush, no close: the atexit hook must deliver (or give up within its bound)
    """
)


def run_child(endpoint: str, queue_url: str, count: int) -> tuple[subprocess.CompletedProcess, float]:
    """Run the child; returns its result and how long it took to exit after logging (CLOCK_MONOTONIC is system-wide)."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, endpoint, queue_url, str(count)], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    ended = time.monotonic()
    logged_at = float(result.stdout.split()[1]) if result.stdout.startswith("logged") else ended
    return result, ended - logged_at


def test_a_process_that_logs_and_exits_delivers_its_events(queue: Queue) -> None:
    result, _ = run_child(queue.endpoint_url, queue.url, 25)
    assert result.returncode == 0, result.stderr
    assert len(queue.drain(expected=25)) == 25


def test_a_process_exits_within_3_s_when_sqs_is_down() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result, elapsed = run_child(endpoint, f"{endpoint}/123456789012/q.fifo", 25)
    assert result.returncode == 0, result.stderr
    assert "logged" in result.stdout
    assert elapsed < 3.0, f"exit took {elapsed:.1f} s after logging"
    assert "undelivered" in result.stderr or "not delivered" in result.stderr, "the loss is reported, not silent"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_forked_child_gets_an_empty_buffer_and_its_own_sender(queue: Queue, transport: str) -> None:
    with logger_for(queue, transport) as logger:
        for index in range(5):
            logger.log_query(f"parent-{index}", "Go?")
        parent_client = logger._client
        pid = os.fork()
        if pid == 0:  # the child: must not inherit the parent's queued events, thread or connections
            code = 1
            try:
                fresh = logger.stats()["accepted"] == 0 and logger.stats()["queued"] == 0 and logger._client is None
                for index in range(7):
                    logger.log_query(f"child-{index}", "Rust?")
                delivered = logger.flush(timeout=10) and logger.stats()["sent"] == 7
                if transport == "lean":  # a fresh transport: its own connection, the parent's endpoint and credentials
                    delivered = delivered and type(logger._client).__name__ == "SQSTransport" and logger._client is not parent_client
                code = 0 if fresh and delivered else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert logger.flush(timeout=10)
        assert logger.stats()["sent"] == 5
    ids = sorted(m["Attributes"]["MessageDeduplicationId"] for m in queue.drain(expected=12))
    assert ids == sorted([f"parent-{i}:query" for i in range(5)] + [f"child-{i}:query" for i in range(7)])
