"""Endpoints that misbehave on purpose, for the tests and the benchmarks: a port where nothing listens
(``closed_port``), a TCP proxy that delays traffic (``DelayProxy``), and an endpoint that accepts requests and
never answers (``SilentEndpoint``; ``SilentServer``, the same as an SQS queue's endpoint)."""

from __future__ import annotations

import collections
import contextlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qs

from local.emulator.ports import free_port

closed_port = free_port  # the same helper, named for the fault it stands for: connections refused


_AMZ_TARGET = re.compile(rb"\r\nx-amz-target: *([a-z0-9._]+)\r\n")


def read_request(connection: socket.socket, buffer: bytes) -> tuple[dict[str, str], bytes, bytes] | None:
    """The next HTTP/1.1 request on ``connection`` after ``buffer`` (bytes already received): its headers
    (lowercased names), its body (by ``Content-Length``) and the bytes received after it; None when the
    client closed the connection first. For the test servers that script their answers."""
    while b"\r\n\r\n" not in buffer:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    return headers, buffer[:length], buffer[length:]


class DelayProxy:
    """Forwards 127.0.0.1:<port> to ``target``, holding each client-to-server chunk ``delay_s`` (0: none).

    An HTTP request usually arrives as one chunk, so each request is answered ``delay_s`` later:
    a slow SQS endpoint as seen from the producer. It also counts the requests that pass by their
    ``X-Amz-Target`` (header names lowercased; a header split across two reads is found because the
    unparsed tail is carried over) and the bytes clients sent: ``reset()`` returns and clears both.
    """

    def __init__(self, target_port: int, delay_s: float, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.delay_s = delay_s
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.targets: collections.Counter[str] = collections.Counter()
        self.bytes_in = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="delay-proxy", daemon=True)

    def start(self) -> DelayProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()

    def reset(self) -> dict[str, Any]:
        """The requests counted by target and the bytes clients sent since the last reset."""
        with self._lock:
            snapshot = {"requests": dict(self.targets), "bytes_in": self.bytes_in}
            self.targets.clear()
            self.bytes_in = 0
        return snapshot

    def drop_connections(self) -> int:
        """Cut every open connection, as a crashed server would; returns how many sockets were closed."""
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return len(sockets)

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, self.delay_s, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, 0.0, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delay_s: float, count: bool) -> None:
        tail = b""
        try:
            while not self._stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if count:
                    text = tail + data.lower()
                    matches = list(_AMZ_TARGET.finditer(text))
                    tail = text[max(matches[-1].end() if matches else 0, len(text) - 256) :]
                    with self._lock:
                        self.bytes_in += len(data)
                        self.targets.update(match.group(1).decode() for match in matches)
                if delay_s:
                    time.sleep(delay_s)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._open.discard(sock)


# An AWS endpoint that accepts connections, reads every request and never answers it.
#
# It stands for a hung proxy or a wedged local moto server: the TCP connect succeeds at once, so only
# the client's read timeout and attempts decide how long a call waits. It records the action of every
# request it receives (``X-Amz-Target`` of the JSON protocol, ``Action=`` of the query protocol), so a
# test can count attempts. ``answers`` lets chosen JSON-protocol actions be answered (after a delay,
# or after the request's own ``WaitTimeSeconds`` like an SQS long poll on an empty queue) while the
# others stay silent: an endpoint that stops answering half-way through a command.


@dataclass(frozen=True)
class Answer:
    """A 200 answer with ``body`` as JSON, sent after ``delay_s`` (or the request's ``WaitTimeSeconds``)."""

    body: dict[str, Any]
    delay_s: float = 0.0
    long_poll: bool = False


class SilentEndpoint:
    """``with SilentEndpoint() as endpoint:`` ... ``endpoint.url``, ``endpoint.actions``."""

    def __init__(self, answers: dict[str, Answer] | None = None) -> None:
        self.answers = answers or {}
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._actions: list[str] = []
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, name="silent-endpoint", daemon=True).start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def actions(self) -> list[str]:
        """The action of every request received so far, in order."""
        with self._lock:
            return list(self._actions)

    def counts(self) -> tuple[int, int]:
        """Connections accepted and requests received so far."""
        with self._lock:
            return len(self._connections), len(self._actions)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # shutdown first: close() alone sends nothing while a reader is blocked in recv()
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), name="silent-endpoint-connection", daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                request = read_request(connection, buffer)
                if request is None:
                    return
                headers, body, buffer = request
                action = self._action(headers, body)
                with self._lock:
                    self._actions.append(action)
                answer = self.answers.get(action)
                if answer is None:
                    continue  # never answered: the client waits for its read timeout
                self._answer(connection, answer, body)
        except OSError:
            return

    @staticmethod
    def _action(headers: dict[str, str], body: bytes) -> str:
        target = headers.get("x-amz-target")
        if target:
            return target.rsplit(".", 1)[-1]
        form = parse_qs(body.decode("utf-8", "replace"))
        return form.get("Action", ["?"])[0]

    @staticmethod
    def _answer(connection: socket.socket, answer: Answer, request_body: bytes) -> None:
        delay = answer.delay_s
        if answer.long_poll:
            delay = float(json.loads(request_body or b"{}").get("WaitTimeSeconds", 0))
        time.sleep(delay)
        payload = json.dumps(answer.body).encode()
        connection.sendall(
            b"HTTP/1.1 200 OK\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\n"
            b"x-amzn-RequestId: silent-endpoint\r\n" + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        )


class SilentServer(SilentEndpoint):
    """A silent SQS endpoint: ``with SilentServer() as server:`` ... ``server.endpoint_url``, ``server.queue_url``,
    ``server.counts()``."""

    def __init__(self) -> None:
        super().__init__()
        self.endpoint_url = self.url
        self.queue_url = f"{self.url}/123456789012/silent.fifo"
