"""The report read from the event lake with SQL: Athena in AWS, DuckDB on this machine, one ``report.sql``.

The processor sends each stored request's state to Firehose, which writes it (Parquet in AWS; moto
writes the JSON lines as they are) under ``requests/dt=YYYY-MM-DD/`` of the lake bucket, ``dt`` being
the UTC day the row arrived. The Glue table ``requests`` (partition projection on ``dt``) is what
Athena queries; for DuckDB this module makes a view of the same name over local copies of the files,
so ``sql/report.sql`` runs unchanged on both. Its rows become the same ``Report`` the table engine
builds (``report.build_report``), and a test holds the two equal on the same data.

A request's rows arrive on or after its day (a clock ahead by up to a day aside) and, when they wait in
the queue or the dead-letter queue, up to ``LATE_DAYS`` later, so a report of days D1..D2 reads the
partitions D1 - 1 .. D2 + ``LATE_DAYS`` (never past tomorrow).

The events the processor rejected are in a second table, ``rejected`` (``rejected/dt=YYYY-MM-DD/``, one
row per rejected record per receive); ``rejected_counts`` counts them by reason code with
``sql/rejected.sql``, on the same engines (DuckDB's view ``rejected`` is made like ``requests``).

Compaction (``sql/compact.sql``; Athena on the stack's daily schedule, DuckDB with ``chat-analytics compact``)
turns each complete day's raw rows into one row per request in a third table, ``compacted``
(``compacted/dt=YYYY-MM-DD/late=0|1/``); the report then reads a compacted day from it and the other days'
raw rows (``compacted_days`` says which days, ``sql/compacted_days.sql``), with the same figures. Each compacted
day is then summarized (``sql/sections.sql``; Athena on a second schedule over older days, DuckDB right after the
compaction) into a fourth table, ``compacted_sections`` (``compacted/sections/dt=YYYY-MM-DD/``): the day's
groups of the report's sections, which the report reads instead of the day's requests while the summary still
counts the day's first-partition rows (``lake_days``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from chat_analytics_ops import contract
from chat_analytics_ops.errors import OpsError, error_code
from chat_analytics_ops.report_model import Distribution, EngineInfo, RejectedCounts, Report, RequestTally, today_utc

if TYPE_CHECKING:  # the optional extra `lake`: imported when an engine connects
    import duckdb

# (column, Glue type) of the Glue table ``requests``, in its order: the package's copy of
# schema/lake-columns.json, which schema/generate.py writes from the processor's LAKE_COLUMNS.
COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (column["name"], column["type"])
    for column in json.loads(resources.files("chat_analytics_ops").joinpath("lake-columns.json").read_text(encoding="utf-8"))["columns"]
)
TABLE = "requests"  # the Glue table, and the DuckDB view named like it
PREFIX = "requests/"  # where Firehose writes in the lake bucket: requests/dt=YYYY-MM-DD/<object>
# The Glue table ``rejected`` (the package's copy of schema/rejected-columns.json), its view and its folder.
REJECTED_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (column["name"], column["type"])
    for column in json.loads(resources.files("chat_analytics_ops").joinpath("rejected-columns.json").read_text(encoding="utf-8"))["columns"]
)
REJECTED_TABLE = "rejected"
REJECTED_PREFIX = "rejected/"
# The table compaction writes: the lake's columns, how many raw rows each row merges, and the partitions
# dt (the raw rows' day) and late ('1': the request also has rows in an earlier partition).
COMPACTED_TABLE = contract.COMPACTED_TABLE
COMPACTED_PREFIX = contract.COMPACTED_PREFIX
COMPACTED_COLUMNS: tuple[tuple[str, str], ...] = (*COLUMNS, ("source_rows", "bigint"))
COMPACTED_PARTITIONS = ("dt", "late")
# The compacted days' section summaries (sql/sections.sql): one row per (section, key) and partition dt, under
# compacted/sections/ (the compacted table's folder: its readers, its lifecycle rule and erasure reach it).
SECTIONS_TABLE = contract.SECTIONS_TABLE
SECTIONS_PREFIX = contract.SECTIONS_PREFIX
SECTIONS_COLUMNS = contract.SECTIONS_COLUMNS
SECTIONS_PARTITIONS = ("dt",)
# What the report's SQL holds in place of the lists of compacted and summarized days (lake.py writes them there).
COMPACTED_DAYS_MARKER = "('compacted days')"
SUMMARIZED_DAYS_MARKER = "('summarized days')"
NO_COMPACTED_DAY = "('none')"  # an IN list no partition matches
# A rejected row arrives in Firehose minutes after the processor received its record: on that day or the next.
REJECTED_LATE_DAYS = 1
EARLY_DAYS = 1  # a producer's clock ahead: a row can arrive the day before its request's day
LATE_DAYS = 14  # the queues keep messages 14 days at most: no row arrives later than that
# Compaction looks this far back for a request's earlier rows (its rows arrive from its day - 1 to its day + 14).
LOOKBACK_DAYS = EARLY_DAYS + LATE_DAYS
# A day is compacted once complete: Firehose delivers a day's last rows by the next day (it retries a
# failed delivery for 24 hours), so the schedule and ``compact`` take days up to today - 2.
SETTLE_DAYS = 2
MAX_LAKE_DAYS = 3660  # a report over the lake: up to ten years
# report.sql's distribution sections, in the order RequestTally.report takes them.
DISTRIBUTIONS = ("answer_ms", "response_ms", "query_lag_ms", "response_lag_ms")
MATCH_CODES = {code: kind for kind, code in contract.MATCH_CODES.items()}  # report.sql's match_code, to its type
_DUCKDB_TYPES = {"string": "VARCHAR", "bigint": "BIGINT", "int": "INTEGER", "double": "DOUBLE", "boolean": "BOOLEAN"}
PARQUET_MAGIC = b"PAR1"


# The shared names report.sql reads are written once (contract.py) and filled into the statement when it is loaded.
_CANARY_SOURCE_PLACEHOLDER = "{{canary_source}}"
_MATCH_CODE_PLACEHOLDER = re.compile(r"\{\{match_code\(([a-z_.]+)\)\}\}")


def _match_code_case(column: str) -> str:
    whens = " ".join(f"WHEN '{kind}' THEN {code}" for kind, code in contract.MATCH_CODES.items())
    return f"CASE {column} {whens} END"


def render_shared_names(sql: str) -> str:
    """``sql`` with the contract's names written in: ``{{canary_source}}`` (a quoted literal) and
    ``{{match_code(column)}}`` (the CASE that turns a match type into its code)."""
    sql = sql.replace(_CANARY_SOURCE_PLACEHOLDER, _quoted(contract.CANARY_SOURCE))
    return _MATCH_CODE_PLACEHOLDER.sub(lambda found: _match_code_case(found.group(1)), sql)


def report_sql() -> str:
    """``sql/report.sql``, as shipped in the package, with the contract's names written in."""
    return render_shared_names(resources.files("chat_analytics_ops").joinpath("sql/report.sql").read_text(encoding="utf-8"))


