"""The event lake's daily compaction: a schedule that starts one Athena query, and the table it writes.

Every day at ``schedule_expression`` (02:00 UTC by default) an EventBridge Scheduler schedule calls Athena's
``StartQueryExecution`` through the universal target ``arn:aws:scheduler:::aws-sdk:athena:startQueryExecution``
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html): no Lambda, nothing
running between runs. The query is ``ops/src/chat_analytics_ops/sql/compact.sql`` (the file the CLI's DuckDB
compaction runs), its parameters written in as SQL over ``current_date``: ``INSERT INTO compacted`` the days
``today - catch_up_days`` .. ``today - 2`` not compacted yet, one row per request and partition
(https://docs.aws.amazon.com/athena/latest/ug/insert-into.html). A day already in ``compacted`` is skipped, so a
run that repeats changes nothing and a missed run is caught up by the next (within ``catch_up_days``).

The query runs in a workgroup of its own (``<name_prefix>-compaction``: its own scan cutoff, results under
``athena-results/compaction/``, CloudWatch metrics on) so that its failures are told apart from the reports':
monitoring alarms on the workgroup's FAILED queries and on the schedule group's dropped invocations.

Athena runs a query with its caller's credentials: the schedule's role may start queries in that workgroup
only, read the catalog entries it names (the lake's database, ``requests`` and ``compacted``), add
``compacted``'s partitions, read ``requests/`` and ``compacted/``, and write only ``compacted/`` and its own
results folder. The bucket is SSE-S3: no KMS permission. The role trusts ``scheduler.amazonaws.com`` for this
account only (``aws:SourceAccount``).

The ``compacted`` table has the lake's columns plus ``source_rows`` and two partitions, ``dt`` (projected as
``requests``' is) and ``late`` (enum ``0``/``1``); the Hive layout ``compacted/dt=.../late=.../`` is the one
``INSERT INTO`` writes and the CLI's DuckDB compaction copies. Its rows expire with the raw rows.

A second schedule in the same group, at ``summary_schedule_expression`` (03:00 UTC by default), runs
``sql/sections.sql`` in the same workgroup (so the same two alarms cover it): ``INSERT INTO compacted_sections``
the section summary of each compacted day of ``today - (catch_up_days + 3)`` .. ``today - (catch_up_days + 1)``
not summarized yet: days older than any the compaction may still be writing, so that no summary counts a day
half compacted, and a missed run is caught up by the next two. The table ``compacted_sections`` (partition
``dt``, projected) lives under ``compacted/sections/``: inside the compacted table's folder, so the readers'
grants, the lifecycle rule and erasure's grants that reach ``compacted/`` reach it. Its role may start queries in
the workgroup, read the catalog entries of ``compacted`` and ``compacted_sections``, add the latter's partitions,
read ``compacted/`` and write only ``compacted/sections/`` and the results folder: it never reads a raw row.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from schema import contract
from stacks.cdk_helpers import PARTITION_KEY, day_projection, enforced_work_group, parquet_storage

# What this construct shares with the lake's (stacks/lake.py), restated here: one construct per module, none
# imports another's (tests/cdk/test_stack_resources.py); tests/cdk/test_compaction.py holds them equal.
REQUESTS_PREFIX = "requests/"
ATHENA_RESULTS_PREFIX = "athena-results/"
# The lake's columns: schema/lake-columns.json, as the lake's Glue table (stacks/lake.py) reads it.
LAKE_COLUMNS_FILE = Path(__file__).resolve().parent.parent / "schema" / "lake-columns.json"
LAKE_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (column["name"], column["type"]) for column in json.loads(LAKE_COLUMNS_FILE.read_text(encoding="utf-8"))["columns"]
)

COMPACTED_TABLE_NAME = contract.COMPACTED_TABLE
COMPACTED_PREFIX = contract.COMPACTED_PREFIX
COMPACTION_RESULTS_PREFIX = f"{ATHENA_RESULTS_PREFIX}compaction/"
COMPACTED_COLUMNS: tuple[tuple[str, str], ...] = (*LAKE_COLUMNS, ("source_rows", "bigint"))
LATE_KEY = "late"
SQL_FOLDER = Path(__file__).resolve().parent.parent / "ops" / "src" / "chat_analytics_ops" / "sql"
COMPACT_SQL_FILE = SQL_FOLDER / "compact.sql"
# The compacted days' section summaries (ops/src/chat_analytics_ops/sql/sections.sql); names and columns from schema/contract.py.
SECTIONS_TABLE_NAME = contract.SECTIONS_TABLE
SECTIONS_PREFIX = contract.SECTIONS_PREFIX
SECTIONS_SQL_FILE = SQL_FOLDER / "sections.sql"
SECTIONS_COLUMNS = contract.SECTIONS_COLUMNS
SUMMARY_WINDOW_DAYS = 3  # each summary run looks at three days: the day due and two missed runs
UNIVERSAL_TARGET = "aws-sdk:athena:startQueryExecution"
SETTLE_DAYS = 2  # a day is complete once Firehose's next-day deliveries (and their 24 h of retries) are in
LOOKBACK_DAYS = 15  # a request's rows arrive from its day - 1 to its day + 14 (lake.py's EARLY_DAYS + LATE_DAYS)
RETRY_ATTEMPTS = 3
MAX_EVENT_AGE_S = 3600


@dataclass(frozen=True)
class LakeCompactionProps:
    """``bucket`` and ``database_name`` / ``database_ref`` are the lake's (the Ref makes the table wait for the
    database); ``glue_catalog_arn``, ``glue_database_arn`` and ``requests_table_arn`` the catalog entries the
    query reads; ``retention_days`` expires ``compacted/`` as the raw rows expire; ``scan_limit_bytes`` is the
    compaction workgroup's per-query cutoff; ``schedule_expression`` an EventBridge Scheduler expression (UTC);
    ``catch_up_days`` how far back a run looks for days not compacted yet (at least ``SETTLE_DAYS``; each run
    reads the raw rows of every day of that window, compacted or not: Athena cannot prune partitions by
    ``NOT IN (subquery)``, so the window stays short, three days: the day due and two missed runs)."""

    name_prefix: str
    bucket: s3.Bucket
    database_name: str
    database_ref: str
    glue_catalog_arn: str
    glue_database_arn: str
    requests_table_arn: str
    retention_days: int
    scan_limit_bytes: int
    schedule_expression: str = "cron(0 2 * * ? *)"
    catch_up_days: int = 4
    summary_schedule_expression: str = "cron(0 3 * * ? *)"

    def __post_init__(self) -> None:
        if not SETTLE_DAYS <= self.catch_up_days <= 60:
            raise ValueError(f"catch_up_days {self.catch_up_days} is outside {SETTLE_DAYS}..60")
        for name in ("schedule_expression", "summary_schedule_expression"):
            if not re.fullmatch(r"(cron|rate)\(.+\)", getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r}: expected cron(...) or rate(...)")

    @property
    def summary_days_ago(self) -> tuple[int, int]:
        """The summary's window (first, last) in days before today: older than the compaction's first day."""
        return self.catch_up_days + SUMMARY_WINDOW_DAYS, self.catch_up_days + 1


def day_expression(days_ago: int) -> str:
    """``today - days_ago`` as a ``dt`` value ('YYYY-MM-DD'), in SQL that Athena and DuckDB both evaluate alike."""
    return f"CAST(CAST(current_date - INTERVAL '{days_ago}' DAY AS DATE) AS VARCHAR)"


def scheduled_sql(catch_up_days: int, sql: str | None = None) -> str:
    """compact.sql with its six parameters written in over ``current_date`` (the schedule's input is fixed
    text): days today - ``catch_up_days`` .. today - 2, the look-back from ``LOOKBACK_DAYS`` before the first."""
    text = sql if sql is not None else COMPACT_SQL_FILE.read_text(encoding="utf-8")
    first, last, lookback = day_expression(catch_up_days), day_expression(SETTLE_DAYS), day_expression(catch_up_days + LOOKBACK_DAYS)
    values = iter([first, last, first, last, lookback, last])
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("--"):
            continue  # the comments stay in the file; the schedule's input carries the statement only
        lines.append(re.sub(r"\?", lambda _: next(values), line))
    if next(values, None) is not None:
        raise ValueError("compact.sql has fewer than six parameters")
    return "\n".join(lines).strip() + "\n"


def shared_names(sql: str) -> str:
    """The contract's names written into a statement as the CLI writes them (lake.render_shared_names): the canary
    source and the match codes, from schema/contract.py."""
    sql = sql.replace("{{canary_source}}", "'" + contract.CANARY_SOURCE.replace("'", "''") + "'")
    whens = " ".join(f"WHEN '{kind}' THEN {code}" for kind, code in contract.MATCH_CODES.items())
    return re.sub(r"\{\{match_code\(([a-z_.]+)\)\}\}", lambda found: f"CASE {found.group(1)} {whens} END", sql)


def scheduled_sections_sql(first_days_ago: int, last_days_ago: int, sql: str | None = None) -> str:
    """sections.sql with its four parameters written in over ``current_date``: the days today - ``first_days_ago`` ..
    today - ``last_days_ago``, twice (the range, the summaries to skip); the contract's names written in."""
    text = shared_names(sql if sql is not None else SECTIONS_SQL_FILE.read_text(encoding="utf-8"))
    first, last = day_expression(first_days_ago), day_expression(last_days_ago)
    values = iter([first, last, first, last])
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("--"):
            continue
        lines.append(re.sub(r"\?", lambda _: next(values), line))
    if next(values, None) is not None:
        raise ValueError("sections.sql has fewer than four parameters")
    return "\n".join(lines).strip() + "\n"


