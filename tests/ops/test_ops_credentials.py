"""credentials worker-env and push-to-wrangler: values from the stack's secret, never on a command line."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.ops.conftest import REGION, Cli, Stack

FAKE_TOOL = """#!{python}
# Stands in for wrangler (or npx): records argv, working directory and stdin; fails when FAKE_WRANGLER_FAIL is set.
import json, os, sys
value = sys.stdin.read()
with open(os.environ["FAKE_TOOL_LOG"], "a") as log:
    log.write(json.dumps({{"tool": {tool!r}, "argv": sys.argv[1:], "cwd": os.getcwd(), "stdin": value}}) + "\\n")
if os.environ.get("FAKE_WRANGLER_FAIL"):
    print("wrangler 4.86.0", file=sys.stderr)
    print("X [ERROR] You are not logged in.", file=sys.stderr)
    sys.exit(1)
print("Finished processing secrets file:")
"""


def install_tool(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / name
    tool.write_text(FAKE_TOOL.format(python=sys.executable, tool=name))
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return tool


@pytest.fixture
def tool_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The log every fake tool writes (one JSON line per call); PATH holds only a fake ``npx``, which must never run."""
    log = tmp_path / "tools.log"
    bin_dir = tmp_path / "bin"
    install_tool(bin_dir, "npx")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.defpath}")
    monkeypatch.setenv("FAKE_TOOL_LOG", str(log))
    return log


@pytest.fixture
def wrangler_config(tmp_path: Path) -> Path:
    edge = tmp_path / "project" / "edge"
    edge.mkdir(parents=True)
    config = edge / "wrangler.jsonc"
    config.write_text('{ "name": "cv-worker" }\n')
    return config


@pytest.fixture
def project_wrangler(wrangler_config: Path, tool_log: Path) -> Path:
    """wrangler where ``npm install`` puts it: edge/node_modules/.bin."""
    return install_tool(wrangler_config.parent / "node_modules" / ".bin", "wrangler")


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_worker_env_is_masked_by_default(stack: Stack, cli: Cli) -> None:
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


def test_worker_env_show_prints_dev_vars(stack: Stack, cli: Cli) -> None:
    key_id, secret_key = stack.secret["AWS_ACCESS_KEY_ID"], stack.secret["AWS_SECRET_ACCESS_KEY"]
    result = cli("credentials", "worker-env", "--show")
    assert result.code == 0, result.err
    assert f"AWS_ACCESS_KEY_ID={key_id}\n" in result.out
    assert f"AWS_SECRET_ACCESS_KEY={secret_key}\n" in result.out
    as_json = json.loads(cli("credentials", "worker-env", "--show", "--json").out)
    assert as_json["AWS_SECRET_ACCESS_KEY"] == secret_key
    masked = json.loads(cli("credentials", "worker-env", "--json").out)
    assert masked["AWS_SECRET_ACCESS_KEY"] != secret_key


def test_push_dry_run_prints_one_bulk_command_without_values(
    stack: Stack, cli: Cli, project_wrangler: Path, wrangler_config: Path, tool_log
) -> None:
    key_id, secret_key = stack.secret["AWS_ACCESS_KEY_ID"], stack.secret["AWS_SECRET_ACCESS_KEY"]
    result = cli("credentials", "push-to-wrangler", "--dry-run", "--config", str(wrangler_config), "--env", "production")
    assert result.code == 0, result.err
    [line] = result.out.strip().splitlines()
    assert f"{project_wrangler} secret bulk --config wrangler.jsonc --env production" in line
    assert '"AWS_SQS_URL": "' + stack.events_url in line  # not secret: shown
    assert secret_key not in result.out and key_id not in result.out
    assert calls(tool_log) == []  # nothing ran