def compact_sql() -> str:
    """``sql/compact.sql``: Athena's ``INSERT INTO compacted SELECT ...`` (DuckDB runs the SELECT)."""
    return resources.files("chat_analytics_ops").joinpath("sql/compact.sql").read_text(encoding="utf-8")


def compact_parameters(first_dt: str, last_dt: str) -> list[str | int]:
    """``compact.sql``'s parameters for the days ``first_dt``..``last_dt``."""
    lookback = (date.fromisoformat(first_dt) - timedelta(days=LOOKBACK_DAYS)).isoformat()
    return [first_dt, last_dt, first_dt, last_dt, lookback, last_dt]


def sections_sql() -> str:
    """``sql/sections.sql``: Athena's ``INSERT INTO compacted_sections SELECT ...`` (DuckDB runs the SELECT), with
    the contract's names written in."""
    return render_shared_names(resources.files("chat_analytics_ops").joinpath("sql/sections.sql").read_text(encoding="utf-8"))


def sections_parameters(first_dt: str, last_dt: str) -> list[str | int]:
    """``sections.sql``'s parameters for the days ``first_dt``..``last_dt``."""
    return [first_dt, last_dt, first_dt, last_dt]


def compacted_days_sql() -> str:
    return resources.files("chat_analytics_ops").joinpath("sql/compacted_days.sql").read_text(encoding="utf-8")


