"""One local pipeline (the synthesized template on moto, IAM enforced) per test module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from local.stack import REPO, template_path


@pytest.fixture(scope="session")
def local_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev template from `make synth`, or synthesized now into a temporary cdk.out."""
    path = template_path("dev")
    if path.exists():
        return path
    outdir = tmp_path_factory.mktemp("cdk-local")
    code = f"from app import build_app; app, _ = build_app({{'stage': 'dev'}}, outdir={str(outdir)!r}); app.synth()"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, timeout=300)
    return outdir / "ChatAnalytics-dev.template.json"
