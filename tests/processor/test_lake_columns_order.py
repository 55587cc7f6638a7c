"""The lake's column order: what ``report.sql`` reads is one run of columns, and the large text comes after it.

Firehose writes each Parquet file's column chunks in the Glue table's order, ``LAKE_COLUMNS``. Athena engine
version 3 reads Parquet with Trino's reader, which fetches the chunks a query needs in one read when they are
less than ``parquet.max-merge-distance`` (1 MB) apart, the bytes between them included, and reads a file of at
most ``parquet.small-file-threshold`` (3 MB) whole: https://trino.io/docs/current/object-storage/file-formats.html
(the Parquet properties and their defaults; the merge distance is ``ParquetReaderOptions``' default). Athena
bills the bytes it reads, so the report's columns apart from each other, with the question text, the
reasoning and the timestamps between them, cost ~40 bytes a request instead of ~19 (docs/benchmarks/lake.md).
Order never changes what is read, only how much: Athena reads Parquet columns by name
(https://docs.aws.amazon.com/athena/latest/ug/handling-schema-updates-chapter.html), so files written in an
older order stay readable.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sqlglot
from sqlglot import expressions

from chat_analytics_ops import lake
from tests.processor.conftest import Processor

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "lake_bench.py"
PARTITION = "dt"  # the Glue table's partition key: a directory, not a column of the files


def report_columns() -> set[str]:
    """The lake's columns report.sql reads: those named in the one SELECT whose FROM is the table ``requests``."""
    tree = sqlglot.parse_one(lake.report_sql(), read="athena")  # as Athena gets it: the contract's names filled in
    scans = [table.find_ancestor(expressions.Select) for table in tree.find_all(expressions.Table) if table.name == "requests"]
    assert len(scans) == 1, "report.sql reads the table once"
    (scan,) = scans
    assert scan is not None
    return {column.name for column in scan.find_all(expressions.Column)} - {PARTITION}


def names(processor: Processor) -> list[str]:
    return [name for name, _ in processor.lake.LAKE_COLUMNS]


def test_the_report_reads_lake_columns_only(processor: Processor) -> None:
    read = report_columns()
    assert {"request_key", "match_score", "complete"} <= read, "the SELECT over requests was found"
    assert read <= set(names(processor)), "every column report.sql reads is a lake column"


def test_the_report_columns_are_one_run(processor: Processor) -> None:
    read = report_columns()
    positions = sorted(names(processor).index(name) for name in read)
    assert positions == list(range(positions[0], positions[0] + len(read))), (
        f"report.sql's columns are not adjacent in LAKE_COLUMNS: {[names(processor)[i] for i in range(positions[0], positions[-1] + 1)]}"
    )


def test_large_text_comes_after_the_report_columns(processor: Processor) -> None:
    read = report_columns()
    order = names(processor)
    last_read = max(order.index(name) for name in read)
    text_not_read = [name for name, kind in processor.lake.LAKE_COLUMNS if kind == "string" and name not in read]
    assert {"query", "reasoning", "request_id", "session_id"} <= set(text_not_read)
    assert all(order.index(name) > last_read for name in text_not_read), f"text before the report's columns: {order}"


def test_the_benchmark_counts_the_columns_the_report_reads() -> None:
    """bench/lake_bench.py's REPORT_COLUMNS (what it sums as Athena's scan) is what report.sql reads."""
    module = ast.parse(BENCH.read_text(encoding="utf-8"))
    (value,) = [
        node.value
        for node in module.body
        if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == "REPORT_COLUMNS" for target in node.targets)
    ]
    assert set(ast.literal_eval(value)) == report_columns()
