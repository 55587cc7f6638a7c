"""Fixtures every test package shares: the CDK app synthesized once per test session.

Each template is synthesized fresh into a temporary folder (never read from ``cdk.out``, which may be
stale), so the CDK assertions, the local stack, the processor's and the operations CLI's tests all run
against what ``cdk deploy`` would ship now.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Synthesized:
    template: object  # aws_cdk.assertions.Template (imported lazily: jsii starts a Node process)
    raw: dict
    path: Path
    assembly_dir: Path


def cdk_json_context() -> dict:
    """The context ``cdk synth`` reads from cdk.json (settings and feature flags), as the CLI passes it."""
    return dict(json.loads((REPO / "cdk.json").read_text())["context"])


def synthesize(context: dict, outdir: Path) -> Synthesized:
    """The app as ``cdk synth -c ...`` builds it: cdk.json's context, overridden by ``context``."""
    from aws_cdk.assertions import Template

    from app import build_app

    app, stack = build_app({**cdk_json_context(), **context}, outdir=str(outdir))
    assembly = app.synth()
    path = Path(assembly.directory) / f"{stack.stack_name}.template.json"
    raw = json.loads(path.read_text())
    return Synthesized(Template.from_json(raw), raw, path, Path(assembly.directory))


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The dev stage as ``cdk synth`` builds it by default (the local stack's template)."""
    return synthesize({"stage": "dev"}, tmp_path_factory.mktemp("cdk-dev"))
