"""credentials worker-env and push-to-wrangler: values from the stack's secret, never on a command line."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.ops.conftest import REGION

FAKE_NPX = """#!{python}
# Stands in for npx: records argv, working directory and stdin; fails when FAKE_NPX_FAIL is set.
import json, os, sys
value = sys.stdin.read()
with open(os.environ["FAKE_NPX_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "stdin": value}}) + "\\n")
if os.environ.get("FAKE_NPX_FAIL"):
    print("wrangler 4.0.0", file=sys.stderr)
    print("X [ERROR] You are not logged in.", file=sys.stderr)
    sys.exit(1)
print("Success! Uploaded secret " + sys.argv[5])
"""


@pytest.fixture
def fake_npx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``npx`` first on PATH; returns the log it writes (one JSON line per call)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npx = bin_dir / "npx"
    npx.write_text(FAKE_NPX.format(python=sys.executable))
    npx.chmod(npx.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "npx.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPX_LOG", str(log))
    return log


@pytest.fixture
def wrangler_config(tmp_path: Path) -> Path:
    edge = tmp_path / "edge"
    edge.mkdir()
    config = edge / "wrangler.jsonc"
    config.write_text('{ "name": "cv-worker" }\n')
    return config


def test_worker_env_is_masked_by_default(stack, cli) -> None:
    key_id, secret_key = stack.secret["AWS_ACCESS_KEY_ID"], stack.secret["AWS_SECRET_ACCESS_KEY"]
    result = cli("credentials", "worker-env")
    assert result.code == 0, result.err
    lines = dict(line.split("=", 1) for line in result.out.strip().splitlines())
    assert list(lines) == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SQS_URL", "AWS_REGION"]
    assert secret_key not in result.out
    assert key_id not in result.out
    assert lines["AWS_ACCESS_KEY_ID"].startswith(key_id[:4]) and lines["AWS_ACCESS_KEY_ID"].endswith(key_id[-4:])
    assert lines["AWS_SECRET_ACCESS_KEY"].startswith("********")
    assert lines["AWS_SQS_URL"] == stack.events_url
    assert lines["AWS_REGION"] == REGION


def test_worker_env_show_prints_dev_vars(stack, cli) -> None:
    key_id, secret_key = stack.secret["AWS_ACCESS_KEY_ID"], stack.secret["AWS_SECRET_ACCESS_KEY"]
    result = cli("credentials", "worker-env", "--show")
    assert result.code == 0, result.err
    assert f"AWS_ACCESS_KEY_ID={key_id}\n" in result.out
    assert f"AWS_SECRET_ACCESS_KEY={secret_key}\n" in result.out
    as_json = json.loads(cli("credentials", "worker-env", "--show", "--json").out)
    assert as_json["AWS_SECRET_ACCESS_KEY"] == secret_key
    masked = json.loads(cli("credentials", "worker-env", "--json").out)
    assert masked["AWS_SECRET_ACCESS_KEY"] != secret_key


def test_push_dry_run_prints_commands_without_values(stack, cli, fake_npx: Path, wrangler_config: Path) -> None:
    key_id, secret_key = stack.secret["AWS_ACCESS_KEY_ID"], stack.secret["AWS_SECRET_ACCESS_KEY"]
    result = cli("credentials", "push-to-wrangler", "--dry-run", "--config", str(wrangler_config), "--env", "production")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert len(lines) == 4
    assert all("npx --yes wrangler secret put" in line and "--env production" in line for line in lines)
    assert "AWS_SECRET_ACCESS_KEY --config wrangler.jsonc" in result.out
    assert secret_key not in result.out and key_id not in result.out
    assert not fake_npx.exists()  # nothing ran


def test_push_runs_wrangler_with_values_on_stdin(stack, cli, fake_npx: Path, wrangler_config: Path) -> None:
    key_id, secret_key = stack.secret["AWS_ACCESS_KEY_ID"], stack.secret["AWS_SECRET_ACCESS_KEY"]
    result = cli("credentials", "push-to-wrangler", "--config", str(wrangler_config))
    assert result.code == 0, result.err
    assert "put 4 secrets" in result.out
    assert secret_key not in result.out
    calls = [json.loads(line) for line in fake_npx.read_text().splitlines()]
    assert [call["argv"][4] for call in calls] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SQS_URL", "AWS_REGION"]
    for call in calls:
        assert call["argv"][:4] == ["--yes", "wrangler", "secret", "put"]
        assert call["argv"][5:] == ["--config", "wrangler.jsonc"]
        assert Path(call["cwd"]) == wrangler_config.parent
        assert not any(secret_key in arg or key_id in arg for arg in call["argv"])
    assert [call["stdin"] for call in calls] == [key_id, secret_key, stack.events_url, REGION]


def test_push_failure_of_wrangler_is_one_line(stack, cli, fake_npx: Path, wrangler_config: Path, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_NPX_FAIL", "1")
    result = cli("credentials", "push-to-wrangler", "--config", str(wrangler_config))
    assert result.code == 1
    assert result.err.strip() == (
        "chat-analytics: wrangler secret put AWS_ACCESS_KEY_ID failed (exit 1, 0 of 4 put): X [ERROR] You are not logged in."
    )


def test_push_without_config_or_npx(stack, cli, tmp_path: Path, monkeypatch) -> None:
    missing = cli("credentials", "push-to-wrangler", "--config", str(tmp_path / "nope.jsonc"))
    assert missing.code == 1 and "wrangler config not found" in missing.err
    config = tmp_path / "wrangler.jsonc"
    config.write_text("{}")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    no_npx = cli("credentials", "push-to-wrangler", "--config", str(config))
    assert no_npx.code == 1 and "npx not found" in no_npx.err


def test_missing_secret_is_one_line(stack, cli) -> None:
    result = cli("--secret-name", "ChatAnalytics-dev/nope", "credentials", "worker-env")
    assert result.code == 1
    assert (
        result.err.strip()
        == "chat-analytics: missing secret: ChatAnalytics-dev/nope does not exist (is the stack deployed in this region?)"
    )


def test_incomplete_secret_names_the_missing_keys(stack, cli) -> None:
    import boto3

    boto3.client("secretsmanager", region_name=REGION).create_secret(Name="partial", SecretString=json.dumps({"AWS_REGION": REGION}))
    result = cli("credentials", "worker-env", "--secret-name", "partial")
    assert result.code == 1
    assert "lacks AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SQS_URL" in result.err
