"""Processor Lambda CPU time per event, in 10-record SQS FIFO batches, against the bare-parse floor, and its ceiling with DynamoDB latency.

CPU modes, measured in turn on the same kind of batches (one batch of each mode after the other, so a
busy shared machine slows them alike), each a ratio to ``floor`` in the same run:

* ``floor``: bare ``json.loads`` of each record's body: what no processor can go below;
* ``stub``: the store and the lake replaced by in-memory stand-ins: the handler's own cost
  (validation, grouping, Logger, EMF metrics, the lake's rows);
* ``botocore``: ``EventStore`` and ``LakeSink`` on botocore clients (what the processor used before
  ``transport.py``), every HTTP exchange answered by a canned answer from botocore's ``before-send``
  event (botocore's whole pipeline but urllib3);
* ``lean``: the processor's own clients (``transport.JsonClient``: signed JSON-protocol requests on
  kept-alive connections), the connection replaced by a socket that takes the request and answers
  canned bytes, made once per answer (the transport's reader reads them: the whole client but the kernel);
  one thread, every message group's write in flight at once, as in Lambda;
* ``moto`` (optional): the processor's clients against moto's in-process DynamoDB (moto's emulation included).

Each batch is 5 requests (a query and a response each): 5 ``UpdateItem`` and one ``PutRecordBatch``
of 5 rows. CPU time is ``time.process_time`` around one handler call (or the 10 parses), divided by
the records in the batch. Output (logs, EMF) goes to /dev/null. The ratio ``lean / floor`` is printed last.

    .venv/bin/python bench/processor_bench.py [--batches 500] [--moto-batches 0] [--write docs/benchmarks/processor.md] [--check]

Latency mode: every write of a stand-in store answers ``--dynamodb-ms`` after it started (default 5 ms,
DynamoDB's typical single-digit latency; reading its answer sleeps until then, so the writes in flight
together wait together, as on their connections); the wall time of a batch of 10 single-event groups and of a batch of
5 requests (query + response each) gives the time spent waiting for DynamoDB and the events per
second one concurrent execution sustains, hence the maximum concurrency a rate needs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "lambda_src"))  # as Lambda's /var/task: the package chat_processor
os.environ.update(
    TABLE_NAME="bench-events",
    EVENT_RETENTION_DAYS="30",
    POWERTOOLS_SERVICE_NAME="chat-analytics-processor",
    POWERTOOLS_METRICS_NAMESPACE="ChatAnalyticsBench",
    POWERTOOLS_LOG_LEVEL="WARNING",  # prod's processorLogLevel (stacks/settings.py)
    AWS_REGION="us-east-1",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_SESSION_TOKEN="bench-session-token",  # as in Lambda: a role's session credentials
)
# No endpoint override, and no proxy (with one, the handler would use botocore's clients: clients.json_client).
for name in (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_FIREHOSE",
    "AWS_PROFILE",
    "LAKE_STREAM_NAME",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
):
    os.environ.pop(name, None)

import boto3  # noqa: E402
from aws_lambda_powertools import Logger, Metrics  # noqa: E402
from botocore.config import Config  # noqa: E402
from chat_processor import clients, handler, lake, store  # noqa: E402

from testkit.events import BASE_TS, LambdaContext, query_body, response_body, sqs_event, sqs_record  # noqa: E402

BATCH = 10
STUB_TARGET_US = 200.0  # the handler's own cost
TARGET_RATIO = 40.0  # lean clients: at most 40x the bare parse
# Before and after the last change to the processor's CPU, measured in turns on the machine below (kept when rewritten).
HISTORY = """Before (2026-12-05, commit f6491ca: the message groups handed to a thread pool; its bench and this one in
turns, 3 runs each, `--batches 300 --latency-batches 50`, on the machine below): lean 49.5 to 52.2x the bare
parse (97.5 to 101.8 µs an event), 40.6 to 41.9x with its groups one after the other in one thread (no
hand-off, and no overlap of their DynamoDB waits: 15 to 23 µs a record was the hand-off). After (one thread
with every group's write in flight at once; the `UpdateItem`'s and the `PutRecordBatch`'s JSON bodies written
from text made once, the answer's head split at once, a lake row's columns read from a table made once): 33.7
to 34.2x (65.0 to 65.8 µs) in the same turns, and the run below. The stand-in server's canned answers are now
made once per body (its own work, not the processor's; measured apart, no difference beyond the noise)."""
TARGET_MISSED = 3  # exit status with --check when the lean clients miss TARGET_RATIO (a crash exits 1)
PROFILED = "shares, not times: cProfile inflates small calls; 2026-12-05, the machine below"
STREAM = "bench-requests"
# A stored item as the lake reads it (the stand-in store returns it, so the handler builds real rows).
ITEM = {
    "day": {"S": "2026-01-01"},
    "expiresAt": {"N": "1769817600"},
    "schemaVersion": {"N": "1"},
    "source": {"S": "bench"},
    "sessionId": {"S": "s-1"},
    "query": {"S": "Does the candidate know Python?"},
    "queryTimestamp": {"N": str(BASE_TS)},
    "queryIngestedAt": {"N": str(BASE_TS + 250)},
    "matchType": {"S": "none"},
    "matchScore": {"N": "50"},
    "reasoning": {"S": "matched 1 of 1 skills"},
    "responseTimestamp": {"N": str(BASE_TS + 12)},
    "responseIngestedAt": {"N": str(BASE_TS + 250)},
    "latencyMs": {"N": "1.5"},
    "responseLatencyMs": {"N": "12"},
}


class StubWrite:
    """A stand-in write under way: its answer is ready ``delay_s`` after it started; ``finish`` sleeps until then."""

    __slots__ = ("ready", "result")

    def __init__(self, ready: float, result: store.WriteResult) -> None:
        self.ready, self.result = ready, result

    def finish(self) -> store.WriteResult:
        wait = self.ready - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        return self.result


class StubStore:
    """Stands in for ``EventStore``: every event is a first delivery; each write's answer is ready ``delay_s`` after
    it started (DynamoDB's latency), as a write in flight on its own connection: the writes started together wait together."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.writes = 0

    def start(self, events: list[Any], now_ms: int, *, deadline: float | None = None) -> StubWrite:
        self.writes += 1
        request_id = events[0].requestId
        item = {**ITEM, "requestId": {"S": request_id}}
        result = store.WriteResult(request_id, frozenset(event.eventType for event in events), 1, item)
        return StubWrite(time.perf_counter() + self.delay_s if self.delay_s else 0.0, result)


class StubSink:
    """Stands in for ``LakeSink``: every row delivered."""

    def put(self, records: list[bytes], *, deadline: float | None = None) -> lake.PutResult:
        return lake.PutResult(len(records), {}, 1)


# -- canned answers, as DynamoDB and Firehose send them ---------------------------------------------


def _headers(body: bytes) -> dict[str, str]:
    return {
        "Server": "Server",
        "Date": "Thu, 01 Jan 2026 00:00:00 GMT",
        "Content-Type": "application/x-amz-json-1.0",
        "Content-Length": str(len(body)),
        "Connection": "keep-alive",
        "x-amzn-RequestId": "J8O0V2D6MB0S7C5C4KQ6GB1I4FVV4KQNSO5AEMVJF66Q9ASUAAJG",
        "x-amz-crc32": str(zlib.crc32(body) & 0xFFFFFFFF),
    }


def canned_body(request: bytes) -> bytes:
    """``{}`` for an ``UpdateItem`` (a new item: nothing old), every record taken for a ``PutRecordBatch``."""
    rows = request.count(b'{"Data":')
    if not rows:
        return b"{}"
    responses = ",".join('{"RecordId":"%048d"}' % n for n in range(rows))  # noqa: UP031
    return f'{{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{responses}]}}'.encode()


@functools.lru_cache(maxsize=16)
def canned_answer(body: bytes) -> bytes:
    """The whole HTTP answer for a canned body, made once: the stand-in server's own work is not the processor's."""
    head = "".join(f"{name}: {value}\r\n" for name, value in _headers(body).items())
    return f"HTTP/1.1 200 OK\r\n{head}\r\n".encode("latin-1") + body


class CannedSocket:
    """Stands in for a kept-alive connection: takes each request and answers the canned HTTP bytes,
    which the connection's buffered reader then reads, as from a socket."""

    def __init__(self) -> None:
        self._stream = io.BytesIO()

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self._stream)

    def settimeout(self, timeout: float) -> None:
        pass

    def sendall(self, request: bytes) -> None:
        self._stream.seek(0)
        self._stream.truncate()
        self._stream.write(canned_answer(canned_body(request)))
        self._stream.seek(0)

    def close(self) -> None:
        pass


