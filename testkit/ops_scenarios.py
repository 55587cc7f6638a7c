"""The CLI's silent-endpoint scenarios: every ``chat-analytics`` command against an endpoint that accepts connections
and never answers (``SILENT``), one that answers and then goes silent (``HALF_SILENT``) and an empty long poll
(``LONG_POLL``), and ``run``: one scenario as a real process (``python -m chat_analytics_ops``, through ``RECORDER``
so every AWS call's client configuration is recorded) against its own ``SilentEndpoint``.

Asserted by tests/ops/test_ops_timeouts.py, timed by bench/ops_timeouts_bench.py: both run the same table.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.faults import Answer, SilentEndpoint

# Not a budget: only "it ends at all", well inside pytest's 300 s per test. Idle, the slowest takes ~14 s.
PROCESS_TIMEOUT_S = 150

QUEUE = "{endpoint}/123456789012/ChatAnalytics-dev-dlq.fifo"
EVENTS = "{endpoint}/123456789012/ChatAnalytics-dev-events.fifo"


@dataclass(frozen=True)
class Scenario:
    argv: tuple[str, ...]
    silent_action: str  # the call the command is stuck on
    answers: tuple[tuple[str, Answer], ...] = ()


# Every command against an endpoint that answers nothing: through the stack's outputs
# (CloudFormation first) and with each service's override (that service first).
SILENT: dict[str, Scenario] = {
    "dlq-inspect": Scenario(("dlq", "inspect"), "DescribeStacks"),
    "dlq-inspect-dlq-url": Scenario(("--dlq-url", QUEUE, "dlq", "inspect"), "GetQueueAttributes"),
    "dlq-redrive": Scenario(("dlq", "redrive"), "DescribeStacks"),
    "dlq-redrive-manual-urls": Scenario(
        ("--dlq-url", QUEUE, "--queue-url", EVENTS, "dlq", "redrive", "--method", "manual", "--max", "3"), "GetQueueAttributes"
    ),
    "report": Scenario(("report", "--from", "2026-01-01", "--to", "2026-01-31"), "DescribeStacks"),
    "report-table-name": Scenario(("--table-name", "events", "report", "--from", "2026-01-01", "--to", "2026-01-31"), "Query"),
    "worker-env": Scenario(("credentials", "worker-env"), "DescribeStacks"),
    "worker-env-secret-name": Scenario(("--secret-name", "s", "credentials", "worker-env", "--json"), "GetSecretValue"),
    "push-to-wrangler": Scenario(("credentials", "push-to-wrangler"), "DescribeStacks"),
    "check": Scenario(("check",), "DescribeStacks"),
    "erase": Scenario(("erase", "--request-id", "req-1", "--yes"), "DescribeStacks"),
    "compact": Scenario(("compact", "--day", "2026-01-01"), "DescribeStacks"),
}

# A valid event: redrive moves it (an invalid one would be left in the DLQ, never sent).
BODY = '{"schemaVersion":1,"eventType":"query","requestId":"g-1","timestamp":1,"query":"Python?"}'
DLQ_ATTRIBUTES = {
    "QueueArn": "arn:aws:sqs:us-east-1:123456789012:ChatAnalytics-dev-dlq.fifo",
    "ApproximateNumberOfMessages": "1",
    "ApproximateNumberOfMessagesNotVisible": "0",
    "FifoQueue": "true",
}
MESSAGE = {
    "MessageId": "m-1",
    "ReceiptHandle": "rh-1",
    "Body": BODY,
    "MD5OfBody": hashlib.md5(BODY.encode()).hexdigest(),
    "Attributes": {"MessageGroupId": "g-1", "MessageDeduplicationId": "d-1", "ApproximateReceiveCount": "4", "SentTimestamp": "1"},
}
URLS = ("--dlq-url", QUEUE, "--queue-url", EVENTS)
# An endpoint that answers at first and then goes silent, inside the DLQ commands' receive loop.
HALF_SILENT: dict[str, Scenario] = {
    "dlq-inspect-receive-silent": Scenario(
        (*URLS, "dlq", "inspect"),
        "ReceiveMessage",
        (("GetQueueAttributes", Answer({"Attributes": DLQ_ATTRIBUTES})),),
    ),
    "dlq-redrive-send-silent": Scenario(
        (*URLS, "dlq", "redrive", "--max", "1"),
        "SendMessageBatch",
        (
            ("GetQueueAttributes", Answer({"Attributes": DLQ_ATTRIBUTES})),
            ("ReceiveMessage", Answer({"Messages": [MESSAGE]})),
        ),
    ),
}
# SQS holds an empty long poll for its WaitTimeSeconds, then answers: that must not be a timeout.
LONG_POLL = Scenario(
    (*URLS, "dlq", "inspect"),
    "",
    (
        (
            "GetQueueAttributes",
            Answer({"Attributes": {**DLQ_ATTRIBUTES, "ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "1"}}),
        ),
        ("ReceiveMessage", Answer({}, long_poll=True)),
    ),
)


# Runs the CLI as ``python -m chat_analytics_ops`` would, after hooking botocore so that every AWS call
# the process makes appends one JSON line to $RECORD_CALLS: the service, the operation and the client
# configuration that call really used (a client built elsewhere, without CLIENT_CONFIG, would show).
RECORDER = """
import json, os, runpy, sys
from botocore.client import BaseClient
_record = os.environ["RECORD_CALLS"]
_make_api_call = BaseClient._make_api_call
def _recording(self, operation_name, api_params):
    config = self.meta.config
    with open(_record, "a", encoding="utf-8") as sink:
        sink.write(json.dumps({
            "service": self.meta.service_model.service_name,
            "operation": operation_name,
            "connect_timeout": config.connect_timeout,
            "read_timeout": config.read_timeout,
            "retries": config.retries,
        }) + "\\n")
    return _make_api_call(self, operation_name, api_params)
