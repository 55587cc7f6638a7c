"""Templates synthesized once per test session (a Python CDK synth takes seconds)."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, Synthesized, synthesize

__all__ = ["REPO", "Synthesized", "only_resource", "resources_of", "synthesize"]


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
