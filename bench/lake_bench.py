"""Event-lake benchmark: how long the report takes on DuckDB, and what Athena would scan and bill for it.

The issue's targets for the lake report (``chat-analytics report --engine duckdb|athena``, one ``report.sql``):
a 90-day report in <= 5 s on DuckDB over local files, and <= 10 GB scanned (<= $0.05) per Athena run at
100M questions a month. Measured here:

1. **A synthetic lake** in Firehose's layout: Parquet (SNAPPY, DuckDB's writer) under
   ``<dir>/requests/dt=YYYY-MM-DD/<object>``, the columns, types and order of ``lake.COLUMNS`` (the Glue
   table's: Firehose writes the table's order; ``--columns`` takes another lake-columns.json, e.g. an
   older revision's), ``dt`` the UTC day the row arrived. By default 10M requests over 90 days: ~3% stored
   in two rows (the query, later the complete state), ~1% replayed (a duplicate complete row), ~2% never
   answered, ~1% of rows arriving a day late, match types ~50/30/20 (full/partial/none), questions drawn
   Zipf-like from ~50,000 distinct texts. Made with DuckDB SQL (no Python loop over rows) and cached in
   ``--dir``; ``--regenerate`` makes it again.
   Objects per partition: each object covers one slice of the day's arrival time (as Firehose's buffer
   does), and the default count gives each object the rows Firehose would put in one 900 s buffer
   (96 objects a day) at 100M questions a month (~34,700 rows), because the bytes per row of a Parquet
   column chunk depend on how many rows share it; ``--files-per-day 96`` gives the 96 objects a day of
   the data set's own (smaller) volume instead.
2. **DuckDB wall time** of ``lake.lake_report(lake.DuckDBEngine(dir), days, top=10)`` (the view over the
   files, the one query, the ``Report``), for the 90 days and for the last 7, ``--runs`` runs each: min,
   median (``--runs 0`` skips it).
3. **Athena's scanned bytes**, from the files' own footers (DuckDB's ``parquet_metadata``), two ways:
   - *column chunks*: the sum of ``total_compressed_size`` of the chunks of the columns ``report.sql``
     reads, over the partitions ``lake.partition_range`` gives for the report's days (what a reader that
     fetches exactly those chunks would read);
   - *as Trino reads them* (Athena engine version 3 is built on Trino): with the Parquet reader's default
     settings, a file of at most ``parquet.small-file-threshold`` (3 MB = 3 MiB) is read whole; in a larger
     one the chunks read are merged into one read when less than ``parquet.max-merge-distance`` (1 MiB)
     apart and the merged read stays within ``parquet.max-buffer-size`` (8 MiB), so the bytes between
     them are read too, and the footer is read as the file's last 48 KiB (more when the footer is larger).
   Both are scaled linearly to 100M questions a month (90 days ~ 300M requests) and priced at $5 per TB
   (10^12 bytes; 10 MB minimum per query). The column-chunk sum with ``request_id`` (36-character text) in
   place of ``request_key`` (64-bit) shows what the key saves. The last line is the 90-day report's
   Trino-style figure against the target.

    .venv/bin/python bench/lake_bench.py [--requests 10000000] [--days 90] [--dir /tmp/chat-analytics-lake-bench]
        [--regenerate] [--files-per-day N] [--columns lake-columns.json] [--runs 5] [--threads N] [--json out.json]

4. **The report over compacted and summarized days** (``--compact``): ``compact.compact_directory`` writes
   every day of the data set into ``<dir>-compacted/compacted/`` and its section summary into
   ``<dir>-compacted/compacted/sections/`` (cached like the data set; its ``requests`` is a link to
   ``<dir>/requests``), then the 90-day report is timed there three ways, interleaved, in the same process,
   CPU seconds (``getrusage``: the machine is shared, wall time is not the work): over the raw files, over
   the compacted rows (``summaries=False``) and over the summaries (the default). Against them the
   **column-read floors**: DuckDB reading files and hashing the 11 columns report.sql reads
   (``SELECT sum(hash(...))``): the raw files, the compacted files (the same requests' rows: the honest
   floor of the summarized report too), and the summary files (their 10 columns) plus the compacted files,
   which is what the summarized report opens. A fourth report reads the lake as the stack's schedules leave
   it on the day after the data set's last (``<dir>-compacted-steady``, links: that day raw, the three before
   it compacted only, every older day summarized), over the floor of its compacted files. The last line is
   the summarized report's CPU over the compacted files' floor (target <= 2.5).

Athena's own wall time (its p95) cannot be measured without AWS; see docs/benchmarks/lake.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ops" / "src"))

from chat_analytics_ops import compact, lake

DEFAULT_DIR = Path("/tmp/chat-analytics-lake-bench")
FIRST_DAY = date(2026, 6, 1)  # the data set's first request day (in the past, so every partition is read)
VOCABULARY = 50_000  # distinct question texts
TARGET_QUESTIONS_PER_MONTH = 100_000_000
FIREHOSE_OBJECTS_PER_DAY = 96  # a 900 s buffer
PRICE_PER_TB = 5.0  # Athena, per 10^12 bytes scanned
ATHENA_MINIMUM_BYTES = 10 * 1000**2
TARGET_BYTES = 10 * 1000**3  # the target per 90-day report at 100M questions a month: 10 GB ...
TARGET_USD = 0.05  # ... and $0.05
# Trino's Parquet reader, default settings (Athena engine version 3 is built on Trino; it does not publish its
# own values): trino.io/docs/current/object-storage/file-formats.html (parquet.small-file-threshold),
# io.trino.parquet.ParquetReaderOptions (the defaults), AbstractParquetDataSource (how reads are merged),
# MetadataReader (the footer). Trino's data sizes are binary: 1MB = 2^20 bytes.
SMALL_FILE_THRESHOLD = 3 * 1024**2  # parquet.small-file-threshold: a file of at most this size is read whole
MAX_MERGE_DISTANCE = 1 * 1024**2  # parquet.max-merge-distance: chunks closer than this are one read (the gap too)
MAX_BUFFER_SIZE = 8 * 1024**2  # parquet.max-buffer-size: a merged read stays within this; a larger chunk is read alone
FOOTER_TAIL = 48 * 1024  # MetadataReader reads the file's last 48 KiB, then the rest of a larger footer
# The columns report.sql reads (its inner SELECT); dt is the partition, not a column of the files.
REPORT_COLUMNS = (
    "request_key",
    "day",
    "source",
    "question_key",
    "match_type",
    "match_score",
    "latency_ms",
    "response_latency_ms",
    "query_ingest_lag_ms",
    "response_ingest_lag_ms",
    "complete",
)
# The summaries' columns (sql/sections.sql's output), all of which the summarized report reads.
SECTION_COLUMNS = tuple(name for name, _ in lake.SECTIONS_COLUMNS)
DAY_MS = 86_400_000

TEMPLATES = [
    "Does {n} have experience with {s}{q}?",
    "How many years of {s} does {n} have{q}?",
    "Has {n} worked with {s}{q}?",
    "What projects used {s}{q}?",
    "Is {n} certified in {s}{q}?",
    "Can {n} lead a team using {s}{q}?",
    "Tell me about {n}'s {s} work{q}",
    "Did {n} ever teach {s}{q}?",
    "Would {n} be a fit for a {s} role{q}?",
    "What is {n}'s strongest {s} skill{q}?",
    "Where did {n} learn {s}{q}?",
    "Has {n} shipped {s} to production{q}?",
    "Rate {n}'s {s} level{q}",
    "Any open source {s} contributions{q}?",
    "Does {n} know {s} well enough to mentor{q}?",
    "What {s} tools does {n} prefer{q}?",
    "Has {n} debugged {s} performance issues{q}?",
    "Did {n} design {s} systems{q}?",
    "Is {s} on {n}'s CV{q}?",
    "Would {n} relocate for a {s} job{q}?",
    "Has {n} written about {s}{q}?",
    "How recent is {n}'s {s} experience{q}?",
    "Did {n} migrate anything to {s}{q}?",
    "Does {n} like working with {s}{q}?",
    "What certifications in {s} does {n} hold{q}?",
]
SKILLS = [
    "Python",
    "Go",
    "Rust",
    "Java",
    "Kotlin",
    "Scala",
    "TypeScript",
    "JavaScript",
    "C",
    "C++",
    "C#",
    "Ruby",
    "PHP",
    "Elixir",
    "Haskell",
    "OCaml",
    "Swift",
    "R",
    "Julia",
    "SQL",
    "PostgreSQL",
    "MySQL",
    "SQLite",
    "DynamoDB",
    "Cassandra",
    "MongoDB",
    "Redis",
    "Kafka",
    "RabbitMQ",
    "SQS",
    "Kinesis",
    "Spark",
    "Flink",
    "Airflow",
    "dbt",
    "Snowflake",
    "BigQuery",
    "Redshift",
    "Athena",
    "DuckDB",
    "Parquet",
    "Terraform",
    "CDK",
    "CloudFormation",
    "Pulumi",
    "Ansible",
    "Docker",
    "Kubernetes",
    "Helm",
    "Nomad",
    "Linux",
    "AWS",
    "GCP",
    "Azure",
    "Lambda",
    "EC2",
    "S3",
    "CloudWatch",
    "Prometheus",
    "Grafana",
    "OpenTelemetry",
    "React",
    "Vue",
    "Svelte",
    "Angular",
    "Django",
    "Flask",
    "FastAPI",
    "Rails",
    "Spring",
    "GraphQL",
    "gRPC",
    "REST",
    "WebSockets",
    "OAuth",
    "Cloudflare",
    "Workers",
    "Nginx",
    "Envoy",
    "Istio",
    "PyTorch",
    "TensorFlow",
    "scikit-learn",
    "pandas",
    "NumPy",
    "LLMs",
    "RAG",
    "embeddings",
    "Elasticsearch",
    "OpenSearch",
    "Git",
    "CI/CD",
    "GitHub",
    "Jenkins",
    "Bazel",
    "Make",
    "security",
    "cryptography",
    "networking",
][:100]
QUALIFIERS = [
    "",
    " recently",
    " in production",
    " at scale",
    " professionally",
    " in a startup",
    " in a bank",
    " for more than two years",
    " since 2020",
    " on a large team",
    " remotely",
    " as a contractor",
    " in the last job",
    " at university",
    " in side projects",
    " under pressure",
    " with strict SLAs",
    " in healthcare",
    " in e-commerce",
    " for real-time systems",
]
REASONS = [
    "Matched the CV section on {s}: listed under skills with dates and a project reference.",
    "The CV mentions {s} in two roles; the question asks about depth, answered from both.",
    "Partial match: {s} appears only in a course list, no professional use is recorded.",
    "No section of the CV mentions {s}; the nearest skill was offered as an alternative.",
    "Found {s} in the projects section with a short description and the team's size.",
]


def sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def uniform(seed: str, key: str = "i") -> str:
    """A deterministic uniform [0, 1) from a hash of the row's number and a seed."""
    return f"((hash({key}, '{seed}') % 1000000007) / 1000000007.0)"