BaseClient._make_api_call = _recording
sys.argv = ["chat-analytics", *sys.argv[1:]]
runpy.run_module("chat_analytics_ops", run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class Run:
    endpoint: str
    code: int | None  # None: still running after PROCESS_TIMEOUT_S
    err: str
    elapsed_s: float  # reported by the benchmark; tests only use it as a lower bound
    actions: list[str]  # every request the endpoint received, in order
    connections: int  # TCP connections it accepted
    calls: list[dict[str, Any]]  # every AWS call the process made, with the client config it used


def clean_env(home: Path) -> dict[str, str]:
    """Fake credentials, and nothing of the developer's AWS configuration."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def command(scenario: Scenario, endpoint: str, *, record: bool) -> list[str]:
    argv = ["--endpoint-url", endpoint, *(arg.format(endpoint=endpoint) for arg in scenario.argv)]
    if record:
        return [sys.executable, "-c", RECORDER, *argv]
    return [sys.executable, "-m", "chat_analytics_ops", *argv]


def run(scenario: Scenario, env: dict[str, str], cwd: Path, *, record: bool = True, timeout_s: float = PROCESS_TIMEOUT_S) -> Run:
    """One command in its own process against its own silent endpoint (``record``: through RECORDER)."""
    calls_file = cwd / f"calls-{os.getpid()}-{time.monotonic_ns()}.jsonl"
    with SilentEndpoint(dict(scenario.answers)) as endpoint:
        started = time.monotonic()
        try:
            done = subprocess.run(
                command(scenario, endpoint.url, record=record),
                env={**env, "RECORD_CALLS": str(calls_file)},
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            code, err = done.returncode, done.stderr
        except subprocess.TimeoutExpired as expired:
            code, err = None, str(expired.stderr or "")
        elapsed = time.monotonic() - started
        connections, _ = endpoint.counts()
        actions = endpoint.actions
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []
    return Run(endpoint.url, code, err, elapsed, actions, connections, calls)