# compacted_days.sql for a stack without the summaries' table (deployed before it): no day has a summary.
_SECTIONS_FROM = "FROM compacted_sections WHERE"
_NO_SECTIONS_FROM = (
    "FROM (SELECT CAST(NULL AS VARCHAR) AS dt, CAST(NULL AS BIGINT) AS n, CAST(NULL AS VARCHAR) AS section) AS no_summary WHERE"
)


def _days_list(days: Sequence[str]) -> str:
    for day in days:
        date.fromisoformat(day)
    return "(" + ", ".join(_quoted(day) for day in days) + ")" if days else NO_COMPACTED_DAY


def report_sql_for(compacted: Sequence[str], summarized: Sequence[str] = ()) -> str:
    """``report.sql`` with the days read from ``compacted`` rows and the days read from their summaries
    (``compacted_sections``) written in as literals (Athena prunes partitions by literal predicates; each is an
    ISO date, checked here). A day is in one list at most."""
    both = set(compacted) & set(summarized)
    if both:
        raise OpsError(f"days both compacted and summarized: {', '.join(sorted(both))}")
    sql = report_sql()
    for marker in (COMPACTED_DAYS_MARKER, SUMMARIZED_DAYS_MARKER):
        if marker not in sql:
            raise OpsError(f"report.sql has no {marker} to replace")
    for name, days in (("compacted days", compacted), ("summarized days", summarized)):
        if not days:  # the block that reads these days' rows: nothing to read, and its join would scan late_row again
            sql, removed = re.subn(rf"^ *-- {name}: begin\n.*?^ *-- {name}: end\n", "", sql, flags=re.S | re.M)
            if removed != 1:
                raise OpsError(f"report.sql has no block '-- {name}: begin' .. '-- {name}: end'")
    return sql.replace(COMPACTED_DAYS_MARKER, _days_list(compacted)).replace(SUMMARIZED_DAYS_MARKER, _days_list(summarized))


def rejected_sql() -> str:
    """``sql/rejected.sql``, as shipped in the package."""
    return resources.files("chat_analytics_ops").joinpath("sql/rejected.sql").read_text(encoding="utf-8")


def partition_range(days: Sequence[str], *, today: date | None = None) -> tuple[str, str]:
    """The ``dt`` partitions that can hold the rows of requests of ``days`` (first, last)."""
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    newest = (today or today_utc()) + timedelta(days=1)
    return (first - timedelta(days=EARLY_DAYS)).isoformat(), min(last + timedelta(days=LATE_DAYS), max(newest, last)).isoformat()


class Engine(Protocol):
    name: str

    def run(self, sql: str, parameters: Sequence[str | int]) -> tuple[list[dict[str, Any]], EngineInfo]: ...


def lake_report(engine: Engine, days: list[str], *, top: int, stack_name: str = "", summaries: bool = True) -> Report:
    """The report of ``days`` computed by ``engine`` from the lake: which days are compacted and summarized (a
    small query), then the report's one query. ``summaries`` False reads the summarized days from their
    compacted rows (the same figures: tests and the benchmark compare the two)."""
    first_dt, last_dt = partition_range(days)
    session = getattr(engine, "session", None)  # DuckDB: both queries over one connection (the files' views made once)
    with session() if session is not None else contextlib.nullcontext():
        return _lake_report(engine, days, first_dt, last_dt, top=top, stack_name=stack_name, summaries=summaries)


def _lake_report(engine: Engine, days: list[str], first_dt: str, last_dt: str, *, top: int, stack_name: str, summaries: bool) -> Report:
    read = lake_days(engine, first_dt, last_dt)
    if not summaries:
        read = replace(read, compacted=sorted(read.compacted + read.summarized), summarized=[])
    first, last = day_number(days[0]), day_number(days[-1])
    rows, info = engine.run(report_sql_for(read.compacted, read.summarized), [first_dt, last_dt, first, last, top])
    if read.scanned is not None and info.bytes_scanned is not None:
        info = replace(info, bytes_scanned=info.bytes_scanned + read.scanned)
    detail = (
        f"{len(read.compacted) + len(read.summarized)} of the {_days_between(first_dt, last_dt)} partitions read compacted"
        + (f" ({len(read.summarized)} from their summaries)" if read.summarized else "")
        + (f" ({read.note})" if read.note else "")
    )
    info = replace(info, detail="; ".join(part for part in (info.detail, detail) if part))
    return report_from_rows(rows, days, stack_name=stack_name, engine=info)


