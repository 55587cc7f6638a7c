"""An SQS endpoint that never answers: a TCP server on 127.0.0.1 that accepts, reads and stays silent.

It counts what reaches the wire: ``connections`` accepted and ``requests`` (HTTP requests whose
headers and body it has read), so a test can tell how many attempts a client really made.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class SilentServer:
    """``with SilentServer() as server:`` ... ``server.endpoint_url``, ``server.requests``."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.queue_url = f"{self.endpoint_url}/123456789012/silent.fifo"
        self.connections = 0
        self.requests = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:  # shutdown first: close() alone sends nothing while a reader is blocked in recv()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.connections, self.requests

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(conn)
            threading.Thread(target=self._read, args=(conn,), name="silent-server-conn", daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        """Read request after request (headers, then Content-Length bytes of body); never write."""
        data = b""
        try:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, data = data.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(data) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                data = data[length:]
                with self._lock:
                    self.requests += 1
        except OSError:
            return
