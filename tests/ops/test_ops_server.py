"""The CLI end to end against a moto server on 127.0.0.1 through --endpoint-url, as with the local stack."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator

import boto3
import pytest

from chat_analytics_ops import check
from testkit.events import query_event, response_event
from testkit.moto import moto_thread
from tests.conftest import Synthesized
from tests.ops.conftest import REGION, STAGE, Cli, Processor, Stack, dead_letter, deploy, stack_for


@pytest.fixture
def server_stack(dev: Synthesized) -> Iterator[tuple[str, Stack]]:
    # The server keeps moto's state in this process: start each test from an empty account.
    with moto_thread(reset_state=True) as endpoint:

        def client(service: str):
            return boto3.client(service, region_name=REGION, endpoint_url=endpoint)

        yield endpoint, stack_for(deploy(dev, endpoint), client)


def test_every_command_through_the_endpoint(server_stack: tuple[str, Stack], cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, stack = server_stack
    monkeypatch.delenv("AWS_REGION")  # --endpoint-url alone falls back to the local stack's region
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    now = time.time_ns() // 1_000_000
    base = ("--endpoint-url", endpoint, "--stage", STAGE)

    processor = Processor(stack, endpoint_url=endpoint)
    stack.send(query_event("req-1", now - 20, "Terraform?"))
    processor.drain()
    dead_letter(stack, response_event("req-1", now, "none", 4, latencyMs=11))

    inspected = cli(*base, "dlq", "inspect", "--json", stage=False)
    assert inspected.code == 0, inspected.err
    assert json.loads(inspected.out)["messages"][0]["messageGroupId"] == "req-1"

    redriven = cli(*base, "dlq", "redrive", "--json", stage=False)
    assert redriven.code == 0, redriven.err
    assert json.loads(redriven.out)["method"] == "manual"  # the server has no StartMessageMoveTask either
    processor.drain()
    items = stack.items()
    assert len(items) == 1 and items[0]["responseLatencyMs"] == {"N": "20"}

    day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))
    reported = cli(*base, "report", "--from", day, "--to", day, "--json", stage=False)
    assert reported.code == 0, reported.err
    data = json.loads(reported.out)
    assert data["queries"] == 1 and data["matches"]["none"] == 1
    assert data["topUnmatched"] == [{"question": "terraform", "count": 1}]

    env = cli(*base, "credentials", "worker-env", stage=False)
    assert env.code == 0, env.err
    assert f"AWS_SQS_URL={stack.events_url}" in env.out


def test_check_through_the_endpoint_with_the_producers_own_transport(
    server_stack: tuple[str, Stack], cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The canary goes out through AnalyticsLogger's default (lean) transport to the server, signed with the
    secret's key; the real processor stores it while check waits."""
    endpoint, stack = server_stack
    processor = Processor(stack, endpoint_url=endpoint)

    def one_round(seconds: float) -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            processor.poll()

    monkeypatch.setattr(check, "pause", one_round)
    assert check.PRODUCER_TRANSPORT == "lean"
    result = cli("--endpoint-url", endpoint, "--stage", STAGE, "check", stage=False)
    assert result.code == 0, result.out + result.err
    assert "canary stored" in result.out and "FAIL" not in result.out
    [item] = stack.items()
    assert item["source"] == {"S": "chat-analytics-check"} and "responseLatencyMs" in item
