"""One local pipeline (the synthesized template on moto, IAM enforced) per test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Synthesized


@pytest.fixture(scope="session")
def local_template(dev: Synthesized) -> Path:
    """The dev template synthesized for this test session (never a stale ``cdk.out``)."""
    return dev.path
