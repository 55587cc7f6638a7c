"""Send questions to one or more chatbot URLs, interleaved, and time each answer.

Run in its own process (``python -m local.demo.loadgen``) so the moto server and the processor in the
demo's process do not skew the client's clock. Interleaving the URLs request by request gives
every variant the same background load, so their ratios are fair on a noisy machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import time
from urllib.parse import quote, urlsplit

from chat_analytics_ops.report_model import percentile
from local.demo.answers import SAMPLE_QUESTIONS


def _rounded(value: float | None) -> float:
    return float("nan") if value is None else round(value, 3)


def summarize(latencies_ms: list[float]) -> dict[str, float]:
    """Median, p95, p99 and max; percentiles by the report's one definition (nearest rank)."""
    return {
        "n": len(latencies_ms),
        "median_ms": round(statistics.median(latencies_ms), 3) if latencies_ms else float("nan"),
        "p95_ms": _rounded(percentile(latencies_ms, 0.95)),
        "p99_ms": _rounded(percentile(latencies_ms, 0.99)),
        "max_ms": round(max(latencies_ms), 3) if latencies_ms else float("nan"),
    }


def run(urls: list[str], requests: int, questions: list[str] | None = None, warmup: int = 5) -> dict[str, dict]:
    """``requests`` questions to each URL over keep-alive connections; latencies in ms per URL."""
    questions = questions or SAMPLE_QUESTIONS
    connections = {}
    for url in urls:
        parts = urlsplit(url)
        connections[url] = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    latencies: dict[str, list[float]] = {url: [] for url in urls}
    statuses: dict[str, dict[int, int]] = {url: {} for url in urls}
    match_types: dict[str, dict[str, int]] = {url: {} for url in urls}
    for index in range(warmup + requests):
        question = questions[index % len(questions)]
        order = urls if index % 2 == 0 else list(reversed(urls))
        for url in order:
            connection = connections[url]
            started = time.perf_counter()
            connection.request("GET", f"/ask?q={quote(question)}")
            response = connection.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if index >= warmup:
                latencies[url].append(elapsed)
                statuses[url][response.status] = statuses[url].get(response.status, 0) + 1
                if response.status == 200:
                    kind = json.loads(body)["matchType"]
                    match_types[url][kind] = match_types[url].get(kind, 0) + 1
    for connection in connections.values():
        connection.close()
    return {url: {**summarize(latencies[url]), "statuses": statuses[url], "matchTypes": match_types[url]} for url in urls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    json.dump(run(args.url, args.requests, warmup=args.warmup), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
