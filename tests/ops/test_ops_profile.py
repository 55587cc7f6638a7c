"""--profile: a named AWS profile gives every command its credentials and region (a global option, like --region)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chat_analytics_ops.outputs import AwsContext
from tests.ops.conftest import REGION, Cli, Stack


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two profiles: ``ops`` in the stack's region, ``elsewhere`` in another; no credentials or region in the environment."""
    config = tmp_path / "config"
    config.write_text(f"[profile ops]\nregion = {REGION}\n\n[profile elsewhere]\nregion = eu-west-1\n")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[ops]\naws_access_key_id = OPSPROFILEKEYID00001\naws_secret_access_key = ops-secret\n\n"
        "[elsewhere]\naws_access_key_id = ELSEWHEREKEYID000001\naws_secret_access_key = elsewhere-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_the_profile_gives_credentials_and_region(profiles: None) -> None:
    session = AwsContext(profile="ops").session
    assert session.profile_name == "ops"
    assert session.region_name == REGION
    assert session.get_credentials().access_key == "OPSPROFILEKEYID00001"
    assert AwsContext(profile="elsewhere", region=REGION).session.region_name == REGION  # --region wins


def test_every_command_takes_profile_before_or_after_the_command(stack: Stack, cli: Cli, profiles: None) -> None:
    before = cli("--profile", "ops", "report", "--json")
    assert before.code == 0, before.err
    assert json.loads(before.out)["stack"] == "ChatAnalytics-dev"
    after = cli("credentials", "worker-env", "--profile", "ops")
    assert after.code == 0, after.err
    # The profile's region is the one used: the stack is not in eu-west-1 ...
    elsewhere = cli("--profile", "elsewhere", "dlq", "inspect")
    assert elsewhere.code == 1
    assert elsewhere.err.strip() == (
        "chat-analytics: no such stack: ChatAnalytics-dev in eu-west-1 (deploy it, or pass --stack-name/--stage/--region)"
    )
    # ... unless --region says otherwise.
    assert cli("--profile", "elsewhere", "--region", REGION, "report", "--json").code == 0


def test_an_unknown_profile_is_one_line(stack: Stack, cli: Cli, profiles: None) -> None:
    result = cli("--profile", "nope", "check")
    assert result.code == 1
    assert result.out == ""
    assert result.err.strip().splitlines() == [
        "chat-analytics: no AWS profile named 'nope' in the config files (~/.aws/config, ~/.aws/credentials or AWS_CONFIG_FILE): check --profile"
    ]