class _CannedRaw:
    """The raw body botocore's ``AWSResponse`` reads."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


# botocore's overhead that a Config can switch off safely: parameter validation (the store builds its
# parameters itself), checksums and compression only where an operation requires them (neither does).
TUNED = Config(
    parameter_validation=False,
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
    disable_request_compression=True,
)


def botocore_clients(*, tuned: bool = False) -> tuple[store.EventStore, lake.LakeSink]:
    """The store and the sink on botocore clients, every request answered from ``before-send``."""
    from botocore.awsrequest import AWSResponse

    def respond(request: Any, **_: Any) -> AWSResponse:
        body = canned_body(request.body)
        return AWSResponse(request.url, 200, _headers(body), _CannedRaw(body))

    session = boto3.session.Session()
    store_config, lake_config = (
        (clients.DYNAMODB_CONFIG.merge(TUNED), clients.FIREHOSE_CONFIG.merge(TUNED))
        if tuned
        else (clients.DYNAMODB_CONFIG, clients.FIREHOSE_CONFIG)
    )
    dynamodb = session.client("dynamodb", config=store_config)
    firehose = session.client("firehose", config=lake_config)
    for client in (dynamodb, firehose):
        client.meta.events.register("before-send", respond)
    return store.EventStore(dynamodb, "bench-events", 30), lake.LakeSink(firehose, STREAM)


def lean_clients() -> tuple[store.EventStore, lake.LakeSink]:
    """The store and the sink as the handler builds them (``transport.JsonClient``), their connections canned."""
    session = boto3.session.Session()
    dynamodb = clients.json_client(session, "dynamodb", clients.DYNAMODB_CONFIG)
    firehose = clients.json_client(session, "firehose", clients.FIREHOSE_CONFIG)
    for client in (dynamodb, firehose):
        client.endpoint.open_socket = CannedSocket
        client.endpoint.is_dropped = lambda sock: False
    return store.EventStore(dynamodb, "bench-events", 30), lake.LakeSink(firehose, STREAM)


def single_event_batches(count: int, prefix: str) -> Iterator[dict]:
    """10 queries of 10 requests: 10 message groups, 10 writes."""
    for b in range(count):
        yield sqs_event(*(sqs_record(query_body(f"{prefix}-{b}-{r}", timestamp=BASE_TS + b * 1000 + r)) for r in range(BATCH)))


def batches(count: int, prefix: str) -> Iterator[dict]:
    for b in range(count):
        records = []
        for r in range(BATCH // 2):
            request_id = f"{prefix}-{b}-{r}"
            ts = BASE_TS + b * 1000 + r
            records.append(sqs_record(query_body(request_id, timestamp=ts, source="bench", sessionId=f"s-{b}")))
            records.append(
                sqs_record(
                    response_body(
                        request_id, timestamp=ts + 12, match_type=("full", "partial", "none")[r % 3], match_score=50, latencyMs=1.5
                    )
                )
            )
        yield sqs_event(*records)


# One Logger and one metric set for every processor the bench builds (Powertools shares both within a process).
# The Logger at prod's level (processorLogLevel WARNING: no line for a batch that went well; dev's INFO adds the
# "Batch processed" line of every batch, about 65 µs of Powertools' JSON formatter here, measured apart).
PROD_LOG_LEVEL = "WARNING"
LOGGER = Logger(service=os.environ["POWERTOOLS_SERVICE_NAME"], level=PROD_LOG_LEVEL)
METRICS = Metrics(namespace=os.environ["POWERTOOLS_METRICS_NAMESPACE"], service=os.environ["POWERTOOLS_SERVICE_NAME"])


def processor(store_: Any, sink: Any) -> handler.Processor:
    """A warm processor (its cold start counted already) on the given store and lake sink; no rejected rows' stream."""
    built = handler.Processor(store_, sink, None, logger=LOGGER, metrics=METRICS)
    built.cold_start = False
    return built


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Logs and EMF to /dev/null for the block; the Logger's own stream is put back after it (it keeps the
    stdout of its first configuration, so it is pointed at the sink and back, never left on a closed file)."""
    log_handler: Any = LOGGER.registered_handler  # a logging.StreamHandler
    previous = log_handler.stream
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        log_handler.setStream(sink)
        try:
            yield
        finally:
            log_handler.setStream(previous)


Mode = handler.Processor | None  # the mode's processor; None: the floor (no handler)
FLOOR = "floor"
TURN = 10  # batches a mode runs before the next mode's turn


def measure(modes: dict[str, Mode], count: int, warmup: int) -> dict[str, list[float]]:
    """Per-event CPU microseconds of each mode for ``count`` batches (after ``warmup`` unmeasured ones).

    The modes take turns, ``TURN`` batches each, so a machine whose load changes slows them alike, while
    each mode runs a few batches in a row as a Lambda execution environment runs only its own (the
    first batch of a turn finds the caches as another mode left them). Each mode has its own request ids."""
    events = {mode: list(batches(count + warmup, mode.replace(" ", "-"))) for mode in modes}  # request ids have no spaces
    per_event: dict[str, list[float]] = {mode: [] for mode in modes}
    with quiet():
        for turn in range(0, count + warmup, TURN):
            for mode, under_test in modes.items():
                for index in range(turn, min(turn + TURN, count + warmup)):
                    _measure_one(mode, under_test, events[mode][index], per_event[mode], measured=index >= warmup)
    return per_event


def _measure_one(mode: str, under_test: Mode, event: dict, per_event: list[float], *, measured: bool) -> None:
    """One batch of ``mode``: the bodies parsed (``floor``) or one handler invocation; its CPU per event appended."""
    if mode == FLOOR:
        bodies = [record["body"] for record in event["Records"]]
        started = time.process_time()
        for body in bodies:
            json.loads(body)
        elapsed = time.process_time() - started
    else:
        assert under_test is not None
        context: Any = LambdaContext()  # the attributes Powertools' LambdaContext has
        started = time.process_time()
        response = under_test.handle(event, context)
        elapsed = time.process_time() - started
        assert not response["batchItemFailures"], (mode, response)
    if measured:
        per_event.append(elapsed / BATCH * 1e6)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[int(0.9 * (len(ordered) - 1))],
        "p99": ordered[int(0.99 * (len(ordered) - 1))],
        "mean": statistics.fmean(ordered),
    }


def run_cpu(count: int, warmup: int) -> dict[str, dict[str, float]]:
    modes: dict[str, Mode] = {
        FLOOR: None,
        "stub": processor(StubStore(), StubSink()),
        "botocore": processor(*botocore_clients()),
        "botocore tuned": processor(*botocore_clients(tuned=True)),
        "lean": processor(*lean_clients()),
    }
    try:
        return {mode: summary(values) for mode, values in measure(modes, count, warmup).items()}
    finally:
        for under_test in modes.values():
            if under_test is not None:
                under_test.close()


def run_moto(count: int, warmup: int) -> dict[str, float]:
    """The processor's own store (from the environment, as in Lambda) against moto's in-process DynamoDB; no lake."""
    from moto import mock_aws

    from local.emulator.stack import template_path
    from testkit.tables import create_table

    template = json.loads(template_path("dev").read_text())  # `make bench` synthesizes first
    with mock_aws():
        create_table(boto3.client("dynamodb", region_name="us-east-1"), template, "bench-events")
        under_test = processor(store.store_from_environment(), None)
        try:
            return summary(measure({"moto": under_test}, count, warmup)["moto"])
        finally:
            under_test.close()


def run_latency(count: int, delay_ms: float) -> dict[str, dict[str, float]]:
    """Wall milliseconds per batch with every write taking ``delay_ms``, for both batch shapes."""
    results = {}
    for shape, make in (("10 single-event groups", single_event_batches), ("5 requests, query + response", batches)):
        stub = StubStore(delay_ms / 1000)
        under_test = processor(stub, StubSink())
        walls = []
        try:
            with quiet():
                for index, event in enumerate(make(count + 5, f"lat{len(shape)}")):
                    context: Any = LambdaContext()  # the attributes Powertools' LambdaContext has
                    started = time.perf_counter()
                    response = under_test.handle(event, context)
                    wall = (time.perf_counter() - started) * 1000
                    assert not response["batchItemFailures"], response
                    if index >= 5:
                        walls.append(wall)
        finally:
            under_test.close()
        summary_ms = summary(walls)
        summary_ms["writes_per_batch"] = stub.writes / (count + 5)
        results[shape] = summary_ms
    return results


def machine() -> str:
    def sh(command: list[str]) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "n/a"

    wanted = ("Architecture", "CPU(s)", "Vendor ID", "Model name", "CPU family", "Model:", "Thread(s) per core", "CPU max MHz", "L3")
    lscpu = "\n".join(line for line in sh(["lscpu"]).splitlines() if line.startswith(wanted))
    return (
        f"nproc: {sh(['nproc'])}\n{lscpu}\nPython {platform.python_version()} ({platform.python_implementation()}), {platform.platform()}"
    )


# Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
LAMBDA_MB_PER_VCPU = 1769
PROCESSOR_MB = 256
QUESTIONS_PER_S = 1000  # two events each


def at_256_mb(cpu_us: float, wait_ms: float) -> tuple[float, float, float]:
    """(the batch's CPU in ms at 256 MB, events/s per execution, maximum concurrency for 1,000 questions/s)
    with this machine's CPU per event stretched by 1,769 / 256 and the batch's DynamoDB wait added."""
    cpu_ms = cpu_us * BATCH / 1000 * LAMBDA_MB_PER_VCPU / PROCESSOR_MB
    per_execution = BATCH / ((cpu_ms + wait_ms) / 1000)
    return cpu_ms, per_execution, 2 * QUESTIONS_PER_S / per_execution


def latency_section(latency: dict[str, dict[str, float]], delay_ms: float, count: int, cpu: dict[str, dict[str, float]]) -> str:
    rows = []
    for shape, figures in latency.items():
        events_per_s = BATCH / (figures["median"] / 1000)
        rows.append(
            f"| {shape} | {figures['writes_per_batch']:.0f} | {figures['median']:.1f} | {figures['p99']:.1f} | {events_per_s:,.0f} |"
        )
    wait_ms = latency["5 requests, query + response"]["median"]
    per_execution = BATCH / (wait_ms / 1000)
    lines = []
    for mode in ("botocore", "lean"):
        cpu_us = cpu[mode]["median"]
        cpu_ms, per_execution_cpu, needed = at_256_mb(cpu_us, wait_ms)
        lines.append(
            f"| {mode} | {cpu_us:.0f} | {cpu_ms:.1f} | {cpu_ms + wait_ms:.1f} | {per_execution_cpu:,.0f} | {needed:.1f} | {10 / needed:.1f}x |"
        )
    return f"""## Ceiling with DynamoDB latency, and at 256 MB

Every write of a stand-in store answers {delay_ms:g} ms after it started; wall time of one invocation ({count} batches
each). Every message group's write is in flight at once, in one thread (the round's first read waits for its
answer, the others are ready by then), a request's query and response in one write.

