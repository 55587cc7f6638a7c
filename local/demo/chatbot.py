"""The seed's chatbot as a small HTTP service: answer at once, log analytics in the background.

``GET /ask?q=...`` (or ``POST /ask`` with ``{"question": ...}``) answers with JSON. The query
and the response events go through ``analytics_producer``, whose ``log_*`` calls only enqueue:
the answer never waits on SQS. Run as ``python -m local.demo.chatbot --port N`` with the four producer
variables in the environment (``AWS_SQS_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``), or with ``--no-analytics``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.demo.answers import AnswerGenerator, CvSkillMatcher, WithLatency

SOURCE = "demo-chatbot"


class Chatbot:
    """Answers questions; ``analytics`` is an ``AnalyticsLogger`` or None (analytics off)."""

    def __init__(self, generator: AnswerGenerator, analytics: Any | None = None) -> None:
        self.generator = generator
        self.analytics = analytics

    def ask(self, question: str, session_id: str | None = None) -> dict:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        if self.analytics is not None:
            self.analytics.log_query(request_id, question, source=SOURCE, session_id=session_id)
        answer = self.generator.answer(question)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if self.analytics is not None:
            self.analytics.log_response(
                request_id,
                answer.match_type,
                answer.match_score,
                answer.reasoning,
                source=SOURCE,
                session_id=session_id,
                latency_ms=latency_ms,
            )
        return {
            "requestId": request_id,
            "answer": answer.text,
            "matchType": answer.match_type,
            "matchScore": answer.match_score,
        }


def make_server(chatbot: Chatbot, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle's algorithm and the client's
        # delayed ACK hold the body back ~40 ms on a keep-alive connection.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/health":
                return self._send(200, {"ok": True, "analytics": chatbot.analytics is not None})
            if url.path == "/stats":
                return self._send(200, chatbot.analytics.stats() if chatbot.analytics else {})
            if url.path != "/ask":
                return self._send(404, {"error": f"no route {url.path}"})
            question = parse_qs(url.query).get("q", [""])[0]
            self._answer(question, None)

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/ask":
                return self._send(404, {"error": "no such route"})
            try:
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                question = payload["question"]
            except (ValueError, KeyError, TypeError):
                return self._send(400, {"error": 'body must be JSON {"question": "..."}'})
            self._answer(question, payload.get("sessionId"))

        def _answer(self, question: str, session_id: str | None) -> None:
            if not isinstance(question, str) or not question.strip() or len(question) > 4096:
                return self._send(400, {"error": "question must be 1 to 4096 characters"})
            self._send(200, chatbot.ask(question.strip(), session_id))

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # quiet: one line per request is noise here
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def analytics_from_env() -> Any:
    """The producer's own ``AnalyticsLogger.from_env``: the queue, region and key the Worker would get."""
    from analytics_producer import AnalyticsLogger

    return AnalyticsLogger.from_env()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--no-analytics", action="store_true", help="answer without logging analytics")
    parser.add_argument("--answer-ms", type=float, default=0.0, help="time each answer takes, like a model call (default 0)")
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=1.0,
        help="the interpreter's thread switch interval (default 1; Python's own is 5): how long a request may wait"
        " for the GIL while the analytics sender thread serializes a batch",
    )
    args = parser.parse_args(argv)
    sys.setswitchinterval(args.switch_interval_ms / 1000)
    analytics = None
    if not args.no_analytics:
        try:
            analytics = analytics_from_env()
        except Exception as error:  # no queue URL, no region, half an ANALYTICS_* key pair, ...
            print(
                f"error: analytics: {error}; set ANALYTICS_SQS_URL (or AWS_SQS_URL) and a region, or pass --no-analytics", file=sys.stderr
            )
            return 2
    generator = CvSkillMatcher() if args.answer_ms <= 0 else WithLatency(CvSkillMatcher(), args.answer_ms / 1000)
    server = make_server(Chatbot(generator, analytics), args.port)
    stopping = threading.Event()

    def shutdown(*_: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(json.dumps({"listening": f"http://127.0.0.1:{server.server_address[1]}", "analytics": analytics is not None}), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if analytics is not None:
            analytics.close(timeout=5)
            print(json.dumps({"analytics": analytics.stats()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
