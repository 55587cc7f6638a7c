"""Cost benchmark on the local stack: what one chatbot question costs in billed AWS units, per producer.

The real template is deployed into moto and the real processor handler runs behind the event-source-mapping
emulator (``local.emulator.pipeline.LocalPipeline``). The same questions come from each producer in turn, at a steady
rate with bounded concurrency, each a query and then a response ~12 ms later, as the CV chatbot does:

* **python**: ``local.demo.chatbot.Chatbot`` (the demo chatbot: ``log_query``, a 12 ms answer, ``log_response``)
  with an ``AnalyticsLogger.from_env`` built from the stack's ``worker_env()``;
* **worker**: the real Worker (``edge/src/index.ts``) in workerd through Miniflare (``edge/bench/cost-driver.mjs``),
  ``GET /ask?q=...`` with a 12 ms answer, its bindings from ``worker_env()``, as ``edge/wrangler.jsonc`` deploys
  it: its batcher (a Durable Object, ``packages/worker-logger/src/batcher.ts``) puts many questions in one send;
* **worker-direct**: the same Worker without the batcher: each question sends its own batch.

Both producers reach moto through a counting TCP proxy on 127.0.0.1 (SQS requests by ``X-Amz-Target``,
request bytes). The processor runs in this process, so the rest is counted in-process: every ``UpdateItem``
through botocore events on the store's client (conditional ones that fail included), the emulator's SQS calls
(receives, deletes) on its client, and each invocation's wall time around the handler. Printed per producer:
SQS requests per question (the producer's sends, and the consumer's receives and deletes), ``UpdateItem``
requests per question, the share of questions whose two events reached the processor in one batch, Lambda
invocations and handler milliseconds per question, item and index-entry sizes (WRU), log bytes per invocation.

    .venv/bin/python bench/cost_bench.py [--rate table] [--seconds 60] [--pollers N] [--producers worker] [--json out.json]
    .venv/bin/python bench/cost_bench.py --rate 10 --questions 300   # one rate, a fixed number of questions
    .venv/bin/python bench/cost_bench.py --costs-from out.json   # the tables and the monthly bill again, from a saved run

``--rate`` is a comma-separated list of questions per second or of the rates the cost table prices: ``10M``
(10M questions a month on average, 3.8/s), ``100M`` (38/s), ``100M-peak`` (3x the average, 114/s); ``table`` is
the three. Each rate runs ``--seconds`` of arrivals (at least 200 questions, at most 2,000) unless
``--questions`` is given, on one local stack, one rate after the other. The monthly bill takes each volume's
per-question figures from the run at its rate (the lowest rate run for smaller volumes), and prints prod's
bill at 100M lever by lever (the settings ``tableDayIndex``, ``processorSystemLogLevel``, ``processorLogLevel``).

Needs ``make synth`` (cdk.out/ChatAnalytics-dev.template.json) and the npm packages in edge/.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botocore.exceptions import ClientError

from local.demo.answers import SAMPLE_QUESTIONS, CvSkillMatcher, WithLatency
from local.demo.chatbot import Chatbot
from local.emulator.pipeline import LocalPipeline
from local.emulator.stack import REPO, StackInfo, template_path
from stacks.settings import Settings
from testkit.faults import DelayProxy

ANSWER_MS = 12.0  # the seed's CV assistant answers in ~12 ms
EDGE = REPO / "edge"


class Meter:
    """Counts what the processor side does, per phase: invocations, UpdateItem calls, the consumer's SQS calls."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.pipeline = pipeline
        self.lock = threading.Lock()
        self._clear()
        processor = pipeline.processor
        # The store the processor uses (built from the function's environment at the pipeline's start, and kept).
        # Its client is the processor's lean transport (``transport.JsonClient``, or botocore's client where that
        # one cannot go): each ``update_item`` is wrapped here (the request id, the time, the outcome), and each
        # HTTP attempt counted by the ``before-send`` event both emit.
        store: Any = processor.store  # an EventStore: its client is wrapped
        store.client.update_item = self._counted_update(store.client.update_item)
        if hasattr(store.client, "start"):  # the lean transport: the store starts its writes there (``EventStore._start``)
            store.client.start = self._counted_start(store.client.start)
        store.client.meta.events.register("before-send.dynamodb.UpdateItem", self._http_attempt)
        # The lake's sink: each PutRecordBatch's records and their bytes (Firehose bills each record rounded up to 5 KB).
        sink: Any = processor.lake  # a LakeSink, or None
        if sink is not None:
            sink.client.put_record_batch = self._counted_put(sink.client.put_record_batch)
        esm = pipeline.esm
        esm.sqs.meta.events.register("after-call.sqs", self._after_sqs)
        self._inner = esm.handler
        esm.handler = self._timed_handler

    def _clear(self) -> None:
        self.invocations: list[dict[str, Any]] = []
        self.writes: collections.Counter[str] = collections.Counter()  # requestId -> UpdateItem requests
        self.failed_conditions: collections.Counter[str] = collections.Counter()
        self.other_errors = 0
        self.http_attempts = 0
        self.write_ms: list[float] = []
        self.sqs_calls: collections.Counter[str] = collections.Counter()
        self.lake_puts = 0
        self.lake_records: list[int] = []  # bytes of each Firehose record sent
        self.started_writes: list[tuple[str, Any]] = []  # (requestId, the transport's call), read at the phase's end

    def _record_write(self, request_id: str, error: BaseException | None) -> None:
        """One ``UpdateItem`` of ``request_id`` and its outcome (a failed condition, another error, or none). Under the lock."""
        self.writes[request_id] += 1
        code = (error.response.get("Error", {}).get("Code") or "?") if isinstance(error, ClientError) else ("?" if error else None)
        if code == "ConditionalCheckFailedException":
            self.failed_conditions[request_id] += 1
        elif code:
            self.other_errors += 1

    def _count_started_writes(self) -> None:
        """The writes the lean transport started this phase, each read by now: per request, and their outcomes."""
        for request_id, call in self.started_writes:
            self._record_write(request_id, call.error)
        self.started_writes = []

    def reset(self) -> dict[str, Any]:
        with self.lock:
            self._count_started_writes()
            snapshot = {
                "invocations": self.invocations,
                "writes": self.writes,
                "failed_conditions": self.failed_conditions,
                "other_errors": self.other_errors,
                "http_attempts": self.http_attempts,
                "write_ms": self.write_ms,
                "sqs_calls": self.sqs_calls,
                "lake_puts": self.lake_puts,
                "lake_records": self.lake_records,
            }
            self._clear()
        return snapshot

    def _counted_update(self, inner: Any) -> Any:
        def update_item(**arguments: Any) -> Any:
            request_id, started, failure = arguments["Key"]["requestId"]["S"], time.perf_counter(), None
            try:
                return inner(**arguments)
            except Exception as error:
                failure = error
                raise
            finally:
                with self.lock:
                    self._record_write(request_id, failure)
                    self.write_ms.append((time.perf_counter() - started) * 1000)

        return update_item

    def _counted_start(self, inner: Any) -> Any:
        def start(operation: str, body: bytes, context: dict[str, Any]) -> Any:
            call = inner(operation, body, context)
            if operation == "UpdateItem":
                with self.lock:
                    self.started_writes.append((json.loads(body)["Key"]["requestId"]["S"], call))
            return call

        return start

    def _counted_put(self, inner: Any) -> Any:
        def put_record_batch(**arguments: Any) -> Any:
            with self.lock:
                self.lake_puts += 1
                self.lake_records += [len(record["Data"]) for record in arguments["Records"]]
            return inner(**arguments)

        return put_record_batch

    def _http_attempt(self, **_: Any) -> None:
        with self.lock:
            self.http_attempts += 1

    def _after_sqs(self, model: Any, parsed: dict, **_: Any) -> None:
        name = model.name
        if name == "ReceiveMessage":
            name = "ReceiveMessage (messages)" if parsed.get("Messages") else "ReceiveMessage (empty)"
        with self.lock:
            self.sqs_calls[name] += 1

    def _timed_handler(self, event: dict, context: Any) -> Any:
        records = []
        for record in event.get("Records", []):
            try:
                body = json.loads(record["body"])
                records.append((body.get("requestId"), body.get("eventType"), record["attributes"].get("ApproximateReceiveCount", "1")))
            except (ValueError, AttributeError, KeyError):
                records.append((None, None, "1"))
        started = time.perf_counter()
        try:
            return self._inner(event, context)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            with self.lock:
                self.invocations.append({"ms": elapsed, "records": records})


