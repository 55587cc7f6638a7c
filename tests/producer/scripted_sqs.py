"""A scripted SQS JSON endpoint on 127.0.0.1: each request gets the next scripted answer, else success for every entry.

It records every request (headers, parsed body) and counts connections, so a test can check what the
lean transport put on the wire: its target, its signature's access key, keep-alive, the ids of a retry.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# One scripted answer: (status, headers, body), or a callable of the request's entries returning one.
Answer = tuple[int, dict[str, str], bytes] | Callable[[list[dict[str, Any]]], tuple[int, dict[str, str], bytes]]


def success(entries: list[dict[str, Any]], ids: list[str] | None = None) -> tuple[int, dict[str, str], bytes]:
    chosen = [entry for entry in entries if ids is None or entry["Id"] in ids]
    body = {"Successful": [{"Id": e["Id"], "MessageId": f"m-{e['Id']}", "MD5OfMessageBody": "x"} for e in chosen], "Failed": []}
    return 200, {"x-amzn-RequestId": "req-1"}, json.dumps(body).encode()


def aws_error(status: int, type_: str, message: str = "scripted", query_code: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """An SQS JSON-protocol error: ``__type`` and, for query-compatible codes, ``x-amzn-query-error``."""
    headers = {"x-amzn-RequestId": "req-err"}
    if query_code:
        headers["x-amzn-query-error"] = f"{query_code};Sender"
    return status, headers, json.dumps({"__type": f"com.amazonaws.sqs#{type_}", "message": message}).encode()


class ScriptedSQS:
    """``with ScriptedSQS(answer, ...) as sqs:`` ... ``sqs.endpoint_url``, ``sqs.requests``, ``sqs.connections``."""

    def __init__(self, *script: Answer, close_after_each: bool = False) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []  # {"headers": {...lower-case...}, "body": {...}}
        self.connections = 0
        self.close_after_each = close_after_each
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with outer.lock:
                    outer.connections += 1

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    step = outer.script.pop(0) if outer.script else None
                status, headers, payload = success(body["Entries"]) if step is None else step(body["Entries"]) if callable(step) else step
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                if outer.close_after_each:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.queue_url = f"{self.endpoint_url}/123456789012/scripted.fifo"
        self.thread = threading.Thread(target=self.server.serve_forever, name="scripted-sqs", daemon=True)

    def __enter__(self) -> ScriptedSQS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def dedup_ids(self) -> list[list[str]]:
        """The MessageDeduplicationIds of each request, in order."""
        with self.lock:
            return [[entry["MessageDeduplicationId"] for entry in request["body"]["Entries"]] for request in self.requests]

    def access_keys(self) -> list[str]:
        """The access key each request was signed with."""
        with self.lock:
            return [request["headers"]["authorization"].split("Credential=", 1)[1].split("/", 1)[0] for request in self.requests]
