"""Every context value is validated at synth; a bad one stops with one line naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.settings import Settings, SettingsError
from tests.cdk.conftest import REPO


def test_defaults_follow_the_stage() -> None:
    dev = Settings.from_context({})
    prod = Settings.from_context({"stage": "prod"})
    assert (dev.stack_name, dev.is_production, dev.log_retention_days) == ("ChatAnalytics-dev", False, 14)
    assert (prod.stack_name, prod.is_production, prod.log_retention_days) == ("ChatAnalytics-prod", True, 90)


def test_command_line_strings_are_accepted() -> None:
    settings = Settings.from_context(
        {
            "stage": "prod",
            "oldestMessageAgeThresholdSeconds": "900",
            "producerSourceCidrs": "203.0.113.0/24, 2001:db8::/48",
            "producerKeySerial": "7",
            "alarmEmail": "ops@example.org",
        }
    )
    assert settings.oldest_message_age_threshold_s == 900
    assert settings.producer_source_cidrs == ("203.0.113.0/24", "2001:db8::/48")
    assert settings.producer_key_serial == 7
    assert settings.alarm_email == "ops@example.org"
    assert Settings.from_context({"producerSourceCidrs": '["192.0.2.0/24"]'}).producer_source_cidrs == ("192.0.2.0/24",)


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"stage": "staging"}, "stage"),
        ({"alarmEmail": "not-an-address"}, "alarmEmail"),
        ({"alarmEmail": "a@b"}, "alarmEmail"),
        ({"oldestMessageAgeThresholdSeconds": -5}, "oldestMessageAgeThresholdSeconds"),
        ({"oldestMessageAgeThresholdSeconds": "soon"}, "oldestMessageAgeThresholdSeconds"),
        ({"processorTimeoutSeconds": 0}, "processorTimeoutSeconds"),
        ({"processorTimeoutSeconds": 9}, "processorTimeoutSeconds"),
        ({"processorTimeoutSeconds": 900}, "processorTimeoutSeconds"),
        ({"processorMemoryMb": 64}, "processorMemoryMb"),
        ({"processorMaxConcurrency": 1}, "processorMaxConcurrency"),
        ({"producerSourceCidrs": ["10.0.0.0/33"]}, "producerSourceCidrs"),
        ({"producerSourceCidrs": ["10.0.0.1/8"]}, "producerSourceCidrs"),
        ({"producerSourceCidrs": "[not json"}, "producerSourceCidrs"),
        ({"producerSourceCidrs": {"a": 1}}, "producerSourceCidrs"),
        ({"producerKeySerial": True}, "producerKeySerial"),
        ({"producerKeySerial": 0}, "producerKeySerial"),
        ({"logRetentionDays": 10}, "logRetentionDays"),
        ({"eventRetentionDays": -1}, "eventRetentionDays"),
        ({"tableRetentionDays": 0}, "tableRetentionDays"),
        ({"eventRetentionDays": 30, "tableRetentionDays": 31}, "tableRetentionDays"),
        ({"stage": "prod", "eventRetentionDays": 60}, "tableRetentionDays"),
        ({"metricsNamespace": "AWS/SQS"}, "metricsNamespace"),
        ({"powertoolsLayer": "latest-please"}, "powertoolsLayer"),
        ({"powertoolsLayer": "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64"}, "powertoolsLayer"),
        ({"powertoolsLayer": "arn:aws:s3:::bucket"}, "powertoolsLayer"),
        ({"powertoolsLayer": "2.43.1"}, "powertoolsLayer"),
        ({"lakeScanLimitGb": 0}, "lakeScanLimitGb"),
        ({"lakeScanLimitGb": 1001}, "lakeScanLimitGb"),
        ({"lakeScanLimitGb": "lots"}, "lakeScanLimitGb"),
        ({"lakeScanLimitGb": True}, "lakeScanLimitGb"),
        ({"lakeFormation": "yes"}, "lakeFormation"),
        ({"lakeFormation": 1}, "lakeFormation"),
        ({"lakeFormation": True, "reportReaderPrincipalArns": ["analysts"]}, "reportReaderPrincipalArns"),
        ({"lakeFormation": True, "reportReaderPrincipalArns": ["arn:aws:iam::1111:role/analysts"]}, "reportReaderPrincipalArns"),
        ({"lakeFormation": True, "reportReaderPrincipalArns": ["arn:aws:iam::111122223333:group/analysts"]}, "reportReaderPrincipalArns"),
        ({"lakeFormation": True, "reportReaderPrincipalArns": ["arn:aws:s3:::analysts"]}, "reportReaderPrincipalArns"),
        ({"lakeFormation": True, "reportReaderPrincipalArns": "[not json"}, "reportReaderPrincipalArns"),
        ({"lakeFormation": True, "reportReaderPrincipalArns": {"role": "x"}}, "reportReaderPrincipalArns"),
        (
            {"lakeFormation": True, "reportReaderPrincipalArns": ["arn:aws:iam::111122223333:role/a", "arn:aws:iam::111122223333:role/a"]},
            "reportReaderPrincipalArns",
        ),
        ({"reportReaderPrincipalArns": ["arn:aws:iam::111122223333:role/analysts"]}, "reportReaderPrincipalArns"),
    ],
)
def test_bad_context_names_the_key(context: dict, key: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_context(context)
    message = str(error.value)
    assert message.startswith(f"context key '{key}':") and "\n" not in message


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"stage": "qa"}, "error: context key 'stage': 'qa' is not one of dev, prod"),
        ({"producerSourceCidrs": ["300.1.1.0/24"]}, "error: context key 'producerSourceCidrs': '300.1.1.0/24' is not a CIDR block"),
        ({"oldestMessageAgeThresholdSeconds": -1}, "error: context key 'oldestMessageAgeThresholdSeconds': -1 is outside 60..1209600"),
        ({"alarmEmail": "oncall"}, "error: context key 'alarmEmail': 'oncall' is not an e-mail address"),
        ({"stagTypo": "prod"}, "error: context key 'stagTypo' is not a setting of this app; did you mean 'stage'?"),
        (
            {"processorTimeout": 60},
            "error: context key 'processorTimeout' is not a setting of this app; did you mean 'processorTimeoutSeconds'?",
        ),
    ],
)
def test_app_stops_with_one_line_and_no_traceback(context: dict, expected: str, tmp_path: Path) -> None:
    """Run app.py the way the CDK CLI does (context in CDK_CONTEXT_JSON)."""
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("!!", "b'!!"))]
    assert lines == [expected]
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "cidr", ["10.1.0.0/16", "172.16.0.0/12", "192.168.1.0/24", "100.64.0.0/10", "127.0.0.1/32", "169.254.0.0/16", "fd00::/8", "fe80::/64"]
)
def test_private_source_cidrs_are_refused(cidr: str) -> None:
    """``aws:SourceIp`` holds the public address a request came from; from a VPC endpoint it is absent
    (``aws:VpcSourceIp`` is set instead), so a private block would lock the producer out for good
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-sourceip)."""
    with pytest.raises(SettingsError, match=r"^context key 'producerSourceCidrs': .* aws:SourceIp never sees"):
        Settings.from_context({"producerSourceCidrs": [cidr]})


def test_public_source_cidrs_and_supernets_are_kept() -> None:
    settings = Settings.from_context({"producerSourceCidrs": ["203.0.113.0/24", "2001:db8::/32", "8.0.0.0/7"]})
    assert settings.producer_source_cidrs == ("203.0.113.0/24", "2001:db8::/32", "8.0.0.0/7")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("3.24.0", "3.24.0"),
        (
            "arn:aws-cn:lambda:cn-north-1:498634801083:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:27",
            "arn:aws-cn:lambda:cn-north-1:498634801083:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:27",
        ),
        (
            "arn:aws-us-gov:lambda:us-gov-west-1:165087284144:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:27",
            "arn:aws-us-gov:lambda:us-gov-west-1:165087284144:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:27",
        ),
    ],
)
def test_powertools_layer_takes_an_arn_or_a_release(value: str | None, expected: str | None) -> None:
    assert Settings.from_context({"powertoolsLayer": value}).powertools_layer == expected


def test_lake_scan_limit_defaults_to_10_gb_and_takes_command_line_strings() -> None:
    assert Settings.from_context({}).lake_scan_limit_gb == 10
    assert Settings.from_context({}).lake_scan_limit_bytes == 10 * 1024**3
    assert Settings.from_context({"lakeScanLimitGb": "250"}).lake_scan_limit_bytes == 250 * 1024**3
    assert (Settings.from_context({}).lake_database_name, Settings.from_context({"stage": "prod"}).lake_database_name) == (
        "chat_analytics_dev",
        "chat_analytics_prod",
    )


def test_the_cdks_own_context_keys_are_allowed() -> None:
    from stacks.settings import check_context_keys

    check_context_keys(
        ["stage", "@aws-cdk/core:newStyleStackSynthesis", "aws:cdk:enable-path-metadata", "availability-zones:account=1:region=x"]
    )
    with pytest.raises(SettingsError, match=r"^context key 'zzz' is not a setting of this app \(settings: stage, "):
        check_context_keys(["zzz"])


def test_table_retention_defaults_to_the_lakes_and_prod_keeps_90_days_in_the_table() -> None:
    dev = Settings.from_context({"stage": "dev"})
    assert (dev.event_retention_days, dev.table_retention_days) == (30, 30)
    assert Settings.from_context({"stage": "dev", "eventRetentionDays": 200}).table_retention_days == 200
    prod = Settings.from_context({"stage": "prod"})
    assert (prod.event_retention_days, prod.table_retention_days) == (400, 90)


def test_lake_formation_is_off_by_default_and_takes_booleans_and_their_command_line_strings() -> None:
    """Off unless asked for (docs/aws-accounts.md says when); ``-c lakeFormation=true`` arrives as a string."""
    assert Settings.from_context({}).lake_formation is False
    assert Settings.from_context({"lakeFormation": True}).lake_formation is True
    assert Settings.from_context({"lakeFormation": "true"}).lake_formation is True
    assert Settings.from_context({"lakeFormation": "False"}).lake_formation is False
    assert Settings.from_context({}).report_reader_principal_arns == ()


def test_report_readers_are_role_or_user_arns_from_json_or_a_comma_list() -> None:
    role = "arn:aws:iam::111122223333:role/analysts"
    sso = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Reports_0123456789abcdef"
    user = "arn:aws-cn:iam::111122223333:user/ci"
    assert Settings.from_context({"lakeFormation": True, "reportReaderPrincipalArns": [role, sso]}).report_reader_principal_arns == (
        role,
        sso,
    )
    assert Settings.from_context(
        {"lakeFormation": "true", "reportReaderPrincipalArns": f"{role}, {user}"}
    ).report_reader_principal_arns == (
        role,
        user,
    )
    assert Settings.from_context(
        {"lakeFormation": "true", "reportReaderPrincipalArns": json.dumps([user])}
    ).report_reader_principal_arns == (user,)


def test_report_readers_without_lake_formation_say_what_to_do_instead() -> None:
    """Nothing is silently dropped: readers are only Lake Formation grantees, so naming them with the grants
    off is refused, with the IAM alternative."""
    with pytest.raises(SettingsError, match="attach the ReportReaderPolicyArn policy"):
        Settings.from_context({"reportReaderPrincipalArns": "arn:aws:iam::111122223333:role/analysts"})


def test_the_lake_is_compacted_by_default_but_not_where_lake_formation_guards_it() -> None:
    """The compaction's role runs Athena's INSERT INTO with no Lake Formation grant: with lakeFormation true it is
    off by default, and asking for both is one line naming the key (stacks/settings.py)."""
    assert Settings.from_context({"stage": "prod"}).lake_compaction is True
    assert Settings.from_context({"stage": "dev", "lakeCompaction": "false"}).lake_compaction is False
    assert Settings.from_context({"stage": "dev", "lakeFormation": True}).lake_compaction is False
    with pytest.raises(SettingsError, match=r"^context key 'lakeCompaction': not with lakeFormation true"):
        Settings.from_context({"stage": "dev", "lakeFormation": True, "lakeCompaction": True})