# -- item sizes (DynamoDB's rules: names and values in UTF-8 bytes; a number ~1 byte per 2 significant digits + 1) --


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0").rstrip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def attribute_size(name: str, value: dict[str, Any]) -> int:
    (kind, raw), *_ = value.items()
    size = len(name.encode())
    if kind == "S":
        return size + len(raw.encode())
    if kind == "N":
        return size + _number_size(raw)
    return size + len(json.dumps(raw).encode())  # not used by this table


def item_sizes(item: dict[str, Any], projected: set[str]) -> tuple[int, int]:
    """(the item's size, its byDay index entry's size: the keys and the projected attributes)."""
    table = sum(attribute_size(name, value) for name, value in item.items())
    index = sum(attribute_size(name, value) for name, value in item.items() if name in projected)
    return table, index


def index_projection(template: Path) -> set[str]:
    """The byDay index's keys and projected attributes, read from the synthesized template."""
    body = json.loads(template.read_text())
    [table] = [r for r in body["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    if not table["Properties"].get("GlobalSecondaryIndexes"):
        return set()  # tableDayIndex false: no index entry is written
    [index] = table["Properties"]["GlobalSecondaryIndexes"]
    keys = {k["AttributeName"] for k in table["Properties"]["KeySchema"]} | {k["AttributeName"] for k in index["KeySchema"]}
    projection = index["Projection"]
    if projection["ProjectionType"] == "ALL":
        return {"*"}
    return keys | set(projection.get("NonKeyAttributes", []))


def scan_raw(info: StackInfo) -> list[dict[str, Any]]:
    dynamodb = info.client("dynamodb")
    items, kwargs = [], {"TableName": info.table_name}
    while True:
        page = dynamodb.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# -- the two producers --------------------------------------------------------------------------------


def questions_for(count: int) -> list[str]:
    return [SAMPLE_QUESTIONS[i % len(SAMPLE_QUESTIONS)] for i in range(count)]


def arrival_offsets(count: int, rate: float, arrivals: str, seed: int) -> list[float]:
    """When each question arrives, in seconds from the start: a Poisson process (independent users) or a metronome.

    Poisson by default: perfectly periodic arrivals phase-lock with the Python producer's 0.2 s flush timer
    (every question then meets the timer at the same point of its 12 ms, and a run splits far more or far fewer
    questions across two sends than real traffic would).
    """
    if arrivals == "steady":
        return [index / rate for index in range(count)]
    rng = random.Random(seed)
    offsets, at = [], 0.0
    for _ in range(count):
        offsets.append(at)
        at += rng.expovariate(rate)
    return offsets


def env_via(info: StackInfo, origin: str) -> dict[str, str]:
    env = info.worker_env()
    env["AWS_SQS_URL"] = f"{origin}/{env['AWS_SQS_URL'].split('/', 3)[3]}"
    return env


def run_python(info: StackInfo, origin: str, questions: list[str], offsets: list[float], concurrency: int) -> dict[str, Any]:
    from analytics_producer import AnalyticsLogger

    # The producer takes botocore's endpoint (AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL: the pipeline's, straight
    # to moto) before the queue URL's host: the counting proxy's, for as long as its client is built.
    saved = os.environ.get("AWS_ENDPOINT_URL_SQS")
    os.environ["AWS_ENDPOINT_URL_SQS"] = origin
    try:
        logger = AnalyticsLogger.from_env(env_via(info, origin))
    finally:
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL_SQS", None)
        else:
            os.environ["AWS_ENDPOINT_URL_SQS"] = saved
    bot = Chatbot(WithLatency(CvSkillMatcher(), ANSWER_MS / 1000), logger)
    latencies: list[float] = []

    def ask(question: str) -> str:
        started = time.perf_counter()
        answer = bot.ask(question)
        latencies.append((time.perf_counter() - started) * 1000)
        return answer["requestId"]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="question") as pool:
        futures = []
        for index, question in enumerate(questions):
            wait = started + offsets[index] - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            futures.append(pool.submit(ask, question))
        request_ids = [future.result() for future in futures]
    elapsed = time.perf_counter() - started
    logger.flush(timeout=60)
    stats = logger.stats()
    logger.close()
    return {
        "questions": len(questions),
        "request_ids": request_ids,
        "elapsed_s": round(elapsed, 2),
        "latency_median_ms": round(statistics.median(latencies), 3),
        "producer_stats": stats,
    }


def run_worker(
    info: StackInfo, origin: str, questions: list[str], offsets: list[float], concurrency: int, batcher: bool = True
) -> dict[str, Any]:
    bindings = {**env_via(info, origin), "ANALYTICS_LOCAL_ENDPOINT": origin}
    config = {
        "batcher": batcher,
        "bindings": bindings,
        "questions": questions,
        "offsetsMs": [round(offset * 1000, 3) for offset in offsets],
        "concurrency": concurrency,
        "answerMs": ANSWER_MS,
        "settleMs": 2000,
    }
    result = subprocess.run(
        ["node", "bench/cost-driver.mjs"],
        cwd=EDGE,
        env={**os.environ, "COST_DRIVER_CONFIG": json.dumps(config)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cost-driver.mjs failed ({result.returncode}): {result.stderr[-2000:]}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "questions": out["questions"],
        "request_ids": out["requestIds"],
        "elapsed_s": out["elapsed_s"],
        "latency_median_ms": out["latency"]["median_ms"],
        "statuses": out["statuses"],
        "batcher": out.get("batcher"),
    }


# -- one phase --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def log_kinds(text: bytes) -> dict[str, int]:
    """The handler's output by kind, in bytes (newline included): the Embedded Metric Format documents (``metrics``:
    they are the metrics, whatever the log level), INFO lines (``info``: the "Batch processed" line; Lambda's
    system records are not in this output), and WARNING or worse (``warnings``)."""
    kinds = {"metrics": 0, "info": 0, "debug": 0, "warnings": 0}
    for line in text.splitlines(keepends=True):
        try:
            record = json.loads(line)
        except ValueError:
            kinds["warnings"] += len(line)  # not the logger's: a traceback or a print
            continue
        if isinstance(record, dict) and "_aws" in record:
            kinds["metrics"] += len(line)
        elif isinstance(record, dict) and str(record.get("level", "")).upper() in ("INFO", "DEBUG"):
            kinds[str(record["level"]).lower()] += len(line)
        else:
            kinds["warnings"] += len(line)
    return kinds


def summarize(
    name: str, driven: dict[str, Any], proxy: dict[str, Any], meter: dict[str, Any], items: list[dict], projected: set[str], log_text: bytes
) -> dict[str, Any]:
    n = driven["questions"]
    ids = set(driven["request_ids"])
    invocations = meter["invocations"]
    # Where each question's events first reached the processor: together in one invocation, or apart.
    first_seen: dict[tuple[str, str], int] = {}
    for index, invocation in enumerate(invocations):
        for request_id, event_type, receive_count in invocation["records"]:
            if request_id in ids and receive_count == "1":
                first_seen.setdefault((request_id, event_type), index)
    together = sum(1 for r in ids if (r, "query") in first_seen and first_seen[(r, "query")] == first_seen.get((r, "response")))
    # A response handled in an earlier invocation than its query: it overtook it (two conditional writes fail then).
    overtaken = sum(1 for r in ids if first_seen.get((r, "response"), math.inf) < first_seen.get((r, "query"), math.inf))
    writes = meter["writes"]
    write_hist = collections.Counter(writes.get(r, 0) for r in ids)
    mine = [item for item in items if item["requestId"]["S"] in ids]
    sizes = [item_sizes(item, projected) for item in mine]
    complete = sum(1 for item in mine if "query" in item and "matchType" in item and "responseLatencyMs" in item)
    ms = [inv["ms"] for inv in invocations]
    records = [len(inv["records"]) for inv in invocations]
    send_requests = sum(proxy["requests"].values())
    stats = driven.get("producer_stats") or {}
    if stats.get("requests") and stats["requests"] != send_requests:  # the producer's own count must agree with the proxy's
        raise RuntimeError(f"{name}: the proxy counted {send_requests} send requests, the producer {stats['requests']}")
    consumer = meter["sqs_calls"]
    consumer_per_question = (
        consumer["ReceiveMessage (messages)"] + consumer["DeleteMessageBatch"] + consumer["ChangeMessageVisibilityBatch"]
    ) / n
    update_items = sum(writes[r] for r in ids)
    failed = sum(meter["failed_conditions"][r] for r in ids)
    table_max = max((s[0] for s in sizes), default=0)
    index_max = max((s[1] for s in sizes), default=0)
    # WRU: each UpdateItem is ceil(larger of the item before and after / 1 KB), at least 1 (a failed condition too);
    # each successful write changes projected attributes, so the index entry is written too (ceil(entry / 1 KB)).
    wru_table = sum(writes[r] * max(1, math.ceil(table_max / 1024)) for r in ids) / n
    wru_index = (update_items - failed) * max(1, math.ceil(index_max / 1024)) / n if projected else 0.0
    batcher = driven.get("batcher")
    if batcher and batcher["batches"] > send_requests:  # each batch is at least one request through the proxy
        raise RuntimeError(f"{name}: the batcher sent {batcher['batches']} batches, the proxy counted {send_requests} requests")
    return {
        "producer": name,
        "questions": n,
        # the batcher's Durable Object: calls (each a billed request) and the batches it sent, per question
        "batcher_calls_per_question": round(batcher["calls"] / n, 3) if batcher else 0.0,
        "batcher_batches_per_question": round(batcher["batches"] / n, 3) if batcher else 0.0,
        "answered": len(ids),
        "stored_complete": complete,
        "drive_s": driven["elapsed_s"],
        "answer_median_ms": driven["latency_median_ms"],
        "sqs_send_requests": proxy["requests"],
        "sqs_send_requests_per_question": round(send_requests / n, 3),
        "sqs_send_bytes_per_request": round(proxy["bytes_in"] / max(1, send_requests)),
        "producer_stats": driven.get("producer_stats"),
        "sqs_consumer_calls": dict(consumer),
        "sqs_consumer_requests_per_question": round(consumer_per_question, 3),
        "sqs_requests_per_question": round(send_requests / n + consumer_per_question, 3),
        "update_item_requests": update_items,
        "update_item_per_question": round(update_items / n, 3),
        # one lake row per successful write (a failed conditional write stores nothing and sends nothing)
        "lake_rows_per_question": round((update_items - failed) / n, 3),
        "failed_conditional_updates": failed,
        "other_update_errors": meter["other_errors"],
        "http_attempts": meter["http_attempts"],
        "writes_per_question_histogram": {str(k): v for k, v in sorted(write_hist.items())},
        "update_item_ms_median": round(statistics.median(meter["write_ms"]), 2) if meter["write_ms"] else None,
        "both_events_in_one_batch": together,
        "both_events_in_one_batch_share": round(together / n, 4),
        "response_before_query": overtaken,
        "invocations": len(invocations),
        "invocations_per_question": round(len(invocations) / n, 3),
        "records_per_invocation_mean": round(sum(records) / max(1, len(records)), 2),
        "records_per_invocation_histogram": {str(k): v for k, v in sorted(collections.Counter(records).items())},
        "handler_ms_total": round(sum(ms), 1),
        "handler_ms_per_question": round(sum(ms) / n, 2),
        "billed_ms_per_question": round(sum(math.ceil(x) for x in ms) / n, 2),
        "handler_ms_per_invocation_median": round(statistics.median(ms), 2) if ms else None,
        "handler_ms_per_invocation_p95": round(percentile(ms, 95), 2),
        "item_bytes_mean": round(statistics.mean(s[0] for s in sizes)) if sizes else None,
        "item_bytes_max": table_max,
        "index_entry_bytes_mean": round(statistics.mean(s[1] for s in sizes)) if sizes else None,
        "index_entry_bytes_max": index_max,
        "wru_per_question": {"table": round(wru_table, 3), "index": round(wru_index, 3), "total": round(wru_table + wru_index, 3)},
        "log_bytes_per_invocation": round(len(log_text) / max(1, len(invocations))),
        "log_bytes_per_invocation_by_kind": {k: round(v / max(1, len(invocations))) for k, v in log_kinds(log_text).items()},
        "achieved_rate": round(n / driven["elapsed_s"], 2) if driven["elapsed_s"] else None,
        "lake_rows_per_invocation": round((update_items - failed) / max(1, len(invocations)), 2),
        # what Firehose received: PutRecordBatch calls and records (one row each), and the records' bytes
        "lake_put_record_batch_per_question": round(meter["lake_puts"] / n, 3),
        "lake_records_per_question": round(len(meter["lake_records"]) / n, 3),
        "lake_record_bytes_mean": round(statistics.mean(meter["lake_records"])) if meter["lake_records"] else None,
        "lake_records_per_put_mean": round(len(meter["lake_records"]) / max(1, meter["lake_puts"]), 2),
    }


def phase(
    name: str, pipeline: LocalPipeline, proxy: DelayProxy, meter: Meter, log_path: Path, projected: set[str], run: Any
) -> dict[str, Any]:
    info, esm = pipeline.info, pipeline.esm
    proxy.reset()
    meter.reset()
    sys.stdout.flush()
    log_before = log_path.stat().st_size
    driven = run(info, proxy.origin)
    drive_ended = time.perf_counter()
    drained = esm.wait_until_drained(timeout=300, settle_s=1.5)
    # The producer's last sends and the queue's backlog after the last question was answered (the settle
    # included): how far behind the processor fell at this rate.
    drain_s = time.perf_counter() - drive_ended
    sys.stdout.flush()
    with log_path.open("rb") as log:
        log.seek(log_before)
        log_text = log.read()
    result = summarize(name, driven, proxy.reset(), meter.reset(), scan_raw(info), projected, log_text)
    result["drained"] = drained
    result["drain_s"] = round(drain_s, 1)
    return result


def machine() -> dict[str, Any]:
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | head -1"], capture_output=True, text=True).stdout.split(":")[-1].strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    import moto

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "node": node,
        "moto": moto.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }


TABLE_ROWS = [
    ("SQS send requests per question (producer)", "sqs_send_requests_per_question"),
    ("batcher calls / batches per question (the Worker's Durable Object)", None),
    ("SQS receive + delete requests per question (consumer)", "sqs_consumer_requests_per_question"),
    ("SQS requests per question (billed, idle polls excluded)", "sqs_requests_per_question"),
    ("UpdateItem requests per question (failed conditions included)", "update_item_per_question"),
    ("failed conditional UpdateItem", "failed_conditional_updates"),
    ("questions whose response reached the processor before its query", "response_before_query"),
    ("questions with both events in one batch", "both_events_in_one_batch_share"),
    ("Lambda invocations per question", "invocations_per_question"),
    ("records per invocation (mean)", "records_per_invocation_mean"),
    ("handler wall ms per question", "handler_ms_per_question"),
    ("billed ms per question (each invocation rounded up to 1 ms)", "billed_ms_per_question"),
    ("handler ms per invocation, median / p95", None),
    ("UpdateItem round trip to moto, median ms", "update_item_ms_median"),
    ("item bytes, mean / max", None),
    ("byDay index entry bytes, mean / max", None),
    ("WRU per question, table + index", None),
    ("log bytes per invocation (handler output)", "log_bytes_per_invocation"),
    ("of which metrics (EMF) / INFO lines / WARNING and worse", None),
    ("lake rows per question (one per successful write)", "lake_rows_per_question"),
    ("Firehose records per question (a put's rows packed)", "lake_records_per_question"),
    ("Firehose record bytes, mean", "lake_record_bytes_mean"),
    ("PutRecordBatch per question / records per call", None),
    ("questions stored complete", "stored_complete"),
    ("achieved rate, questions/s", "achieved_rate"),
    ("backlog drained, s after the last question", "drain_s"),
]


def format_table(results: list[dict[str, Any]]) -> str:
    def cell(result: dict[str, Any], label: str, key: str | None) -> str:
        if key is not None:
            return str(result.get(key, "-"))
        if label.startswith("handler ms per invocation"):
            return f"{result['handler_ms_per_invocation_median']} / {result['handler_ms_per_invocation_p95']}"
        if label.startswith("item bytes"):
            return f"{result['item_bytes_mean']} / {result['item_bytes_max']}"
        if label.startswith("byDay"):
            return f"{result['index_entry_bytes_mean']} / {result['index_entry_bytes_max']}"
        if label.startswith("of which"):
            kinds = result.get("log_bytes_per_invocation_by_kind")
            return f"{kinds['metrics']} / {kinds['info']} / {kinds['warnings']}" if kinds else "-"
        if label.startswith("batcher"):
            return f"{result.get('batcher_calls_per_question', '-')} / {result.get('batcher_batches_per_question', '-')}"
        if label.startswith("PutRecordBatch"):
            return f"{result.get('lake_put_record_batch_per_question', '-')} / {result.get('lake_records_per_put_mean', '-')}"
        wru = result["wru_per_question"]
        return f"{wru['table']} + {wru['index']} = {wru['total']}"

    header = "| per producer | " + " | ".join(r["producer"] for r in results) + " |"
    lines = [header, "|---|" + "---:|" * len(results)]
    for label, key in TABLE_ROWS:
        lines.append(f"| {label} | " + " | ".join(cell(r, label, key) for r in results) + " |")
    return "\n".join(lines)


# -- the monthly bill from the measured figures (docs/cost.md explains each price and assumption) --------------------

# us-east-1 list prices, USD (docs/cost.md: "Prices used", with what could not be verified).
PRICES = {
    "sqs_fifo_per_million": 0.50,  # per request of up to 64 KiB (every request here is a few KiB)
    "lambda_per_million": 0.20,
    "lambda_gb_s": 0.0000133334,  # arm64
    "dynamodb_wru_per_million": 0.625,  # on-demand, Standard table class
    "dynamodb_gb_month": 0.25,
    "pitr_gb_month": 0.20,
    "logs_ingest_gb": 0.50,
    "logs_store_gb_month": 0.03,
    "metric_month": 0.30,
    "alarm_month": 0.10,
    "dashboard_month": 3.00,
    "secret_month": 0.40,
    "kms_key_month": 1.00,
    # the event lake
    "firehose_ingest_gb": 0.029,  # Direct PUT, first 500 TB; each record billed in 5 KB increments
    "firehose_conversion_gb": 0.018,  # JSON to Parquet, on the same 5 KB-rounded volume
    "s3_gb_month": 0.023,  # S3 Standard, first 50 TB
    "s3_put_per_1000": 0.005,
    "athena_per_tb": 5.0,  # bytes scanned, at least 10 MB per query
    # Cloudflare Durable Objects (the Worker's batcher), Workers Paid: 1M requests and 400,000 GB-s a month included
    "durable_object_requests_per_million": 0.15,  # each RPC call is one request
    "durable_object_gb_s_per_million": 12.50,  # wall time while active, at 128 MB
}
FIREHOSE_RECORD_BYTES = 5 * 1024  # every record is far below 5 KB (a few rows of ~600 bytes): billed as 5 KB
# From bench/lake_bench.py (docs/benchmarks/lake.md), 10M requests in Firehose's layout: Parquet bytes per
# request on S3, and what a 90-day `report --engine athena` scans per request in its range.
LAKE_PARQUET_BYTES_PER_REQUEST = 130
ATHENA_SCAN_BYTES_PER_REQUEST = 18  # 17.95 measured as column chunks
# As Athena's (Trino's) Parquet reader fetches them (docs/benchmarks/lake.md): files up to 3 MiB are read whole,
# in larger ones the report's contiguous columns cost 19.3 bytes a request.
ATHENA_SMALL_FILE_BYTES = 3 * 1024**2
ATHENA_MERGED_BYTES_PER_REQUEST = 19.3
REPORTS_PER_MONTH = 30  # one 90-day Athena report a day
FIREHOSE_OBJECTS_PER_DAY = 96  # a 900 s buffer under steady traffic
MONTH_DAYS = 365.25 / 12
IDLE_RECEIVES_PER_MONTH = 0.65e6  # the mapping's long polls that return nothing (docs/cost.md, assumption 4)
PLATFORM_LOG_BYTES = 500  # Lambda's own platform.start and platform.report records per invocation (JSON format; estimated)
ITEM_OVERHEAD_BYTES = 100  # DynamoDB's per-item storage overhead, in the table and again in the index
LOG_COMPRESSION = 0.15
# The batcher's object is active (billed for its wall time) while it holds events: from a batch's first event to
# its send's answer, the window (100 ms) and ~50 ms; at most the whole month, one object at 128 MB.
BATCHER_ACTIVE_S_PER_BATCH = 0.15
DURABLE_OBJECT_GB = 0.128
# alarms: the stack's twelve with lakeCompaction (default true): the pipeline's ten and the compaction's two
# (tests/cdk/test_stack_resources.py holds this equal to the synthesized templates' count).
FIXED = {"metrics": 11, "alarms": 12, "dashboards": 1, "secrets": 1, "kms_keys": 1}
# retention_days: the table's items (tableRetentionDays); lake_days: the lake's rows (eventRetentionDays).
STAGES = {
    "dev": {"retention_days": 30, "lake_days": 30, "log_days": 14},
    "prod": {"retention_days": 90, "lake_days": 400, "log_days": 90},
}
GIB = 2**30


@dataclass(frozen=True)
class Levers:
    """The settings that change the bill (docs/cost.md, "What each lever saves"), as a stage sets them."""

    day_index: bool = True  # tableDayIndex: the byDay index's second write and its storage
    system_log_level: str = "INFO"  # processorSystemLogLevel: at WARN, no START/REPORT records
    processor_log_level: str = "INFO"  # processorLogLevel: at WARNING, no "Batch processed" line
    table_retention_days: int | None = None  # tableRetentionDays (None: the stage's)
    pack_rows: bool = True  # the processor packs a put's lake rows into one Firehose record (code, every stage)

    @classmethod
    def of_stage(cls, stage: str, **overrides: Any) -> Levers:
        settings = Settings.from_context({"stage": stage, **overrides})
        return cls(
            settings.table_day_index, settings.processor_system_log_level, settings.processor_log_level, settings.table_retention_days
        )


BEFORE_LEVERS = Levers(pack_rows=False)  # what every stage had before the levers: a record per row, the index, every log line


def log_bytes_per_invocation(figures: dict[str, Any], levers: Levers) -> float:
    """What one invocation sends to CloudWatch Logs at these levels: the handler's measured output by kind and
    Lambda's own records (estimated; INFO: START and REPORT)."""
    kinds = figures.get("log_bytes_per_invocation_by_kind")
    if kinds is None:  # a run saved before the output was split by kind: all of it, at every level
        handler = figures["log_bytes_per_invocation"]
    else:
        handler = kinds["metrics"] + kinds["warnings"]
        if levers.processor_log_level in ("DEBUG", "INFO"):
            handler += kinds["info"]
        if levers.processor_log_level == "DEBUG":
            handler += kinds["debug"]
    platform = PLATFORM_LOG_BYTES if levers.system_log_level in ("DEBUG", "INFO") else 0
    return handler + platform


def monthly_cost(
    figures: dict[str, Any], questions: float, stage: str, *, free_tier: bool = False, levers: Levers | None = None
) -> dict[str, float]:
    """One month's bill, USD by line, for ``questions`` questions at the per-question ``figures`` a run measured,
    with ``levers`` (default: the stage's settings). ``questions`` may be 0: a stack idle all month."""
    p, s = PRICES, STAGES[stage]
    levers = levers or Levers.of_stage(stage)
    sqs_requests = questions * figures["sqs_requests_per_question"] + IDLE_RECEIVES_PER_MONTH
    invocations = questions * figures["invocations_per_question"]
    gb_s = questions * figures["billed_ms_per_question"] / 1000 * 0.25  # 256 MB
    wru_per_question = figures["wru_per_question"]["table"] + (figures["wru_per_question"]["index"] if levers.day_index else 0.0)
    wru = questions * wru_per_question
    months_kept = (levers.table_retention_days or s["retention_days"]) / MONTH_DAYS
    table_bytes = questions * months_kept * (figures["item_bytes_mean"] + ITEM_OVERHEAD_BYTES)
    index_bytes = questions * months_kept * (figures["index_entry_bytes_mean"] + ITEM_OVERHEAD_BYTES) if levers.day_index else 0.0
    log_gb = invocations * log_bytes_per_invocation(figures, levers) / GIB
    log_stored_gb = log_gb * s["log_days"] / MONTH_DAYS * LOG_COMPRESSION
    storage_gb = (table_bytes + index_bytes) / GIB
    # Custom metrics are billed in the hours they are published: an idle stack publishes none.
    metrics = FIXED["metrics"] if questions else 0
    alarms, dashboards = FIXED["alarms"], FIXED["dashboards"]
    batcher_calls = questions * figures.get("batcher_calls_per_question", 0.0)
    batcher_gb_s = min(SECONDS_PER_MONTH, questions * figures.get("batcher_batches_per_question", 0.0) * BATCHER_ACTIVE_S_PER_BATCH)
    batcher_gb_s *= DURABLE_OBJECT_GB
    if free_tier:  # the always-free allowances, if nothing else in the account uses them
        sqs_requests = max(0.0, sqs_requests - 1e6)
        invocations = max(0.0, invocations - 1e6)
        gb_s = max(0.0, gb_s - 400_000)
        storage_gb = max(0.0, storage_gb - 25)
        log_free = 5.0  # 5 GB of logs: ingestion and archived storage together
        log_gb, log_stored_gb = max(0.0, log_gb - log_free), max(0.0, log_stored_gb - max(0.0, log_free - log_gb))
        metrics, alarms, dashboards = max(0, metrics - 10), max(0, alarms - 10), max(0, dashboards - 3)
        # Workers Paid's included Durable Object use (its $5 a month is the Worker's, not the pipeline's)
        batcher_calls, batcher_gb_s = max(0.0, batcher_calls - 1e6), max(0.0, batcher_gb_s - 400_000)
    bill = {
        "sqs": sqs_requests / 1e6 * p["sqs_fifo_per_million"],
        "lambda": invocations / 1e6 * p["lambda_per_million"] + gb_s * p["lambda_gb_s"],
        "dynamodb_writes": wru / 1e6 * p["dynamodb_wru_per_million"],
        "dynamodb_storage": storage_gb * p["dynamodb_gb_month"],
        "pitr": table_bytes / GIB * p["pitr_gb_month"],
        "logs": log_gb * p["logs_ingest_gb"] + log_stored_gb * p["logs_store_gb_month"],
        "metrics_alarms_dashboard": metrics * p["metric_month"] + alarms * p["alarm_month"] + dashboards * p["dashboard_month"],
        "secret_and_key": FIXED["secrets"] * p["secret_month"] + FIXED["kms_keys"] * p["kms_key_month"],
        "edge_batcher": batcher_calls / 1e6 * p["durable_object_requests_per_million"]
        + batcher_gb_s / 1e6 * p["durable_object_gb_s_per_million"],
    }
    lake_rows = questions * figures.get("lake_rows_per_question", figures["update_item_per_question"])
    # Firehose bills records, each rounded up to 5 KB: the records the run sent (rows packed per put), or one per
    # row for a run saved before they were counted. Every record measured is far below 5 KB.
    records_per_question = figures.get("lake_records_per_question") if levers.pack_rows else None
    firehose_records = questions * records_per_question if records_per_question is not None else lake_rows
    firehose_gb = firehose_records * FIREHOSE_RECORD_BYTES / GIB
    lake_stored_gb = questions * s["lake_days"] / MONTH_DAYS * LAKE_PARQUET_BYTES_PER_REQUEST / GIB
    requests_in_90_days = questions * 90 / MONTH_DAYS
    objects_per_day = min(FIREHOSE_OBJECTS_PER_DAY, lake_rows / MONTH_DAYS)  # a buffer with no rows writes nothing
    object_bytes = questions / MONTH_DAYS / FIREHOSE_OBJECTS_PER_DAY * LAKE_PARQUET_BYTES_PER_REQUEST
    per_request = LAKE_PARQUET_BYTES_PER_REQUEST if object_bytes <= ATHENA_SMALL_FILE_BYTES else ATHENA_MERGED_BYTES_PER_REQUEST
    reports = REPORTS_PER_MONTH if questions else 0
    athena_tb = reports * max(10e6, requests_in_90_days * per_request) / 1e12
    bill["lake"] = (
        firehose_gb * (p["firehose_ingest_gb"] + p["firehose_conversion_gb"])
        + lake_stored_gb * p["s3_gb_month"]
        + objects_per_day * MONTH_DAYS / 1000 * p["s3_put_per_1000"]
        + athena_tb * p["athena_per_tb"]
    )
    bill["total"] = sum(bill.values())
    bill["cents_per_1000"] = bill["total"] / questions * 1000 * 100 if questions else math.nan
    return bill


# -- which run's figures price which volume ----------------------------------------------------------------------

VOLUMES = (1e6, 10e6, 100e6)
SECONDS_PER_MONTH = MONTH_DAYS * 86_400
RATE_PRESETS = {"10M": 10e6 / SECONDS_PER_MONTH, "100M": 100e6 / SECONDS_PER_MONTH, "100M-peak": 3 * 100e6 / SECONDS_PER_MONTH}


def parse_rates(text: str) -> list[float]:
    """``--rate``: numbers and presets, comma-separated (``table``: 10M, 100M and 100M-peak)."""
    rates: list[float] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "table":
            rates += RATE_PRESETS.values()
        elif part in RATE_PRESETS:
            rates.append(RATE_PRESETS[part])
        else:
            try:
                rate = float(part)
            except ValueError:
                raise SystemExit(f"--rate: {part!r} is neither a number nor one of table, {', '.join(RATE_PRESETS)}") from None
            if not 0 < rate <= 1000:
                raise SystemExit(f"--rate: {part} is outside 0..1000 questions per second")
            rates.append(rate)
    if not rates:
        raise SystemExit("--rate: expected at least one rate")
    return [round(rate, 2) for rate in rates]


def run_for_volume(runs: list[dict[str, Any]], volume: float) -> dict[str, Any]:
    """The run whose rate is closest (by ratio) to ``volume``'s monthly average rate."""
    rate = volume / SECONDS_PER_MONTH
    return min(runs, key=lambda run: abs(math.log(run["rate"] / rate)))


def figures_of(run: dict[str, Any], producer: str) -> dict[str, Any] | None:
    return next((result for result in run["producers"] if result["producer"] == producer), None)


def producers_in(runs: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(result["producer"] for run in runs for result in run["producers"]))


def format_costs(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| producer, stage | 1M questions | 10M | 100M | cents per 1,000 at 100M |",
        "|---|---:|---:|---:|---:|",
    ]
    chosen = [run_for_volume(runs, volume) for volume in VOLUMES]
    for producer in producers_in(runs):
        for stage in STAGES:
            cells, cents = [], ""
            for volume, run in zip(VOLUMES, chosen, strict=True):
                figures = figures_of(run, producer)
                if figures is None:
                    cells.append("-")
                    continue
                bill = monthly_cost(figures, volume, stage)
                cells.append(f"${bill['total']:,.2f}")
                cents = f"{bill['cents_per_1000']:.3f}"
            lines.append(f"| {producer}, {stage} | {' | '.join(cells)} | {cents} |")
    rates = ", ".join(f"{volume / 1e6:g}M from the {run['rate']:g}/s run" for volume, run in zip(VOLUMES, chosen, strict=True))
    return "\n".join(lines) + f"\n\n(per-question figures: {rates})"


LEVER_STEPS = (
    ("before the levers: a Firehose record per row, the byDay index, every log line", BEFORE_LEVERS),
    ("a put's rows in one Firehose record (code)", Levers()),
    ("+ tableDayIndex false", Levers(day_index=False)),
    ("+ processorSystemLogLevel WARN", Levers(day_index=False, system_log_level="WARN")),
    ("+ processorLogLevel WARNING (prod's defaults)", Levers(day_index=False, system_log_level="WARN", processor_log_level="WARNING")),
    (
        "+ tableRetentionDays 30 (not a default)",
        Levers(day_index=False, system_log_level="WARN", processor_log_level="WARNING", table_retention_days=30),
    ),
)
BILL_LINES = (
    "sqs",
    "lambda",
    "dynamodb_writes",
    "dynamodb_storage",
    "pitr",
    "logs",
    "lake",
    "metrics_alarms_dashboard",
    "secret_and_key",
    "edge_batcher",
)


def format_levers(runs: list[dict[str, Any]], producer: str = "worker", volume: float = 100e6, receives: float | None = None) -> str:
    """Prod's bill at ``volume`` lever by lever, each line of the bill, from the run at the volume's rate
    (with ``receives`` per question instead of the run's, if given: ``with_receives``)."""
    run = run_for_volume(runs, volume)
    figures = figures_of(run, producer)
    if figures is None:
        return f"(no {producer} run: no lever table)"
    if receives is not None:
        figures = with_receives(figures, receives, figures_of(min(runs, key=lambda r: r["rate"]), producer))
    which = f"{run['rate']:g}/s run" + (f", {receives:g} receive per question" if receives is not None else "")
    header = "| prod, " + producer + f", {volume / 1e6:g}M ({which}) | " + " | ".join(BILL_LINES) + " | total | cents per 1,000 |"
    lines = [header, "|---|" + "---:|" * (len(BILL_LINES) + 2)]
    for label, levers in LEVER_STEPS:
        bill = monthly_cost(figures, volume, "prod", levers=levers)
        cells = " | ".join(f"{bill[key]:.2f}" for key in BILL_LINES)
        lines.append(f"| {label} | {cells} | **{bill['total']:.2f}** | **{bill['cents_per_1000']:.3f}** |")
    return "\n".join(lines)


# From this many receives per question on, an invocation carries about one question: its log output is taken
# from the lowest-rate run (whose invocations carry about one), not from the run being repriced.
ONE_QUESTION_RECEIVES = 0.75


def with_receives(figures: dict[str, Any], receives: float, logs_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """``figures`` with ``receives`` non-empty receives per question instead of the run's: each is one
    ``DeleteMessageBatch``, one invocation (with its log output: ``logs_from``'s, the lowest-rate run's, from
    ``ONE_QUESTION_RECEIVES`` on) and one ``PutRecordBatch`` (with the records per call measured); the handler's
    milliseconds per question and everything per question (sends, writes, rows) stay as measured."""
    changed = dict(figures)
    changed["sqs_requests_per_question"] = figures["sqs_send_requests_per_question"] + 2 * receives
    changed["invocations_per_question"] = receives
    if receives >= ONE_QUESTION_RECEIVES and logs_from is not None and "log_bytes_per_invocation_by_kind" in logs_from:
        changed["log_bytes_per_invocation_by_kind"] = logs_from["log_bytes_per_invocation_by_kind"]
    if figures.get("lake_put_record_batch_per_question"):  # one PutRecordBatch per invocation, its records as measured
        per_put = figures["lake_records_per_question"] / figures["lake_put_record_batch_per_question"]
        changed["lake_records_per_question"] = min(figures["lake_rows_per_question"], receives * per_put)
    return changed


def format_batching(runs: list[dict[str, Any]], producer: str = "worker", volume: float = 100e6) -> str:
    """Prod's bill at ``volume`` as a function of the receives per question: the local emulator runs one handler at
    a time, so its receives carry more questions at a given rate than Lambda's pollers may (docs/cost.md)."""
    run = run_for_volume(runs, volume)
    figures = figures_of(run, producer)
    if figures is None:
        return ""
    measured = figures["invocations_per_question"]
    lines = ["| receives (= invocations) per question | questions per receive | total | cents per 1,000 |", "|---:|---:|---:|---:|"]
    lowest = figures_of(min(runs, key=lambda r: r["rate"]), producer)
    for receives in sorted({measured, 0.5, 0.6, 0.75, 1.0}):
        # an invocation's log output as measured at the rate whose receives are nearest (one question each at the lowest)
        bill = monthly_cost(with_receives(figures, receives, lowest), volume, "prod")
        mark = " (measured)" if receives == measured else ""
        lines.append(f"| {receives:g}{mark} | {1 / receives:.2f} | {bill['total']:.2f} | {bill['cents_per_1000']:.3f} |")
    return "\n".join(lines)


def format_small(runs: list[dict[str, Any]], producer: str = "worker") -> str:
    """A stack idle, and at 10,000 questions a month, with and without the always-free allowances."""
    run = min(runs, key=lambda r: r["rate"])
    figures = figures_of(run, producer) or run["producers"][0]
    lines = ["| stage, volume | no free tier | with the free tier |", "|---|---:|---:|"]
    for stage in STAGES:
        for volume, label in ((0, "idle"), (10_000, "10,000 questions")):
            paid, free = (monthly_cost(figures, volume, stage, free_tier=tier) for tier in (False, True))
            lines.append(f"| {stage}, {label} | ${paid['total']:.2f} | ${free['total']:.2f} |")
    return "\n".join(lines) + f"\n\n(10,000 questions: the {run['rate']:g}/s run's figures, {figures['producer']})"


def questions_at(rate: float, args: argparse.Namespace) -> int:
    if args.questions:
        return int(args.questions)
    return max(MIN_QUESTIONS, min(MAX_QUESTIONS, round(rate * args.seconds)))


MIN_QUESTIONS, MAX_QUESTIONS = 200, 2000


def concurrency_at(rate: float, args: argparse.Namespace) -> int:
    """Questions in flight at most: ``--concurrency``, or enough for the rate's bursts (a question is ~15 ms in flight)."""
    return int(args.concurrency) if args.concurrency else max(4, math.ceil(rate / 10))


def set_pollers(pipeline: LocalPipeline, pollers: int | None) -> int:
    """The emulator's pollers (the template's maximum concurrency unless ``--pollers``); it runs one handler at a time."""
    esm = pipeline.esm
    if pollers and pollers != esm.max_concurrency:
        esm.stop()
        esm.max_concurrency = pollers
        esm.start()
    return esm.max_concurrency


def format_runs(runs: list[dict[str, Any]]) -> str:
    parts = []
    for run in runs:
        short = [
            r["producer"]
            for r in run["producers"]
            if (r.get("achieved_rate") or 0) < 0.9 * run["rate"] or r["stored_complete"] < r["questions"]
        ]
        warning = (
            f"\n\n**Not sustained** by {', '.join(short)}: this machine could not drive or store {run['rate']:g}/s (see the achieved rate and"
            " the questions stored); its figures do not price this rate."
            if short
            else ""
        )
        achieved = ", ".join(f"{r['producer']} {r['achieved_rate']}/s (backlog drained {r['drain_s']} s after)" for r in run["producers"])
        parts.append(
            f"### {run['rate']:g} questions/s: {run['questions']} questions, concurrency {run['concurrency']}, "
            f"{run['pollers']} pollers; achieved {achieved}{warning}\n\n" + format_table(run["producers"])
        )
    return "\n\n".join(parts)


def aws_receives(figures: dict[str, Any]) -> float:
    """Receives per question as Lambda's pollers would likely take them: one per send (at ~38 questions/s a poller
    is nearly always waiting and takes what one send put there, FIFO mappings having no batching window), never
    fewer than the run measured. One per question without the batcher (the Worker sends once a question)."""
    return max(figures["invocations_per_question"], figures["sqs_send_requests_per_question"])


def report(results: dict[str, Any], out: Any) -> None:
    runs = results["runs"]
    print(format_runs(runs), file=out)
    print("\nMonthly bill at these figures (USD, us-east-1 list prices, no free tier, each stage's settings; docs/cost.md):\n", file=out)
    print(format_costs(runs), file=out)
    print("\nA small stack (the lowest rate's figures; with the free tier: the always-free allowances only):\n", file=out)
    print(format_small(runs), file=out)
    run = run_for_volume(runs, 100e6)
    lowest_run = min(runs, key=lambda r: r["rate"])
    for producer in ("worker", "worker-direct"):
        figures = figures_of(run, producer)
        if figures is None:
            continue
        receives = aws_receives(figures)
        print(f"\nProd at 100M, {producer}, lever by lever:\n", file=out)
        print(format_levers(runs, producer), file=out)
        print(f"\nThe same at one receive per send ({receives:g} per question):\n", file=out)
        print(format_levers(runs, producer, receives=receives), file=out)
        print(f"\nProd at 100M, {producer}, with prod's settings, by receives per question (the rest as measured):\n", file=out)
        print(format_batching(runs, producer), file=out)
        lowest = figures_of(lowest_run, producer)
        bill = monthly_cost(figures, 100e6, "prod")
        bound = monthly_cost(with_receives(figures, receives, lowest), 100e6, "prod")
        print(
            f"\nprod, {producer}, 100M questions a month ({run['rate']:g}/s run): {bill['cents_per_1000']:.3f} cents per 1,000 questions"
            f" as measured ({figures['invocations_per_question']:g} receives per question), {bound['cents_per_1000']:.3f} at one receive"
            f" per send ({receives:g} per question) (target 0.3)",
            file=out,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="table", help="questions per second, comma-separated, or presets: table, 10M, 100M, 100M-peak")
    parser.add_argument("--seconds", type=float, default=60.0, help="arrivals per rate, in seconds (200 to 2,000 questions)")
    parser.add_argument("--questions", type=int, default=None, help="questions per producer and rate (instead of --seconds)")
    parser.add_argument("--concurrency", type=int, default=None, help="questions in flight at most (default: 4, or rate/10)")
    parser.add_argument("--pollers", type=int, default=None, help="the emulator's pollers (default: the template's max concurrency)")
    parser.add_argument("--arrivals", choices=("poisson", "steady"), default="poisson", help="Poisson arrivals at --rate, or a metronome")
    parser.add_argument("--seed", type=int, default=11, help="the Poisson arrivals' seed (both producers get the same arrival times)")
    parser.add_argument("--producers", default="worker", help="comma-separated: python, worker, worker-direct")
    parser.add_argument("--json", type=Path, help="also write the full results here")
    parser.add_argument(
        "--costs-from", type=Path, help="run nothing: print the tables and the monthly bill from a --json file of an earlier run"
    )
    args = parser.parse_args()
    out = sys.__stdout__
    if args.costs_from:
        saved = json.loads(args.costs_from.read_text())
        if "runs" not in saved:  # a run saved before --rate took a list: one rate
            saved["runs"] = [
                {
                    "rate": saved["settings"]["rate"],
                    "questions": saved["settings"]["questions"],
                    "concurrency": saved["settings"]["concurrency"],
                    "pollers": None,
                    "producers": saved["producers"],
                }
            ]
        report(saved, out)
        return 0
    rates = parse_rates(args.rate)
    producers = [name.strip() for name in args.producers.split(",") if name.strip()]
    unknown = sorted(set(producers) - {"python", "worker", "worker-direct"})
    if unknown:
        raise SystemExit(f"--producers: {', '.join(unknown)} is not python, worker or worker-direct")
    template = template_path()
    projected = index_projection(template)
    log_path = REPO / "cdk.out" / "bench-cost-processor.log"
    log_path.parent.mkdir(exist_ok=True)
    log_path.write_text("")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": vars(args) | {"json": str(args.json) if args.json else None, "costs_from": None, "rates": rates},
        "runs": [],
    }
    with LocalPipeline(processor_log=log_path) as pipeline:
        meter = Meter(pipeline)
        pollers = set_pollers(pipeline, args.pollers)
        proxy = DelayProxy(int(pipeline.info.endpoint_url.rsplit(":", 1)[1]), 0.0).start()
        try:
            for rate in rates:
                count, concurrency = questions_at(rate, args), concurrency_at(rate, args)
                questions = questions_for(count)
                offsets = arrival_offsets(count, rate, args.arrivals, args.seed)
                runners = {
                    "python": functools.partial(run_python, questions=questions, offsets=offsets, concurrency=concurrency),
                    "worker": functools.partial(run_worker, questions=questions, offsets=offsets, concurrency=concurrency),
                    "worker-direct": functools.partial(
                        run_worker, questions=questions, offsets=offsets, concurrency=concurrency, batcher=False
                    ),
                }
                run: dict[str, Any] = {"rate": rate, "questions": count, "concurrency": concurrency, "pollers": pollers, "producers": []}
                for name in producers:
                    run["producers"].append(phase(name, pipeline, proxy, meter, log_path, projected, runners[name]))
                    print(f"{rate:g}/s {name}: done", file=sys.__stderr__, flush=True)
                results["runs"].append(run)
        finally:
            proxy.stop()
    results["wall_s"] = round(time.perf_counter() - started, 1)
    for run in results["runs"]:
        for result in run["producers"]:
            if result.get("producer_stats") is None:
                del result["producer_stats"]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2), file=out)
    machine_line = results["machine"]
    print(
        f"\n{', '.join(f'{r:g}/s' for r in rates)}, {args.arrivals} arrivals, answer {ANSWER_MS:g} ms; run took {results['wall_s']} s on "
        f"{machine_line['cpu']} ({machine_line['nproc']} cores)\n",
        file=out,
    )
    report(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
