"""``bench/processor_bench.py`` runs as documented, at its smallest size, so it cannot rot unnoticed.

It is run as a script (it sets its own environment and imports the Lambda asset's top-level modules),
one measured batch per mode. Nothing here judges a timing: without ``--check`` the bench exits 0 whatever
it measured (the verdict is in its report), and 1 when it crashes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_processor_bench_runs_and_prints_its_ratio_last(tmp_path: Path) -> None:
    report = tmp_path / "processor.md"
    done = subprocess.run(
        [sys.executable, "bench/processor_bench.py", "--batches", "1", "--warmup", "0", "--latency-batches", "1", "--write", str(report)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio: lean ") and "the bare parse" in lines[-1], lines[-1]
    written = report.read_text(encoding="utf-8")
    for mode in ("floor", "stub", "botocore", "lean"):
        assert f"| {mode} | 1 x 10 |" in written, mode
    assert "max concurrency for 1,000 questions/s" in written and "Model name" in written
