"""``chat-analytics compact``: the lake's complete days, one row per request, with DuckDB on this machine.

In AWS the stack's schedule runs ``sql/compact.sql`` in Athena every day (nothing runs between); this
command runs the same SELECT with DuckDB over a local lake directory (``--lake DIR``: ``requests/dt=*/``)
or over a copy of the stack's bucket (the local stack's, or a real one), writes each day as one Parquet
object per ``late`` partition under ``compacted/dt=YYYY-MM-DD/late=0|1/`` and, for a bucket, uploads
them under the same keys. A day already in ``compacted`` is skipped (the SQL says so), so a second run
changes nothing.

Then every compacted day of the range without a section summary is summarized (``sql/sections.sql``: in AWS
a second schedule runs it over older days) into one object under ``compacted/sections/dt=YYYY-MM-DD/``; a
day already summarized is skipped. A day whose summary an erasure deleted is summarized again by the next run
over it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from chat_analytics_ops import lake
from chat_analytics_ops.errors import OpsError
from chat_analytics_ops.outputs import LAKE_BUCKET_NAME, AwsContext

DEFAULT_BACK_DAYS = 4  # without --day/--from: today - 4 .. today - 2, as the schedule


@dataclass
class CompactResult:
    """What a run wrote: per day, the compacted rows and the raw rows they merge; the objects written."""

    first_dt: str
    last_dt: str
    days: dict[str, tuple[int, int]] = field(default_factory=dict)  # dt -> (compacted rows, raw rows)
    objects: list[Path] = field(default_factory=list)
    summarized: dict[str, int] = field(default_factory=dict)  # dt -> the late = '0' rows its summary counts

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.first_dt,
            "to": self.last_dt,
            "days": {day: {"rows": rows, "rawRows": raw} for day, (rows, raw) in sorted(self.days.items())},
            "summarized": dict(sorted(self.summarized.items())),
            "objects": len(self.objects),
        }

    def text(self) -> str:
        if not self.days and not self.summarized:
            return f"compact {self.first_dt}..{self.last_dt}: nothing to do (every day with rows is already compacted and summarized)"
        lines = [f"compact {self.first_dt}..{self.last_dt}: {len(self.days)} day(s), {len(self.objects)} object(s)"]
        lines += [f"  {day}: {raw:,} raw rows -> {rows:,} rows" for day, (rows, raw) in sorted(self.days.items())]
        lines += [f"  {day}: summarized ({rows:,} first-partition rows)" for day, rows in sorted(self.summarized.items())]
        return "\n".join(lines)


def complete_days(first: str, last: str, *, today: date) -> None:
    """Refuse a day that may still receive rows (after today - ``SETTLE_DAYS``)."""
    newest = (today - timedelta(days=lake.SETTLE_DAYS)).isoformat()
    if last > newest:
        raise OpsError(
            f"{last} is not complete yet: compact days up to {newest} (today - {lake.SETTLE_DAYS}, Firehose delivers a day by the next)"
        )
    if first > last:
        raise OpsError(f"--from {first} is after --to {last}")


def compact_directory(root: Path, first_dt: str, last_dt: str, *, threads: int | None = None) -> CompactResult:
    """Compact the days ``first_dt``..``last_dt`` of the lake under ``root`` (DuckDB); returns what was written."""
    result = CompactResult(first_dt, last_dt)
    select = lake.compact_sql().split("INSERT INTO compacted", 1)[1]
    result.objects.extend(
        _write_parquet(root, select, lake.compact_parameters(first_dt, last_dt), ("dt", "late"), "compacted", lake.COMPACTED_TABLE, threads)
    )
    if result.objects:
        listing = lake._file_list(result.objects)
        for day, rows, raw in _query(
            root,
            f"SELECT dt, count(*), sum(source_rows) FROM read_parquet({listing}, hive_partitioning = true) GROUP BY dt ORDER BY dt",
            threads,
        ):
            result.days[str(day)] = (int(rows), int(raw))
    summarize_directory(root, first_dt, last_dt, result, threads=threads)
    return result


def summarize_directory(root: Path, first_dt: str, last_dt: str, result: CompactResult, *, threads: int | None = None) -> None:
    """Summarize the compacted days ``first_dt``..``last_dt`` of the lake under ``root`` that have no summary yet
    (``sql/sections.sql``): one object per day under ``compacted/sections/dt=YYYY-MM-DD/``, added to ``result``."""
    select = lake.sections_sql().split(f"\nINSERT INTO {lake.SECTIONS_TABLE}\n", 1)[1]
    written = _write_parquet(root, select, lake.sections_parameters(first_dt, last_dt), ("dt",), "sections", lake.SECTIONS_PREFIX, threads)
    if written:
        for day, rows in _query(
            root,
            f"SELECT dt, sum(n) FROM read_parquet({lake._file_list(written)}, hive_partitioning = true)"
            " WHERE section = 'rows' GROUP BY dt ORDER BY dt",
            threads,
        ):
            result.summarized[str(day)] = int(rows)
    result.objects.extend(written)


def _write_parquet(
    root: Path, select: str, parameters: list[str | int], partition_by: tuple[str, ...], name: str, into: str, threads: int | None
) -> list[Path]:
    """Run ``select`` with DuckDB over the lake under ``root`` and write its rows as Parquet objects named
    ``name-<uuid>``, partitioned by ``partition_by``, into ``root / into`` (through a staging folder: a failed
    statement leaves nothing half written there); returns the objects written."""
    staging = root / f".{name}-{uuid.uuid4().hex[:8]}"
    connection = lake.DuckDBEngine(root, threads=threads).connect()
    try:
        connection.execute(
            f"COPY ({select}) TO {lake._quoted(str(staging))} "
            f"(FORMAT parquet, COMPRESSION snappy, PARTITION_BY ({', '.join(partition_by)}), FILENAME_PATTERN '{name}-{{uuid}}')",
            parameters,
        )
    finally:
        connection.close()
    written: list[Path] = []
    try:
        for path in sorted(staging.rglob("*.parquet")):
            target = root / into / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
            written.append(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _query(root: Path, sql: str, threads: int | None) -> list[tuple[Any, ...]]:
    """``sql``'s rows, on a DuckDB connection over the lake under ``root``."""
    connection = lake.DuckDBEngine(root, threads=threads).connect()
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def compact_bucket(s3: Any, bucket: str, first_dt: str, last_dt: str, cache: Path) -> CompactResult:
    """Compact days of the stack's bucket: copy what the SQL reads to ``cache``, compact there, upload the new
    objects under the same keys (``compacted/dt=.../late=.../``, ``compacted/sections/dt=.../``)."""
    lookback = (date.fromisoformat(first_dt) - timedelta(days=lake.LOOKBACK_DAYS)).isoformat()
    lake.sync_partitions(s3, bucket, lookback, last_dt, cache, prefixes=(lake.PREFIX,))
    lake.sync_partitions(s3, bucket, first_dt, last_dt, cache, prefixes=(lake.COMPACTED_PREFIX, lake.SECTIONS_PREFIX))
    result = compact_directory(cache, first_dt, last_dt)
    for path in result.objects:
        s3.upload_file(str(path), bucket, path.relative_to(cache).as_posix())
    return result


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """The ``compact`` subcommand, for cli.py's command tree."""
    parser = commands.add_parser(
        "compact",
        parents=[common],
        help="compact the event lake's complete days (one row per request) with DuckDB: a lake directory or the stack's bucket",
        description="Compact complete days of the event lake (sql/compact.sql) with DuckDB; in AWS the stack's schedule runs it in Athena.",
    )
    parser.add_argument("--day", metavar="YYYY-MM-DD", default=None, help="one day (UTC) to compact")
    parser.add_argument("--from", dest="start", metavar="YYYY-MM-DD", default=None, help="first day (default: today - 4)")
    parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", default=None, help="last day, inclusive (default: today - 2)")
    parser.add_argument("--lake", type=Path, metavar="DIR", default=None, help="compact the lake files in DIR (requests/dt=*/...)")
    parser.add_argument(
        "--cache", type=Path, metavar="DIR", default=None, help="the bucket's copy (default ~/.cache/chat-analytics/<stack>, report's)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=cmd_compact)


def _day(text: str, option: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise OpsError(f"{option} {text!r}: expected a day as YYYY-MM-DD") from None


def days_to_compact(day: str | None, start: str | None, end: str | None, *, today: date) -> tuple[str, str]:
    """The range ``--day`` or ``--from``/``--to`` names (default: today - 7 .. today - 2), complete days only."""
    if day and (start or end):
        raise OpsError("--day and --from/--to: give one of them")
    if day:
        first = last = _day(day, "--day")
    else:
        first = _day(start, "--from") if start else (today - timedelta(days=DEFAULT_BACK_DAYS)).isoformat()
        last = _day(end, "--to") if end else (today - timedelta(days=lake.SETTLE_DAYS)).isoformat()
    complete_days(first, last, today=today)
    return first, last


def cmd_compact(args: argparse.Namespace, ctx: AwsContext) -> int:
    first, last = days_to_compact(args.day, args.start, args.end, today=datetime.now(UTC).date())
    if args.lake is not None:
        if args.cache is not None:
            raise OpsError("--lake and --cache: give one of them (--cache is the bucket's copy)")
        if not args.lake.is_dir():
            raise OpsError(f"--lake {args.lake}: not a directory")
        result = compact_directory(args.lake, first, last)
    else:
        cache = args.cache or Path.home() / ".cache" / "chat-analytics" / ctx.stack_name
        result = compact_bucket(ctx.client("s3"), ctx.output(LAKE_BUCKET_NAME), first, last, cache)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.text())
    return 0