def _parquet_glue_table(
    scope: Construct,
    construct_id: str,
    props: LakeCompactionProps,
    *,
    name: str,
    description: str,
    columns: tuple[tuple[str, str], ...],
    prefix: str,
    late: bool,
) -> glue.CfnTable:
    """A Parquet table of the lake bucket under ``prefix``, its ``dt`` partition projected by day (and ``late``,
    '0' or '1', when ``late``): what the compaction and the summaries write with Athena's INSERT INTO."""
    parameters = {
        "classification": "parquet",
        "EXTERNAL": "TRUE",
        "parquet.compression": "SNAPPY",
    } | day_projection()
    partition_keys = [glue.CfnTable.ColumnProperty(name=PARTITION_KEY, type="string")]
    if late:
        parameters |= {f"projection.{LATE_KEY}.type": "enum", f"projection.{LATE_KEY}.values": "0,1"}
        partition_keys.append(glue.CfnTable.ColumnProperty(name=LATE_KEY, type="string"))
    return glue.CfnTable(
        scope,
        construct_id,
        catalog_id=Stack.of(scope).account,
        database_name=props.database_ref,
        table_input=glue.CfnTable.TableInputProperty(
            name=name,
            description=description,
            table_type="EXTERNAL_TABLE",
            parameters=parameters,
            partition_keys=partition_keys,
            storage_descriptor=parquet_storage(columns, f"s3://{props.bucket.bucket_name}/{prefix}"),
        ),
    )


