"""Cost benchmark on the local stack: what one chatbot question costs in billed AWS units, per producer.

The real template is deployed into moto and the real processor handler runs behind the event-source-mapping
emulator (``local.pipeline.LocalPipeline``). The same questions come from each producer in turn, at a steady
rate with bounded concurrency, each a query and then a response ~12 ms later, as the CV chatbot does:

* **python**: ``local.chatbot.Chatbot`` (the demo chatbot: ``log_query``, a 12 ms answer, ``log_response``)
  with an ``AnalyticsLogger.from_env`` built from the stack's ``worker_env()``;
* **worker**: the real Worker (``edge/src/index.ts``) in workerd through Miniflare (``edge/bench/cost-driver.mjs``),
  ``GET /ask?q=...`` with a 12 ms answer, its bindings from ``worker_env()``.

Both producers reach moto through a counting TCP proxy on 127.0.0.1 (SQS requests by ``X-Amz-Target``,
request bytes). The processor runs in this process, so the rest is counted in-process: every ``UpdateItem``
through botocore events on the store's client (conditional ones that fail included), the emulator's SQS calls
(receives, deletes) on its client, and each invocation's wall time around the handler. Printed per producer:
SQS requests per question (the producer's sends, and the consumer's receives and deletes), ``UpdateItem``
requests per question, the share of questions whose two events reached the processor in one batch, Lambda
invocations and handler milliseconds per question, item and index-entry sizes (WRU), log bytes per invocation.

    .venv/bin/python bench/cost_bench.py [--questions 300] [--rate 10] [--concurrency 4] [--arrivals poisson] [--json out.json]
    .venv/bin/python bench/cost_bench.py --costs-from out.json   # the tables and the monthly bill again, from a saved run

Needs ``make synth`` (cdk.out/ChatAnalytics-dev.template.json) and the npm packages in edge/.
"""

from __future__ import annotations

import argparse
import collections
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local.answers import SAMPLE_QUESTIONS, CvSkillMatcher, WithLatency
from local.chatbot import Chatbot
from local.faults import DelayProxy
from local.pipeline import LocalPipeline
from local.stack import REPO, StackInfo, template_path

ANSWER_MS = 12.0  # the seed's CV assistant answers in ~12 ms
EDGE = REPO / "edge"


