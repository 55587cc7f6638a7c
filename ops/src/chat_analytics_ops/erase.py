"""``chat-analytics erase``: remove requests from the table, the event lake and the dead-letter queue.

A request lives in three places: its item in the table (``requestId``), its rows in the lake objects
Firehose wrote under ``requests/dt=YYYY-MM-DD/`` (Parquet in AWS, JSON lines locally) and, once its days
are compacted, its rows in the ``compacted`` table (``compacted/dt=YYYY-MM-DD/late=0|1/``, Parquet: one row
per request and day, with its question), and, when its events failed, messages in the DLQ. Erasure finds
every one of them, prints what it will change, asks, makes and checks every new lake object on this machine
(nothing has changed yet), and then, in this order:

1. deletes the request's DLQ messages (first: a redrive could otherwise store the request again);
2. deletes its table item (``DeleteItem``);
3. rewrites each object under ``compacted/`` holding its rows, then each under ``requests/`` (the copy goes
   before its source, so an interrupted run never leaves a compacted row whose raw rows are gone): the
   object without them is written FIRST, under a key derived from the old one and the removed ids
   (``<old key>.erased-<12 hex of sha256>``), checked (every other row the same, the same format, schema and
   compression), and only then is the old object deleted. An object left with no row is deleted without a
   successor.

A compacted day stays compacted: the request's raw rows of a day and its compacted row of that day (whose
``source_rows`` counts them) both go, so the day's raw row count still equals its summed ``source_rows``
and the report keeps reading the day from ``compacted`` (``sql/compacted_days.sql``).

A compacted day's section summary (``compacted/sections/dt=YYYY-MM-DD/``, ``sql/sections.sql``) counts the
request and may hold its unmatched question: the summaries of the days whose compacted objects are rewritten
are deleted BEFORE the first of those rewrites, and made again from the rewritten rows (on this machine, with
DuckDB, as ``chat-analytics compact`` makes them) and put AFTER the last. A run interrupted in between leaves
those days without a summary: the report reads them from their compacted rows, the same figures (a summary
is read only while it counts the day's rows, so a stale one would not be read either), and the next run, or
the summary schedule while the day is in its window, summarizes them again.

An interrupted run (a crash between the write of the new object and the delete of the old one) leaves
both; the next run finds the pair (a key ``K.erased-H`` next to ``K``), checks the new one is exactly
``K`` without the rows of some whole requests, and completes it (deletes ``K``), rewriting it again only
when this run removes more from ``K``. Until then both objects are read: the report is unaffected (its
SQL groups each request's rows, and an identical copy of a row adds nothing to max()/max_by()), but a
raw count of rows sees the copied rows twice; docs/erasure.md.

Each run that gets past its plan (even one with nothing to change) writes one audit line, a JSON object,
to stdout and as a new object under ``erasure-audit/`` of the lake bucket: how many request ids and the
SHA-256 of them, when, and how many items, rows, objects (under ``requests/`` and ``compacted/``) and
messages changed. Never a request id or a
question's text; nor does anything else the command prints.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from chat_analytics_ops import compact, dlq, lake
from chat_analytics_ops.contract import DAY_INDEX
from chat_analytics_ops.errors import EXIT_USAGE, OpsError
from chat_analytics_ops.outputs import DEAD_LETTER_QUEUE_URL, EVENTS_TABLE_NAME, LAKE_BUCKET_NAME, AwsContext
from chat_analytics_ops.render import plural
from chat_analytics_ops.report_model import day_range, parse_day
from chat_analytics_ops.table_engine import has_day_index, read_items

AUDIT_PREFIX = "erasure-audit/"
# The lake's folders that hold rows of requests: Firehose's raw rows, and the daily compaction's rows (the
# compacted copy first: it is rewritten before its source, see the module docstring).
ROW_PREFIXES = (lake.COMPACTED_PREFIX, lake.PREFIX)
ERASED_MARK = ".erased-"
HASH_CHARS = 12  # of the removed ids' SHA-256 in a rewritten object's key
_DERIVED = re.compile(r"^(?P<base>.+)\.erased-(?P<hash>[0-9a-f]{12})$")
MAX_QUESTION_DAYS = 366
PARQUET_COMPRESSIONS = {"SNAPPY": "snappy", "GZIP": "gzip", "ZSTD": "zstd", "UNCOMPRESSED": "uncompressed", "LZ4_RAW": "lz4_raw"}
MAX_IDS = 10_000
PROG = "chat-analytics"
# What a run changed, as its audit line counts it (lake: under requests/; compacted: under compacted/).
DONE = (
    "tableItems",
    "lakeRows",
    "lakeObjectsWritten",
    "lakeObjectsDeleted",
    "compactedRows",
    "compactedObjectsWritten",
    "compactedObjectsDeleted",
    "summaryObjectsDeleted",
    "summaryObjectsWritten",
    "deadLetters",
)


def ids_hash(ids: Iterable[str]) -> str:
    """The SHA-256 (hex) of the sorted, distinct ids, one per line: what the audit line records."""
    return hashlib.sha256("\n".join(sorted(set(ids))).encode("utf-8")).hexdigest()


def derived_key(key: str, removed: Iterable[str]) -> str:
    """The key of ``key`` rewritten without the rows of ``removed``: the same folder, deterministic."""
    return f"{key}{ERASED_MARK}{ids_hash(removed)[:HASH_CHARS]}"


def base_of(key: str) -> str | None:
    """The key a rewritten object was made from (``K`` of ``K.erased-H``), or None for any other key."""
    match = _DERIVED.match(key)
    return match.group("base") if match else None


# --- the CLI ------------------------------------------------------------------------------------------


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``erase`` subcommand, for cli.py's command tree."""
    parser = commands.add_parser(
        "erase",
        parents=[common],
        help="erase requests everywhere: their table item, their rows in the lake, their dead-letter messages",
        description="Erase requests from the table, the event lake and the dead-letter queue (docs/erasure.md).",
    )
    parser.add_argument(
        "--request-id", dest="request_ids", action="append", default=[], metavar="ID", help="a request to erase (repeatable)"
    )
    parser.add_argument(
        "--question-contains",
        metavar="TEXT",
        default=None,
        help="also erase every request whose question contains TEXT (case-insensitive) and whose day is in --from..--to",
    )
    parser.add_argument("--from", dest="start", metavar="YYYY-MM-DD", default=None, help="with --question-contains: first day (UTC)")
    parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", default=None, help="with --question-contains: last day, inclusive")
    parser.add_argument("--yes", action="store_true", help="erase without asking (needed when stdin is not a terminal)")
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        default=None,
        help="where the lake's objects are copied to be searched (default ~/.cache/chat-analytics/<stack>, report --engine duckdb's)",
    )
    parser.set_defaults(handler=cmd_erase)


