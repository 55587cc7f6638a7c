"""End-to-end benchmark on the local stack: what analytics costs the chatbot's user, and throughput.

For each SQS condition (healthy, slowed by 50 ms through a delaying proxy, down: a closed port)
the chatbot runs twice, with analytics on and off, and a separate load process sends the same
questions to both, interleaved request by request, so both see the same machine noise. The
ratio on/off of median and p95 latency is the figure that matters (targets: <= 1.05 and <= 1.10).
Then: events per second through the queue and the processor (1,000 events sent with the
producer, timed until all are stored).

    .venv/bin/python bench/e2e_bench.py [--requests 400] [--events 1000]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local.demo.run import run_load, scan_items, start_chatbot, stop_chatbot
from local.emulator.pipeline import LocalPipeline
from local.emulator.stack import REPO, StackInfo
from testkit.faults import DelayProxy, closed_port

ANSWER_MS = 12.0  # the seed's CV assistant answers in ~12 ms


class LatencyCase(TypedDict):
    """One SQS condition: the load generator's figures with analytics on and off (its JSON), their ratios."""

    case: str
    on: dict[str, Any]
    off: dict[str, Any]
    ratio_median: float
    ratio_p95: float
    producer: dict[str, Any]  # the chatbot's producer counters, as it printed them


class Throughput(TypedDict):
    events: int
    send_s: float
    end_to_end_s: float
    events_per_s: float
    stored_requests: int
    producer: dict[str, int]


class Machine(TypedDict):
    cpu: str
    cores: int
    python: str


class Results(TypedDict):
    machine: Machine
    cases: list[LatencyCase]
    throughput: Throughput


def env_with_endpoint(info: StackInfo, port: int) -> dict[str, str]:
    env = info.worker_env()
    path = env["AWS_SQS_URL"].split("/", 3)[3]
    env["AWS_SQS_URL"] = f"http://127.0.0.1:{port}/{path}"
    return env


def latency_case(info: StackInfo, name: str, port: int, requests: int) -> LatencyCase:
    on, on_url = start_chatbot(env_with_endpoint(info, port), analytics=True, answer_ms=ANSWER_MS)
    off, off_url = start_chatbot(None, analytics=False, answer_ms=ANSWER_MS)
    try:
        result = run_load([on_url, off_url], requests)
    finally:
        producer = stop_chatbot(on, timeout=30)
        stop_chatbot(off)
    a, b = result[on_url], result[off_url]
    return {
        "case": name,
        "on": a,
        "off": b,
        "ratio_median": round(a["median_ms"] / b["median_ms"], 3),
        "ratio_p95": round(a["p95_ms"] / b["p95_ms"], 3),
        "producer": producer,
    }


def throughput(pipeline: LocalPipeline, events: int) -> Throughput:
    from analytics_producer import AnalyticsLogger

    info = pipeline.info
    client = info.client("sqs", info.producer)
    before = len(scan_items(info))
    started = time.perf_counter()
    with AnalyticsLogger(info.events_queue_url, client=client) as logger:
        prefix = uuid.uuid4().hex[:8]
        for index in range(events // 2):
            request_id = f"tp-{prefix}-{index}"
            logger.log_query(request_id, "Does the candidate know Python?")
            logger.log_response(request_id, "full", 100, "matched 1 of 1 skills")
        logger.flush(timeout=120)
        sent_at = time.perf_counter()
        stats = logger.stats()
    pipeline.esm.wait_until_drained(timeout=300, settle_s=0.3)
    done = time.perf_counter()
    stored = len(scan_items(info)) - before
    return {
        "events": events,
        "send_s": round(sent_at - started, 2),
        "end_to_end_s": round(done - started, 2),
        "events_per_s": round(events / (done - started), 1),
        "stored_requests": stored,
        "producer": stats,
    }


def machine() -> Machine:
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | head -1"], capture_output=True, text=True).stdout.split(":")[-1].strip()
    return {"cpu": cpu, "cores": len(__import__("os").sched_getaffinity(0)), "python": platform.python_version()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--delay-ms", type=float, default=50)
    parser.add_argument("--template", type=Path, default=None, help="the synthesized dev template (default: make synth's)")
    args = parser.parse_args()
    log_path = REPO / "cdk.out" / "bench-processor.log"
    log_path.parent.mkdir(exist_ok=True)
    with LocalPipeline(template=args.template, processor_log=log_path) as pipeline:
        info = pipeline.info
        moto_port = int(info.endpoint_url.rsplit(":", 1)[1])
        cases = [latency_case(info, "healthy", moto_port, args.requests)]
        with DelayProxy(moto_port, args.delay_ms / 1000) as proxy:
            cases.append(latency_case(info, f"slow (+{args.delay_ms:.0f} ms)", proxy.port, args.requests))
        cases.append(latency_case(info, "down (connection refused)", closed_port(), args.requests))
        pipeline.esm.wait_until_drained(timeout=300)
        results = Results(machine=machine(), cases=cases, throughput=throughput(pipeline, args.events))
    print(json.dumps(results, indent=2), file=sys.__stdout__)
    print(f"\n{'case':28}{'off median':>12}{'on median':>12}{'ratio':>8}{'off p95':>10}{'on p95':>10}{'ratio':>8}", file=sys.__stdout__)
    for case in results["cases"]:
        print(
            f"{case['case']:28}{case['off']['median_ms']:>10.3f}ms{case['on']['median_ms']:>10.3f}ms{case['ratio_median']:>8.3f}"
            f"{case['off']['p95_ms']:>8.3f}ms{case['on']['p95_ms']:>8.3f}ms{case['ratio_p95']:>8.3f}",
            file=sys.__stdout__,
        )
    tp = results["throughput"]
    print(f"throughput: {tp['events']} events in {tp['end_to_end_s']} s = {tp['events_per_s']} events/s end to end", file=sys.__stdout__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