def _days_between(first_dt: str, last_dt: str) -> int:
    return (date.fromisoformat(last_dt) - date.fromisoformat(first_dt)).days + 1


@dataclass(frozen=True)
class LakeDays:
    """How a report reads the partitions of its range: ``compacted`` from the compacted rows, ``summarized`` from
    their section summaries (the others raw); ``note`` when a table could not be read; the bytes scanned."""

    compacted: list[str]
    summarized: list[str]
    note: str = ""
    scanned: int | None = None


def lake_days(engine: Engine, first_dt: str, last_dt: str) -> LakeDays:
    """The partitions of ``first_dt``..``last_dt`` to read from ``compacted`` (compacted, and no raw row since) and,
    of those, the ones to read from their summary (it still counts every ``late`` = '0' row of the day). Without
    the summaries' table (a stack deployed before it) no day is summarized; without ``compacted`` none is
    compacted: the report reads every raw row, the same figures, and the note says why."""
    parameters: list[str | int] = [first_dt, last_dt] * 3
    note = ""
    try:
        rows, info = engine.run(compacted_days_sql(), parameters)
    except OpsError as error:
        note = f"the {SECTIONS_TABLE} table not read: {error}"
        try:
            rows, info = engine.run(compacted_days_sql().replace(_SECTIONS_FROM, _NO_SECTIONS_FROM), parameters)
        except OpsError as second:
            return LakeDays([], [], f"the {COMPACTED_TABLE} table not read: {second}")
    compacted: list[str] = []
    summarized: list[str] = []
    for row in rows:
        if int(row["raw_rows"]) != int(row["compacted_rows"]):
            continue
        summary = row.get("summarized_rows")
        (summarized if summary is not None and int(summary) == int(row["first_rows"]) else compacted).append(str(row["dt"]))
    return LakeDays(compacted, summarized, note, info.bytes_scanned)


def compacted_days(engine: Engine, first_dt: str, last_dt: str) -> tuple[list[str], str, int | None]:
    """The partitions of ``first_dt``..``last_dt`` read compacted (from their rows or their summaries), a note when
    a table could not be read, and the bytes the query scanned (``lake_days``, both lists in one)."""
    read = lake_days(engine, first_dt, last_dt)
    return sorted(read.compacted + read.summarized), read.note, read.scanned


def rejected_counts(engine: Engine, days: list[str]) -> RejectedCounts:
    """The events rejected on ``days`` (the UTC day the processor received them), by reason code: each SQS
    message once, however many times it was received. A query that fails (a stack deployed before the table
    existed) is one line in the report, not an error: the report's other figures stand."""
    last_dt = (date.fromisoformat(days[-1]) + timedelta(days=REJECTED_LATE_DAYS)).isoformat()
    try:
        rows, _ = engine.run(rejected_sql(), [days[0], last_dt, days[0], days[-1]])
    except OpsError as error:
        return RejectedCounts([], 0, note=f"not read from the lake table {REJECTED_TABLE}: {error}")
    by_reason = [(str(row["reason"]), int(row["events"])) for row in rows]
    return RejectedCounts(by_reason, sum(int(row["receives"]) for row in rows))


def day_number(day: str) -> int:
    """``2026-06-01`` as report.sql groups days: 20260601."""
    return int(day.replace("-", ""))


def day_text(number: int) -> str:
    return f"{number // 10000:04d}-{number // 100 % 100:02d}-{number % 100:02d}"