@dataclass(frozen=True)
class Selection:
    """What the operator asked to erase."""

    request_ids: tuple[str, ...]
    text: str | None = None
    days: tuple[str, ...] = ()

    @property
    def modes(self) -> list[str]:
        return (["request-id"] if self.request_ids else []) + (["question-contains"] if self.text is not None else [])


def selection_from(args: argparse.Namespace) -> Selection:
    """The options, checked: each mistake is one line naming the option."""
    ids = tuple(dict.fromkeys(args.request_ids))
    for request_id in ids:
        if not request_id.strip() or len(request_id) > 256:
            raise OpsError(f"--request-id {request_id[:40]!r}: expected a request id (1..256 characters)")
    if args.question_contains is None:
        if args.start is not None or args.end is not None:
            raise OpsError("--from and --to go with --question-contains")
        if not ids:
            raise OpsError("nothing to erase: give --request-id ID (repeatable) or --question-contains TEXT --from DAY --to DAY")
        return Selection(ids)
    if not args.question_contains.strip():
        raise OpsError("--question-contains: expected some text (it is matched case-insensitively inside each question)")
    if args.start is None or args.end is None:
        raise OpsError("--question-contains needs --from YYYY-MM-DD and --to YYYY-MM-DD (the days the question may have been asked)")
    start, end = parse_day(args.start, "--from"), parse_day(args.end, "--to")
    days = day_range(start, end, max_days=MAX_QUESTION_DAYS)
    return Selection(ids, args.question_contains, tuple(days))


def cmd_erase(args: argparse.Namespace, ctx: AwsContext) -> int:
    selection = selection_from(args)
    cache = args.cache or Path.home() / ".cache" / "chat-analytics" / ctx.stack_name
    eraser = Eraser(
        s3=ctx.client("s3"),
        dynamodb=ctx.client("dynamodb"),
        sqs=ctx.client("sqs"),
        bucket=ctx.output(LAKE_BUCKET_NAME),
        table=ctx.output(EVENTS_TABLE_NAME),
        dlq_url=ctx.output(DEAD_LETTER_QUEUE_URL),
        cache=cache,
        stack_name=ctx.stack_name,
    )
    try:
        return eraser.run(selection, yes=args.yes, stdin=sys.stdin)
    except _duckdb().Error as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OpsError(f"DuckDB could not read the lake's copy in {cache}: {first_line}") from None


# --- the plan -----------------------------------------------------------------------------------------


@dataclass
class Rewrite:
    """One lake object to rewrite without the rows of ``removed`` (or to delete, when nothing is left)."""

    key: str
    fmt: str  # "parquet" or "json"
    removed: frozenset[str]  # the request ids whose rows go
    rows_removed: int
    rows_kept: int
    leftovers: list[str] = field(default_factory=list)  # rewritten copies of ``key`` an interrupted run left

    source_rows_removed: int = 0  # a compacted object's: the raw rows its removed rows merged (their source_rows)

    @property
    def new_key(self) -> str | None:
        return derived_key(self.key, self.removed) if self.rows_kept else None

    @property
    def compacted(self) -> bool:
        return self.key.startswith(lake.COMPACTED_PREFIX)


