"""Loopback ports for the local stack: a free one to start a server on, and whether a chosen one is free."""

from __future__ import annotations

import socket
from collections.abc import Iterable


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): the one helper for a server to start on,
    and for a port where connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now. SO_REUSEADDR as servers set it, so a port that
    only has connections in TIME_WAIT counts as free; a listener on it (any address) does not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def next_free_port(after: int, avoid: Iterable[int] = ()) -> int:
    """The first free port above ``after`` (a suggestion for an error line), skipping ``avoid``; 0 if none is."""
    taken = set(avoid)
    for candidate in range(after + 1, min(after + 200, 65535)):
        if candidate not in taken and port_is_free(candidate):
            return candidate
    return 0
