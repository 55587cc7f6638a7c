"""Templates synthesized once per test session (a Python CDK synth takes seconds), and the helpers the
construct-level tests share (a construct on a fresh stack, its app synthesized once per module)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import REPO, Synthesized, synthesize

__all__ = ["REPO", "Synthesized", "logical_id", "one_of", "only_resource", "resources_of", "synthesize", "templates_of"]


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


def templates_of(app: Any) -> dict[str, Any]:
    """Each stack's ``aws_cdk.assertions.Template`` by stack name, from one synth of ``app`` (``Template.from_stack``
    synthesizes the whole app again for every stack)."""
    from aws_cdk.assertions import Template

    assembly = app.synth()
    return {stack.stack_name: Template.from_json(stack.template) for stack in assembly.stacks}


def logical_id(stack: Any, construct: Any) -> str:
    """The logical id ``stack`` gives an L2's resource (its default child) or an L1."""
    return stack.get_logical_id(getattr(construct.node, "default_child", None) or construct)


def one_of(template: Any, resource_type: str) -> tuple[str, dict]:
    """The logical id and body of the template's only resource of a type."""
    found = template.find_resources(resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {list(found)}"
    name, resource = next(iter(found.items()))
    return name, dict(resource)
