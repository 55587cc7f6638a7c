"""moto as a server on 127.0.0.1: the one launcher the tests and the benchmarks use.

Two shapes, for two reasons:

- ``moto_thread()``: a ``ThreadedMotoServer`` in this process. Its state is this process's moto state, so a test
  can also reach it in-process; the cheapest to start.
- ``moto_process()``: a server in a process of its own. IAM enforcement (``INITIAL_NO_AUTH_ACTION_COUNT``) is a
  process-wide moto setting, and a benchmark must not have moto's request handling share its own GIL.

Both wait until the port accepts connections and yield the endpoint URL; both stop the server on exit.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from moto.server import ThreadedMotoServer

from testkit.faults import free_port

REPO = Path(__file__).resolve().parent.parent

_SERVER_PROCESS = textwrap.dedent(
    """
    import sys
    from moto.server import ThreadedMotoServer
    if sys.argv[2] == "fast-sqs":
        from local.emulator.stack import speed_up_moto_sqs
        speed_up_moto_sqs()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def wait_for_port(port: int, *, attempts: int = 200, pause_s: float = 0.05) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; raise after ``attempts`` refusals."""
    for _ in range(attempts):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(pause_s)
    raise RuntimeError(f"moto did not listen on 127.0.0.1:{port}")


def reset(endpoint: str) -> None:
    """Empty moto's state behind ``endpoint`` (every account, every service): each test starts from nothing."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()  # loopback only


@contextlib.contextmanager
def moto_thread(port: int | None = None, *, fast_sqs: bool = False, reset_state: bool = False) -> Iterator[str]:
    """A moto server in this process on 127.0.0.1 (``port`` or a free one); yields its endpoint URL.

    ``fast_sqs``: moto's SQS without its FIFO slowdowns (``local.emulator.stack.speed_up_moto_sqs``);
    ``reset_state``: start from an empty account (moto's state is per process).
    """
    if fast_sqs:
        from local.emulator.stack import speed_up_moto_sqs

        speed_up_moto_sqs()
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port)
        if reset_state:
            reset(endpoint)
        yield endpoint
    finally:
        server.stop()


@contextlib.contextmanager
def moto_process(*, fast_sqs: bool = False) -> Iterator[str]:
    """A moto server in a process of its own on a free 127.0.0.1 port; yields its endpoint URL.

    The process serves until its stdin closes; on exit it is terminated and waited for.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER_PROCESS, str(port), "fast-sqs" if fast_sqs else "plain"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"moto's process exited with {process.wait(10)} before it served")
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