| batch | writes | median ms | p99 ms | events/s per concurrent execution |
|---|---|---|---|---|
{chr(10).join(rows)}

Target: a batch of 10 single-event groups waits <= 15 ms for DynamoDB at 5 ms per call (sequential
writes waited ~59 ms). With this machine's whole CPU, {per_execution:,.0f} events/s per concurrent execution.
At {PROCESSOR_MB} MB Lambda gives the function {PROCESSOR_MB / LAMBDA_MB_PER_VCPU:.2f} vCPU, so a batch's CPU (the median
above, per event, times 10) takes {LAMBDA_MB_PER_VCPU / PROCESSOR_MB:.1f}x longer there, on top of the wait; 1,000 questions/s
is 2,000 events/s (both events of a question in one batch):

| clients | CPU µs/event here | CPU ms/batch at 256 MB | ms/batch with the wait | events/s per execution | max concurrency for 1,000 questions/s | prod's 10 leaves |
|---|---|---|---|---|---|---|
{chr(10).join(lines)}

Raise `processorMaxConcurrency`, or `processorMemoryMb` for more CPU, when it runs short.
"""


def ratio_line(cpu: dict[str, dict[str, float]]) -> str:
    floor = cpu[FLOOR]["median"]
    lean, before, tuned = (cpu[mode]["median"] / floor for mode in ("lean", "botocore", "botocore tuned"))
    verdict = "meets" if lean <= TARGET_RATIO else "misses"
    return (
        f"ratio: lean {lean:.1f}x the bare parse (target <= {TARGET_RATIO:g}x: {verdict} it); "
        f"botocore {before:.1f}x, botocore tuned {tuned:.1f}x; stub {cpu['stub']['median'] / floor:.1f}x"
    )


def _load() -> str:
    try:
        return " / ".join(f"{value:.1f}" for value in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:
        return "n/a"


def _saving(cpu: dict[str, dict[str, float]], mode: str) -> str:
    return f"{1 - cpu[mode]['median'] / cpu['botocore']['median']:.0%}"


def report(cpu: dict[str, dict[str, float]], count: int, command: str, moto: tuple[int, dict[str, float]] | None, latency: str = "") -> str:
    floor = cpu[FLOOR]["median"]
    rows = [
        f"| {mode} | {count} x {BATCH} | {s['median']:.1f} | {s['p90']:.1f} | {s['p99']:.1f} | {s['mean']:.1f} | {s['median'] / floor:.1f}x |"
        for mode, s in cpu.items()
    ]
    if moto is not None:
        s = moto[1]
        rows.append(f"| moto | {moto[0]} x {BATCH} | {s['median']:.0f} | {s['p90']:.0f} | {s['p99']:.0f} | {s['mean']:.0f} | (other run) |")
    stub_verdict = "meets" if cpu["stub"]["median"] <= STUB_TARGET_US else "misses"
    return f"""# Processor benchmark

