"""How long each ``chat-analytics`` command takes against an endpoint that accepts connections and never answers.

The tests (tests/ops/test_ops_timeouts.py) assert what such a command does: the attempts the endpoint
receives, the client configuration every call uses, one line and exit status 1. They do not time it: on
a busy machine a process takes longer to start and a test that asserted a budget failed without anything
being wrong. The times are measured here instead, for ops/README.md's claim that a command gives up
after about 11 s and ends within 20 s.

Each command of the table the tests run (``testkit.ops_scenarios``: ``SILENT``, ``HALF_SILENT``, every subcommand, through the stack's
outputs and with each service's override) runs as a real process, ``python -m chat_analytics_ops``,
against its own ``SilentEndpoint`` on 127.0.0.1, one at a time (``--parallel``: all at once, as the test
module runs them). Printed per command: the wall time, the configured wait on a silent endpoint
(``TOTAL_MAX_ATTEMPTS x READ_TIMEOUT_S``, 2 x 5 s, plus under 1 s of backoff before the retry: the
budget, 11 s) and the ratio of the two; then the interpreter's own start-up (``--version``, median of
``--runs``), and the last line the largest ratio.

    .venv/bin/python bench/ops_timeouts_bench.py [--parallel] [--runs 3] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "ops" / "src"))

from chat_analytics_ops.timeouts import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, TOTAL_MAX_ATTEMPTS  # noqa: E402
from testkit.ops_scenarios import HALF_SILENT, SILENT, Run, clean_env, run  # noqa: E402

BACKOFF_S = 1.0  # standard retry mode: under 1 s before the one retry
BUDGET_S = TOTAL_MAX_ATTEMPTS * READ_TIMEOUT_S + BACKOFF_S  # the wait on a silent endpoint (the connect succeeds at once)
DOCUMENTED_S = 20.0  # ops/README.md: "every command ends within 20 s"


def start_up_s(env: dict[str, str], cwd: Path, runs: int) -> float:
    """The interpreter and the CLI's imports alone: ``python -m chat_analytics_ops --version``, median of ``runs``."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "chat_analytics_ops", "--version"], env=env, cwd=cwd, capture_output=True, check=True, timeout=120
        )
        times.append(time.monotonic() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", action="store_true", help="run every command at once (as the test module does)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the start-up measurement (default 3)")
    parser.add_argument("--only", nargs="*", default=None, help="only these scenarios (names of the tests' table)")
    args = parser.parse_args()

    scenarios = {**SILENT, **HALF_SILENT}
    if args.only:
        unknown = [name for name in args.only if name not in scenarios]
        if unknown:
            parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(scenarios)}")
        scenarios = {name: scenarios[name] for name in args.only}

    print(
        f"python {platform.python_version()} on {platform.machine()}, {(Path('/proc/cpuinfo').exists() and _cpu()) or platform.processor()}"
    )
    print(
        f"config: connect {CONNECT_TIMEOUT_S} s, read {READ_TIMEOUT_S} s, total_max_attempts {TOTAL_MAX_ATTEMPTS};"
        f" budget on a silent endpoint {TOTAL_MAX_ATTEMPTS} x {READ_TIMEOUT_S} s + {BACKOFF_S:.0f} s backoff = {BUDGET_S:.0f} s"
    )
    with tempfile.TemporaryDirectory() as home_dir:
        home = Path(home_dir)
        env = clean_env(home)
        startup = start_up_s(env, home, args.runs)
        results: dict[str, Run] = {}
        if args.parallel:
            with ThreadPoolExecutor(max_workers=len(scenarios)) as pool:
                futures = {name: pool.submit(run, scenario, env, home, record=False) for name, scenario in scenarios.items()}
                results = {name: future.result() for name, future in futures.items()}
        else:
            for name, scenario in scenarios.items():
                results[name] = run(scenario, env, home, record=False)

    print(f"\n{'command':<28} {'exit':>4} {'requests':>8} {'time':>8} {'ratio':>6}")
    ratios = []
    for name, result in results.items():
        ratio = result.elapsed_s / BUDGET_S
        ratios.append(ratio)
        code = "-" if result.code is None else str(result.code)
        print(f"{name:<28} {code:>4} {len(result.actions):>8} {result.elapsed_s:>7.1f}s {ratio:>6.2f}")
    slowest = max(results.values(), key=lambda result: result.elapsed_s)
    mode = "all at once" if args.parallel else "one at a time"
    print(f"\ninterpreter start-up (--version, median of {args.runs}): {startup:.2f} s; {len(results)} commands {mode}")
    print(f"slowest {slowest.elapsed_s:.1f} s (documented bound {DOCUMENTED_S:.0f} s); minus start-up {slowest.elapsed_s - startup:.1f} s")
    print(f"ratio to the {BUDGET_S:.0f} s budget: max {max(ratios):.2f}, median {statistics.median(ratios):.2f}")
    return 0


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
