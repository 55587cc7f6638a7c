"""``make demo``: the whole pipeline on this machine, a run of sample questions, and a printout.

1. deploys ``cdk.out/ChatAnalytics-dev.template.json`` into an in-process moto server (IAM enforced),
2. starts the event-source-mapping emulator with the real processor handler,
3. starts the chatbot twice (analytics on, with the producer key the template created; and off),
4. sends the sample questions to both, interleaved, from a separate process, plus one malformed
   event straight to the queue to show the dead-letter path,
5. waits until the queue is drained and prints latencies, events sent and stored, requests by
   match type, the top unmatched questions and the DLQ depth,
6. reads the same days from the event lake (the rows the processor sent through Firehose, copied from
   the local bucket and queried by DuckDB with the SQL Athena runs in AWS) and says whether that report
   equals the table's. Exits 0 when everything agrees and stops what it started.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from chat_analytics_ops import lake
from chat_analytics_ops.report_model import Report
from chat_analytics_ops.table_engine import Item, build_report, item_from_dynamodb
from local.demo.answers import CvSkillMatcher
from local.emulator.pipeline import LocalPipeline
from local.emulator.stack import REPO, StackInfo, template_path
from schema import contract

say = print  # rebound in main() to the real console


def start_chatbot(
    env: dict[str, str] | None,
    *,
    analytics: bool,
    answer_ms: float = 0.0,
    port: int = 0,
    spawned: Callable[[subprocess.Popen], object] | None = None,
) -> tuple[subprocess.Popen, str]:
    """The chatbot in a process of its own, in a session of its own (a terminal's Ctrl-C reaches the caller,
    which stops it: the chatbot then flushes its analytics); ``spawned`` is told the process at once."""
    command = [sys.executable, "-m", "local.demo.chatbot", "--port", str(port), "--answer-ms", str(answer_ms)] + (
        [] if analytics else ["--no-analytics"]
    )
    child_env = {**_clean_env(), **(env or {})}
    process = subprocess.Popen(command, cwd=REPO, env=child_env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    if spawned is not None:
        spawned(process)
    assert process.stdout is not None  # stdout=PIPE
    line = process.stdout.readline()
    if not line:
        process.wait()
        raise RuntimeError(f"the chatbot did not start (exit status {process.returncode})")
    return process, json.loads(line)["listening"]


def stop_chatbot(process: subprocess.Popen, timeout: float = 15) -> dict:
    """SIGTERM, then the chatbot flushes its analytics and prints the producer's counters."""
    process.terminate()
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    for line in reversed(out.splitlines()):
        if line.startswith('{"analytics"'):
            return json.loads(line)["analytics"]
    return {}


def run_load(urls: list[str], requests: int) -> dict[str, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "local.demo.loadgen", *[arg for url in urls for arg in ("--url", url)], "--requests", str(requests)],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(result.stdout)


def send_poison(info: StackInfo) -> None:
    """A body that fails validation, sent with the producer's key like any event."""
    sqs = info.client("sqs", info.producer)
    sqs.send_message(
        QueueUrl=info.events_queue_url,
        MessageBody=json.dumps({"eventType": "response", "requestId": "demo-poison", "matchScore": 250}),
        MessageGroupId="demo-poison",
        MessageDeduplicationId="demo-poison:response",
    )