def uuid_of(expression: str) -> str:
    digest = f"md5({expression})"
    return (
        f"substr({digest}, 1, 8) || '-' || substr({digest}, 9, 4) || '-4' || substr({digest}, 14, 3) || '-a' "
        f"|| substr({digest}, 18, 3) || '-' || substr({digest}, 21, 12)"
    )


def generate(
    root: Path, requests: int, days: int, files_per_day: int, order: tuple[tuple[str, str], ...], threads: int | None
) -> dict[str, Any]:
    """Write the lake under ``root/requests/dt=*/`` with DuckDB, its columns in ``order``; returns what was made."""
    started = time.perf_counter()
    work = root.with_name(root.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    connection = duckdb.connect(str(work / "generate.duckdb"))
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET preserve_insertion_order = false")
    if threads:
        connection.execute(f"SET threads = {int(threads)}")
    first_ms = _epoch_ms(FIRST_DAY)
    # The vocabulary: 25 templates x 100 skills x 20 qualifiers = 50,000 texts, ranked in a shuffled order.
    connection.execute(
        f"""
        CREATE TABLE vocabulary AS
        SELECT row_number() OVER (ORDER BY hash(r, 'rank')) - 1 AS rank, text, skill
        FROM (
            SELECT r, skill,
                   replace(replace(replace(template, '{{n}}', 'Sam'), '{{s}}', skill), '{{q}}', qualifier) AS text
            FROM (
                SELECT r,
                       {sql_list(TEMPLATES)}[r % 25 + 1] AS template,
                       {sql_list(SKILLS)}[(r // 25) % 100 + 1] AS skill,
                       {sql_list(QUALIFIERS)}[r // 2500 + 1] AS qualifier
                FROM range({VOCABULARY}) AS t(r)
            )
        )
        """
    )
    # One row per request: its timing, its answer, how it is stored (kind), whether replayed or late.
    connection.execute(
        f"""
        CREATE TABLE request AS
        SELECT
            i,
            day_index,
            {first_ms} + day_index * {DAY_MS} + CAST(floor({uniform("time")} * {DAY_MS}) AS BIGINT) AS query_timestamp,
            50 + CAST(floor(pow({uniform("qlag")}, 2) * 1950) AS BIGINT) AS query_lag,
            50 + CAST(floor(pow({uniform("rlag")}, 2) * 1950) AS BIGINT) AS response_lag,
            CASE WHEN {uniform("tail")} < 0.97 THEN 5 + floor({uniform("lat")} * 36)
                 ELSE 41 + floor(pow({uniform("lat")}, 3) * 1000) END AS latency_ms,
            1 + CAST(floor({uniform("extra")} * 5) AS BIGINT) AS response_extra,
            least(CAST(floor(exp({uniform("zipf")} * ln({VOCABULARY}))) AS BIGINT) - 1, {VOCABULARY - 1}) AS question_rank,
            CASE WHEN m < 0.5 THEN 'full' WHEN m < 0.8 THEN 'partial' ELSE 'none' END AS match_type,
            round(CASE WHEN m < 0.5 THEN 80 + {uniform("score")} * 20
                       WHEN m < 0.8 THEN 40 + {uniform("score")} * 40
                       ELSE {uniform("score")} * 40 END, 1) AS match_score,
            CASE WHEN k < 0.02 THEN 'unanswered' WHEN k < 0.05 THEN 'two_rows' ELSE 'one_row' END AS kind,
            {uniform("replay")} < 0.01 AS replayed,
            {uniform("late")} < 0.01 AS late,
            (i // 4) AS session
        FROM (
            SELECT i, CAST(floor({uniform("day")} * {days}) AS BIGINT) AS day_index, {uniform("match")} AS m, {uniform("kind")} AS k
            FROM range({requests}) AS t(i)
        )
        """
    )
    # The lake's rows: (request, state, written_at); the arrival day is dt and the arrival slice the object.
    slice_ms = DAY_MS // files_per_day
    connection.execute(
        f"""
        CREATE TABLE lake_row AS
        SELECT *, strftime(make_timestamp(written_at * 1000), '%Y-%m-%d') AS dt, (written_at % {DAY_MS}) // {slice_ms} AS object
        FROM (
            SELECT i, false AS complete,
                   query_timestamp + query_lag + 3 + CASE WHEN late AND kind = 'unanswered' THEN {DAY_MS} ELSE 0 END AS written_at
            FROM request WHERE kind IN ('unanswered', 'two_rows')
            UNION ALL
            SELECT i, true AS complete,
                   CAST(query_timestamp + latency_ms + response_extra AS BIGINT) + response_lag + 3
                   + CASE WHEN kind = 'two_rows' THEN 1000 ELSE 0 END + CASE WHEN late THEN {DAY_MS} ELSE 0 END AS written_at
            FROM request WHERE kind <> 'unanswered'
            UNION ALL
            SELECT i, true AS complete,
                   CAST(query_timestamp + latency_ms + response_extra AS BIGINT) + response_lag + 3
                   + 1000 + CAST(floor({uniform("replay_after")} * 600000) AS BIGINT) AS written_at
            FROM request WHERE kind <> 'unanswered' AND replayed
        )
        """
    )
    (rows,) = connection.execute("SELECT count(*) FROM lake_row").fetchall()[0]
    built = time.perf_counter() - started
    response_ts = "CAST(r.query_timestamp + r.latency_ms + r.response_extra AS BIGINT)"
    columns = {
        "request_id": uuid_of("CAST(r.i AS VARCHAR) || 'req'"),
        "request_key": "CAST(CAST(hash(request_id) AS HUGEINT) - 9223372036854775808 AS BIGINT)",
        "day": "strftime(make_timestamp(r.query_timestamp * 1000), '%Y-%m-%d')",
        "schema_version": "CAST(1 AS INTEGER)",
        "source": "'cv-worker'",
        "session_id": uuid_of("CAST(r.session AS VARCHAR) || 'session'"),
        "query": "v.text",
        "question_key": "CASE WHEN l.complete AND r.match_type = 'none' THEN lower(rtrim(v.text, '?')) END",
        "query_timestamp": "r.query_timestamp",
        "query_ingested_at": "r.query_timestamp + r.query_lag",
        "match_type": "CASE WHEN l.complete THEN r.match_type END",
        "match_score": "CASE WHEN l.complete THEN r.match_score END",
        "reasoning": f"CASE WHEN l.complete THEN replace({sql_list(REASONS)}[CAST(hash(r.i, 'why') % 5 AS INTEGER) + 1], '{{s}}', v.skill) END",
        "latency_ms": "CASE WHEN l.complete THEN r.latency_ms END",
        "response_timestamp": f"CASE WHEN l.complete THEN {response_ts} END",
        "response_ingested_at": f"CASE WHEN l.complete THEN {response_ts} + r.response_lag END",
        "response_latency_ms": f"CASE WHEN l.complete THEN {response_ts} - r.query_timestamp END",
        "query_ingest_lag_ms": "r.query_lag",
        "response_ingest_lag_ms": "CASE WHEN l.complete THEN r.response_lag END",
        "complete": "l.complete",
        "written_at": "l.written_at",
        "model": "CASE WHEN l.complete THEN 'cv-skill-matcher' END",
    }
    assert sorted(columns) == sorted(name for name, _ in order), "every column of the lake has an expression"
    select = ",\n".join(f"CAST({columns[name]} AS {lake._DUCKDB_TYPES[kind]}) AS {name}" for name, kind in order)
    # request_key hashes the request_id expression itself (no alias to refer to inside one SELECT list).
    select = select.replace("hash(request_id)", "hash(" + columns["request_id"] + ")")
    target = work / "requests"
    connection.execute(
        f"""
        COPY (
            SELECT {select}, l.dt, l.object
            FROM lake_row AS l JOIN request AS r USING (i) JOIN vocabulary AS v ON v.rank = r.question_rank
            ORDER BY l.dt, l.object, l.written_at
        ) TO '{target}' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (dt, object), FILENAME_PATTERN 'part_{{i}}')
        """
    )
    connection.close()
    # Firehose's layout: requests/dt=D/<object>, no sub-directory per object.
    objects = 0
    for partition in sorted(target.glob("dt=*")):
        for sub in sorted(partition.glob("object=*")):
            for index, path in enumerate(sorted(sub.glob("*.parquet"))):
                number = int(sub.name.split("=", 1)[1])
                path.rename(partition / f"chat-analytics-lake-1-{partition.name[3:]}-{number:02d}-{index}.parquet")
                objects += 1
            sub.rmdir()
    (work / "generate.duckdb").unlink()
    meta = {
        "requests": requests,
        "days": days,
        "first_day": FIRST_DAY.isoformat(),
        "rows": rows,
        "files_per_day": files_per_day,
        "columns": [name for name, _ in order],
        "objects": objects,
        "generate_s": round(time.perf_counter() - started, 1),
        "tables_s": round(built, 1),
        "generated_on": date.today().isoformat(),
    }
    (work / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    work.rename(root)
    return meta


def _epoch_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_MS


def parquet_files(root: Path, first_dt: str, last_dt: str) -> list[Path]:
    return [
        path
        for partition in sorted((root / "requests").glob("dt=*"))
        if first_dt <= partition.name[3:] <= last_dt
        for path in sorted(partition.glob("*.parquet"))
    ]


@dataclass(frozen=True)
class ParquetFile:
    """One object's layout, from its footer: its size, its footer's length, and where each column chunk is."""

    size: int
    footer: int  # the footer's length (the 8 bytes after it, its length and PAR1, not included)
    chunks: dict[str, list[tuple[int, int]]]  # column -> (offset, length) of its chunk in each row group


def parquet_layouts(root: Path, first_dt: str, last_dt: str) -> list[ParquetFile]:
    """The layout of every file in partitions first_dt..last_dt (DuckDB's ``parquet_metadata``)."""
    return file_layouts(parquet_files(root, first_dt, last_dt))


def file_layouts(files: list[Path]) -> list[ParquetFile]:
    """The layout of each of ``files`` (DuckDB's ``parquet_metadata``)."""
    if not files:
        return []
    listing = "[" + ", ".join(f"'{path}'" for path in files) + "]"
    connection = duckdb.connect()
    found = connection.execute(
        "SELECT file_name, path_in_schema, dictionary_page_offset, data_page_offset, total_compressed_size "
        f"FROM parquet_metadata({listing}) ORDER BY file_name, row_group_id, column_id"
    ).fetchall()
    connection.close()
    chunks: dict[str, dict[str, list[tuple[int, int]]]] = {str(path): {} for path in files}
    for file_name, column, dictionary_offset, data_offset, length in found:
        # A chunk starts at its dictionary page when it has one before its data (parquet-mr's getStartingPos).
        start = dictionary_offset if dictionary_offset and 0 < dictionary_offset < data_offset else data_offset
        chunks[file_name].setdefault(column, []).append((int(start), int(length)))
    layouts = []
    for path in files:
        with path.open("rb") as handle:
            handle.seek(-8, 2)
            tail = handle.read(8)
        if tail[4:] != lake.PARQUET_MAGIC:
            raise SystemExit(f"{path} is not a Parquet file")
        layouts.append(ParquetFile(path.stat().st_size, int.from_bytes(tail[:4], "little"), chunks[str(path)]))
    return layouts


def column_bytes(layouts: list[ParquetFile]) -> dict[str, int]:
    """Compressed bytes of each column's chunks over ``layouts``."""
    sizes: dict[str, int] = {}
    for layout in layouts:
        for column, chunks in layout.chunks.items():
            sizes[column] = sizes.get(column, 0) + sum(length for _, length in chunks)
    return sizes


def merged_reads(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The reads Trino's Parquet reader makes for ``ranges`` (offset, length) of one file.

    As ``AbstractParquetDataSource.planChunksRead``: a range longer than ``MAX_BUFFER_SIZE`` is read alone (in
    pieces of that size, the same bytes); the others, by offset, join the read before them when they start at
    most ``MAX_MERGE_DISTANCE`` after its end and the read stays within ``MAX_BUFFER_SIZE``.
    """
    large = [chunk for chunk in ranges if chunk[1] > MAX_BUFFER_SIZE]
    small = sorted(chunk for chunk in ranges if chunk[1] <= MAX_BUFFER_SIZE)
    reads: list[tuple[int, int]] = []
    for offset, length in small:
        if reads:
            last_offset, last_length = reads[-1]
            end = max(last_offset + last_length, offset + length)
            if end - last_offset <= MAX_BUFFER_SIZE and last_offset + last_length + MAX_MERGE_DISTANCE >= offset:
                reads[-1] = (last_offset, end - last_offset)
                continue
        reads.append((offset, length))
    return reads + large


def trino_read(layout: ParquetFile, columns: tuple[str, ...]) -> dict[str, int]:
    """The bytes Trino's Parquet reader fetches from one file to read ``columns`` (no predicate on them)."""
    if layout.size <= SMALL_FILE_THRESHOLD:  # read whole, footer included, in one request
        return {"bytes": layout.size, "footer": 0, "whole": 1, "reads": 1}
    footer = min(layout.size, FOOTER_TAIL)
    if layout.footer + 8 > footer:  # the footer did not fit in the first read: its whole length is read again
        footer += layout.footer + 8
    reads = merged_reads([chunk for column in columns for chunk in layout.chunks.get(column, [])])
    return {"bytes": footer + sum(length for _, length in reads), "footer": footer, "whole": 0, "reads": 1 + len(reads)}


def trino_bytes(layouts: list[ParquetFile], columns: tuple[str, ...]) -> dict[str, int]:
    total = {"bytes": 0, "footer": 0, "whole": 0, "reads": 0, "files": len(layouts)}
    for layout in layouts:
        for key, value in trino_read(layout, columns).items():
            total[key] += value
    return total


def scan_estimate(scanned: int, scale: float) -> dict[str, Any]:
    at_target = scanned * scale
    billed = max(at_target, ATHENA_MINIMUM_BYTES)
    return {
        "bytes": scanned,
        "bytes_at_target": round(at_target),
        "gb_at_target": round(at_target / 1e9, 3),
        "usd_at_target": round(billed / 1e12 * PRICE_PER_TB, 5),
    }


def time_report(root: Path, days: list[str], runs: int, threads: int | None) -> dict[str, Any]:
    engine = lake.DuckDBEngine(root, threads=threads)
    times: list[float] = []
    report = None
    for _ in range(runs):
        started = time.perf_counter()
        report = lake.lake_report(engine, days, top=10)
        times.append(time.perf_counter() - started)
    assert report is not None
    return {
        "days": len(days),
        "partitions": list(lake.partition_range(days)),
        "runs_s": [round(value, 3) for value in times],
        "min_s": round(min(times), 3),
        "median_s": round(statistics.median(times), 3),
        "requests": sum(figures.requests for figures in report.per_day),
        "queries": sum(figures.queries for figures in report.per_day),
        "unanswered": report.unanswered,
        "answer_latency_ms": [report.answer_latency.median, report.answer_latency.p95, report.answer_latency.max],
        "score_bins": {kind: sum(bins) for kind, bins in report.score_bins.items()},
        "top_unmatched": report.top_unmatched[:3],
    }


def cpu_seconds() -> float:
    """This process's CPU time, DuckDB's threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def floor_cpu(files: list[Path], threads: int | None, columns: tuple[str, ...] = REPORT_COLUMNS) -> float:
    """The column-read floor: DuckDB reading ``files`` and hashing ``columns`` (CPU seconds); by default the 11
    columns report.sql reads."""
    if not files:
        return 0.0
    connection = duckdb.connect()
    if threads:
        connection.execute(f"SET threads = {int(threads)}")
    started = cpu_seconds()
    connection.execute(f"SELECT sum(hash({', '.join(columns)})) FROM read_parquet({lake._file_list(files)})").fetchall()
    spent = cpu_seconds() - started
    connection.close()
    return spent


def sections_floor_cpu(files: list[Path], threads: int | None) -> float:
    """The summary files' column-read floor: their 10 columns."""
    return floor_cpu(files, threads, SECTION_COLUMNS)


def report_cpu(root: Path, days: list[str], threads: int | None, *, summaries: bool = True) -> tuple[float, float, Any]:
    engine = lake.DuckDBEngine(root, threads=threads)
    started, wall = cpu_seconds(), time.perf_counter()
    report = lake.lake_report(engine, days, top=10, summaries=summaries)
    return cpu_seconds() - started, time.perf_counter() - wall, report


def compacted_lake(root: Path, threads: int | None) -> tuple[Path, dict[str, Any]]:
    """``<root>-compacted``: ``requests`` a link to ``root``'s, every day compacted and summarized (reused when
    done already; a compaction cached before the summaries existed is summarized). Returns the stamp."""
    target = root.with_name(root.name + "-compacted")
    stamp = target / "compacted.json"
    meta = json.loads((root / "dataset.json").read_text())
    partitions = sorted(path.name[3:] for path in (root / "requests").glob("dt=*"))
    done = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if done.get("dataset") != meta:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        os.symlink(root.resolve() / "requests", target / "requests")
        started = time.perf_counter()
        compact.compact_directory(target, partitions[0], partitions[-1], threads=threads)
        done = {"dataset": meta, "compact_s": round(time.perf_counter() - started, 1), "summarized": True}
    elif not done.get("summarized"):
        started = time.perf_counter()
        compact.summarize_directory(
            target, partitions[0], partitions[-1], compact.CompactResult(partitions[0], partitions[-1]), threads=threads
        )
        done |= {"summarize_s": round(time.perf_counter() - started, 1), "summarized": True}
    stamp.write_text(json.dumps(done) + "\n")
    return target, done


def steady_lake(compacted: Path, last_day: str) -> Path:
    """``<compacted>-steady``: the lake as the stack's schedules leave it on the day after ``last_day`` (links, no
    copy): ``last_day`` raw (the compaction's newest day is today - 2), the three days before it compacted and not
    summarized (the summaries' newest is today - 5), every older day summarized."""
    target = compacted.with_name(compacted.name + "-steady")
    shutil.rmtree(target, ignore_errors=True)
    (target / lake.SECTIONS_PREFIX).mkdir(parents=True)
    os.symlink((compacted / "requests").resolve(), target / "requests")
    newest = date.fromisoformat(last_day)
    for folder in (compacted / lake.COMPACTED_PREFIX).glob("dt=*"):
        if folder.name[3:] < last_day:
            os.symlink(folder.resolve(), target / lake.COMPACTED_PREFIX / folder.name)
    for folder in (compacted / lake.SECTIONS_PREFIX).glob("dt=*"):
        if folder.name[3:] <= (newest - timedelta(days=4)).isoformat():
            os.symlink(folder.resolve(), target / lake.SECTIONS_PREFIX / folder.name)
    return target


def compacted_files(root: Path, first_dt: str, last_dt: str) -> list[Path]:
    return sorted(
        path for path in (root / lake.COMPACTED_PREFIX).glob("dt=*/late=*/*.parquet") if first_dt <= path.parent.parent.name[3:] <= last_dt
    )


def summary_files(root: Path, first_dt: str, last_dt: str) -> list[Path]:
    return sorted(path for path in (root / lake.SECTIONS_PREFIX).glob("dt=*/*.parquet") if first_dt <= path.parent.name[3:] <= last_dt)


def compaction_ratio(root: Path, days: list[str], runs: int, threads: int | None) -> dict[str, Any]:
    """The 90-day report's CPU over the column-read floors, raw, compacted and summarized, interleaved."""
    target, stamp = compacted_lake(root, threads)
    first_dt, last_dt = lake.partition_range(days)
    raw_files = parquet_files(root, first_dt, last_dt)
    steady = steady_lake(target, days[-1])
    steady_files = compacted_files(steady, first_dt, last_dt)
    # what the steady-state report opens besides: its summaries, and the raw files of the days not compacted
    steady_sections = summary_files(steady, first_dt, last_dt)
    compacted_days = {path.parent.parent.name for path in steady_files}
    steady_raw = [path for path in parquet_files(steady, first_dt, last_dt) if path.parent.name not in compacted_days]
    every_compacted = compacted_files(target, first_dt, last_dt)
    section_files = summary_files(target, first_dt, last_dt)
    measured: dict[str, list[float]] = {
        "raw_report": [],
        "raw_floor": [],
        "compacted_report": [],
        "compacted_floor": [],
        "compacted_wall": [],
        "summarized_report": [],
        "summarized_wall": [],
        "sections_floor": [],
        "steady_report": [],
        "steady_floor": [],
        "steady_opened_floor": [],
    }
    requests = {}
    reports = {}
    for _ in range(max(runs, 1)):
        cpu, _, report = report_cpu(root, days, threads)
        measured["raw_report"].append(cpu)
        requests["raw"], reports["raw"] = report.requests, report.to_json()
        measured["raw_floor"].append(floor_cpu(raw_files, threads))
        cpu, wall, report = report_cpu(target, days, threads, summaries=False)
        measured["compacted_report"].append(cpu)
        measured["compacted_wall"].append(wall)
        requests["compacted"], reports["compacted"] = report.requests, report.to_json()
        measured["compacted_floor"].append(floor_cpu(every_compacted, threads))
        cpu, wall, report = report_cpu(target, days, threads)
        measured["summarized_report"].append(cpu)
        measured["summarized_wall"].append(wall)
        requests["summarized"], reports["summarized"] = report.requests, report.to_json()
        measured["sections_floor"].append(sections_floor_cpu(section_files, threads))
        cpu, _, report = report_cpu(steady, days, threads)
        measured["steady_report"].append(cpu)
        requests["steady"], reports["steady"] = report.requests, report.to_json()
        measured["steady_floor"].append(floor_cpu(steady_files, threads))
        measured["steady_opened_floor"].append(
            measured["steady_floor"][-1] + sections_floor_cpu(steady_sections, threads) + floor_cpu(steady_raw, threads)
        )
    for report in reports.values():  # the engine's timing and detail differ; the figures must not
        report.pop("engine", None)
        report.pop("generatedAt", None)
    if not reports["raw"] == reports["compacted"] == reports["summarized"] == reports["steady"]:
        raise SystemExit(
            "the reports over the raw, compacted, summarized and steady-state days differ: the benchmark's figures would mean nothing"
        )
    median = {key: statistics.median(values) for key, values in measured.items()}
    opened_floor = median["compacted_floor"] + median["sections_floor"]
    # Athena, as Trino reads (the model above): the compacted report reads the 11 columns of every compacted
    # file; the summarized one the same files (its semi-join takes request_key and the values of each day's
    # first-partition rows, the late rows as before) and the summaries, whole (each is under 3 MiB).
    in_range = requests.get("summarized") or 1
    compacted_layouts = file_layouts(every_compacted)
    compacted_trino = trino_bytes(compacted_layouts, REPORT_COLUMNS)["bytes"]
    sections_trino = trino_bytes(file_layouts(section_files), SECTION_COLUMNS)["bytes"]
    return {
        "compact_s": stamp.get("compact_s"),
        "summarize_s": stamp.get("summarize_s"),
        "compacted_objects": len(every_compacted),
        "compacted_bytes": sum(path.stat().st_size for path in every_compacted),
        "section_objects": len(section_files),
        "section_bytes": sum(path.stat().st_size for path in section_files),
        "section_rows": duckdb.connect().execute(f"SELECT count(*) FROM read_parquet({lake._file_list(section_files)})").fetchall()[0][0]
        if section_files
        else 0,
        "requests": requests,
        "runs_cpu_s": {key: [round(value, 3) for value in values] for key, values in measured.items()},
        "median_cpu_s": {key: round(value, 3) for key, value in median.items()},
        "raw_ratio": round(median["raw_report"] / median["raw_floor"], 2),
        "compacted_ratio": round(median["compacted_report"] / median["compacted_floor"], 2),
        "compacted_over_raw_floor": round(median["compacted_report"] / median["raw_floor"], 2),
        "summarized_ratio": round(median["summarized_report"] / median["compacted_floor"], 2),
        "summarized_over_opened_floor": round(median["summarized_report"] / opened_floor, 2),
        "summarized_over_raw_floor": round(median["summarized_report"] / median["raw_floor"], 2),
        "steady_ratio": round(median["steady_report"] / median["steady_floor"], 2),
        "steady_over_opened_floor": round(median["steady_report"] / median["steady_opened_floor"], 2),
        "athena_bytes_per_request": {
            "compacted": round(compacted_trino / in_range, 2),
            "summarized": round((compacted_trino + sections_trino) / in_range, 2),
            "summaries_alone": round(sections_trino / in_range, 2),
        },
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout),
        "cpu": cpu,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "date": date.today().isoformat(),
    }


def directory_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*.parquet"))


def column_order(path: Path | None) -> tuple[tuple[str, str], ...]:
    """The files' columns in order: ``path`` (a lake-columns.json) or the package's (the Glue table's)."""
    if path is None:
        return lake.COLUMNS
    try:
        order = tuple((column["name"], column["type"]) for column in json.loads(path.read_text(encoding="utf-8"))["columns"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"--columns {path}: not a lake-columns.json ({error})") from None
    if sorted(order) != sorted(lake.COLUMNS):
        differ = sorted(set(order) ^ set(lake.COLUMNS))
        raise SystemExit(f"--columns {path}: not the lake's columns in another order (differ: {', '.join(f'{n} {t}' for n, t in differ)})")
    return order


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument(
        "--files-per-day",
        type=int,
        default=0,
        help="objects per partition; default: as many as give each the rows of one 900 s buffer at 100M questions a month",
    )
    parser.add_argument(
        "--columns",
        type=Path,
        default=None,
        help="a lake-columns.json whose order the files are written in (default: the package's, the Glue table's)",
    )
    parser.add_argument("--runs", type=int, default=5, help="DuckDB report runs per range (0: do not time DuckDB)")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: DuckDB's, one per core)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--compact", action="store_true", help="also compact the data set and measure the report over it against the floor")
    args = parser.parse_args()
    if args.requests < 1 or args.days < 7 or args.runs < 0 or args.files_per_day < 0 or (args.threads is not None and args.threads < 1):
        parser.error("--requests and --threads must be at least 1, --days at least 7, --runs and --files-per-day at least 0")
    order = column_order(args.columns)

    target_per_day = TARGET_QUESTIONS_PER_MONTH / 30
    files_per_day = args.files_per_day or max(1, round(FIREHOSE_OBJECTS_PER_DAY * (args.requests / args.days) / target_per_day))
    meta_path = args.dir / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    wanted = {
        "requests": args.requests,
        "days": args.days,
        "files_per_day": files_per_day,
        "first_day": FIRST_DAY.isoformat(),
        "columns": [name for name, _ in order],
    }
    if args.regenerate or meta is None or any(meta.get(key) != value for key, value in wanted.items()):
        print(f"generating {args.requests:,} requests over {args.days} days, {files_per_day} objects a day, in {args.dir} ...", flush=True)
        meta = generate(args.dir, args.requests, args.days, files_per_day, order, args.threads)
        print(f"generated in {meta['generate_s']} s", flush=True)
    else:
        print(f"reusing the data set in {args.dir} (generated in {meta['generate_s']} s on {meta['generated_on']})", flush=True)

    all_days = [(FIRST_DAY + timedelta(days=n)).isoformat() for n in range(args.days)]
    last_week = all_days[-7:]
    results: dict[str, Any] = {"machine": machine(), "dataset": meta, "size_bytes": directory_bytes(args.dir)}
    if args.runs:
        results["duckdb"] = {f"{len(days)}_days": time_report(args.dir, days, args.runs, args.threads) for days in (all_days, last_week)}

    # Athena: what each report would scan, scaled to 100M questions a month.
    requests_in_range = args.requests * len(all_days) / args.days
    target_requests = TARGET_QUESTIONS_PER_MONTH * len(all_days) / 30
    scans: dict[str, Any] = {}
    by_id = tuple("request_id" if name == "request_key" else name for name in REPORT_COLUMNS)
    for days in (all_days, last_week):
        first_dt, last_dt = lake.partition_range(days)
        layouts = parquet_layouts(args.dir, first_dt, last_dt)
        sizes = column_bytes(layouts)
        trino = trino_bytes(layouts, REPORT_COLUMNS)
        # Requests whose rows are in the partitions read (the report's own days, and a few neighbours' late rows).
        requests = args.requests * len(days) / args.days
        scale_days = TARGET_QUESTIONS_PER_MONTH * len(days) / 30 / requests
        scans[f"{len(days)}_days"] = {
            "partitions": [first_dt, last_dt],
            "requests": requests,
            "columns": {name: sizes.get(name, 0) for name in REPORT_COLUMNS} | {"request_id": sizes.get("request_id", 0)},
            "all_columns_bytes": sum(sizes.values()),
            "column_chunks": scan_estimate(sum(sizes.get(name, 0) for name in REPORT_COLUMNS), scale_days),
            "column_chunks_by_request_id": scan_estimate(sum(sizes.get(name, 0) for name in by_id), scale_days),
            "trino": scan_estimate(trino["bytes"], scale_days) | trino,
            "scale": round(scale_days, 3),
        }
    results["athena_estimate"] = scans
    results["scale"] = {"requests": requests_in_range, "target_requests": target_requests, "scale": target_requests / requests_in_range}
    # The last line's figure: a 90-day report at 100M questions a month, from the bytes a request of the whole range costs.
    per_request = scans[f"{len(all_days)}_days"]["trino"]["bytes"] / requests_in_range
    ninety = per_request * TARGET_QUESTIONS_PER_MONTH * 3
    results["target"] = {
        "trino_bytes_per_request": round(per_request, 3),
        "gb_90_days": round(ninety / 1e9, 3),
        "usd_90_days": round(ninety / 1e12 * PRICE_PER_TB, 5),
        "ratio": round(max(ninety / TARGET_BYTES, ninety / 1e12 * PRICE_PER_TB / TARGET_USD), 3),
    }
    if args.compact:
        results["compaction"] = compaction_ratio(args.dir, all_days, args.runs, args.threads)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print_results(results)
    return 0


def print_results(results: dict[str, Any]) -> None:
    m, d = results["machine"], results["dataset"]
    print(json.dumps(results, indent=2, default=str))
    print()
    print(f"machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, DuckDB {m['duckdb']}, {m['date']}")
    print(
        f"data set: {d['requests']:,} requests, {d['rows']:,} rows over {d['days']} days, {d['objects']} objects "
        f"({d['files_per_day']} a day), {results['size_bytes'] / 1e6:.1f} MB on disk, generated in {d['generate_s']} s"
    )
    print(f"column order: {', '.join(d['columns'])}")
    for label, timing in results.get("duckdb", {}).items():
        print(
            f"DuckDB report, {label.replace('_', ' ')} (partitions {timing['partitions'][0]}..{timing['partitions'][1]}): "
            f"min {timing['min_s']} s, median {timing['median_s']} s over {len(timing['runs_s'])} runs (target <= 5 s)"
        )
    full_label = next(iter(results["athena_estimate"]))
    scan = results["athena_estimate"][full_label]
    print(f"\ncolumn chunks report.sql reads ({full_label.replace('_', '-')[:-1]} report), compressed bytes per request:")
    for name, size in scan["columns"].items():
        print(f"  {name:22s} {size / scan['requests']:8.3f}")
    for label, scan in results["athena_estimate"].items():
        chunks, trino, ident = scan["column_chunks"], scan["trino"], scan["column_chunks_by_request_id"]
        print(
            f"Athena, {label.replace('_', ' ')} (partitions {scan['partitions'][0]}..{scan['partitions'][1]}, {trino['files']} objects, "
            f"{trino['whole']} of them <= 3 MiB and read whole), x {scan['scale']} to 100M questions/month:"
        )
        print(
            f"  column chunks:       {chunks['bytes'] / 1e6:9.1f} MB here, {chunks['bytes'] / scan['requests']:6.2f} B/request "
            f"-> {chunks['gb_at_target']} GB, ${chunks['usd_at_target']} (grouped by request_id: {ident['gb_at_target']} GB, ${ident['usd_at_target']})"
        )
        print(
            f"  as Trino reads them: {trino['bytes'] / 1e6:9.1f} MB here, {trino['bytes'] / scan['requests']:6.2f} B/request "
            f"-> {trino['gb_at_target']} GB, ${trino['usd_at_target']} ({trino['reads']} reads, footers {trino['footer'] / 1e6:.1f} MB)"
        )
    target = results["target"]
    print(
        f"90-day report at 100M questions/month, as Trino reads: {target['trino_bytes_per_request']} B/request x 300M = "
        f"{target['gb_90_days']} GB, ${target['usd_90_days']}: {target['ratio']} x the target (<= 10 GB, <= $0.05)"
    )
    if "compaction" in results:
        c = results["compaction"]
        m = c["median_cpu_s"]
        print(
            f"compaction: {c['compacted_objects']} objects, {c['compacted_bytes'] / 1e6:.1f} MB, compacted in {c['compact_s']} s; "
            f"summaries: {c['section_objects']} objects, {c['section_rows']:,} rows, {c['section_bytes'] / 1e6:.1f} MB"
        )
        print(
            f"90-day report CPU (median of {len(c['runs_cpu_s']['raw_report'])}): raw {m['raw_report']} s over a floor of "
            f"{m['raw_floor']} s ({c['raw_ratio']} x); compacted rows {m['compacted_report']} s (wall {m['compacted_wall']} s) "
            f"over their floor {m['compacted_floor']} s ({c['compacted_ratio']} x); summarized {m['summarized_report']} s "
            f"(wall {m['summarized_wall']} s) over the files it opens {round(m['compacted_floor'] + m['sections_floor'], 3)} s "
            f"({c['summarized_over_opened_floor']} x) and over the raw files' floor ({c['summarized_over_raw_floor']} x)"
        )
        print(
            f"steady state (the day after the data set's last: that day raw, the 3 before it compacted only, the rest "
            f"summarized): {m['steady_report']} s CPU over the floor of its compacted files {m['steady_floor']} s = {c['steady_ratio']} x; "
            f"over the files it opens (with its summaries and the raw day's files) {m['steady_opened_floor']} s = {c['steady_over_opened_floor']} x"
        )
        athena = c["athena_bytes_per_request"]
        print(
            f"Athena, as Trino reads, 90-day report: compacted rows {athena['compacted']} B/request, summarized "
            f"{athena['summarized']} B/request (of which the summaries {athena['summaries_alone']})"
        )
        print(
            f"90-day report over summarized days: {m['summarized_report']} s CPU / column-read floor of the same requests' compacted rows "
            f"{m['compacted_floor']} s = {c['summarized_ratio']} x (target <= 2.5)"
        )


if __name__ == "__main__":
    sys.exit(main())
