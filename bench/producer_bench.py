"""The caller's cost of analytics: ``AnalyticsLogger.log()`` against the alternatives, SQS up, down and slow.

    .venv/bin/python bench/producer_bench.py [--calls 100000] [--seed-calls 200] [--section all|caller|sender|profile]

What is timed is the call a request handler makes, one ``perf_counter_ns`` pair per call:

- ``log()`` of a prepared event dict and ``log_query()`` (which builds it), 100k calls each, with
  the sender thread running against SQS up (a moto server in its own process, as AWS would be),
  down (a closed port) and slow (a proxy holding every request 1 s);
- the seed's pattern: a new boto3 client and an awaited ``send_message`` per event (far fewer
  calls: each costs milliseconds to seconds);
- an awaited ``send_message`` on a reused client (the usual fix, still on the caller's path);
- posthog's ``capture()``, the enqueue call of a well-known analytics client, with ``send=False``
  (its offline mode: builds and accepts the event, sends nothing) and with sending on but its host
  a closed port (a real enqueue, a consumer thread failing in the background).

It then counts ``SendMessageBatch`` requests per 1,000 events under load: a burst, and a steady
rate from four threads. Everything runs in one process run, so the ratios compare like with like.

The sender section (``--section sender``) measures what the background thread costs, against an
endpoint that answers at once (a tiny threaded HTTP server in another process, so its CPU is not
counted, answering every entry of every ``SendMessageBatch`` as successful):

- the sender thread's CPU time per 1,000 events (``pthread_getcpuclockid`` of that thread, read
  before the events are logged and after ``flush()``), for the lean transport (the default) and the
  botocore transport, against a raw ``http.client`` POST loop sending the same batch bodies to the
  same endpoint (the wire's cost: no serialization, no signing, no parsing), in rounds taken in turn;
- the callers' ``log()`` latency at 2,000 events/s from 4 threads while the sender sends, for both
  transports, and with a client that answers in-process (no HTTP: the floor).

The profile section (``--section profile``) splits the lean sender's CPU per request into its steps
(each timed alone), its own loop (the sender with its socket replaced by a recorded answer, minus the
steps) and the wire as the thread pays it (the sender minus that).

The last line printed is the ratio the sender is judged by: the lean sender thread's CPU over the raw
loop's, the median of the rounds' ratios (each round runs the two back to back), when the sender
section ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import platform
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analytics_producer import AnalyticsLogger  # noqa: E402
from analytics_producer.batching import to_entry  # noqa: E402
from analytics_producer.sender import Sender  # noqa: E402
from testkit.faults import DelayProxy, closed_port  # noqa: E402
from testkit.moto import moto_process  # noqa: E402

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "AKIDBENCH", "aws_secret_access_key": "bench-secret", "region_name": REGION}
SLOW_DELAY_S = 1.0
QUESTION = "Does the candidate have production experience with Python and AWS Lambda?"


def sqs(endpoint: str, config: Config | None = None):
    return boto3.Session(**KEYS).client("sqs", endpoint_url=endpoint, config=config)


def fast_client(endpoint: str):
    """The client a logger should be given: short timeouts, one attempt per call (the logger retries)."""
    return sqs(endpoint, Config(connect_timeout=1, read_timeout=3, retries={"total_max_attempts": 1}, max_pool_connections=2))


def create_queue(endpoint: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}.fifo"
    attributes = {"FifoQueue": "true", "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId"}
    return sqs(endpoint).create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def queue_url_at(endpoint: str, queue_url: str) -> str:
    return f"{endpoint}/{'/'.join(queue_url.rsplit('/', 2)[-2:])}"


# -- timing ---------------------------------------------------------------------------------------


def time_calls(call: Callable[[int], object], count: int) -> list[int]:
    """Nanoseconds of each of ``count`` calls (garbage collection left on: a handler has it on too)."""
    clock = time.perf_counter_ns
    samples = [0] * count
    for index in range(count):
        started = clock()
        call(index)
        samples[index] = clock() - started
    return samples


def summary(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1000.0

    return {"n": len(ordered), "median": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": ordered[-1] / 1000.0}


def fmt_us(value: float) -> str:
    if value >= 100_000:
        return f"{value / 1e6:.2f} s"
    if value >= 1000:
        return f"{value / 1000:.1f} ms"
    return f"{value:.1f} µs"


# -- the producer -----------------------------------------------------------------------------------


def bench_logger(name: str, queue_url: str, client, calls: int, rows: list[tuple[str, dict[str, float], str]]) -> None:
    slug = name.split()[0]  # a request id has no spaces
    request_ids = [f"bench-{slug}-{uuid.uuid4().hex[:12]}-{i}" for i in range(calls)]
    events = [
        {"eventType": "query", "requestId": rid, "timestamp": 1_767_225_600_000 + i, "query": QUESTION} for i, rid in enumerate(request_ids)
    ]
    # Large enough that every call takes the accepting path (a full buffer's drop path is cheaper still).
    logger = AnalyticsLogger(queue_url, client=client, max_queue_size=2 * calls + 10, max_retries=3, backoff_base_s=0.2)
    try:
        log = logger.log
        gc.collect()
        samples = time_calls(lambda i: log(events[i]), calls)
        stats = logger.stats()
        rows.append((f"`log(event)`, SQS {name}", summary(samples), f"accepted {stats['accepted']}, sent so far {stats['sent']}"))
        log_query = logger.log_query
        gc.collect()
        samples = time_calls(lambda i: log_query(request_ids[i] + "-q", QUESTION, source="bench"), calls)
        stats = logger.stats()
        rows.append((f"`log_query(...)`, SQS {name}", summary(samples), f"accepted {stats['accepted']}, sent so far {stats['sent']}"))
    finally:
        logger.close(timeout=0.5)  # what is still queued is counted as failed, on purpose: only the caller's cost is measured here


# -- the alternatives ---------------------------------------------------------------------------------


def seed_send(endpoint: str, queue_url: str) -> Callable[[int], object]:
    """The seed: a new client per event, MessageGroupId 'analytics', awaited in the handler."""

    def call(index: int) -> None:
        async def send() -> None:
            client = boto3.Session(**KEYS).client("sqs", endpoint_url=endpoint)
            try:
                rid = f"seed-{uuid.uuid4().hex}"
                client.send_message(QueueUrl=queue_url, MessageBody=QUESTION, MessageGroupId="analytics", MessageDeduplicationId=rid)
            except Exception:
                pass  # "event lost (logged)"

        asyncio.run(send())

    return call


def reused_send(client, queue_url: str) -> Callable[[int], object]:
    def call(index: int) -> None:
        rid = f"reused-{uuid.uuid4().hex}"
        with contextlib.suppress(Exception):
            client.send_message(QueueUrl=queue_url, MessageBody=QUESTION, MessageGroupId=rid, MessageDeduplicationId=f"{rid}:query")

    return call


def posthog_capture(capture: Callable[..., object]) -> Callable[[int], object]:
    """The ``index``-th call of PostHog's ``capture()`` (PostHog's event, as its docs write one)."""

    def call(index: int) -> object:
        return capture("query", distinct_id=f"user-{index}", properties={"requestId": f"r{index}", "query": QUESTION})

    return call


def posthog_rows(calls: int, rows: list) -> None:
    from posthog import Posthog

    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    dead = f"http://127.0.0.1:{closed_port()}"
    for label, kwargs in (
        ("send=False (offline)", {"send": False}),
        ("sending to a closed port", {"send": True, "max_retries": 0}),
    ):
        client = Posthog("phc_bench", host=dead, max_queue_size=2 * calls + 10, **kwargs)
        logging.getLogger("posthog").setLevel(logging.CRITICAL)  # after the constructor, which sets its own level
        try:
            capture = client.capture
            gc.collect()
            samples = time_calls(posthog_capture(capture), calls)
            rows.append((f"posthog `capture()`, {label}", summary(samples), "peer: an analytics client's enqueue call"))
        finally:
            with_timeout(client.shutdown, 2.0)


def with_timeout(function: Callable[[], object], seconds: float) -> None:
    thread = threading.Thread(target=function, daemon=True)
    thread.start()
    thread.join(seconds)


# -- requests per 1,000 events -------------------------------------------------------------------------


def requests_per_1000(endpoint: str, calls: int = 100_000) -> list[tuple[str, int, int, float]]:
    """SendMessageBatch requests per 1,000 events: a burst of 3,000 events, then 1,000 events/s for 3 s (both cut
    to ``calls`` events when fewer are asked for: the benchmark's smallest size, run by a test)."""
    results = []
    burst = min(3000, calls)
    per_thread = min(375, max(1, calls // 8))
    # A burst: 3,000 events logged as fast as possible.
    with AnalyticsLogger(create_queue(endpoint), client=fast_client(endpoint)) as logger:
        for index in range(burst):
            logger.log_query(f"burst-{index}", QUESTION)
        logger.flush(timeout=120)
        stats = logger.stats()
    results.append((f"burst of {burst:,} events", stats["sent"], stats["requests"], 1000 * stats["requests"] / max(1, stats["sent"])))
    # A steady load: four threads, 250 events/s each (1,000 events/s), for 3 s: query then response per request.
    with AnalyticsLogger(create_queue(endpoint), client=fast_client(endpoint)) as logger:

        def worker(thread: int) -> None:
            started = time.monotonic()
            for index in range(per_thread):
                rid = f"steady-{thread}-{index}"
                logger.log_query(rid, QUESTION)
                logger.log_response(rid, "partial", 50, "matched 1 of 2 skills", latency_ms=12.0)
                delay = started + (index + 1) * 2 / 250 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        logger.flush(timeout=120)
        stats = logger.stats()
    results.append(
        (
            f"steady 1,000 events/s, 4 threads, {per_thread * 8 / 1000:g} s",
            stats["sent"],
            stats["requests"],
            1000 * stats["requests"] / max(1, stats["sent"]),
        )
    )
    return results


# -- the sender's CPU per event ---------------------------------------------------------------------------

# An SQS endpoint that answers at once: every entry of every SendMessageBatch is successful. It runs in
# its own process, so its CPU is not counted in the sender's, and keeps connections alive (HTTP/1.1).
INSTANT_SQS = textwrap.dedent(
    """
    import hashlib, json, sys, uuid
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = json.dumps({
                "Successful": [
                    {"Id": e["Id"], "MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(e["MessageBody"].encode()).hexdigest(),
                     "SequenceNumber": "1"}
                    for e in request["Entries"]
                ],
                "Failed": [],
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)
SENDER_EVENTS = 5_000  # per round: 500 full batches
SENDER_ROUNDS = 5
RATE_EVENTS_PER_S = 2_000
RATE_THREADS = 4


def start_instant_sqs() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", INSTANT_SQS], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{int(process.stdout.readline())}"


def sender_events(prefix: str, count: int) -> list[dict]:
    """Half queries, half responses, as a chatbot logs them."""
    events = []
    for index in range(count // 2):
        rid = f"{prefix}-{index}"
        events.append({"eventType": "query", "requestId": rid, "timestamp": 1_767_225_600_000 + index, "query": QUESTION})
        events.append(
            {
                "eventType": "response",
                "requestId": rid,
                "timestamp": 1_767_225_600_011 + index,
                "matchType": "partial",
                "matchScore": 50,
                "reasoning": "matched 1 of 2 skills",
                "latencyMs": 11.8,
            }
        )
    return events


def batch_bodies(queue_url: str, events: list[dict]) -> list[bytes]:
    """The request bodies the lean transport sends for ``events``, ten entries each."""
    import json

    bodies = []
    for start in range(0, len(events), 10):
        entries = [to_entry(event, None).as_request(str(i)) for i, event in enumerate(events[start : start + 10])]
        bodies.append(json.dumps({"QueueUrl": queue_url, "Entries": entries}, separators=(",", ":"), ensure_ascii=False).encode())
    return bodies


def raw_post_cpu(endpoint: str, bodies: list[bytes]) -> float:
    """CPU seconds of this thread for a plain http.client POST loop: send each body, read each answer."""
    import http.client

    port = int(endpoint.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessageBatch"}
    for body in bodies[:20]:  # warm: connection open, code paths loaded
        connection.request("POST", "/", body, headers)
        connection.getresponse().read()
    started = time.thread_time()
    for body in bodies:
        connection.request("POST", "/", body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    cpu = time.thread_time() - started
    connection.close()
    return cpu


def bench_session() -> boto3.Session:
    return boto3.Session(**KEYS)


def sender_logger(transport: str, endpoint: str, queue_url: str, **kwargs) -> AnalyticsLogger:
    return AnalyticsLogger(queue_url, endpoint_url=endpoint, session=bench_session(), transport=transport, **kwargs)


def sender_clock(logger: AnalyticsLogger) -> int:
    """The CPU clock of the logger's sender thread (started: the logger has sent)."""
    sender = logger._sender
    assert isinstance(sender, Sender) and sender.thread.ident is not None, "an enabled logger whose sender thread runs"
    return time.pthread_getcpuclockid(sender.thread.ident)


def sender_cpu(transport: str, endpoint: str, queue_url: str, events: list[dict]) -> tuple[float, dict[str, int]]:
    """CPU seconds of the logger's sender thread from the first ``log()`` of ``events`` to the end of ``flush()``."""
    with sender_logger(transport, endpoint, queue_url, max_queue_size=len(events) + 100) as logger:
        for event in events[:200]:  # warm: connection open, credentials frozen once, code paths loaded
            logger.log(event)
        assert logger.flush(timeout=30)
        clock = sender_clock(logger)
        started = time.clock_gettime(clock)
        for event in events:
            logger.log(event)
        assert logger.flush(timeout=120)
        cpu = time.clock_gettime(clock) - started
        stats = logger.stats()
    assert stats["failed"] == 0 and stats["sent"] == len(events) + 200, stats
    return cpu, stats


class InstantClient:
    """A client answering in-process, without HTTP: the floor of what the sender can cost the callers."""

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


def log_at_rate(logger: AnalyticsLogger, seconds: float) -> tuple[list[int], dict[str, int]]:
    """``log()`` latencies of 4 threads logging 2,000 events/s in total (a query and its response per request)."""
    per_thread = int(RATE_EVENTS_PER_S * seconds / RATE_THREADS)
    interval = 2 * RATE_THREADS / RATE_EVENTS_PER_S  # one query + one response per interval per thread
    samples: list[list[int]] = [[] for _ in range(RATE_THREADS)]
    start = threading.Barrier(RATE_THREADS)

    def worker(thread: int) -> None:
        events = sender_events(f"rate-{thread}-{uuid.uuid4().hex[:6]}", per_thread)
        log, clock, mine = logger.log, time.perf_counter_ns, samples[thread]
        start.wait()
        began = time.monotonic() + thread * interval / RATE_THREADS  # threads spread over the interval
        for index in range(0, len(events), 2):
            delay = began + (index // 2) * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for event in events[index : index + 2]:
                before = clock()
                log(event)
                mine.append(clock() - before)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(RATE_THREADS)]
    gc.collect()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logger.flush(timeout=60)
    return [sample for mine in samples for sample in mine], logger.stats()


def sender_section(rate_seconds: float) -> tuple[list[tuple[str, list[float], int]], list[tuple[str, dict[str, float], str]]]:
    server, endpoint = start_instant_sqs()
    queue_url = f"{endpoint}/123456789012/bench.fifo"
    cpu: dict[str, list[float]] = {"raw": [], "lean": [], "botocore": []}
    try:
        events = sender_events("cpu", SENDER_EVENTS)
        bodies = batch_bodies(queue_url, events)
        for round_ in range(SENDER_ROUNDS):  # in turn, so a noisy moment hits every row alike
            round_events = sender_events(f"cpu{round_}-{uuid.uuid4().hex[:6]}", SENDER_EVENTS)
            cpu["raw"].append(raw_post_cpu(endpoint, bodies))
            cpu["lean"].append(sender_cpu("lean", endpoint, queue_url, round_events)[0])
            cpu["botocore"].append(sender_cpu("botocore", endpoint, queue_url, round_events)[0])
        rates = []
        for label, make in (
            ("lean transport (default)", lambda: sender_logger("lean", endpoint, queue_url, max_queue_size=100_000)),
            ("botocore transport", lambda: sender_logger("botocore", endpoint, queue_url, max_queue_size=100_000)),
            ("in-process client, no HTTP (floor)", lambda: AnalyticsLogger(queue_url, client=InstantClient(), max_queue_size=100_000)),
        ):
            with make() as logger:
                samples, stats = log_at_rate(logger, rate_seconds)
            assert stats["failed"] == 0, stats
            rates.append((label, summary(samples), f"sent {stats['sent']:,} in {stats['requests']:,} requests"))
    finally:
        server.terminate()
        server.wait(10)
    rows = [
        ("raw `http.client` POST loop (same bodies, no signing)", cpu["raw"], SENDER_EVENTS),
        ("lean transport (default)", cpu["lean"], SENDER_EVENTS),
        ('botocore transport (`transport="botocore"`, as with `client=`)', cpu["botocore"], SENDER_EVENTS),
    ]
    return rows, rates


def round_ratios(rows: list[tuple[str, list[float], int]]) -> list[float]:
    """The lean transport's CPU over the raw loop's, round by round (the two rows of one round ran back to back)."""
    raw, lean = rows[0][1], rows[1][1]
    return [lean_cpu / raw_cpu for raw_cpu, lean_cpu in zip(raw, lean, strict=True)]


def sender_ratio_line(rows: list[tuple[str, list[float], int]]) -> str:
    ratios = sorted(round_ratios(rows))
    return (
        f"ratio: sender thread CPU per event, lean transport / raw http.client POST loop: {ratios[len(ratios) // 2]:.2f}x"
        f" (median of {len(ratios)} rounds; rounds {ratios[0]:.2f}x to {ratios[-1]:.2f}x; target <= 2.5x)"
    )


def print_sender_section(
    rows: list[tuple[str, list[float], int]], rates: list[tuple[str, dict[str, float], str]], rate_seconds: float
) -> None:
    def per_1000(seconds: float, events: int) -> float:
        return 1000 * 1000 * seconds / events  # ms per 1,000 events

    medians = {label: sorted(values)[len(values) // 2] for label, values, _ in rows}
    print(f"\n### Sender thread CPU per 1,000 events ({SENDER_ROUNDS} rounds of {SENDER_EVENTS:,} events, in turn)\n")
    print("| sender | median ms CPU / 1,000 events | all rounds | µs per request | x raw |")
    print("|---|---:|---:|---:|---:|")
    raw = medians[rows[0][0]]
    for label, values, events in rows:
        rounds = ", ".join(f"{per_1000(v, events):.1f}" for v in values)
        median = medians[label]
        print(f"| {label} | {per_1000(median, events):.1f} | {rounds} | {1e6 * median / (events / 10):.0f} | {median / raw:.2f}x |")
    lean, boto = medians[rows[1][0]], medians[rows[2][0]]
    print(f"\nlean / raw: {lean / raw:.2f}x (medians); botocore / raw: {boto / raw:.2f}x; botocore / lean: {boto / lean:.2f}x")
    print(f"lean / raw round by round: {', '.join(f'{ratio:.2f}x' for ratio in round_ratios(rows))}")
    print(f"\n### Callers' `log()` at {RATE_EVENTS_PER_S:,} events/s from {RATE_THREADS} threads, {rate_seconds:.0f} s, sender sending\n")
    print("| sender | calls | median | p99 | p99.9 | max | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, stats, note in rates:
        print(
            f"| {label} | {stats['n']:,} | {fmt_us(stats['median'])} | {fmt_us(stats['p99'])} | {fmt_us(stats['p999'])} | {fmt_us(stats['max'])} | {note} |"
        )


# -- the sender's profile --------------------------------------------------------------------------------

PROFILE_REQUESTS = 2_000  # per part and repeat; the best of PROFILE_REPEATS repeats is kept


class Recorded:
    """One recorded answer, handed out by ``recv`` as a socket would (for timing ``read_response`` without the wire)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.left = data

    def recv(self, limit: int) -> bytes:
        piece, self.left = self.left[:limit], self.left[limit:]
        return piece

    def again(self) -> Recorded:
        self.left = self.data
        return self


PROFILE_REPEATS = 5


class Recording:
    """A socket's ``recv``, keeping what it returned."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def recv(self, limit: int) -> bytes:
        piece = self.sock.recv(limit)
        self.data += piece
        return piece


def canned_sender_cpu(endpoint: str, queue_url: str, events: list[dict], answer: bytes) -> float:
    """The lean sender's CPU as :func:`sender_cpu` measures it, its socket replaced by a recorded answer (everything but the wire)."""
    from analytics_producer.transport import Response

    response = Response(200, "OK", {"x-amzn-requestid": "canned"}, answer, False)
    with sender_logger("lean", endpoint, queue_url, max_queue_size=len(events) + 100) as logger:
        logger._client._exchange = lambda body, head: response  # this logger's transport only
        for event in events[:200]:
            logger.log(event)
        assert logger.flush(timeout=30)
        clock = sender_clock(logger)
        started = time.clock_gettime(clock)
        for event in events:
            logger.log(event)
        assert logger.flush(timeout=120)
        cpu = time.clock_gettime(clock) - started
        stats = logger.stats()
    assert stats["failed"] == 0 and stats["sent"] == len(events) + 200, stats
    return cpu


def profile_section() -> tuple[list[tuple[str, float]], dict[str, float]]:
    """What one lean request of 10 events costs the sender thread, part by part (thread CPU clock, µs per request).

    Each step of the transport is timed on its own in a loop, against the instant endpoint; then, in
    rounds taken in turn, the raw loop, the lean sender, and the lean sender with its socket replaced by
    a recorded answer. The sender's own share (its loop, taking the batch, the response's ids, counters,
    locks, wake-ups, and each step's cache misses when it runs once per request) is that last one minus
    the steps; the wire's share in the thread (send, poll, recv, read_response, and the context switch
    while the endpoint answers) is the lean sender minus that last one.
    """
    import json

    from analytics_producer.transport import SQSTransport, read_response

    server, endpoint = start_instant_sqs()
    queue_url = f"{endpoint}/123456789012/bench.fifo"
    try:
        transport = SQSTransport(
            endpoint_url=endpoint, region_name=REGION, credentials=bench_session().get_credentials(), connect_timeout_s=1, read_timeout_s=3
        )
        events = sender_events("profile", 10)

        def entries() -> list:
            batch = [to_entry(event, None) for event in events]
            for index, entry in enumerate(batch):
                entry.entry_id = str(index)
            return batch

        batch = entries()
        body = transport.batch_body(queue_url, batch)
        head = transport._head(body)
        sock = transport._connect()
        sock.sendall(head + body)
        recording = Recording(sock)
        answer = read_response(recording)
        recorded = Recorded(recording.data)
        fresh = [entries() for _ in range(PROFILE_REQUESTS * PROFILE_REPEATS)]  # request_json() is built on first use
        parts: list[tuple[str, Callable[[int], object]]] = [
            ("events to entries: event JSON, FIFO ids, size and SQS-safety checks", lambda i: entries()),
            ("request body: each entry's JSON, written once, joined", lambda i: transport.batch_body(queue_url, fresh[i])),
            ("SigV4: credentials frozen, canonical request, 2 SHA-256, 1 HMAC, the head", lambda i: transport._head(body)),
            ("the answer's JSON parsed (json.loads)", lambda i: json.loads(answer.body)),
            (
                "HTTP exchange on the kept-alive socket, in a loop: send, poll, recv, read_response",
                lambda i: transport._exchange(body, head),
            ),
            ("read_response alone (the answer's bytes in memory)", lambda i: read_response(recorded.again())),
        ]
        steps = []
        for label, part in parts:
            best = float("inf")
            for repeat in range(PROFILE_REPEATS):
                offset = repeat * PROFILE_REQUESTS
                started = time.thread_time()
                for index in range(offset, offset + PROFILE_REQUESTS):
                    part(index)
                best = min(best, (time.thread_time() - started) / PROFILE_REQUESTS)
            steps.append((label, 1e6 * best))
        transport.close()
        cpu: dict[str, list[float]] = {"raw": [], "lean": [], "canned": []}
        requests = SENDER_EVENTS / 10
        bodies = batch_bodies(queue_url, sender_events("profile-raw", SENDER_EVENTS))
        for round_ in range(3):
            round_events = sender_events(f"profile{round_}-{uuid.uuid4().hex[:6]}", SENDER_EVENTS)
            cpu["raw"].append(1e6 * raw_post_cpu(endpoint, bodies) / requests)
            cpu["lean"].append(1e6 * sender_cpu("lean", endpoint, queue_url, round_events)[0] / requests)
            cpu["canned"].append(1e6 * canned_sender_cpu(endpoint, queue_url, round_events, answer.body) / requests)
    finally:
        server.terminate()
        server.wait(10)
    return steps, {name: sorted(values)[1] for name, values in cpu.items()}


def print_profile(steps: list[tuple[str, float]], threads: dict[str, float]) -> None:
    lean, canned, raw = threads["lean"], threads["canned"], threads["raw"]
    in_thread = steps[:4]  # the steps the canned sender still runs
    remains = [
        *in_thread,
        (
            "the sender's own loop (batch taken, response's ids, counters, locks, wake-ups) and cache misses",
            canned - sum(us for _, us in in_thread),
        ),
        ("the wire in the thread: send, poll, recv, read_response, the context switch while SQS answers", lean - canned),
    ]
    print(
        f"\n### Where the lean sender's CPU goes, per request of 10 events (µs of thread CPU; steps: best of {PROFILE_REPEATS} x {PROFILE_REQUESTS:,})\n"
    )
    print("| part | µs per request | share |")
    print("|---|---:|---:|")
    for label, us in remains:
        print(f"| {label} | {us:.1f} | {100 * us / lean:.0f}% |")
    print(f"| **the lean sender thread** (median of 3 rounds) | **{lean:.1f}** | 100% |")
    print(
        f"\nthe same sender, its socket replaced by a recorded answer: {canned:.1f} µs per request; the raw http.client loop: {raw:.1f} ({lean / raw:.2f}x)"
    )
    exchange, parse = steps[4][1], steps[5][1]
    print(f"in a tight loop: the HTTP exchange {exchange:.1f} µs, of which read_response {parse:.1f} µs (the rest: system calls)")


# -- main ------------------------------------------------------------------------------------------------


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        "?",
    )
    return f"{os.cpu_count()} CPUs (nproc {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}), {model}, Python {platform.python_version()}, boto3 {boto3.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100_000, help="log() calls per scenario")
    parser.add_argument("--seed-calls", type=int, default=200, help="calls of the seed pattern with SQS up")
    parser.add_argument(
        "--section",
        choices=("all", "caller", "sender", "profile"),
        default="all",
        help="caller: log() and the alternatives; sender: the sender thread's CPU; profile: where it goes",
    )
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="seconds of 2,000 events/s per sender row")
    parser.add_argument(
        "--fault-calls",
        type=int,
        default=None,
        help="awaited calls per SQS-down / SQS-slow row (default 10 down, 5 slow; each takes seconds)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("analytics_producer").setLevel(logging.ERROR)  # close() reports what it abandons, on purpose

    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    rows = None
    if args.section in ("all", "sender"):
        rows, rates = sender_section(args.rate_seconds)
        print_sender_section(rows, rates, args.rate_seconds)
    if args.section in ("all", "profile"):
        print_profile(*profile_section())
    if args.section in ("all", "caller"):
        caller_section(args)
    if rows is not None:
        print(f"\n{sender_ratio_line(rows)}")  # last, so that a script reads the ratio from the last line


def caller_section(args: argparse.Namespace) -> None:
    rows: list[tuple[str, dict[str, float], str]] = []
    down_calls, slow_calls = (args.fault_calls, args.fault_calls) if args.fault_calls else (10, 5)
    up_calls = min(1000, args.calls * 10)
    # moto in its own process: its request handling does not share this process's GIL.
    with moto_process(fast_sqs=True) as endpoint:
        queue_url = create_queue(endpoint)
        down = f"http://127.0.0.1:{closed_port()}"
        with DelayProxy(int(endpoint.rsplit(":", 1)[1]), delay_s=SLOW_DELAY_S) as proxy:
            slow = f"http://127.0.0.1:{proxy.port}"
            for name, at in (("up", endpoint), ("down", down), (f"slow ({SLOW_DELAY_S:.0f} s)", slow)):
                bench_logger(name, queue_url_at(at, queue_url), fast_client(at), args.calls, rows)
            posthog_rows(args.calls, rows)
            reused = fast_client(endpoint)
            reused.get_queue_attributes(QueueUrl=queue_url)  # the connection is open, as in a warm process
            rows.append(
                (
                    "awaited `send_message`, reused client, SQS up",
                    summary(time_calls(reused_send(reused, queue_url), up_calls)),
                    f"{up_calls:,} calls",
                )
            )
            reused_down = sqs(down)  # the defaults a handler would have: botocore retries and timeouts
            rows.append(
                (
                    "awaited `send_message`, reused client, SQS down",
                    summary(time_calls(reused_send(reused_down, queue_url_at(down, queue_url)), down_calls)),
                    f"{down_calls} calls, default retries",
                )
            )
            reused_slow = fast_client(slow)
            rows.append(
                (
                    "awaited `send_message`, reused client, SQS slow",
                    summary(time_calls(reused_send(reused_slow, queue_url_at(slow, queue_url)), slow_calls)),
                    f"{slow_calls} calls",
                )
            )
            rows.append(
                (
                    "seed: new client + awaited send, SQS up",
                    summary(time_calls(seed_send(endpoint, queue_url), args.seed_calls)),
                    f"{args.seed_calls} calls",
                )
            )
            rows.append(
                (
                    "seed: new client + awaited send, SQS down",
                    summary(time_calls(seed_send(down, queue_url_at(down, queue_url)), down_calls)),
                    f"{down_calls} calls, default retries",
                )
            )
            rows.append(
                (
                    "seed: new client + awaited send, SQS slow",
                    summary(time_calls(seed_send(slow, queue_url_at(slow, queue_url)), slow_calls)),
                    f"{slow_calls} calls",
                )
            )
        load = requests_per_1000(endpoint, args.calls)

    print("\n### Caller's cost per call\n")
    print("| caller's call | calls | median | p99 | p99.9 | max | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, stats, note in rows:
        print(
            f"| {label} | {stats['n']:,} | {fmt_us(stats['median'])} | {fmt_us(stats['p99'])} | {fmt_us(stats['p999'])} | {fmt_us(stats['max'])} | {note} |"
        )
    base = next(stats for label, stats, _ in rows if label == "`log(event)`, SQS up")
    print("\nmedian relative to `log(event)` with SQS up:")
    for label, stats, _ in rows:
        print(f"- {label}: {stats['median'] / base['median']:,.1f}x")
    print("\n| load | events sent | SendMessageBatch requests | requests per 1,000 events |")
    print("|---|---:|---:|---:|")
    for label, sent, requests, per_1000 in load:
        print(f"| {label} | {sent:,} | {requests:,} | {per_1000:.1f} |")


if __name__ == "__main__":
    main()