@dataclass
class Plan:
    ids: frozenset[str]
    table_items: list[str]
    rewrites: list[Rewrite]
    dead_letters: frozenset[str]  # the MessageIds of the DLQ messages to delete
    dlq_unchecked: int
    objects_searched: int  # under requests/
    compacted_searched: int = 0  # under compacted/
    summaries: list[str] = field(default_factory=list)  # the summaries (keys) of the days whose compacted objects change

    @property
    def summarized_days(self) -> list[str]:
        """The days whose summary is made again: those whose compacted objects are rewritten."""
        return sorted({key.split("/")[1][3:] for key in (rewrite.key for rewrite in self.compacted_rewrites)})

    @property
    def lake_rewrites(self) -> list[Rewrite]:
        return [rewrite for rewrite in self.rewrites if not rewrite.compacted]

    @property
    def compacted_rewrites(self) -> list[Rewrite]:
        return [rewrite for rewrite in self.rewrites if rewrite.compacted]

    @property
    def rows(self) -> int:
        return sum(rewrite.rows_removed for rewrite in self.lake_rewrites)

    @property
    def compacted_rows(self) -> int:
        return sum(rewrite.rows_removed for rewrite in self.compacted_rewrites)

    @property
    def interrupted(self) -> int:
        return sum(1 for rewrite in self.rewrites if rewrite.leftovers)

    def changes_anything(self) -> bool:
        return bool(self.table_items or self.rewrites or self.dead_letters)


