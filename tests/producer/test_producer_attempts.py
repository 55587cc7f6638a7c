"""Retries mean what they say: one producer attempt is one request on the wire.

botocore's two retry settings count different things (botocore.config.Config,
https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html):

* ``max_attempts``: "An integer representing the maximum number of retry attempts that will be
  made on a single request", so ``max_attempts=1`` makes two attempts;
* ``total_max_attempts``: "An integer representing the maximum number of total attempts that will
  be made on a single request. This includes the initial request, so a value of 1 indicates that no
  requests will be retried." It "maps to the AWS_MAX_ATTEMPTS environment variable and the
  max_attempts config file value", the SDKs' shared setting that "Specifies the maximum number
  attempts to make on a request" (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).

The producer retries on its own (``max_retries``), so its client must make exactly one attempt per
call. A silent server on 127.0.0.1 (accepts, reads, never answers) counts what reaches the wire.
"""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from analytics_producer import AnalyticsLogger, client_config
from testkit.faults import SilentServer
from tests.producer.conftest import KEYS, REGION, TRANSPORTS

READ_TIMEOUT_S = 0.5


def client_for(endpoint_url: str, config: Config):
    session = boto3.Session(aws_access_key_id="AKIDATTEMPTS", aws_secret_access_key="attempts-secret", region_name=REGION)
    return session.client("sqs", endpoint_url=endpoint_url, config=config)


def send_once(client, queue_url: str) -> None:
    with pytest.raises(ReadTimeoutError):
        client.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": "0", "MessageBody": "{}", "MessageGroupId": "g"}])


def wait_for_requests(server: SilentServer, expected: int, timeout: float = 5.0) -> int:
    """The request count once it reached ``expected`` (or the timeout passed), then a moment more to catch extras."""
    deadline = time.monotonic() + timeout
    while server.counts()[1] < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    return server.counts()[1]


def test_botocore_max_attempts_counts_retries_and_total_max_attempts_counts_attempts() -> None:
    """Why the producer uses total_max_attempts: max_attempts=1 puts two requests on the wire."""
    with SilentServer() as server:
        send_once(
            client_for(server.endpoint_url, Config(read_timeout=READ_TIMEOUT_S, retries={"max_attempts": 1, "mode": "standard"})),
            server.queue_url,
        )
        assert wait_for_requests(server, 2) == 2
    with SilentServer() as server:
        send_once(
            client_for(server.endpoint_url, Config(read_timeout=READ_TIMEOUT_S, retries={"total_max_attempts": 1, "mode": "standard"})),
            server.queue_url,
        )
        assert wait_for_requests(server, 1) == 1  # counted on the wire: timings on this machine are too noisy to assert


def test_the_producers_client_config_makes_one_attempt_per_call() -> None:
    with SilentServer() as server:
        send_once(client_for(server.endpoint_url, client_config(connect_timeout_s=1, read_timeout_s=READ_TIMEOUT_S)), server.queue_url)
        assert wait_for_requests(server, 1) == 1
        assert server.counts()[0] == 1, "one connection"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("max_retries", [0, 2])
def test_max_retries_n_makes_exactly_n_plus_1_requests(max_retries: int, transport: str) -> None:
    """max_retries=N: the first attempt and N retries, each exactly one request, then the events fail."""
    reports: list[int] = []
    with SilentServer() as server:
        if transport == "botocore":
            sender = {"client": client_for(server.endpoint_url, client_config(connect_timeout_s=1, read_timeout_s=READ_TIMEOUT_S))}
        else:
            sender = {"endpoint_url": server.endpoint_url, "session": boto3.Session(**KEYS), "read_timeout_s": READ_TIMEOUT_S}
        logger = AnalyticsLogger(
            server.queue_url,
            **sender,
            max_retries=max_retries,
            backoff_base_s=0.01,
            backoff_max_s=0.02,
            on_error=lambda error, events: reports.append(len(events)),
        )
        try:
            for index in range(3):
                assert logger.log_query(f"attempts-{index}", "Does the candidate know Erlang?")
            assert logger.flush(timeout=(max_retries + 1) * READ_TIMEOUT_S + 5)
            stats = logger.stats()
        finally:
            logger.close(timeout=1)
        assert wait_for_requests(server, max_retries + 1) == max_retries + 1
        connections = server.counts()[0]
    assert (stats["requests"], stats["retried"]) == (max_retries + 1, 3 * max_retries)
    assert (stats["accepted"], stats["sent"], stats["failed"], stats["queued"]) == (3, 0, 3, 0)
    assert reports == [3]
    assert connections == max_retries + 1, "a timed-out connection is not reused"


def test_the_loggers_own_client_makes_one_attempt_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client the logger builds itself (no client=) also puts one request on the wire per attempt."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOWNCLIENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "own-client-secret")
    with SilentServer() as server:
        logger = AnalyticsLogger(
            server.queue_url, endpoint_url=server.endpoint_url, region_name=REGION, max_retries=0, read_timeout_s=READ_TIMEOUT_S
        )
        try:
            assert logger.log_query("own-client", "Does the candidate know OCaml?")
            assert logger.flush(timeout=5)
            assert logger.stats()["requests"] == 1
        finally:
            logger.close(timeout=1)
        assert wait_for_requests(server, 1) == 1