CPU time per event (`time.process_time` around one handler invocation, divided by its 10 records),
10-record SQS FIFO batches of 5 requests (query + response each: 5 `UpdateItem`, one `PutRecordBatch`
of 5 lake rows), logs and EMF printed to /dev/null, the Logger at prod's level ({PROD_LOG_LEVEL}, `processorLogLevel`). The modes take turns, {TURN} batches each, so the
ratios to `floor` compare like with like on a shared machine (load average {_load()} when the run ended).

| mode | batches | median µs/event | p90 | p99 | mean | median / floor |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

- `floor`: bare `json.loads` of each record's body, nothing else.
- `stub`: the store and the lake replaced by in-memory stand-ins: the handler's own cost (pydantic
  validation, grouping by message group, Logger, EMF metrics, the lake's rows). Target ≤ {STUB_TARGET_US:.0f} µs median: **{stub_verdict}** it.
- `botocore` (before): `EventStore` and `LakeSink` on botocore clients (what the processor used until
  `transport.py`), each request answered by a canned answer from botocore's `before-send` event:
  botocore's parameter validation, serialization, event hooks, user agent, SigV4 and parsing, without urllib3.
- `botocore tuned`: the same with what a `Config` can switch off safely: parameter validation, request
  and response checksums and compression beyond what an operation requires (none of these two does).