class Eraser:
    """Finds and erases requests; each AWS client is the caller's (the local stack's or AWS's)."""

    def __init__(
        self, *, s3: Any, dynamodb: Any, sqs: Any, bucket: str, table: str, dlq_url: str, cache: Path, stack_name: str = ""
    ) -> None:
        self.s3, self.dynamodb, self.sqs = s3, dynamodb, sqs
        self.bucket, self.table, self.dlq_url = bucket, table, dlq_url
        self.cache = cache
        self.stack_name = stack_name
        self.out: TextIO = sys.stdout
        self.raw_letters: set[str] = set()  # MessageIds of non-JSON DLQ bodies holding the --question-contains text

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    # The run: plan, ask, erase, audit.

    def run(self, selection: Selection, *, yes: bool, stdin: TextIO) -> int:
        objects = sync_lake(self.s3, self.bucket, self.cache)  # (under requests/, under compacted/)
        ids = set(selection.request_ids)
        if selection.text is not None:
            found = self.find_by_question(selection.text, list(selection.days))
            self.say(
                f"--question-contains: {plural(len(found), 'request')} asked {selection.days[0]}..{selection.days[-1]}"
                " match the text (in the table, the lake or the dead-letter queue)"
            )
            ids |= found
        if len(ids) > MAX_IDS:
            raise OpsError(f"{len(ids)} requests selected: more than {MAX_IDS} in one run; narrow the text or the days")
        plan = self.plan(frozenset(ids), objects)
        self.print_plan(plan)
        if not plan.changes_anything():
            queue = "the dead-letter queue" if not plan.dlq_unchecked else "the dead-letter messages that could be checked"
            self.say(
                f"nothing to erase: {plural(len(ids), 'request')} in none of the table, the lake ({plural(objects[0], 'object')}"
                f" under {lake.PREFIX} and {objects[1]} under {lake.COMPACTED_PREFIX} searched)"
                f" or {queue} (already erased, or never stored); nothing changed"
            )
            self.audit(selection, plan, dict.fromkeys(DONE, 0))
            return self._unchecked_status(plan)
        if not yes:
            self.confirm(stdin)
        # Every new lake object is made and checked on this machine before anything anywhere changes.
        prepared = [self.prepare(rewrite) for rewrite in plan.rewrites]
        done = dict.fromkeys(DONE, 0)
        try:
            done["deadLetters"] = self.erase_dead_letters(plan.ids, plan.dead_letters)
            done["tableItems"] = self.erase_items(plan.table_items)
            # The summaries of the days rewritten go first: none is ever left counting rows that are gone.
            for key in plan.summaries:
                self.s3.delete_object(Bucket=self.bucket, Key=key)
                (self.cache / key).unlink(missing_ok=True)
                done["summaryObjectsDeleted"] += 1
            # plan.rewrites lists the objects under compacted/ first (ROW_PREFIXES' order).
            for rewrite, content in zip(plan.rewrites, prepared, strict=True):
                written, deleted = self.rewrite(rewrite, content)
                counted = "compacted" if rewrite.compacted else "lake"
                done[f"{counted}ObjectsWritten"] += written
                done[f"{counted}ObjectsDeleted"] += deleted
                done[f"{counted}Rows"] += rewrite.rows_removed
            done["summaryObjectsWritten"] = self.summarize_again(plan.summarized_days)
        except (ClientError, BotoCoreError, OpsError, KeyboardInterrupt) as error:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.audit(selection, plan, done, outcome=f"failed: {type(error).__name__}")
            raise
        self.audit(selection, plan, done)
        self.say(
            f"erased {plural(len(plan.ids), 'request')}: {plural(done['tableItems'], 'table item')},"
            f" {plural(done['lakeRows'], 'lake row')} ({plural(done['lakeObjectsWritten'], 'object')} written,"
            f" {plural(done['lakeObjectsDeleted'], 'object')} deleted), {plural(done['compactedRows'], 'compacted row')}"
            f" ({plural(done['compactedObjectsWritten'], 'object')} written, {plural(done['compactedObjectsDeleted'], 'object')} deleted),"
            f" {plural(done['summaryObjectsWritten'], 'day summary', 'day summaries')} made again,"
            f" {plural(done['deadLetters'], 'dead letter')}"
        )
        return self._unchecked_status(plan)

    def _unchecked_status(self, plan: Plan) -> int:
        if plan.dlq_unchecked:
            print(
                f"{PROG}: {plural(plan.dlq_unchecked, 'dead-letter message')} could not be checked (held by another reader,"
                " or beyond what one look receives): run erase again later",
                file=sys.stderr,
            )
            return 1
        return 0

    def confirm(self, stdin: TextIO) -> None:
        if not stdin.isatty():
            raise OpsError("erase changes data and stdin is not a terminal to ask on: pass --yes to erase without asking", EXIT_USAGE)
        print("erase all of this? type yes: ", end="", file=self.out, flush=True)
        answer = stdin.readline().strip().lower()
        if answer not in {"yes", "y"}:
            raise OpsError("not confirmed: nothing changed")

    def print_plan(self, plan: Plan) -> None:
        self.say(f"{plural(len(plan.ids), 'request')} to erase (ids' sha256 {ids_hash(plan.ids)[:16]}…):")
        self.say(f"  table: {plural(len(plan.table_items), 'item')} to delete")
        lake_rewrites, compacted_rewrites = plan.lake_rewrites, plan.compacted_rewrites
        self.say(
            f"  lake: {plural(plan.rows, 'row')} in {plural(len(lake_rewrites), 'object')} of {plan.objects_searched} searched"
            f" under {lake.PREFIX}"
        )
        self._say_rewrites(lake_rewrites)
        merged = sum(rewrite.source_rows_removed for rewrite in compacted_rewrites)
        self.say(
            f"  compacted: {plural(plan.compacted_rows, 'row')} (merging {plural(merged, 'raw row')}) in"
            f" {plural(len(compacted_rewrites), 'object')} of {plan.compacted_searched} searched under {lake.COMPACTED_PREFIX}"
        )
        self._say_rewrites(compacted_rewrites)
        if plan.summarized_days:
            self.say(
                f"  summaries: {plural(len(plan.summaries), 'object')} of the {plural(len(plan.summarized_days), 'day')} rewritten"
                f" under {lake.SECTIONS_PREFIX} deleted first, the days summarized again after"
            )
        self.say(f"  dead-letter queue: {plural(len(plan.dead_letters), 'message')} to delete")

    def _say_rewrites(self, rewrites: list[Rewrite]) -> None:
        for rewrite in rewrites:
            target = f"-> {rewrite.new_key} ({plural(rewrite.rows_kept, 'row')} kept)" if rewrite.new_key else "(no row left: deleted)"
            self.say(f"    {rewrite.key}: {plural(rewrite.rows_removed, 'row')} removed {target}")
            for leftover in rewrite.leftovers:
                self.say(f"      completes an interrupted erasure: {leftover} (its copy without some requests' rows)")

    # Finding.

    def find_by_question(self, text: str, days: list[str]) -> set[str]:
        """The ids of requests whose question contains ``text`` (case-insensitive) and whose day is in ``days``.
        A DLQ message whose body is not a JSON object (so has no request id) but contains the text is kept in
        ``self.raw_letters``, to be deleted with the requests' messages."""
        needle = text.lower()
        found: set[str] = set()
        if has_day_index(self.dynamodb, self.table):
            for item in read_items(self.dynamodb, self.table, days):
                if item.query and needle in item.query.lower():
                    found.add(item.request_id)
        else:
            # tableDayIndex false: the lake holds every stored request's question, so the table's requests are
            # found through it (and erased by id). A request stored in the last minutes may not be in the lake yet
            # (Firehose buffers up to 15 minutes): run erase again later to be sure.
            self.say(
                f"  table {self.table} has no {DAY_INDEX} index: its requests are found through the event lake"
                " (a request stored in the last 15 minutes may not be there yet: run erase again later)"
            )
        connection = lake_connection(self.cache)
        try:
            rows = connection.execute(
                "SELECT DISTINCT request_id FROM erasable WHERE day BETWEEN ? AND ? AND request_id IS NOT NULL"
                " AND strpos(lower(query), ?) > 0",
                [days[0], days[-1], needle],
            ).fetchall()
        finally:
            connection.close()
        found |= {row[0] for row in rows}
        first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
        with self._dead_letters() as (letters, _):
            for letter, event in letters:
                if not event and needle in letter.body.lower():
                    self.raw_letters.add(letter.message_id)
                    continue
                query, timestamp = event.get("query"), event.get("timestamp")
                request_id = event.get("requestId")
                if not (isinstance(query, str) and needle in query.lower() and isinstance(request_id, str)):
                    continue
                if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
                    try:
                        day = datetime.fromtimestamp(timestamp / 1000, UTC).date()
                    except (OverflowError, ValueError, OSError):  # no day to tell: the text decides
                        day = first
                    if not first <= day <= last:
                        continue
                found.add(request_id)
        return found

    def plan(self, ids: frozenset[str], objects: tuple[int, int]) -> Plan:
        table_items = [request_id for request_id in sorted(ids) if self._has_item(request_id)]
        rewrites = plan_rewrites(self.cache, ids)
        with self._dead_letters() as (letters, unchecked):
            dead = frozenset(
                letter.message_id for letter, event in letters if event.get("requestId") in ids or letter.message_id in self.raw_letters
            )
        plan = Plan(ids, table_items, rewrites, dead, unchecked, objects[0], objects[1])
        plan.summaries = [
            path.relative_to(self.cache).as_posix()
            for day in plan.summarized_days
            for path in sorted((self.cache / lake.SECTIONS_PREFIX / f"dt={day}").glob("*"))
            if path.is_file() and not path.name.endswith(".part")
        ]
        return plan

    def summarize_again(self, days: list[str]) -> int:
        """Summarize ``days`` again from their rewritten compacted rows in the cache and put the new summaries
        (under new keys); returns how many objects were put."""
        written = 0
        for day in days:
            result = compact.CompactResult(day, day)
            compact.summarize_directory(self.cache, day, day, result)
            for path in result.objects:
                body = path.read_bytes()
                digest = hashlib.md5(body, usedforsecurity=False).digest()
                key = path.relative_to(self.cache).as_posix()
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentMD5=base64.b64encode(digest).decode("ascii"))
                written += 1
        return written

    def _has_item(self, request_id: str) -> bool:
        response = self.dynamodb.get_item(
            TableName=self.table,
            Key={"requestId": {"S": request_id}},
            ProjectionExpression="#id",
            ExpressionAttributeNames={"#id": "requestId"},
            ConsistentRead=True,
        )
        return "Item" in response

    @contextlib.contextmanager
    def _dead_letters(self) -> Iterator[tuple[list[tuple[dlq.DeadLetter, dict[str, Any]]], int]]:
        """Every DLQ message (held while the ``with`` runs, released after), with its parsed body, and how many
        the queue counts that could not be received (in flight elsewhere, or held back)."""
        with self._receiver() as (receiver, unchecked):
            yield [(letter, _parsed(letter.body)) for letter in receiver.letters.values()], unchecked

    @contextlib.contextmanager
    def _receiver(self) -> Iterator[tuple[dlq.Receiver, int]]:
        state = dlq.queue_state(self.sqs, self.dlq_url)
        receiver = dlq.Receiver(self.sqs, self.dlq_url)
        try:
            if state.visible or state.in_flight:
                while True:
                    receiver.receive(10)
                    if receiver.exhausted():
                        break
                receiver.recover_tails(lambda: len(receiver.letters) >= state.visible)
            unchecked = state.in_flight + max(state.visible - len(receiver.letters), 0)
            yield receiver, unchecked
        finally:
            receiver.release_all()

    # Erasing.

    def erase_dead_letters(self, ids: frozenset[str], planned: frozenset[str]) -> int:
        """Delete the DLQ messages of ``ids`` (and those ``planned`` by MessageId); every other one is released."""
        deleted = 0
        with self._receiver() as (receiver, _):
            doomed = [
                letter
                for letter in receiver.letters.values()
                if letter.message_id in planned or _parsed(letter.body).get("requestId") in ids
            ]
            unheld = [letter for letter in doomed if letter.message_id not in receiver.handles]  # a hold that ran out
            doomed = [letter for letter in doomed if letter.message_id in receiver.handles]
            for start in range(0, len(doomed), 10):
                chunk = doomed[start : start + 10]
                entries = [{"Id": str(i), "ReceiptHandle": receiver.handles[letter.message_id]} for i, letter in enumerate(chunk)]
                response = self.sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=entries)
                failed = response.get("Failed", [])
                if failed:
                    raise OpsError(f"the DLQ refused to delete {plural(len(failed), 'message')}: {failed[0].get('Code')} (run erase again)")
                for letter in chunk:
                    receiver.forget(letter.message_id)
                deleted += len(chunk)
        if unheld:
            raise OpsError(f"{plural(len(unheld), 'dead-letter message')} to delete slipped out of this run's hold: run erase again")
        return deleted

    def erase_items(self, request_ids: list[str]) -> int:
        deleted = 0
        for request_id in request_ids:
            response = self.dynamodb.delete_item(TableName=self.table, Key={"requestId": {"S": request_id}}, ReturnValues="ALL_OLD")
            deleted += 1 if response.get("Attributes") else 0
        return deleted

    def prepare(self, rewrite: Rewrite) -> Path | None:
        """The new object's content, written next to the cached old one (``.part``: no reader takes it) and checked;
        or the copy an interrupted run left, checked; None when no row is left. Nothing in AWS changes."""
        new_key = rewrite.new_key
        if new_key is None:
            return None
        old, new = self.cache / rewrite.key, self.cache / new_key
        if new_key in rewrite.leftovers:
            check_rewrite(old, new, rewrite.removed, rewrite.fmt)  # the interrupted run's copy: this content
            return new
        partial = new.with_name(new.name + ".part")
        write_without(old, partial, rewrite.removed, rewrite.fmt)
        check_rewrite(old, partial, rewrite.removed, rewrite.fmt)
        return partial

    def rewrite(self, rewrite: Rewrite, prepared: Path | None) -> tuple[int, int]:
        """Put the new object (unless nothing is left, or an interrupted run already put it), make sure S3 holds
        all of it, and only then delete the old one and any other copy an interrupted run left.
        Returns (objects written, objects deleted)."""
        written = 0
        new_key = rewrite.new_key
        if new_key is not None and prepared is not None and prepared.name.endswith(".part"):
            body = prepared.read_bytes()
            digest = hashlib.md5(body, usedforsecurity=False).digest()
            # S3 refuses the body unless it matches Content-MD5, so a body cut in transit is never stored.
            self.s3.put_object(Bucket=self.bucket, Key=new_key, Body=body, ContentMD5=base64.b64encode(digest).decode("ascii"))
            head = self.s3.head_object(Bucket=self.bucket, Key=new_key)
            if int(head["ContentLength"]) != len(body):
                raise OpsError(f"s3://{self.bucket}/{new_key}: {head['ContentLength']} bytes stored, {len(body)} written; old object kept")
            prepared.replace(self.cache / new_key)
            written = 1
        deleted = 0
        for key in [rewrite.key, *(leftover for leftover in rewrite.leftovers if leftover != new_key)]:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
            (self.cache / key).unlink(missing_ok=True)
            deleted += 1
        return written, deleted

    # The audit line.

    def audit(self, selection: Selection, plan: Plan, done: dict[str, int], *, outcome: str = "completed") -> None:
        now = datetime.now(UTC)
        line = {
            "event": "erasure",
            "at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "stack": self.stack_name,
            "selectedBy": selection.modes,
            "days": [selection.days[0], selection.days[-1]] if selection.days else None,
            "requestIds": len(plan.ids),
            "requestIdsSha256": ids_hash(plan.ids),
            "outcome": outcome if plan.changes_anything() else "nothing to erase",
            **done,
            "lakeObjectsSearched": plan.objects_searched,
            "compactedObjectsSearched": plan.compacted_searched,
            "interruptedErasuresCompleted": plan.interrupted if outcome == "completed" else 0,
            "deadLettersUnchecked": plan.dlq_unchecked,
        }
        text = json.dumps(line, separators=(",", ":"), sort_keys=False)
        key = f"{AUDIT_PREFIX}dt={now.date().isoformat()}/{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:12]}.json"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=(text + "\n").encode("utf-8"), ContentType="application/x-ndjson")
        self.say(f"audit: {text}")
        self.say(f"audit line stored at s3://{self.bucket}/{key}")


