"""Templates synthesized once per test session (a Python CDK synth takes seconds)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk.assertions import Template

from app import build_app

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Synthesized:
    template: Template
    raw: dict
    path: Path
    assembly_dir: Path


def synthesize(context: dict, outdir: Path) -> Synthesized:
    app, stack = build_app(context, outdir=str(outdir))
    assembly = app.synth()
    path = Path(assembly.directory) / f"{stack.stack_name}.template.json"
    raw = json.loads(path.read_text())
    return Synthesized(Template.from_json(raw), raw, path, Path(assembly.directory))


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize({"stage": "dev"}, tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = {
        "stage": "prod",
        "alarmEmail": "oncall@example.com",
        "producerSourceCidrs": ["198.51.100.0/24", "2001:db8::/32"],
        "producerKeySerial": 4,
        "oldestMessageAgeThresholdSeconds": 600,
    }
    return synthesize(context, tmp_path_factory.mktemp("cdk-prod"))


def resources_of(raw: dict, resource_type: str) -> dict[str, dict]:
    return {name: res for name, res in raw["Resources"].items() if res["Type"] == resource_type}


def only_resource(raw: dict, resource_type: str, **match: object) -> tuple[str, dict]:
    """The single resource of a type whose properties contain ``match``."""
    found = [
        (name, res)
        for name, res in resources_of(raw, resource_type).items()
        if all(res.get("Properties", {}).get(key) == value for key, value in match.items())
    ]
    assert len(found) == 1, f"expected one {resource_type} matching {match}, found {[n for n, _ in found]}"
    return found[0]