def report_from_rows(rows: list[dict[str, Any]], days: list[str], *, stack_name: str = "", engine: EngineInfo | None = None) -> Report:
    """The ``Report`` from ``report.sql``'s rows (one per section and key)."""
    tally = RequestTally(days)
    ranked: dict[str, list[tuple[float, int]]] = {section: [] for section in DISTRIBUTIONS}
    totals: dict[str, int] = dict.fromkeys(DISTRIBUTIONS, 0)
    questions: list[tuple[int, str, int]] = []
    for row in rows:
        section = row["section"]
        if int(row["n"]) < 0:  # a summarized day subtracted more than its summary counts: never a report
            raise OpsError(f"the lake's answer counts {row['n']} in section {section!r}: its summaries disagree with its rows")
        if section == "day":
            tally.add(
                day_text(int(row["day_number"])),
                int(row["n"]),
                canary=bool(row["canary"]),
                has_query=bool(row["has_query"]),
                match_type=MATCH_CODES.get(row["match_code"]),
                score_sum=None if row["score_sum"] is None else float(row["score_sum"]),
                score_bin=None if row["score_bin"] is None else int(row["score_bin"]),
            )
        elif section == "question":
            questions.append((int(row["position"]), row["question"], int(row["n"])))
        elif section in DISTRIBUTIONS:
            ranked[section].append((float(row["value"]), int(row["upto"])))
            totals[section] = int(row["total"])
        else:
            raise OpsError(f"the lake's answer has an unknown section {section!r}")
    answer, response, query_lag, response_lag = (Distribution.from_ranked(ranked[section], totals[section]) for section in DISTRIBUTIONS)
    top_unmatched = [(question, count) for _, question, count in sorted(questions)]
    return tally.report(days, (answer, response, query_lag, response_lag), top_unmatched, stack_name=stack_name, engine=engine)


# --- DuckDB: the lake's files on this machine ---------------------------------------------------------


def lake_files(root: Path, table: str = TABLE) -> tuple[list[Path], list[Path]]:
    """The Parquet and the JSON-lines files under ``root``'s ``requests/dt=*/`` (told apart by content); with
    ``table`` ``rejected``, under ``root/rejected/dt=*/`` (only there: ``root`` may be a ``requests`` folder);
    ``compacted_sections`` under ``root/compacted/sections/dt=*/``."""
    if table != TABLE:
        base = root / (SECTIONS_PREFIX.rstrip("/") if table == SECTIONS_TABLE else table)
        if not base.is_dir():
            return [], []
    else:
        base = root / TABLE if (root / TABLE).is_dir() else root
    parquet: list[Path] = []
    json_lines: list[Path] = []
    for path in sorted(base.glob("dt=*/**/*")):
        if not path.is_file() or path.stat().st_size == 0 or path.name.endswith(".part"):  # .part: a copy in progress
            continue
        with path.open("rb") as handle:
            (parquet if handle.read(4) == PARQUET_MAGIC else json_lines).append(path)
    return parquet, json_lines


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_list(paths: list[Path]) -> str:
    return "[" + ", ".join(_quoted(str(path)) for path in paths) + "]"