- `lean` (after): the clients the handler builds (`transport.JsonClient`: the JSON protocol, SigV4
  with the day's signing key, kept-alive sockets read by its own HTTP/1.1 reader, botocore's retry
  handler and exceptions), each connection replaced by a socket that answers canned bytes (made once per
  answer: the stand-in server's work is not the processor's): everything but TLS and the kernel, which
  botocore pays alike. One thread, as in Lambda: each round starts every message group's next write, each
  on its own connection, then reads the answers. Target: ≤ {TARGET_RATIO:g}x `floor`.
- `moto`: the handler's own store against moto's in-process DynamoDB (no lake); moto's emulation runs in the
  same process, so this is an upper bound on the client's cost, not a prediction of Lambda's duration.

{ratio_line(cpu)}

{HISTORY}

The store and the lake now add {cpu["lean"]["median"] - cpu["stub"]["median"]:.0f} µs per event to the handler's own
{cpu["stub"]["median"]:.0f} µs (botocore added {cpu["botocore"]["median"] - cpu["stub"]["median"]:.0f} µs). The handler alone is
{cpu["stub"]["median"] / floor:.0f}x the bare parse: pydantic's validation with its Python validators, the
Logger's context (a correlation id only for a line logged; at prod's level no line for a batch that went
well), the EMF document, a lake row a request (SHA-256, JSON).