def test_push_is_one_wrangler_secret_bulk_with_the_values_on_stdin(
    stack: Stack, cli: Cli, project_wrangler: Path, wrangler_config: Path, tool_log
) -> None:
    key_id, secret_key = stack.secret["AWS_ACCESS_KEY_ID"], stack.secret["AWS_SECRET_ACCESS_KEY"]
    result = cli("credentials", "push-to-wrangler", "--config", str(wrangler_config))
    assert result.code == 0, result.err
    assert "put 4 secrets with one wrangler secret bulk" in result.out
    assert secret_key not in result.out
    [call] = calls(tool_log)  # one upload: one new Worker version, not four; and never npx
    assert call["tool"] == "wrangler"
    assert call["argv"] == ["secret", "bulk", "--config", "wrangler.jsonc"]
    assert Path(call["cwd"]) == wrangler_config.parent
    assert json.loads(call["stdin"]) == {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_SQS_URL": stack.events_url,
        "AWS_REGION": REGION,
    }


def test_push_finds_the_project_wrangler_above_the_config_and_then_on_path(
    stack: Stack, cli: Cli, wrangler_config: Path, tool_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # node_modules one folder above the config's (an npm workspace root)
    install_tool(wrangler_config.parent.parent / "node_modules" / ".bin", "wrangler")
    assert cli("credentials", "push-to-wrangler", "--config", str(wrangler_config)).code == 0
    assert Path(calls(tool_log)[-1]["cwd"]) == wrangler_config.parent
    # no node_modules at all: wrangler on PATH
    (wrangler_config.parent.parent / "node_modules" / ".bin" / "wrangler").unlink()
    on_path = install_tool(tmp_path / "global", "wrangler")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    assert cli("credentials", "push-to-wrangler", "--config", str(wrangler_config)).code == 0
    assert [call["tool"] for call in calls(tool_log)] == ["wrangler", "wrangler"]


def test_push_failure_of_wrangler_is_one_line(
    stack: Stack, cli: Cli, project_wrangler: Path, wrangler_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_WRANGLER_FAIL", "1")
    result = cli("credentials", "push-to-wrangler", "--config", str(wrangler_config))
    assert result.code == 1
    assert result.err.strip() == ("chat-analytics: wrangler secret bulk failed (exit 1, no secret put): X [ERROR] You are not logged in.")


def test_push_without_config_or_wrangler(stack: Stack, cli: Cli, wrangler_config: Path, tool_log: Path, tmp_path: Path) -> None:
    missing = cli("credentials", "push-to-wrangler", "--config", str(tmp_path / "nope.jsonc"))
    assert missing.code == 1 and "wrangler config not found" in missing.err
    no_wrangler = cli("credentials", "push-to-wrangler", "--config", str(wrangler_config))
    assert no_wrangler.code == 1
    assert no_wrangler.err.strip() == (
        "chat-analytics: wrangler not found: run `make install` (npm ci in edge/ pins wrangler in edge/node_modules) or put wrangler on PATH"
    )
    assert calls(tool_log) == []  # npx (on PATH) was not used to download one
    dry = cli("credentials", "push-to-wrangler", "--dry-run", "--config", str(wrangler_config))
    assert dry.code == 0 and "note: wrangler not found" in dry.out


def test_missing_secret_is_one_line(stack: Stack, cli: Cli) -> None:
    result = cli("--secret-name", "ChatAnalytics-dev/nope", "credentials", "worker-env")
    assert result.code == 1
    assert (
        result.err.strip()
        == "chat-analytics: missing secret: ChatAnalytics-dev/nope does not exist (is the stack deployed in this region?)"
    )


def test_incomplete_secret_names_the_missing_keys(stack: Stack, cli: Cli) -> None:
    import boto3

    boto3.client("secretsmanager", region_name=REGION).create_secret(Name="partial", SecretString=json.dumps({"AWS_REGION": REGION}))
    result = cli("credentials", "worker-env", "--secret-name", "partial")
    assert result.code == 1
    assert "lacks AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SQS_URL" in result.err
