"""What the sender does with what it takes: size limits, unsendable events, partial batches, close, real IAM."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

from analytics_producer import AnalyticsLogger, LoggerClosedError, UnsendableEventError
from analytics_producer.batching import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, to_entry
from testkit.faults import closed_port
from tests.producer.conftest import TRANSPORTS, Queue, logger_for, sqs_client


def query(request_id: str, **extra) -> dict:
    return {"eventType": "query", "requestId": request_id, "timestamp": 1_767_225_600_000, "query": "Python?", **extra}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_batches_stay_within_the_byte_limit_and_large_events_still_arrive(queue: Queue, transport: str) -> None:
    padding = "x" * 200_000  # an unknown extra field: accepted by the contract, and big
    with logger_for(queue, transport) as logger:
        for index in range(7):
            assert logger.log(query(f"big-{index}", notes=padding))
        assert logger.flush(timeout=30)
        stats = logger.stats()
    assert stats["sent"] == 7 and stats["failed"] == 0
    assert stats["requests"] >= 2, "7 x ~200 KB does not fit one 1 MiB batch"
    assert len(queue.drain(expected=7)) == 7
    assert 5 * to_entry(query("r", notes=padding), None).size <= MAX_BATCH_BYTES


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_event_that_cannot_become_a_message_fails_alone_and_is_reported(queue: Queue, transport: str) -> None:
    """log() copies the event but not its nested values: one changed after log() can make it unsendable."""
    reports: list[tuple[BaseException, list[dict]]] = []
    tags: list = ["ok"]
    with logger_for(queue, transport, flush_interval_s=30, on_error=lambda error, events: reports.append((error, events))) as logger:
        assert logger.log(query("good-1"))
        assert logger.log(query("not-json", tags=tags))
        tags.append({"a", "set"})  # after validate(): json.dumps fails in the sender
        assert logger.log(query("too-big", notes="x" * MAX_MESSAGE_BYTES))  # an extra string has no length bound of its own
        assert logger.log(query("good-2"))
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert (stats["accepted"], stats["sent"], stats["failed"], stats["queued"]) == (4, 2, 2, 0)
    assert [type(error) for error, _ in reports] == [UnsendableEventError, UnsendableEventError]
    assert [events[0]["requestId"] for _, events in reports] == ["not-json", "too-big"]
    assert sorted(json.loads(m["Body"])["requestId"] for m in queue.drain(expected=2)) == ["good-1", "good-2"]


def test_a_trickle_of_events_still_goes_out_in_full_batches(queue: Queue) -> None:
    """A partial batch waits up to flush_interval_s for more events instead of going out alone."""
    with AnalyticsLogger(queue.url, client=queue.client(), flush_interval_s=0.5) as logger:
        for index in range(30):
            logger.log_query(f"trickle-{index}", "Kotlin?")
            time.sleep(0.01)
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert stats["sent"] == 30
    assert stats["requests"] <= 5, f"30 events a few ms apart should need about 3 requests, not {stats['requests']}"


def test_a_lone_event_is_sent_within_the_flush_interval_without_flush(queue: Queue) -> None:
    with AnalyticsLogger(queue.url, client=queue.client(), flush_interval_s=0.2) as logger:
        logger.log_query("lone", "Elixir?")
        deadline = time.monotonic() + 5
        while logger.stats()["sent"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert logger.stats()["sent"] == 1


def test_close_with_sqs_down_gives_up_in_time_and_counts_every_event() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    reports: list[tuple[BaseException, int]] = []
    logger = AnalyticsLogger(
        f"{endpoint}/123456789012/q.fifo",
        client=sqs_client(endpoint),
        max_retries=100,
        on_error=lambda error, events: reports.append((error, len(events))),
    )
    for index in range(25):
        assert logger.log_query(f"closing-{index}", "Haskell?")
    assert logger.flush(timeout=0.3) is False
    started = time.monotonic()
    assert logger.close(timeout=0.5) is False
    assert time.monotonic() - started < 2.0
    # close() is bounded, so on a busy machine the batch in flight may be counted a moment later.
    deadline = time.monotonic() + 5
    while logger.stats()["queued"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = logger.stats()
    assert (stats["accepted"], stats["sent"], stats["failed"], stats["queued"]) == (25, 0, 25, 0)
    assert sum(count for _, count in reports) == 25, "every undelivered event reaches on_error once"
    assert any(isinstance(error, LoggerClosedError) for error, _ in reports)
    assert logger.log_query("late", "Haskell?") is False and logger.stats()["dropped_closed"] == 1
    assert logger.close() is True, "closing twice is harmless"


def test_a_callback_that_raises_does_not_stop_the_sender() -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"

    def on_error(error: BaseException, events: list[dict]) -> None:
        raise RuntimeError("a broken callback")

    with AnalyticsLogger(f"{endpoint}/123456789012/q.fifo", client=sqs_client(endpoint), max_retries=0, on_error=on_error) as logger:
        for index in range(20):
            logger.log_query(f"cb-{index}", "Zig?")
        assert logger.flush(timeout=10)
        assert logger.stats()["failed"] == 20
        assert logger._sender.alive()


# -- access denied by moto's own IAM enforcement -----------------------------------------------------


def enforce_iam(endpoint: str) -> None:
    """From now on moto authenticates (checks the SigV4 signature) and authorizes every request against IAM."""
    urllib.request.urlopen(
        urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}),
        timeout=5,
    ).read()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_access_denied_by_iam_is_not_retried_and_delivery_resumes_once_allowed(
    moto_with_iam: str, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """moto checks the signature of every request (the lean transport's own SigV4 request too), then the policy.

    moto answers the denied JSON request with a query-protocol XML error: the warning names its code and
    message, not the XML (botocore leaves that body in its ClientError's message)."""
    caplog.set_level(logging.WARNING, logger="analytics_producer")
    endpoint = moto_with_iam
    setup = boto3.Session(aws_access_key_id="AKIDSETUP", aws_secret_access_key="setup", region_name="us-east-1")
    iam, sqs = setup.client("iam", endpoint_url=endpoint), setup.client("sqs", endpoint_url=endpoint)
    queue_url = sqs.create_queue(QueueName="denied.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    keys = {}
    for user in ("producer", "admin"):
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = boto3.Session(
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name="us-east-1"
        )
    admin_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(admin_policy))
    enforce_iam(endpoint)

    reports: list[tuple[str, int]] = []
    if transport == "botocore":
        client = keys["producer"].client(
            "sqs", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=3)
        )
        kwargs = {"client": client}
    else:
        kwargs = {"session": keys["producer"], "endpoint_url": endpoint}
    with AnalyticsLogger(queue_url, on_error=lambda error, events: reports.append((str(error), len(events))), **kwargs) as logger:
        assert type(logger._client).__name__ == ("SQSTransport" if transport == "lean" else "SQS")
        slowest = 0.0
        for index in range(10):
            started = time.perf_counter()
            assert logger.log_query(f"denied-{index}", "Python?") is True
            slowest = max(slowest, time.perf_counter() - started)
        assert slowest < 0.05
        assert logger.flush(timeout=10)
        stats = logger.stats()
        assert (stats["sent"], stats["failed"], stats["retried"]) == (0, 10, 0), "not retried: it cannot succeed"
        assert sum(count for _, count in reports) == 10
        assert "403" in reports[0][0] or "AccessDenied" in reports[0][0], reports
        assert "SignatureDoesNotMatch" not in reports[0][0], "the signature was accepted; only the policy refused"
        [warning] = [record.getMessage() for record in caplog.records if record.name == "analytics_producer"]
        assert warning.startswith("analytics: 10 events not delivered to denied.fifo: AccessDenied: "), warning
        assert "is not authorized" in warning and "<" not in warning, warning

        # Granted (moto authorizes the batch call as sqs:SendMessageBatch; AWS as sqs:SendMessage).
        grant = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:SendMessageBatch"], "Resource": "*"}],
        }
        keys["admin"].client("iam", endpoint_url=endpoint).put_user_policy(
            UserName="producer", PolicyName="send", PolicyDocument=json.dumps(grant)
        )
        for index in range(10):
            assert logger.log_query(f"allowed-{index}", "Python?") is True
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert (stats["sent"], stats["failed"]) == (10, 10)
    admin_sqs = keys["admin"].client("sqs", endpoint_url=endpoint)
    received = admin_sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert {json.loads(m["Body"])["requestId"] for m in received} == {f"allowed-{index}" for index in range(10)}


def test_from_env_without_keys_uses_the_standard_credential_chain(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SQS_URL", queue.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    credentials = "[default]\naws_access_key_id = AKIDCHAIN\naws_secret_access_key = from-the-chain\n"
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"credentials-{os.getpid()}")
    with open(path, "w") as handle:
        handle.write(credentials)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", path)
    try:
        with AnalyticsLogger.from_env() as logger:
            assert logger._client.endpoint_url == queue.endpoint_url
            assert logger._client.credentials.get_frozen_credentials().access_key == "AKIDCHAIN"
            assert logger.log_query("chain-1", "Python?")
            assert logger.flush(timeout=10)
    finally:
        os.unlink(path)
    assert len(queue.drain(expected=1)) == 1
