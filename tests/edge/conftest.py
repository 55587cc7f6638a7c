"""What the edge tests share: the repository's edge/ folder, its installed tools, and running one of them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EDGE = REPO / "edge"
BIN = EDGE / "node_modules" / ".bin"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``argv`` in ``cwd`` without wrangler's metrics or npm's notices; fails the test with its output unless it exits 0."""
    env = {
        **os.environ,
        "WRANGLER_SEND_METRICS": "false",
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    }
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result
