"""The report's three engines behind one interface: ``chat-analytics report --engine NAME`` builds one
(``cli.report_engine``) and runs it.

==========  ============================================================================  ===============
engine      reads                                                                         rejected events
==========  ============================================================================  ===============
dynamodb    the table's ``byDay`` index, one query per day (``table_engine.py``)           cannot count
duckdb      the lake's files on this machine: a folder, or a copy of the bucket's         counted
            partitions of the report's days (``lake.DuckDBEngine``)
athena      the Glue table in the stack's workgroup (``lake.AthenaEngine``)                counted
==========  ============================================================================  ===============

All three return the same ``Report`` (``report_model.py``; tests hold the table's and the lake's equal on
the same data). An engine reads the stack (its outputs, table, bucket or workgroup) only when asked for a
report, so a wrong option or date range is one line before any AWS call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from chat_analytics_ops import lake
from chat_analytics_ops.outputs import ATHENA_WORK_GROUP_NAME, EVENTS_TABLE_NAME, LAKE_BUCKET_NAME, LAKE_DATABASE_NAME
from chat_analytics_ops.report_model import MAX_DAYS, Report
from chat_analytics_ops.table_engine import Progress, build_report, read_items


class StackContext(Protocol):
    """What an engine reads of the command's AWS context (``outputs.AwsContext``): the stack's name, a client
    per service (boto3's, untyped) and the stack's outputs."""

    @property
    def stack_name(self) -> str: ...

    def client(self, service: str) -> Any: ...

    def output(self, name: str) -> str: ...


@runtime_checkable
class ReportEngine(Protocol):
    """What computes a report: its ``--engine`` name, the most days it takes, and the report of ``days``
    (consecutive UTC days, ``YYYY-MM-DD``, at most ``max_days``) with the ``top`` unmatched questions."""

    name: str
    max_days: int

    def report(self, days: list[str], *, top: int, stack_name: str = "") -> Report: ...


class DynamoDBReportEngine:
    """The stack's table, through its ``byDay`` index (``--table-name`` or the stack's output). The report's
    ``rejected`` stays None: the table holds only valid events, and the text says so."""

    name = "dynamodb"
    max_days = MAX_DAYS

    def __init__(self, ctx: StackContext, *, page_size: int | None = None, progress: Progress | None = None) -> None:
        self.ctx, self.page_size, self.progress = ctx, page_size, progress

    def report(self, days: list[str], *, top: int, stack_name: str = "") -> Report:
        table = self.ctx.output(EVENTS_TABLE_NAME)
        items = read_items(self.ctx.client("dynamodb"), table, days, page_size=self.page_size, progress=self.progress)
        return build_report(items, days, top=top, stack_name=stack_name)


class LakeReportEngine(ABC):
    """A report from the lake: ``sql/report.sql`` and ``sql/rejected.sql`` on one SQL runner (``lake.Engine``)."""

    name: str
    max_days = lake.MAX_LAKE_DAYS

    @abstractmethod
    def runner(self, days: list[str]) -> lake.Engine:
        """The SQL runner that reads the lake's rows of ``days``."""

    def report(self, days: list[str], *, top: int, stack_name: str = "") -> Report:
        runner = self.runner(days)
        result = lake.lake_report(runner, days, top=top, stack_name=stack_name)
        result.rejected = lake.rejected_counts(runner, days)
        return result


class DuckDBReportEngine(LakeReportEngine):
    """DuckDB over the lake files under ``root`` (``requests/dt=*/``, ``rejected/dt=*/``). With ``ctx``,
    ``root`` is this machine's copy of the stack's lake bucket: the partitions that can hold a report's
    days are made equal to the bucket's first (``lake.sync_partitions``), and the report says what moved."""

    name = "duckdb"

    def __init__(self, root: Path, *, ctx: StackContext | None = None) -> None:
        self.root, self.ctx = root, ctx

    def runner(self, days: list[str]) -> lake.Engine:
        if self.ctx is None:
            return lake.DuckDBEngine(self.root, detail=f"files in {self.root}")
        first_dt, last_dt = lake.partition_range(days)
        synced = lake.sync_partitions(self.ctx.client("s3"), self.ctx.output(LAKE_BUCKET_NAME), first_dt, last_dt, self.root)
        detail = f"{synced.objects} lake objects, {synced.downloaded} downloaded ({synced.bytes_downloaded / 1e6:,.1f} MB) to {self.root}"
        return lake.DuckDBEngine(self.root, detail=detail)


class AthenaReportEngine(LakeReportEngine):
    """Athena in the stack's workgroup (its scan limit applies) over its Glue database; a query is stopped
    after ``timeout_s``."""

    name = "athena"

    def __init__(self, ctx: StackContext, *, timeout_s: float = 300.0) -> None:
        self.ctx, self.timeout_s = ctx, timeout_s

    def runner(self, days: list[str]) -> lake.Engine:
        return lake.AthenaEngine(
            self.ctx.client("athena"),
            self.ctx.output(ATHENA_WORK_GROUP_NAME),
            self.ctx.output(LAKE_DATABASE_NAME),
            timeout_s=self.timeout_s,
        )