class DuckDBEngine:
    """DuckDB over a directory of lake files: a view ``requests`` with the Glue table's columns and ``dt``, and a
    view ``rejected`` likewise over ``rejected/dt=*/``.

    Parquet (what Firehose writes in AWS) and JSON lines (what moto's Firehose writes) may be mixed;
    files of an older or newer schema are read by column name (a missing column is NULL), which is how
    Athena reads Parquet too.
    """

    name = "duckdb"

    def __init__(self, root: Path, *, threads: int | None = None, detail: str = "") -> None:
        self.root = root
        self.threads = threads
        self.detail = detail
        self._session: duckdb.DuckDBPyConnection | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Run every query of the block over one connection: the views (the files they list) are made once. A
        session inside a session uses the outer one (and leaves it open)."""
        if self._session is not None:
            yield
            return
        self._session = self.connect()
        try:
            yield
        finally:
            self._session.close()
            self._session = None

    def connect(self) -> duckdb.DuckDBPyConnection:
        try:
            import duckdb
        except ImportError:
            raise OpsError("the duckdb engine needs DuckDB: pip install 'chat-analytics-ops[lake]'") from None
        connection = duckdb.connect()
        if self.threads:
            connection.execute(f"SET threads = {int(self.threads)}")
        # Each view reads every file's footer (union_by_name), and each query binding a view reads them again
        # without this; the cache is the connection's and a rewritten file (a newer mtime) is read anew.
        connection.execute("SET parquet_metadata_cache = true")
        for table, columns, partitions in (
            (TABLE, COLUMNS, ("dt",)),
            (REJECTED_TABLE, REJECTED_COLUMNS, ("dt",)),
            (COMPACTED_TABLE, COMPACTED_COLUMNS, COMPACTED_PARTITIONS),
            (SECTIONS_TABLE, SECTIONS_COLUMNS, SECTIONS_PARTITIONS),
        ):
            connection.execute(f"CREATE VIEW {table} AS {self._view(table, columns, partitions)}")
        return connection

    def _view(self, table: str, columns: tuple[tuple[str, str], ...], partitions: tuple[str, ...] = ("dt",)) -> str:
        """The view's query: a typed empty table (every column, even without files), then the files by column name."""
        typed = ", ".join(
            [f"CAST(NULL AS {_DUCKDB_TYPES[kind]}) AS {name}" for name, kind in columns]
            + [f"CAST(NULL AS VARCHAR) AS {name}" for name in partitions]
        )
        parts = [f"SELECT {typed} WHERE false"]
        parquet, json_lines = lake_files(self.root, table)
        hive = "hive_partitioning = true, hive_types = {" + ", ".join(f"'{name}': 'VARCHAR'" for name in partitions) + "}"
        if parquet:
            parts.append(f"SELECT * FROM read_parquet({_file_list(parquet)}, {hive}, union_by_name = true)")
        if json_lines:
            spec = "{" + ", ".join(f"{_quoted(name)}: {_quoted(_DUCKDB_TYPES[kind])}" for name, kind in columns) + "}"
            parts.append(f"SELECT * FROM read_json({_file_list(json_lines)}, format = 'newline_delimited', columns = {spec}, {hive})")
        return " UNION ALL BY NAME ".join(parts)

    def run(self, sql: str, parameters: Sequence[str | int]) -> tuple[list[dict[str, Any]], EngineInfo]:
        started = time.monotonic()
        connection = self._session or self.connect()
        try:
            cursor = connection.execute(sql, list(parameters))
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        finally:
            if connection is not self._session:
                connection.close()
        return rows, EngineInfo(self.name, time.monotonic() - started, None, self.detail)


@dataclass(frozen=True)
class SyncResult:
    objects: int
    downloaded: int
    bytes_downloaded: int
    removed: int = 0


def sync_partitions(
    s3: Any,
    bucket: str,
    first_dt: str,
    last_dt: str,
    cache: Path,
    *,
    prefixes: Sequence[str] = (PREFIX, REJECTED_PREFIX, COMPACTED_PREFIX, SECTIONS_PREFIX),
) -> SyncResult:
    """Make ``cache``'s partitions ``first_dt``..``last_dt`` of each table (``prefixes``: the requests, the
    rejected events, the compacted requests and their summaries) a copy of the bucket's (same keys).

    Firehose never rewrites an object, so one already there with the same size is kept; a local file
    the bucket no longer has (expired by the lifecycle rule, or another stack's) is removed, so the
    copy never reports more than the lake holds.
    """
    start, end = date.fromisoformat(first_dt), date.fromisoformat(last_dt)
    folders = [
        f"{table}dt={(start + timedelta(days=offset)).isoformat()}/" for table in prefixes for offset in range((end - start).days + 1)
    ]
    done = [mirror_prefix(s3, bucket, prefix, cache) for prefix in folders]
    return SyncResult(
        objects=sum(part.objects for part in done),
        downloaded=sum(part.downloaded for part in done),
        bytes_downloaded=sum(part.bytes_downloaded for part in done),
        removed=sum(part.removed for part in done),
    )


def mirror_prefix(s3: Any, bucket: str, prefix: str, cache: Path) -> SyncResult:
    """Make ``cache / prefix`` a copy of the bucket's objects under ``prefix`` (same keys): an object is downloaded
    when missing or of another size (through a ``.part`` file, so a cut download is never read), a local file the
    bucket no longer has is removed."""
    objects = downloaded = size = removed = 0
    listed: set[Path] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            objects += 1
            target = cache / entry["Key"]
            listed.add(target)
            if target.is_file() and target.stat().st_size == entry["Size"]:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            s3.download_file(bucket, entry["Key"], str(partial))
            partial.replace(target)
            downloaded += 1
            size += entry["Size"]
    local = cache / prefix
    if local.is_dir():
        for path in local.rglob("*"):
            if path.is_file() and path not in listed:
                path.unlink()
                removed += 1
    return SyncResult(objects, downloaded, size, removed)


