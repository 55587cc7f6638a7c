"""``make demo``, the README's first command, as a user runs it: on a busy machine too, with LocalStack's 4566 and
wrangler's 8787 taken by other programs (the demo chooses free ports), it ends 0 with the lake's report equal to
the table's."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator

from local import serve
from tests.conftest import REPO


@contextlib.contextmanager
def hold_if_free(*ports: int) -> Iterator[list[int]]:
    """Listen on each port nobody holds yet (one already taken is just as busy)."""
    with contextlib.ExitStack() as stack:
        held = []
        for port in ports:
            if serve.port_is_free(port):
                sock = stack.enter_context(socket.socket())
                sock.bind(("127.0.0.1", port))
                sock.listen()
                held.append(port)
        yield held


def test_make_demo_runs_with_the_usual_ports_taken() -> None:
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL")}
    with hold_if_free(serve.DEFAULT_PORT, serve.DEFAULT_CHATBOT_PORT):
        result = subprocess.run(["make", "--no-print-directory", "demo"], cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "the same figures as the table's report" in result.stdout
    assert "Traceback" not in result.stderr
