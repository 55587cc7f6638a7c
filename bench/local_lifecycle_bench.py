"""How fast ``make local``'s entry point gives up and stops: a busy port, and SIGINT/SIGTERM while deploying and
while serving. The promise is 5 s in every case (the tests hold the behaviour and the configured grace; this
measures the time).

    .venv/bin/python bench/local_lifecycle_bench.py [--runs 3] [--template cdk.out/ChatAnalytics-dev.template.json]

Prints one line per case (median and worst of the runs) and, last, the worst time's ratio to the 5 s promise.
"""

from __future__ import annotations

import argparse
import functools
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local.emulator.stack import REPO, template_path
from testkit.faults import free_port

PROMISE_S = 5.0


def serve(template: Path, port: int, chatbot_port: int, dev_vars: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "local.serve", "--template", str(template), "--port", str(port)]
    command += ["--chatbot-port", str(chatbot_port), "--dev-vars", str(dev_vars)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(process: subprocess.Popen[str], prefix: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(prefix):
            return
    raise RuntimeError(f"local.serve ended before printing {prefix!r}")


def busy_port_exit(template: Path, dev_vars: Path) -> float:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        started = time.monotonic()
        process = serve(template, holder.getsockname()[1], free_port(), dev_vars)
        process.wait(timeout=60)
        assert process.returncode == 2
        return time.monotonic() - started


def stop_time(template: Path, dev_vars: Path, phase: str, signum: int) -> float:
    process = serve(template, free_port(), free_port(), dev_vars)
    wait_for(process, "deploying " if phase == "deploying" else "Ctrl-C to stop.")
    started = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=60)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--template", type=Path, default=template_path("dev"))
    args = parser.parse_args()
    if not args.template.exists():
        sys.exit(f"error: {args.template} not found; run `make synth` first")
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, {args.runs} runs per case")
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        dev_vars = Path(folder) / ".dev.vars"
        cases: dict[str, Callable[[], float]] = {"busy port: exit 2": functools.partial(busy_port_exit, args.template, dev_vars)}
        for phase in ("deploying", "serving"):
            for signum in (signal.SIGINT, signal.SIGTERM):
                cases[f"{signal.Signals(signum).name} while {phase}"] = functools.partial(stop_time, args.template, dev_vars, phase, signum)
        for name, case in cases.items():
            times = [case() for _ in range(args.runs)]
            worst = max(worst, *times)
            print(f"{name:<24} median {statistics.median(times):5.2f} s  worst {max(times):5.2f} s")
    print(f"worst / {PROMISE_S:g} s promise: {worst / PROMISE_S:.2f}")


if __name__ == "__main__":
    main()
