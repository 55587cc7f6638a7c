"""``chat-analytics`` as ``make install`` leaves it: a console script in ``.venv/bin`` (what ``source
.venv/bin/activate`` puts on PATH), answering ``--help`` with its commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_chat_analytics_help_runs_from_the_venv() -> None:
    script = Path(sys.executable).with_name("chat-analytics")
    assert script.exists(), "make install did not install the chat-analytics console script"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("check", "report", "dlq", "credentials"):
        assert command in result.stdout