def _parsed(body: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


# --- the lake -----------------------------------------------------------------------------------------


def sync_lake(s3: Any, bucket: str, cache: Path) -> tuple[int, int]:
    """Make ``cache``'s ``requests/`` and ``compacted/`` copies of the bucket's (same keys): new objects are
    downloaded, a local one the bucket no longer has is removed (its rows may be ones erased since). Returns the
    number of objects under each."""
    requests, compacted = (lake.mirror_prefix(s3, bucket, prefix, cache).objects for prefix in (lake.PREFIX, lake.COMPACTED_PREFIX))
    return requests, compacted


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise OpsError("erase reads the lake with DuckDB: pip install 'chat-analytics-ops[lake]'") from None
    return duckdb


def _json_columns() -> str:
    return "{" + ", ".join(f"{lake._quoted(name)}: {lake._quoted(lake._DUCKDB_TYPES[kind])}" for name, kind in lake.COLUMNS) + "}"


def lake_connection(cache: Path) -> Any:
    """DuckDB with a view ``erasable`` (request_id, day, query, filename) over every lake object in ``cache``: the
    raw rows under ``requests/`` and the compacted ones under ``compacted/`` (a compacted row whose raw rows are
    gone, say erased by an earlier version of this command, is found all the same)."""
    connection = _duckdb().connect()
    parquet, json_lines = lake.lake_files(cache)
    compacted_parquet, compacted_json = lake.lake_files(cache, lake.COMPACTED_TABLE)
    parquet, json_lines = parquet + compacted_parquet, json_lines + compacted_json
    parts = [
        "SELECT CAST(NULL AS VARCHAR) AS request_id, CAST(NULL AS VARCHAR) AS day, CAST(NULL AS VARCHAR) AS query, '' AS filename WHERE false"
    ]
    if parquet:
        parts.append(
            f"SELECT request_id, day, query, filename FROM read_parquet({lake._file_list(parquet)},"
            " filename = true, union_by_name = true, hive_partitioning = false)"
        )
    if json_lines:
        parts.append(
            f"SELECT request_id, day, query, filename FROM read_json({lake._file_list(json_lines)}, format = 'newline_delimited',"
            f" columns = {_json_columns()}, filename = true, hive_partitioning = false)"
        )
    connection.execute("CREATE VIEW erasable AS " + " UNION ALL BY NAME ".join(parts))
    return connection


def object_format(path: Path) -> str:
    with path.open("rb") as handle:
        return "parquet" if handle.read(4) == lake.PARQUET_MAGIC else "json"


def object_ids(path: Path) -> dict[str, int]:
    """The request ids of one object's rows, with how many rows each."""
    counts: dict[str, int] = {}
    if object_format(path) == "json":
        for request_id in _json_ids(path.read_bytes()):
            if request_id is not None:
                counts[request_id] = counts.get(request_id, 0) + 1
        return counts
    connection = _duckdb().connect()
    try:
        rows = connection.execute(
            f"SELECT request_id, count(*) FROM read_parquet({lake._quoted(str(path))}, hive_partitioning = false) GROUP BY request_id"
        ).fetchall()
    finally:
        connection.close()
    return {request_id: count for request_id, count in rows if request_id is not None}


def plan_rewrites(cache: Path, ids: frozenset[str]) -> list[Rewrite]:
    """The lake objects to rewrite: those holding rows of ``ids``, and those an interrupted run left a copy of;
    the ones under ``compacted/`` first, then those under ``requests/`` (the order they are rewritten in)."""
    keys = {
        path.relative_to(cache).as_posix()
        for prefix in ROW_PREFIXES
        for path in (cache / prefix).rglob("*")
        if path.is_file() and not path.name.endswith(".part")
    }
    # First the copies interrupted runs left (``K.erased-H`` beside ``K``), each checked to be ``K`` without
    # whole requests: a copy that is not stops the run here, before anything changes.
    leftovers: dict[str, list[str]] = {}
    interrupted: dict[str, set[str]] = {}
    for key in sorted(keys):
        base = base_of(key)
        if base is not None and base in keys:
            leftovers.setdefault(base, []).append(key)
            interrupted.setdefault(base, set()).update(interrupted_removal(cache / base, cache / key))
    holding: set[str] = set()
    if ids and keys:
        connection = lake_connection(cache)
        try:
            files = connection.execute(
                "SELECT DISTINCT filename FROM erasable WHERE list_contains(?, request_id)", [sorted(ids)]
            ).fetchall()
        finally:
            connection.close()
        holding = {Path(name).resolve().relative_to(cache.resolve()).as_posix() for (name,) in files}
    rewrites = []
    chosen = (holding - {leftover for group in leftovers.values() for leftover in group}) | set(leftovers)
    for key in sorted(chosen, key=lambda key: (not key.startswith(lake.COMPACTED_PREFIX), key)):
        path = cache / key
        counts = object_ids(path)
        removed = {request_id for request_id in counts if request_id in ids}
        removed |= interrupted.get(key, set())
        total = sum(counts.values()) + _rows_without_id(path)
        rows_removed = sum(counts[request_id] for request_id in removed if request_id in counts)
        fmt = object_format(path)
        merged = _source_rows(path, frozenset(removed)) if key.startswith(lake.COMPACTED_PREFIX) and fmt == "parquet" else 0
        rewrites.append(Rewrite(key, fmt, frozenset(removed), rows_removed, total - rows_removed, leftovers.get(key, []), merged))
    return rewrites


def _source_rows(path: Path, removed: frozenset[str]) -> int:
    """The raw rows the compacted rows of ``removed`` in ``path`` merged (the sum of their ``source_rows``)."""
    if not removed:
        return 0
    connection = _duckdb().connect()
    try:
        (merged,) = connection.execute(
            f"SELECT coalesce(sum(source_rows), 0) FROM read_parquet({lake._quoted(str(path))}, hive_partitioning = false)"
            f" WHERE list_contains({_id_list(removed)}, request_id)"
        ).fetchone()
    finally:
        connection.close()
    return int(merged)


def _rows_without_id(path: Path) -> int:
    if object_format(path) == "json":
        return sum(1 for request_id in _json_ids(path.read_bytes()) if request_id is None)
    connection = _duckdb().connect()
    try:
        (count,) = connection.execute(
            f"SELECT count(*) FROM read_parquet({lake._quoted(str(path))}, hive_partitioning = false) WHERE request_id IS NULL"
        ).fetchone()
    finally:
        connection.close()
    return int(count)


def interrupted_removal(old: Path, copy: Path) -> set[str]:
    """The request ids a copy an interrupted run left (``K.erased-H``) removed from ``K``: checked to be whole
    requests, every other row kept and the format alike; otherwise one line, and nothing changes."""
    try:
        old_ids, copy_ids = object_ids(old), object_ids(copy)
        removed = {request_id for request_id in old_ids if request_id not in copy_ids}
        check_rewrite(old, copy, frozenset(removed), object_format(old))
    except (OpsError, _duckdb().Error) as error:
        raise OpsError(
            f"{copy.name} is not {old.name} without some requests' rows ({error}); both left as they are: look at them before erasing"
        ) from None
    return removed


def _json_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _json_id(line: bytes) -> str | None:
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except ValueError:
        return None
    value = row.get("request_id") if isinstance(row, dict) else None
    return value if isinstance(value, str) else None


def _json_ids(data: bytes) -> list[str | None]:
    return [_json_id(line) for line in _json_lines(data) if line.strip()]


def _id_list(ids: Iterable[str]) -> str:
    return "[" + ", ".join(lake._quoted(request_id) for request_id in sorted(ids)) + "]::VARCHAR[]"


def parquet_compression(path: Path) -> str:
    """The one compression codec of a Parquet object's column chunks (as DuckDB's COPY names it)."""
    connection = _duckdb().connect()
    try:
        codecs = {
            row[0] for row in connection.execute(f"SELECT DISTINCT compression FROM parquet_metadata({lake._quoted(str(path))})").fetchall()
        }
    finally:
        connection.close()
    if len(codecs) != 1 or next(iter(codecs)) not in PARQUET_COMPRESSIONS:
        raise OpsError(f"{path.name}: column chunks compressed {sorted(codecs)}: erase rewrites objects of one known codec only")
    return PARQUET_COMPRESSIONS[next(iter(codecs))]


def write_without(old: Path, new: Path, removed: frozenset[str], fmt: str) -> None:
    """``old`` without the rows of ``removed``, written to ``new`` in the same format: JSON lines keep every other
    line's bytes; Parquet is rewritten by DuckDB with the same columns, types, order of rows and codec."""
    new.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        kept = [line for line in _json_lines(old.read_bytes()) if _json_id(line) not in removed]
        new.write_bytes(b"".join(kept))
        return
    codec = parquet_compression(old)
    connection = _duckdb().connect()
    try:
        connection.execute("SET preserve_insertion_order = true")
        # Without this DuckDB marks a column REQUIRED when the old object's statistics say it holds no NULL;
        # Firehose's (Hive's) schema declares every column OPTIONAL, and so must the new object.
        connection.execute("SET disabled_optimizers = 'statistics_propagation'")
        connection.execute(
            f"COPY (SELECT * FROM read_parquet({lake._quoted(str(old))}, hive_partitioning = false)"
            f" WHERE request_id IS NULL OR NOT list_contains({_id_list(removed)}, request_id))"
            f" TO {lake._quoted(str(new))} (FORMAT parquet, COMPRESSION {codec})"
        )
    finally:
        connection.close()


def check_rewrite(old: Path, new: Path, removed: frozenset[str], fmt: str) -> None:
    """``new`` is ``old`` without the rows of ``removed``, and nothing else changed: raises OpsError otherwise."""
    if object_format(new) != fmt:
        raise OpsError(f"{new.name}: not {fmt} like {old.name}")
    if fmt == "json":
        expected = [line for line in _json_lines(old.read_bytes()) if _json_id(line) not in removed]
        if _json_lines(new.read_bytes()) != expected:
            raise OpsError(f"{new.name}: its lines are not those of {old.name} without the erased requests'")
        return
    old_sql, new_sql = (f"read_parquet({lake._quoted(str(path))}, hive_partitioning = false)" for path in (old, new))
    keep = f"request_id IS NULL OR NOT list_contains({_id_list(removed)}, request_id)"
    connection = _duckdb().connect()
    try:
        old_schema = connection.execute(f"DESCRIBE SELECT * FROM {old_sql}").fetchall()
        new_schema = connection.execute(f"DESCRIBE SELECT * FROM {new_sql}").fetchall()
        physical = "SELECT name, type, repetition_type FROM parquet_schema({})"
        old_physical = connection.execute(physical.format(lake._quoted(str(old)))).fetchall()[1:]
        new_physical = connection.execute(physical.format(lake._quoted(str(new)))).fetchall()[1:]
        (missing,) = connection.execute(
            f"SELECT count(*) FROM (SELECT * FROM {old_sql} WHERE {keep} EXCEPT ALL SELECT * FROM {new_sql})"
        ).fetchone()
        (extra,) = connection.execute(
            f"SELECT count(*) FROM (SELECT * FROM {new_sql} EXCEPT ALL SELECT * FROM {old_sql} WHERE {keep})"
        ).fetchone()
    finally:
        connection.close()
    if old_schema != new_schema or old_physical != new_physical:
        raise OpsError(f"{new.name}: its schema differs from {old.name}'s")
    if parquet_compression(old) != parquet_compression(new):
        raise OpsError(f"{new.name}: compressed unlike {old.name}")
    if missing or extra:
        raise OpsError(f"{new.name}: {missing} rows of {old.name} missing and {extra} rows not in it")