def scan_items(info: StackInfo) -> list[Item]:
    """Every stored request, in the report's own view of an item."""
    dynamodb = info.client("dynamodb")
    items: list[Item] = []
    kwargs: dict = {"TableName": info.table_name}
    while True:
        page = dynamodb.scan(**kwargs)
        items += [item_from_dynamodb(raw) for raw in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def queue_depth(info: StackInfo, url: str) -> int:
    attributes = info.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def wait_for_dlq(info: StackInfo, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        depth = queue_depth(info, info.dead_letter_queue_url)
        if depth >= expected:
            return depth
        time.sleep(0.25)
    return queue_depth(info, info.dead_letter_queue_url)


def lake_comparison(info: StackInfo, table_figures: Report) -> tuple[list[str], bool]:
    """The lake's report of the table report's days (DuckDB over the bucket's files), and whether they agree."""
    days = [day.day for day in table_figures.per_day]
    cache = REPO / "cdk.out" / "local-lake"
    synced = lake.sync_partitions(info.client("s3"), info.outputs[contract.LAKE_BUCKET_NAME], *lake.partition_range(days), cache)
    engine = lake.DuckDBEngine(cache)
    from_lake = lake.lake_report(engine, days, top=5, stack_name=info.stack_name)
    connection = engine.connect()
    try:
        rows = connection.execute(f"SELECT count(*) FROM {lake.TABLE}").fetchone()
    finally:
        connection.close()
    same = {**from_lake.to_json(), "engine": None} == {**table_figures.to_json(), "engine": None}
    assert from_lake.engine is not None
    lines = [
        "",
        "Event lake (the processor's rows through Firehose to the bucket; the SQL Athena runs, on DuckDB here)",
        f"  {synced.objects} objects under {lake.PREFIX}dt=.../, {rows[0] if rows else 0} rows for {from_lake.requests} requests"
        f" (a request stored apart, or replayed, has more than one row)",
        f"  report --engine duckdb in {from_lake.engine.seconds:.2f} s: "
        + ("the same figures as the table's report" if same else "DIFFERS from the table's report"),
    ]
    return lines, same


def report(info: StackInfo, latencies: dict[str, dict], on_url: str, off_url: str, producer: dict, esm: dict, dlq: int) -> tuple[str, bool]:
    items = scan_items(info)
    # The figures `chat-analytics report` would print for these days: one definition of each.
    figures = build_report(items, sorted({item.day for item in items}), top=5, stack_name=info.stack_name)
    lake_lines, same = lake_comparison(info, figures)
    complete = [i for i in items if i.query is not None and i.match_type is not None]
    matcher = CvSkillMatcher()
    asked_missing = collections.Counter(s for i in complete for s in matcher.skills_in(i.query or "") if s not in matcher.cv_skills)
    on, off = latencies[on_url], latencies[off_url]
    stored_events = sum((i.query is not None) + (i.match_type is not None) for i in items)
    lines = [
        "",
        "Chatbot request latency over HTTP (same questions, interleaved)",
        f"  {'':14}{'median':>10}{'p95':>10}{'p99':>10}   n",
        f"  {'analytics off':14}{off['median_ms']:>8.3f}ms{off['p95_ms']:>8.3f}ms{off['p99_ms']:>8.3f}ms   {off['n']}",
        f"  {'analytics on':14}{on['median_ms']:>8.3f}ms{on['p95_ms']:>8.3f}ms{on['p99_ms']:>8.3f}ms   {on['n']}",
        f"  ratio on/off: median {on['median_ms'] / off['median_ms']:.3f}, p95 {on['p95_ms'] / off['p95_ms']:.3f}"
        f"  (analytics adds {on['median_ms'] - off['median_ms']:+.3f} ms at the median, {on['p95_ms'] - off['p95_ms']:+.3f} ms at p95)",
        "",
        "Events",
        f"  producer: accepted {producer.get('accepted')}, sent {producer.get('sent')}, retried {producer.get('retried')}, "
        f"failed {producer.get('failed')}, dropped {producer.get('dropped_full', 0) + producer.get('dropped_invalid', 0)}",
        f"  processor: {esm['invocations']} invocations, {esm['records']} records, {esm['succeeded']} ok, {esm['failed']} failed attempts",
        f"  stored: {len(items)} requests ({len(complete)} complete with query and response), {stored_events} events",
        "",
        "Stored requests by match type (as `chat-analytics report` counts them)",
        *[f"  {kind:10} {count:5}" for kind, count in sorted(figures.matches.items())],
        *([f"  {'no answer yet':10} {figures.unanswered:5}"] if figures.unanswered else []),
        "",
        "Top unmatched questions (normalized, as the report shows them)",
        *[f"  {count:4}x  {question}" for question, count in figures.top_unmatched],
        "  skills asked for that the CV lacks: " + ", ".join(f"{s} ({n})" for s, n in asked_missing.most_common(6)),
        "",
        f"Dead-letter queue depth: {dlq} (the malformed event sent on purpose, after 3 failed receives)",
        *lake_lines,
    ]
    return "\n".join(lines), same


def main(argv: list[str] | None = None) -> int:
    global say
    parser = argparse.ArgumentParser(description="Run the analytics pipeline locally on moto, end to end.")
    parser.add_argument("--requests", type=int, default=200, help="questions per chatbot variant (default 200)")
    parser.add_argument("--stage", choices=("dev", "prod"), default="dev", help="the stage whose template runs (default dev)")
    parser.add_argument("--template", type=Path, help="a synthesized template (default: cdk.out/ChatAnalytics-<stage>.template.json)")
    parser.add_argument("--answer-ms", type=float, default=12.0, help="answer time of the chatbot, like the seed's model call (default 12)")
    args = parser.parse_args(argv)
    args.template = args.template or template_path(args.stage)
    if not args.template.exists():
        print(f"error: {args.template} not found; run `make synth STAGE={args.stage}` first", file=sys.stderr)
        return 2
    console = sys.stdout

    def say(*parts: object) -> None:
        print(*parts, file=console, flush=True)

    log_path = REPO / "cdk.out" / "local-processor.log"
    log_path.unlink(missing_ok=True)
    processes = []
    started = time.monotonic()
    with LocalPipeline(template=args.template, processor_log=log_path) as pipeline:
        info, esm = pipeline.info, pipeline.esm
        say(f"local stack {info.stack_name} on {info.endpoint_url}")
        for line in info.report:
            say(f"  {line}")
        try:
            on, on_url = start_chatbot(info.worker_env(), analytics=True, answer_ms=args.answer_ms)
            processes.append(on)
            off, off_url = start_chatbot(None, analytics=False, answer_ms=args.answer_ms)
            processes.append(off)
            say(
                f"chatbot ({args.answer_ms:g} ms per answer) with analytics on {on_url}, without on {off_url}; {args.requests} questions each ..."
            )
            send_poison(info)
            latencies = run_load([on_url, off_url], args.requests)
            producer = stop_chatbot(on)
            stop_chatbot(off)
            processes.clear()
            say("waiting for the processor to drain the queue ...")
            drained = esm.wait_until_drained(timeout=120)
            dlq = wait_for_dlq(info, 1, timeout=20)
            text, lake_agrees = report(info, latencies, on_url, off_url, producer, esm.stats.snapshot(), dlq)
            say(text)
            say(f"\nprocessor logs and EMF metrics: {log_path.relative_to(REPO)}; done in {time.monotonic() - started:.1f} s")
            if not drained:
                say("error: the events queue did not drain within 120 s")
                return 1
            if not lake_agrees:
                say("error: the event lake's report differs from the table's")
                return 1
        finally:
            for process in processes:
                process.kill()
    return 0


def _clean_env() -> dict[str, str]:
    """The parent's environment without the processor's AWS settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANALYTICS_", "POWERTOOLS_", "TABLE_NAME", "EVENT_RETENTION"))}


if __name__ == "__main__":
    sys.exit(main())