class Meter:
    """Counts what the processor side does, per phase: invocations, UpdateItem calls, the consumer's SQS calls."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.pipeline = pipeline
        self.lock = threading.Lock()
        self._clear()
        handler_module = sys.modules["chat_processor.handler"]
        # The store the handler will use: built now from the environment the pipeline set, and reused while it stays.
        store = handler_module.stores.get()
        events = store.client.meta.events
        events.register("before-parameter-build.dynamodb.UpdateItem", self._before_update)
        events.register("before-send.dynamodb.UpdateItem", self._http_attempt)
        events.register("after-call.dynamodb.UpdateItem", self._after_update)
        pipeline.esm.sqs.meta.events.register("after-call.sqs", self._after_sqs)
        self._inner = pipeline.esm.handler
        pipeline.esm.handler = self._timed_handler

    def _clear(self) -> None:
        self.invocations: list[dict[str, Any]] = []
        self.writes: collections.Counter[str] = collections.Counter()  # requestId -> UpdateItem requests
        self.failed_conditions: collections.Counter[str] = collections.Counter()
        self.other_errors = 0
        self.http_attempts = 0
        self.write_ms: list[float] = []
        self.sqs_calls: collections.Counter[str] = collections.Counter()

    def reset(self) -> dict[str, Any]:
        with self.lock:
            snapshot = {
                "invocations": self.invocations,
                "writes": self.writes,
                "failed_conditions": self.failed_conditions,
                "other_errors": self.other_errors,
                "http_attempts": self.http_attempts,
                "write_ms": self.write_ms,
                "sqs_calls": self.sqs_calls,
            }
            self._clear()
        return snapshot

    def _before_update(self, params: dict, context: dict, **_: Any) -> None:
        context["cost_bench"] = (params["Key"]["requestId"]["S"], time.perf_counter())

    def _http_attempt(self, **_: Any) -> None:
        with self.lock:
            self.http_attempts += 1

    def _after_update(self, parsed: dict, context: dict, **_: Any) -> None:
        request_id, started = context.get("cost_bench", ("?", time.perf_counter()))
        code = parsed.get("Error", {}).get("Code")
        with self.lock:
            self.writes[request_id] += 1
            self.write_ms.append((time.perf_counter() - started) * 1000)
            if code == "ConditionalCheckFailedException":
                self.failed_conditions[request_id] += 1
            elif code:
                self.other_errors += 1

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

    logger = AnalyticsLogger.from_env(env_via(info, origin))
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


def run_worker(info: StackInfo, origin: str, questions: list[str], offsets: list[float], concurrency: int) -> dict[str, Any]:
    bindings = {**env_via(info, origin), "ANALYTICS_LOCAL_ENDPOINT": origin}
    config = {
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
    }


# -- one phase --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def summarize(
    name: str, driven: dict[str, Any], proxy: dict[str, Any], meter: dict[str, Any], items: list[dict], projected: set[str], log_bytes: int
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
    wru_index = (update_items - failed) * max(1, math.ceil(index_max / 1024)) / n
    return {
        "producer": name,
        "questions": n,
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
        "log_bytes_per_invocation": round(log_bytes / max(1, len(invocations))),
    }


def phase(
    name: str, pipeline: LocalPipeline, proxy: DelayProxy, meter: Meter, log_path: Path, projected: set[str], run: Any
) -> dict[str, Any]:
    info = pipeline.info
    proxy.reset()
    meter.reset()
    sys.stdout.flush()
    log_before = log_path.stat().st_size
    driven = run(info, proxy.origin)
    drained = pipeline.esm.wait_until_drained(timeout=180, settle_s=1.5)
    sys.stdout.flush()
    result = summarize(name, driven, proxy.reset(), meter.reset(), scan_raw(info), projected, log_path.stat().st_size - log_before)
    result["drained"] = drained
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
    ("questions stored complete", "stored_complete"),
]


def format_table(results: list[dict[str, Any]]) -> str:
    def cell(result: dict[str, Any], label: str, key: str | None) -> str:
        if key is not None:
            return str(result[key])
        if label.startswith("handler ms per invocation"):
            return f"{result['handler_ms_per_invocation_median']} / {result['handler_ms_per_invocation_p95']}"
        if label.startswith("item bytes"):
            return f"{result['item_bytes_mean']} / {result['item_bytes_max']}"
        if label.startswith("byDay"):
            return f"{result['index_entry_bytes_mean']} / {result['index_entry_bytes_max']}"
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
}
FIREHOSE_RECORD_BYTES = 5 * 1024  # every row is far below 5 KB: billed as 5 KB
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
FIXED = {"metrics": 11, "alarms": 10, "dashboards": 1, "secrets": 1, "kms_keys": 1}
# retention_days: the table's items (tableRetentionDays); lake_days: the lake's rows (eventRetentionDays).
STAGES = {
    "dev": {"retention_days": 30, "lake_days": 30, "log_days": 14},
    "prod": {"retention_days": 90, "lake_days": 400, "log_days": 90},
}
GIB = 2**30


def monthly_cost(figures: dict[str, Any], questions: float, stage: str, *, free_tier: bool = False) -> dict[str, float]:
    """One month's bill, USD by line, for ``questions`` questions at the per-question ``figures`` a run measured."""
    p, s = PRICES, STAGES[stage]
    sqs_requests = questions * figures["sqs_requests_per_question"] + IDLE_RECEIVES_PER_MONTH
    invocations = questions * figures["invocations_per_question"]
    gb_s = questions * figures["billed_ms_per_question"] / 1000 * 0.25  # 256 MB
    wru = questions * figures["wru_per_question"]["total"]
    months_kept = s["retention_days"] / MONTH_DAYS
    table_bytes = questions * months_kept * (figures["item_bytes_mean"] + ITEM_OVERHEAD_BYTES)
    index_bytes = questions * months_kept * (figures["index_entry_bytes_mean"] + ITEM_OVERHEAD_BYTES)
    log_gb = invocations * (figures["log_bytes_per_invocation"] + PLATFORM_LOG_BYTES) / GIB
    log_stored_gb = log_gb * s["log_days"] / MONTH_DAYS * LOG_COMPRESSION
    storage_gb = (table_bytes + index_bytes) / GIB
    metrics, alarms, dashboards = FIXED["metrics"], FIXED["alarms"], FIXED["dashboards"]
    if free_tier:  # the always-free allowances, if nothing else in the account uses them
        sqs_requests = max(0.0, sqs_requests - 1e6)
        invocations = max(0.0, invocations - 1e6)
        gb_s = max(0.0, gb_s - 400_000)
        storage_gb = max(0.0, storage_gb - 25)
        log_free = 5.0  # 5 GB of logs: ingestion and archived storage together
        log_gb, log_stored_gb = max(0.0, log_gb - log_free), max(0.0, log_stored_gb - max(0.0, log_free - log_gb))
        metrics, alarms, dashboards = max(0, metrics - 10), max(0, alarms - 10), max(0, dashboards - 3)
    bill = {
        "sqs": sqs_requests / 1e6 * p["sqs_fifo_per_million"],
        "lambda": invocations / 1e6 * p["lambda_per_million"] + gb_s * p["lambda_gb_s"],
        "dynamodb_writes": wru / 1e6 * p["dynamodb_wru_per_million"],
        "dynamodb_storage": storage_gb * p["dynamodb_gb_month"],
        "pitr": table_bytes / GIB * p["pitr_gb_month"],
        "logs": log_gb * p["logs_ingest_gb"] + log_stored_gb * p["logs_store_gb_month"],
        "metrics_alarms_dashboard": metrics * p["metric_month"] + alarms * p["alarm_month"] + dashboards * p["dashboard_month"],
        "secret_and_key": FIXED["secrets"] * p["secret_month"] + FIXED["kms_keys"] * p["kms_key_month"],
    }
    lake_rows = questions * figures.get("lake_rows_per_question", figures["update_item_per_question"])
    firehose_gb = lake_rows * FIREHOSE_RECORD_BYTES / GIB
    lake_stored_gb = questions * s["lake_days"] / MONTH_DAYS * LAKE_PARQUET_BYTES_PER_REQUEST / GIB
    requests_in_90_days = questions * 90 / MONTH_DAYS
    object_bytes = questions / MONTH_DAYS / FIREHOSE_OBJECTS_PER_DAY * LAKE_PARQUET_BYTES_PER_REQUEST
    per_request = LAKE_PARQUET_BYTES_PER_REQUEST if object_bytes <= ATHENA_SMALL_FILE_BYTES else ATHENA_MERGED_BYTES_PER_REQUEST
    athena_tb = REPORTS_PER_MONTH * max(10e6, requests_in_90_days * per_request) / 1e12
    bill["lake"] = (
        firehose_gb * (p["firehose_ingest_gb"] + p["firehose_conversion_gb"])
        + lake_stored_gb * p["s3_gb_month"]
        + FIREHOSE_OBJECTS_PER_DAY * MONTH_DAYS / 1000 * p["s3_put_per_1000"]
        + athena_tb * p["athena_per_tb"]
    )
    bill["total"] = sum(bill.values())
    bill["cents_per_1000"] = bill["total"] / questions * 1000 * 100
    return bill