def sections_glue_table(scope: Construct, props: LakeCompactionProps) -> glue.CfnTable:
    """The Glue table ``compacted_sections`` (construct id ``SectionsTable`` in ``scope``): partition ``dt`` projected."""
    return _parquet_glue_table(
        scope,
        "SectionsTable",
        props,
        name=SECTIONS_TABLE_NAME,
        description="Per compacted day, the groups of the report's sections over its first-partition rows (the daily summary)",
        columns=SECTIONS_COLUMNS,
        prefix=SECTIONS_PREFIX,
        late=False,
    )


def compacted_glue_table(scope: Construct, props: LakeCompactionProps) -> glue.CfnTable:
    """The Glue table ``compacted`` (construct id ``Table`` in ``scope``): partitions projected by day and ``late``."""
    return _parquet_glue_table(
        scope,
        "Table",
        props,
        name=COMPACTED_TABLE_NAME,
        description="One row per request and arrival day, from the raw rows of requests (the daily compaction)",
        columns=COMPACTED_COLUMNS,
        prefix=COMPACTED_PREFIX,
        late=True,
    )


def compacted_reader_statements(props: LakeCompactionProps, table_arn: str, sections_table_arn: str) -> list[iam.PolicyStatement]:
    """A report reader reads ``compacted`` and ``compacted_sections`` too: their catalog entries and their objects
    (the summaries are under ``compacted/``)."""
    return [
        iam.PolicyStatement(
            sid="ReadCompactedTable", actions=["glue:GetPartitions", "glue:GetTable"], resources=[table_arn, sections_table_arn]
        ),
        iam.PolicyStatement(
            sid="ReadCompactedRows", actions=["s3:GetObject"], resources=[props.bucket.arn_for_objects(f"{COMPACTED_PREFIX}*")]
        ),
    ]