What limits the ratio now: no single part. The thread hand-offs are gone (one thread has every group's
write in flight at once). In a cProfile of the `lean` mode ({PROFILED}), the handler's own work
is about a third (pydantic's validation 10%, the lake's rows 10%, the EMF document 6%); each `UpdateItem`
is building the update (6%) and writing its JSON body (10%: each attribute's JSON text is made once, only
the values are escaped per write), SigV4 (6%), sending it and reading the answer (14%), parsing the answer,
botocore's retry check and its `after-call` event (7%); the lake's one `PutRecordBatch` a batch is 11%.
What is left is a few µs of Python in each part. Going further would mean whole request bodies cached per
shape of update (the values still escaped per write), or fewer of botocore's events per call (`before-send`
and `after-call` stay: moto, this benchmark and botocore's retry quota rely on them).

## Why a transport of its own

In this run botocore took {cpu["botocore"]["median"]:.0f} µs per event, {cpu["botocore tuned"]["median"]:.0f} µs with what its `Config`
can switch off ({_saving(cpu, "botocore tuned")} less), and the processor's own transport {cpu["lean"]["median"]:.0f} µs
({_saving(cpu, "lean")} less). What a `Config` cannot switch off is most of botocore's cost per call: a dozen
event hooks, its generic SigV4 (the signing key derived again for every request), the user agent, a uuid4,
its serializer and parser walking the service model, urllib3 (not even counted here); requests built
in advance would need botocore's private endpoint API. `transport.py` keeps what the processor needs
from botocore (its endpoint resolution, credential chain, error parser, exceptions and its `standard`
retry handler, which still decides every retry the deadline guard allows) and sends the two JSON
operations itself: the same bytes, the same signature (tests/processor/test_processor_transport.py).

