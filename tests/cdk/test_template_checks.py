"""Whole-template checks: snapshot, cdk-nag and cfn-lint."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsii
import pytest
from aws_cdk import aws_sqs as sqs
from cfnlint.api import ManualArgs, lint_file
from syrupy.extensions.json import JSONSnapshotExtension

from app import build_app
from stacks.analytics_stack import ChatAnalyticsStack
from tests.cdk.conftest import Synthesized, resources_of


def masked(raw: dict) -> dict:
    """The template with asset hashes replaced, so the snapshot changes only when infrastructure does."""
    template = copy.deepcopy(raw)
    for resource in resources_of(template, "AWS::Lambda::Function").values():
        resource["Properties"]["Code"]["S3Key"] = "<asset hash>.zip"
    return template


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_template_matches_snapshot(stage: str, request: pytest.FixtureRequest, snapshot) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    assert masked(s.raw) == snapshot(extension_class=JSONSnapshotExtension)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cfn_lint_finds_no_errors(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    matches = lint_file(Path(s.path), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    errors = [f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cdk_nag_passes_with_no_unacknowledged_finding(stage: str, request: pytest.FixtureRequest) -> None:
    """Synthesis would have raised on any unacknowledged AwsSolutions error; the report must be clean too."""
    s: Synthesized = request.getfixturevalue(stage)
    report = json.loads((s.assembly_dir / "validation-report.json").read_text())
    assert [r for r in report["pluginReports"] if r.get("violations")] == []


def test_cdk_nag_is_wired_in_and_every_acknowledgement_is_needed(tmp_path: Path) -> None:
    """Without our acknowledgements, synthesis fails with exactly the findings they name; an
    unencrypted queue added to the stack is caught. So the pack runs and no acknowledgement is stale."""
    _, stack = build_app({"stage": "dev"}, outdir=str(tmp_path))
    acknowledged = {}
    acknowledged_at = set()  # (rule, the path of the construct that acknowledges it)
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                for rule, reason in entry.data.items():
                    acknowledged[rule.split("::", 1)[1]] = reason
                    acknowledged_at.add((rule.split("::", 1)[1], construct.node.path))
    assert acknowledged, "the stack acknowledges at least the secret-rotation finding"
    for rule, reason in acknowledged.items():
        assert rule.startswith("AwsSolutions-") and len(reason) >= 40, f"{rule}: give a specific reason"

    bare_dir = tmp_path / "unacknowledged"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ChatAnalyticsStack, "_acknowledge_nag_findings", lambda self: None)
        bare_app, bare_stack = build_app({"stage": "dev"}, outdir=str(bare_dir))
        sqs.Queue(bare_stack, "UnencryptedQueue", encryption=sqs.QueueEncryption.UNENCRYPTED)
        with pytest.raises((RuntimeError, jsii.errors.JSIIError)):
            bare_app.synth()
    report = json.loads((bare_dir / "validation-report.json").read_text())
    found = {
        (v["ruleName"], c["constructPath"]) for r in report["pluginReports"] for v in r["violations"] for c in v["violatingConstructs"]
    }
    rules = {rule for rule, _ in found}
    assert set(acknowledged) <= rules, "every acknowledgement suppresses a real finding"
    assert any(path.startswith("ChatAnalytics-dev/UnencryptedQueue") for _, path in found)
    assert {path for _, path in found if not path.startswith("ChatAnalytics-dev/UnencryptedQueue")} <= {
        "ChatAnalytics-dev/Producer/Secret/Resource",
        "ChatAnalytics-dev/Monitoring/RecoveryDeadLetterQueue/Resource",
        "ChatAnalytics-dev/Lake/Bucket/Resource",
        "ChatAnalytics-dev/Lake/DeliveryRole/Resource",
        "ChatAnalytics-dev/Lake/ReportReaderPolicy/Resource",
        "ChatAnalytics-dev/Erasure/ErasurePolicy/Resource",
        "ChatAnalytics-dev/Compaction/ScheduleRole/Resource",  # its folder grants (stacks/analytics_stack.py)
        "ChatAnalytics-dev/Compaction/SummaryRole/Resource",  # the summaries' schedule's folder grants (the same)
    }

    def under(path: str, construct_path: str) -> bool:
        return path == construct_path or path.startswith(construct_path + "/")

    stack_findings = {(rule, path) for rule, path in found if not path.startswith("ChatAnalytics-dev/UnencryptedQueue")}
    unacknowledged = {(rule, path) for rule, path in stack_findings if not any(r == rule and under(path, at) for r, at in acknowledged_at)}
    stale = {(rule, at) for rule, at in acknowledged_at if not any(r == rule and under(path, at) for r, path in stack_findings)}
    assert (unacknowledged, stale) == (set(), set()), "each finding is acknowledged on its own construct, and only there"
    compaction = {rule for rule, path in stack_findings if path == "ChatAnalytics-dev/Compaction/ScheduleRole/Resource"}
    assert compaction == {
        f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/{folder}/*]"
        for bucket in {rule.split("<", 1)[1].split(".", 1)[0] for rule in acknowledged if "<" in rule}
        for folder in ("requests", "compacted", "athena-results/compaction")
    }, "the schedule role's folder grants: the raw rows it reads, the folder it writes, its results"