class CompactedTable(Construct):
    """The ``compacted`` and ``compacted_sections`` tables alone, for a stack whose lake is not compacted
    (``lakeCompaction`` false): the report's SQL reads them whatever fills them (an empty table adds nothing), so
    they exist in every stack. ``table``, ``sections_table``, their ARNs and ``reader_statements`` as
    ``LakeCompaction``'s; no workgroup, role or schedule."""

    def __init__(self, scope: Construct, construct_id: str, props: LakeCompactionProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.table_arn = stack.format_arn(service="glue", resource="table", resource_name=f"{props.database_name}/{COMPACTED_TABLE_NAME}")
        self.sections_table_arn = stack.format_arn(
            service="glue", resource="table", resource_name=f"{props.database_name}/{SECTIONS_TABLE_NAME}"
        )
        self.table = compacted_glue_table(self, props)
        self.sections_table = sections_glue_table(self, props)
        self.reader_statements = compacted_reader_statements(props, self.table_arn, self.sections_table_arn)


class LakeCompaction(Construct):
    """``table`` (Glue ``compacted``), ``sections_table`` (``compacted_sections``), ``work_group``
    (``<name_prefix>-compaction``), ``role`` and ``schedule`` (the compaction's), ``summary_role`` and
    ``summary_schedule`` (the summaries'), ``schedule_group``; ``reader_statements`` is what a report reader needs
    more to read both tables."""

    def __init__(self, scope: Construct, construct_id: str, props: LakeCompactionProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.table_arn = stack.format_arn(service="glue", resource="table", resource_name=f"{props.database_name}/{COMPACTED_TABLE_NAME}")
        self.sections_table_arn = stack.format_arn(
            service="glue", resource="table", resource_name=f"{props.database_name}/{SECTIONS_TABLE_NAME}"
        )
        self.table = self._table(props)
        self.sections_table = sections_glue_table(self, props)
        props.bucket.add_lifecycle_rule(id="ExpireCompactedRows", prefix=COMPACTED_PREFIX, expiration=Duration.days(props.retention_days))
        self.work_group_name = f"{props.name_prefix}-compaction"
        self.work_group = self._work_group(props)
        self.work_group_arn = stack.format_arn(service="athena", resource="workgroup", resource_name=self.work_group_name)
        self.role = self._role(props)
        self.schedule_group_name = f"{props.name_prefix}-lake"
        self.schedule_group = scheduler.CfnScheduleGroup(self, "ScheduleGroup", name=self.schedule_group_name)
        self.query_string = scheduled_sql(props.catch_up_days)
        self.schedule = self._schedule(props)
        self.summary_role = self._summary_role(props)
        self.summary_query_string = scheduled_sections_sql(*props.summary_days_ago)
        self.summary_schedule = self._query_schedule(
            props,
            "SummarySchedule",
            name=f"{props.name_prefix}-lake-summary",
            description="Summarize the compacted days older than the compaction's (INSERT INTO compacted_sections, sql/sections.sql)",
            expression=props.summary_schedule_expression,
            role=self.summary_role,
            query=self.summary_query_string,
        )
        self.reader_statements = self._reader_statements(props)

    def _table(self, props: LakeCompactionProps) -> glue.CfnTable:
        return compacted_glue_table(self, props)

    def _work_group(self, props: LakeCompactionProps) -> athena.CfnWorkGroup:
        return enforced_work_group(
            self,
            "WorkGroup",
            name=self.work_group_name,
            description=f"{props.name_prefix}: the event lake's daily compaction",
            scan_limit_bytes=props.scan_limit_bytes,
            results_location=f"s3://{props.bucket.bucket_name}/{COMPACTION_RESULTS_PREFIX}",
        )

    def _role(self, props: LakeCompactionProps) -> iam.Role:
        """The compaction schedule's role: what ``INSERT INTO compacted`` needs (raw rows read, compacted rows written)."""
        bucket = props.bucket
        return self._insert_role(
            props,
            "ScheduleRole",
            "Compaction",
            description="EventBridge Scheduler: start the lake's compaction query in Athena (which runs it as this role)",
            read_tables=[props.requests_table_arn, self.table_arn],
            target_table=(self.table_arn, "AddCompactedPartitions"),
            read_objects=(
                [bucket.arn_for_objects(f"{REQUESTS_PREFIX}*"), bucket.arn_for_objects(f"{COMPACTED_PREFIX}*")],
                "ReadRawAndCompactedRows",
            ),
            written_prefix=(COMPACTED_PREFIX, "WriteCompactedRowsAndResults"),
        )

    def _summary_role(self, props: LakeCompactionProps) -> iam.Role:
        """The summary schedule's role: what ``INSERT INTO compacted_sections`` needs, no raw row, no compacted row written."""
        return self._insert_role(
            props,
            "SummaryRole",
            "Summary",
            description="EventBridge Scheduler: start the lake's summary query in Athena (which runs it as this role)",
            read_tables=[self.table_arn, self.sections_table_arn],
            target_table=(self.sections_table_arn, "AddSummaryPartitions"),
            read_objects=([props.bucket.arn_for_objects(f"{COMPACTED_PREFIX}*")], "ReadCompactedRowsAndSummaries"),
            written_prefix=(SECTIONS_PREFIX, "WriteSummariesAndResults"),
        )

    def _insert_role(
        self,
        props: LakeCompactionProps,
        construct_id: str,
        policy_name: str,
        *,
        description: str,
        read_tables: list[str],
        target_table: tuple[str, str],
        read_objects: tuple[list[str], str],
        written_prefix: tuple[str, str],
    ) -> iam.Role:
        """A lake schedule's role, as Athena runs an ``INSERT INTO`` with it: start the query in the compaction's
        workgroup, read ``read_tables``' catalog entries, add partitions to the target table (its ARN, the
        statement's sid), read ``read_objects`` (ARNs, sid), write under the written prefix and the workgroup's
        results folder (prefix, sid). Assumed by this account's EventBridge Scheduler only."""
        bucket = props.bucket
        table_arn, partitions_sid = target_table
        objects, read_sid = read_objects
        prefix, write_sid = written_prefix
        return iam.Role(
            self,
            construct_id,
            description=description,
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}),
            inline_policies={
                policy_name: iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(sid="StartTheQuery", actions=["athena:StartQueryExecution"], resources=[self.work_group_arn]),
                        iam.PolicyStatement(
                            sid="ReadTheCatalog",
                            actions=["glue:GetDatabase", "glue:GetPartitions", "glue:GetTable"],
                            resources=[props.glue_catalog_arn, props.glue_database_arn, *read_tables],
                        ),
                        iam.PolicyStatement(
                            sid=partitions_sid,
                            actions=["glue:BatchCreatePartition", "glue:CreatePartition", "glue:GetPartition"],
                            resources=[props.glue_catalog_arn, props.glue_database_arn, table_arn],
                        ),
                        iam.PolicyStatement(sid=read_sid, actions=["s3:GetObject"], resources=objects),
                        iam.PolicyStatement(
                            sid=write_sid,
                            actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
                            resources=[bucket.arn_for_objects(f"{prefix}*"), bucket.arn_for_objects(f"{COMPACTION_RESULTS_PREFIX}*")],
                        ),
                        # No s3:prefix condition (as the report reader's policy, stacks/lake.py): it would also deny
                        # the requests that name no prefix (HeadBucket, a list of the root), which Athena makes. The
                        # objects stay readable and writable only under the folders above.
                        iam.PolicyStatement(sid="ListTheseFolders", actions=["s3:ListBucket"], resources=[bucket.bucket_arn]),
                        iam.PolicyStatement(sid="LocateTheBucket", actions=["s3:GetBucketLocation"], resources=[bucket.bucket_arn]),
                    ]
                )
            },
        )

    def _schedule(self, props: LakeCompactionProps) -> scheduler.CfnSchedule:
        return self._query_schedule(
            props,
            "Schedule",
            name=f"{props.name_prefix}-lake-compaction",
            description="Compact the event lake's complete days (INSERT INTO compacted, sql/compact.sql)",
            expression=props.schedule_expression,
            role=self.role,
            query=self.query_string,
        )

    def _query_schedule(
        self, props: LakeCompactionProps, construct_id: str, *, name: str, description: str, expression: str, role: iam.Role, query: str
    ) -> scheduler.CfnSchedule:
        """A schedule of the group that starts ``query`` in the compaction's workgroup as ``role``."""
        schedule = scheduler.CfnSchedule(
            self,
            construct_id,
            name=name,
            group_name=self.schedule_group_name,
            description=description,
            schedule_expression=expression,
            schedule_expression_timezone="UTC",
            state="ENABLED",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=f"arn:{Aws.PARTITION}:scheduler:::{UNIVERSAL_TARGET}",
                role_arn=role.role_arn,
                input=Stack.of(self).to_json_string(
                    {
                        "QueryString": query,
                        "WorkGroup": self.work_group_name,
                        "QueryExecutionContext": {"Database": props.database_name},
                    }
                ),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=MAX_EVENT_AGE_S, maximum_retry_attempts=RETRY_ATTEMPTS
                ),
            ),
        )
        schedule.add_dependency(self.schedule_group)
        schedule.add_dependency(self.work_group)
        return schedule

    def _reader_statements(self, props: LakeCompactionProps) -> list[iam.PolicyStatement]:
        return compacted_reader_statements(props, self.table_arn, self.sections_table_arn)
