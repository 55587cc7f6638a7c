"""``make local`` starts, fails and stops cleanly: a busy port is one line and exit status 2 before anything is
synthesized or deployed; SIGINT and SIGTERM end it in every phase, leaving no process and no port behind.

Tests hold behaviour, not time: the stop is bounded by the watchdog's configured grace (``serve.STOP_GRACE_S``),
asserted here; the waits below only catch a hang (the bug this replaces: a busy port hung until SIGKILL).
Measured stop times are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local import serve
from testkit.faults import free_port
from tests.conftest import REPO

HANG_S = 60  # a process still running after this hangs; a working stop takes well under serve.STOP_GRACE_S


@contextlib.contextmanager
def held(port: int) -> Iterator[socket.socket]:
    """Another program listening on ``port`` (on all addresses, as most servers do)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", port))
        sock.listen()
        yield sock


def make_local(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "local", *args], cwd=REPO, capture_output=True, text=True, timeout=HANG_S, env=_env()
    )


def test_the_stop_grace_is_under_five_seconds() -> None:
    assert 0 < serve.STOP_GRACE_S < 5


@pytest.mark.parametrize("busy", ["PORT", "CHATBOT_PORT"])
def test_a_busy_port_ends_make_local_with_one_line_before_anything_runs(busy: str) -> None:
    ports = {"PORT": free_port(), "CHATBOT_PORT": free_port()}
    with held(ports[busy]):
        result = make_local(*(f"{name}={value}" for name, value in ports.items()))
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if not re.match(r"make(\[\d+\])?: ", line)]
    assert f"port {ports[busy]} " in line and "is in use" in line, line
    assert "make local PORT=" in line and "CHATBOT_PORT=" in line
    # Found before the synth and the deployment: neither ran.
    assert "cdk synth" not in result.stdout and "deploying" not in result.stdout


def test_the_suggested_ports_are_free_and_distinct() -> None:
    port = free_port()
    with held(port):
        line = serve.port_problem(port, port + 1 if port < 65535 else port - 1)
    assert line is not None
    suggested = int(line.split("make local PORT=")[1].split()[0])
    assert suggested != port and serve.port_is_free(suggested)


def test_the_same_port_twice_and_out_of_range_ports_are_refused() -> None:
    assert "both" in (serve.port_problem(5000, 5000) or "")
    assert "not a port number" in (serve.port_problem(0, 5000) or "")
    assert "not a port number" in (serve.port_problem(5000, 70000) or "")


def test_an_environment_port_is_not_the_local_stacks() -> None:
    """Many platforms export PORT for their own server; only the command line chooses the local stack's."""
    plan = subprocess.run(
        ["make", "-n", "local"], cwd=REPO, capture_output=True, text=True, check=True, env={**_env(), "PORT": "3000"}
    ).stdout
    assert "--port 4566" in plan and "--port 3000" not in plan
    chosen = subprocess.run(["make", "-n", "local", "PORT=4999"], cwd=REPO, capture_output=True, text=True, check=True, env=_env()).stdout
    assert "--port 4999" in chosen


def _env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key not in ("PORT", "CHATBOT_PORT", "MAKEFLAGS", "MAKELEVEL")}


def start(template: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    port, chatbot_port = free_port(), free_port()
    command = [sys.executable, "-m", "local.serve", "--template", str(template), "--port", str(port)]
    command += ["--chatbot-port", str(chatbot_port), "--dev-vars", str(tmp_path / ".dev.vars")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, port, chatbot_port


def read_until(process: subprocess.Popen[str], prefix: str) -> list[str]:
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"never printed {prefix!r}: {''.join(lines)}")


def assert_stopped_cleanly(process: subprocess.Popen[str], signum: int, *ports: int) -> str:
    process.wait(timeout=HANG_S)
    assert process.returncode == 128 + signum
    rest = process.stdout.read() if process.stdout else ""
    assert "Traceback" not in rest, rest
    for port in ports:  # the endpoint and the chatbot are gone with it: nothing left listening
        assert serve.port_is_free(port), port
    return rest


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_deploying_stops_it(local_template: Path, tmp_path: Path, signum: int) -> None:
    process, port, chatbot_port = start(local_template, tmp_path)
    read_until(process, "deploying ")
    process.send_signal(signum)
    rest = assert_stopped_cleanly(process, signum, port, chatbot_port)
    assert f"stopped by {signal.Signals(signum).name}" in rest


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_serving_stops_it_and_the_chatbot(local_template: Path, tmp_path: Path, signum: int) -> None:
    process, port, chatbot_port = start(local_template, tmp_path)
    read_until(process, "Ctrl-C to stop.")
    assert not serve.port_is_free(chatbot_port)
    process.send_signal(signum)
    rest = assert_stopped_cleanly(process, signum, port, chatbot_port)
    assert "producer counters" in rest and "stopped: the local stack is gone" in rest


def test_sigterm_to_make_local_stops_the_local_stack(tmp_path: Path) -> None:
    """The user's command itself: GNU make passes SIGTERM on to the recipe it runs."""
    port, chatbot_port = free_port(), free_port()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "local", f"PORT={port}", f"CHATBOT_PORT={chatbot_port}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    try:
        read_until(process, "Ctrl-C to stop.")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=HANG_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    for candidate in (port, chatbot_port):
        assert serve.port_is_free(candidate)