{latency}
Command:

```
{command}
```

Machine:

```
{machine()}
```
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=500, help="measured batches per CPU mode")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured batches per mode first")
    parser.add_argument("--moto-batches", type=int, default=0, help="measured batches against moto (0 to skip)")
    parser.add_argument("--latency-batches", type=int, default=200, help="batches per shape in the latency mode")
    parser.add_argument("--dynamodb-ms", type=float, default=5.0, help="simulated DynamoDB latency per write")
    parser.add_argument("--write", type=Path, help="write the markdown report to this file")
    parser.add_argument("--check", action="store_true", help=f"exit {TARGET_MISSED} when the lean clients miss {TARGET_RATIO:g}x the floor")
    args = parser.parse_args(argv)
    if args.batches < 1 or args.latency_batches < 1 or args.warmup < 0 or args.moto_batches < 0:
        parser.error("--batches and --latency-batches must be at least 1, --warmup and --moto-batches at least 0")
    cpu = run_cpu(args.batches, args.warmup)
    moto = (args.moto_batches, run_moto(args.moto_batches, args.warmup)) if args.moto_batches else None
    latency = latency_section(run_latency(args.latency_batches, args.dynamodb_ms), args.dynamodb_ms, args.latency_batches, cpu)
    command = ".venv/bin/python bench/processor_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(cpu, args.batches, command.strip(), moto, latency)
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    print(ratio_line(cpu))  # last, for whoever reads the tail
    missed = cpu["lean"]["median"] / cpu[FLOOR]["median"] > TARGET_RATIO
    return TARGET_MISSED if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
