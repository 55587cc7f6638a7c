"""Every foreseeable failure ends with one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError
from moto import settings as moto_settings

from chat_analytics_ops.cli import main
from chat_analytics_ops.errors import EXIT_EMPTY, EXIT_USAGE, describe
from chat_analytics_ops.timeouts import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, TOTAL_MAX_ATTEMPTS
from testkit.faults import closed_port
from tests.ops.conftest import REGION, Cli, Stack


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "inspect"],
        ["dlq", "redrive"],
        ["report", "--from", "2026-01-01", "--to", "2026-01-01"],
        ["credentials", "worker-env"],
        ["credentials", "push-to-wrangler", "--dry-run"],
        ["check"],
    ],
)
def test_no_such_stack(stack: Stack, cli: Cli, argv: list[str]) -> None:
    result = cli("--stage", "nope", *argv, stage=False)
    assert result.code == 1
    assert (
        one_line(result.err)
        == f"chat-analytics: no such stack: ChatAnalytics-nope in {REGION} (deploy it, or pass --stack-name/--stage/--region)"
    )


def test_options_after_the_command_and_stack_name(stack: Stack, cli: Cli) -> None:
    result = cli("dlq", "inspect", "--stack-name", "Other", stage=False)
    assert "no such stack: Other" in one_line(result.err)
    conflict = cli("--stage", "dev", "--stack-name", "Other", "dlq", "inspect", stage=False)
    assert conflict.code == 1 and "disagree" in one_line(conflict.err)


def test_access_denied(stack: Stack, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer's own key (sqs:SendMessage only) cannot read the stack: one line naming the call."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="producer")
    iam.put_user_policy(
        UserName="producer",
        PolicyName="send",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="producer")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    result = cli("dlq", "inspect")
    assert result.code == 1
    line = one_line(result.err)
    assert line.startswith("chat-analytics: permission denied: DescribeStacks was refused (AccessDenied)")
    direct = cli("--dlq-url", stack.dlq_url, "dlq", "inspect")  # no CloudFormation needed: SQS refuses next
    assert "permission denied: GetQueueAttributes" in one_line(direct.err)


def test_endpoint_unreachable(cli: Cli) -> None:
    result = cli("--endpoint-url", f"http://127.0.0.1:{closed_port()}", "dlq", "inspect")
    assert result.code == 1
    assert one_line(result.err).startswith("chat-analytics: cannot reach the endpoint http://127.0.0.1:")


def test_no_credentials(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    result = cli("--endpoint-url", f"http://127.0.0.1:{closed_port()}", "credentials", "worker-env")
    assert result.code == 1
    assert "no AWS credentials" in one_line(result.err)


def test_empty_dlq_exit_code(stack: Stack, cli: Cli) -> None:
    for argv in (["dlq", "inspect"], ["dlq", "redrive"], ["dlq", "redrive", "--dry-run"]):
        result = cli(*argv)
        assert result.code == EXIT_EMPTY
        assert "empty" in one_line(result.err)


def test_unexpected_errors_are_one_line_unless_debugging(stack: Stack, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_args, **_kwargs):
        raise ValueError("something nobody foresaw")

    monkeypatch.setattr("chat_analytics_ops.dlq.inspect", boom)
    result = cli("dlq", "inspect")
    assert result.code == 1
    assert (
        one_line(result.err)
        == "chat-analytics: unexpected error: ValueError: something nobody foresaw (set CHAT_ANALYTICS_DEBUG=1 for details)"
    )
    monkeypatch.setenv("CHAT_ANALYTICS_DEBUG", "1")
    with pytest.raises(ValueError):
        cli("dlq", "inspect")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--top", "-1"]) == EXIT_USAGE
    assert "at least 0" in capsys.readouterr().err
    assert main(["check", "--timeout", "0"]) == EXIT_USAGE
    assert "positive number of seconds" in capsys.readouterr().err
    assert main(["dlq", "inspect", "--max", "0"]) == EXIT_USAGE
    assert "at least 1" in capsys.readouterr().err
    assert main([]) == EXIT_USAGE


def test_timeouts_name_the_endpoint_the_timeout_and_the_attempts() -> None:
    """What the operator reads when an endpoint is silent, slow to accept, or hangs up (timeouts.py)."""
    url = "https://sqs.us-east-1.amazonaws.com/"
    assert describe(ReadTimeoutError(endpoint_url=url)) == (
        f"no answer from the endpoint {url} within the {READ_TIMEOUT_S} s read timeout ({TOTAL_MAX_ATTEMPTS} attempts): is it up and answering?"
    )
    assert describe(ConnectTimeoutError(endpoint_url=url)) == (
        f"cannot connect to the endpoint {url} within the {CONNECT_TIMEOUT_S} s connect timeout"
        f" ({TOTAL_MAX_ATTEMPTS} attempts): is it up and reachable?"
    )
    assert describe(ConnectionClosedError(endpoint_url=url)).startswith(f"the endpoint {url} closed the connection")