# --- Athena: the Glue table in AWS --------------------------------------------------------------------

FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
_ATHENA_TYPES: dict[str, Callable[[str], Any]] = {
    "bigint": int,
    "integer": int,
    "int": int,
    "smallint": int,
    "tinyint": int,
    "double": float,
    "float": float,
    "real": float,
    "decimal": float,
    "boolean": lambda text: text.lower() == "true",
}


def athena_literal(value: str | int) -> str:
    """An ``ExecutionParameters`` entry: Athena substitutes it as SQL text, so strings are quoted literals."""
    return str(value) if isinstance(value, int) else _quoted(value)


class AthenaEngine:
    """Runs a query in the stack's workgroup (its scan limit and result location are enforced) and
    reads the answer, waiting at most ``timeout_s`` (the query is stopped after that)."""

    name = "athena"

    def __init__(
        self, athena: Any, work_group: str, database: str, *, timeout_s: float = 300.0, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.athena, self.work_group, self.database = athena, work_group, database
        self.timeout_s, self.sleep = timeout_s, sleep

    def run(self, sql: str, parameters: Sequence[str | int]) -> tuple[list[dict[str, Any]], EngineInfo]:
        started = time.monotonic()
        try:
            query_id = self.athena.start_query_execution(
                QueryString=sql,
                QueryExecutionContext={"Database": self.database},
                WorkGroup=self.work_group,
                ExecutionParameters=[athena_literal(value) for value in parameters],
            )["QueryExecutionId"]
        except ClientError as error:
            message = str(error.response.get("Error", {}).get("Message", ""))
            if error_code(error) == "InvalidRequestException" and "workgroup" in message.lower():
                raise OpsError(
                    f"athena workgroup {self.work_group} not usable at {self._endpoint()}: {message}"
                    " (is the stack deployed with its event lake? or use --engine duckdb)"
                ) from None
            raise
        execution = self._wait(query_id, started)
        status = execution["Status"]
        if status["State"] != "SUCCEEDED":
            reason = " ".join(str(status.get("StateChangeReason") or "no reason given").split())
            raise OpsError(f"athena query {query_id} {status['State'].lower()}: {reason}")
        rows = self._rows(query_id)
        scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
        return rows, EngineInfo(self.name, time.monotonic() - started, scanned, f"query {query_id}")

    def _wait(self, query_id: str, started: float) -> dict[str, Any]:
        delay = 0.2
        while True:
            execution = self.athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            if execution["Status"]["State"] in FINAL_STATES:
                return execution
            if time.monotonic() - started > self.timeout_s:
                self.athena.stop_query_execution(QueryExecutionId=query_id)
                raise OpsError(f"athena query {query_id} did not finish within {self.timeout_s:.0f} s (stopped)")
            self.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _rows(self, query_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        columns: list[tuple[str, Callable[[str], Any] | None]] = []
        header_skipped = False
        for page in self.athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
            result = page["ResultSet"]
            if not columns:
                columns = [(info["Name"], _ATHENA_TYPES.get(info["Type"].lower())) for info in result["ResultSetMetadata"]["ColumnInfo"]]
            for raw in result.get("Rows", []):
                texts = [cell.get("VarCharValue") for cell in raw["Data"]]
                if not header_skipped:  # a SELECT's first row repeats the column names
                    header_skipped = True
                    if texts == [name for name, _ in columns]:
                        continue
                rows.append(
                    {
                        name: (None if text is None else convert(text) if convert else text)
                        for (name, convert), text in zip(columns, texts, strict=True)
                    }
                )
        if not columns:
            # Athena describes the columns of every SELECT's result, even one without rows
            # (https://docs.aws.amazon.com/athena/latest/APIReference/API_ResultSetMetadata.html); an answer
            # without them comes from an endpoint that runs no queries: moto's Athena in the local stack
            # answers every query with nothing, which would be a report of zeros.
            raise OpsError(
                f"athena query {query_id} 'succeeded' without a result (no columns; every SELECT has them):"
                f" the Athena at {self._endpoint()} runs no queries (the local moto stack's does not): use --engine duckdb"
            )
        return rows

    def _endpoint(self) -> str:
        meta = getattr(self.athena, "meta", None)
        return str(getattr(meta, "endpoint_url", None) or "this endpoint")
