"""An AWS endpoint that accepts connections, reads every request and never answers it.

It stands for a hung proxy or a wedged local moto server: the TCP connect succeeds at once, so only
the client's read timeout and attempts decide how long a call waits. It records the action of every
request it receives (``X-Amz-Target`` of the JSON protocol, ``Action=`` of the query protocol), so a
test can count attempts. ``answers`` lets chosen JSON-protocol actions be answered (after a delay,
or after the request's own ``WaitTimeSeconds`` like an SQS long poll on an empty queue) while the
others stay silent: an endpoint that stops answering half-way through a command.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs


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

    def __enter__(self) -> SilentEndpoint:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def actions(self) -> list[str]:
        """The action of every request received so far, in order."""
        with self._lock:
            return list(self._actions)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for connection in self._connections:
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
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
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
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
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