def format_costs(results: list[dict[str, Any]]) -> str:
    volumes = (1e6, 10e6, 100e6)
    lines = [
        "| producer, stage | 1M questions | 10M | 100M | cents per 1,000 at 100M |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        for stage in STAGES:
            bills = [monthly_cost(result, v, stage) for v in volumes]
            totals = " | ".join(f"${b['total']:,.2f}" for b in bills)
            lines.append(f"| {result['producer']}, {stage} | {totals} | {bills[-1]['cents_per_1000']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=300, help="questions per producer")
    parser.add_argument("--rate", type=float, default=10.0, help="questions per second")
    parser.add_argument("--concurrency", type=int, default=4, help="questions in flight at most")
    parser.add_argument("--arrivals", choices=("poisson", "steady"), default="poisson", help="Poisson arrivals at --rate, or a metronome")
    parser.add_argument("--seed", type=int, default=11, help="the Poisson arrivals' seed (both producers get the same arrival times)")
    parser.add_argument("--producers", default="python,worker", help="comma-separated: python, worker")
    parser.add_argument("--json", type=Path, help="also write the full results here")
    parser.add_argument("--costs-from", type=Path, help="run nothing: print the monthly bill from a --json file of an earlier run")
    args = parser.parse_args()
    if args.costs_from:
        saved = json.loads(args.costs_from.read_text())
        print(format_table(saved["producers"]) + "\n\n" + format_costs(saved["producers"]))
        return 0
    template = template_path()
    projected = index_projection(template)
    questions = questions_for(args.questions)
    offsets = arrival_offsets(args.questions, args.rate, args.arrivals, args.seed)
    runners = {
        "python": lambda info, origin: run_python(info, origin, questions, offsets, args.concurrency),
        "worker": lambda info, origin: run_worker(info, origin, questions, offsets, args.concurrency),
    }
    log_path = REPO / "cdk.out" / "bench-cost-processor.log"
    log_path.parent.mkdir(exist_ok=True)
    log_path.write_text("")
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
        "producers": [],
    }
    with LocalPipeline(processor_log=log_path) as pipeline:
        meter = Meter(pipeline)
        proxy = DelayProxy(int(pipeline.info.endpoint_url.rsplit(":", 1)[1]), 0.0).start()
        try:
            for name in args.producers.split(","):
                results["producers"].append(phase(name, pipeline, proxy, meter, log_path, projected, runners[name]))
                print(f"{name}: done", file=sys.__stderr__, flush=True)
        finally:
            proxy.stop()
    results["wall_s"] = round(time.perf_counter() - started, 1)
    for result in results["producers"]:
        if result.get("producer_stats") is None:
            del result["producer_stats"]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    out = sys.__stdout__
    print(json.dumps(results, indent=2), file=out)
    print(
        f"\n{args.questions} questions per producer, {args.arrivals} arrivals at {args.rate:g}/s, concurrency {args.concurrency}, "
        f"answer {ANSWER_MS:g} ms; "
        f"run took {results['wall_s']} s\n",
        file=out,
    )
    print(format_table(results["producers"]), file=out)
    print("\nMonthly bill at these figures (USD, us-east-1 list prices, no free tier; docs/cost.md):\n", file=out)
    print(format_costs(results["producers"]), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
