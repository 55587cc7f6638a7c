"""LakeCompaction (stacks/compaction.py) on a fresh Stack: the two schedules (the compaction, the summaries),
their universal target and input, each role's exact permissions, the compacted and compacted_sections tables,
and the scheduled SQL's idempotence (run twice on DuckDB); the two alarms in the composed stack, which cover both
schedules' queries."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from stacks import compaction as compaction_module
from stacks import lake as lake_module
from stacks.analytics_stack import ChatAnalyticsStack
from stacks.compaction import (
    COMPACTED_COLUMNS,
    SECTIONS_COLUMNS,
    LakeCompaction,
    LakeCompactionProps,
    day_expression,
    scheduled_sections_sql,
    scheduled_sql,
)
from stacks.lake import LAKE_COLUMNS
from stacks.settings import Settings

PREFIX = "Test"


def build_props(bucket: s3.Bucket | None = None) -> LakeCompactionProps:
    if bucket is None:
        bucket = s3.Bucket(Stack(App(), "PropsStack"), "Bucket")
    return LakeCompactionProps(
        name_prefix=PREFIX,
        bucket=bucket,
        database_name="test_lake",
        database_ref="test_lake",
        glue_catalog_arn="arn:aws:glue:eu-west-1:111111111111:catalog",
        glue_database_arn="arn:aws:glue:eu-west-1:111111111111:database/test_lake",
        requests_table_arn="arn:aws:glue:eu-west-1:111111111111:table/test_lake/requests",
        retention_days=30,
        scan_limit_bytes=10 * 1024**3,
    )


def build(**overrides: Any) -> tuple[Stack, LakeCompaction, dict]:
    stack = Stack(App(), "CompactionStack")
    props = build_props(s3.Bucket(stack, "Bucket"))
    compaction = LakeCompaction(stack, "Compaction", dataclasses.replace(props, **overrides))
    return stack, compaction, Template.from_stack(stack).to_json()["Resources"]


def only(resources: dict, kind: str, logical: str = "") -> dict:
    """The one resource of ``kind`` (whose logical id contains ``logical``, when given)."""
    found = [resource["Properties"] for name, resource in resources.items() if resource["Type"] == kind and logical in name]
    assert len(found) == 1, f"{kind} {logical}: {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def built() -> tuple[Stack, LakeCompaction, dict]:
    return build()


def test_a_daily_schedule_starts_the_compaction_query_in_athena_through_the_universal_target(built) -> None:
    """The universal target's ARN is arn:aws:scheduler:::aws-sdk:<service>:<apiAction> and its Input is the API's
    request as JSON (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html)."""
    _, compaction, resources = built
    schedule = only(resources, "AWS::Scheduler::Schedule", "CompactionSchedule")
    assert schedule["ScheduleExpression"] == "cron(0 2 * * ? *)" and schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"} and schedule["State"] == "ENABLED"
    assert schedule["GroupName"] == f"{PREFIX}-lake"
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":scheduler:::aws-sdk:athena:startQueryExecution"]]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
    request = json.loads(target["Input"])
    assert set(request) == {"QueryString", "WorkGroup", "QueryExecutionContext"}
    assert request["WorkGroup"] == f"{PREFIX}-compaction" and request["QueryExecutionContext"] == {"Database": "test_lake"}
    query = request["QueryString"]
    assert query.startswith("INSERT INTO compacted\n") and "?" not in query and "--" not in query
    assert query.count(day_expression(4)) == 2 and query.count(day_expression(2)) == 3 and query.count(day_expression(19)) == 1
    assert "dt NOT IN (SELECT done.dt FROM compacted AS done" in query, "a day already compacted is skipped"
    group = only(resources, "AWS::Scheduler::ScheduleGroup")
    assert group == {"Name": f"{PREFIX}-lake"}
    assert compaction.query_string == query


def test_the_compaction_workgroup_enforces_its_limits_and_publishes_metrics(built) -> None:
    _, _, resources = built
    work_group = only(resources, "AWS::Athena::WorkGroup")
    assert work_group["Name"] == f"{PREFIX}-compaction"
    config = work_group["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True and config["PublishCloudWatchMetricsEnabled"] is True
    assert config["BytesScannedCutoffPerQuery"] == 10 * 1024**3
    assert config["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert config["ResultConfiguration"]["OutputLocation"]["Fn::Join"][1][-1] == "/athena-results/compaction/"


def statements(resources: dict, role: str = "ScheduleRole") -> dict[str, dict]:
    (policy,) = only(resources, "AWS::IAM::Role", role)["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize("role", ["ScheduleRole", "SummaryRole"])
def test_each_role_is_assumed_by_the_scheduler_of_this_account_only(built, role: str) -> None:
    _, _, resources = built
    assert len([r for r in resources.values() if r["Type"] == "AWS::IAM::Role"]) == 2, "one role per schedule"
    trust = only(resources, "AWS::IAM::Role", role)["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
            "Effect": "Allow",
            "Principal": {"Service": "scheduler.amazonaws.com"},
        }
    ]


def test_the_role_may_do_exactly_what_the_query_needs(built) -> None:
    """Athena runs the query with the caller's credentials: starting it in one workgroup, the catalog entries it
    reads and the compacted partitions it adds, the folders it reads and writes. No delete, no KMS (SSE-S3)."""
    stack, _, resources = built
    found = statements(resources)
    assert set(found) == {
        "StartTheQuery",
        "ReadTheCatalog",
        "AddCompactedPartitions",
        "ReadRawAndCompactedRows",
        "WriteCompactedRowsAndResults",
        "ListTheseFolders",
        "LocateTheBucket",
    }
    assert found["StartTheQuery"]["Action"] == "athena:StartQueryExecution"
    assert stack.resolve(found["StartTheQuery"]["Resource"])["Fn::Join"][1][-1] == f":workgroup/{PREFIX}-compaction"
    assert found["ReadTheCatalog"]["Action"] == ["glue:GetDatabase", "glue:GetPartitions", "glue:GetTable"]
    assert found["ReadTheCatalog"]["Resource"][:3] == [
        "arn:aws:glue:eu-west-1:111111111111:catalog",
        "arn:aws:glue:eu-west-1:111111111111:database/test_lake",
        "arn:aws:glue:eu-west-1:111111111111:table/test_lake/requests",
    ]
    assert found["AddCompactedPartitions"]["Action"] == ["glue:BatchCreatePartition", "glue:CreatePartition", "glue:GetPartition"]
    assert json.dumps(found["AddCompactedPartitions"]["Resource"][2]).endswith(':table/test_lake/compacted"]]}')
    assert found["ReadRawAndCompactedRows"]["Action"] == "s3:GetObject"
    assert [part["Fn::Join"][1][-1] for part in found["ReadRawAndCompactedRows"]["Resource"]] == ["/requests/*", "/compacted/*"]
    assert found["WriteCompactedRowsAndResults"]["Action"] == [
        "s3:AbortMultipartUpload",
        "s3:GetObject",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
    ]
    assert [part["Fn::Join"][1][-1] for part in found["WriteCompactedRowsAndResults"]["Resource"]] == [
        "/compacted/*",
        "/athena-results/compaction/*",
    ]
    # No s3:prefix condition: it would deny the bucket-level calls Athena makes (HeadBucket, a list of the root);
    # the reader policy drops it for the same reason (tests/cdk/test_lake.py).
    assert "Condition" not in found["ListTheseFolders"]
    actions = json.dumps([statement["Action"] for statement in found.values()])
    assert "Delete" not in actions and "kms:" not in actions and '"*"' not in json.dumps(list(found.values()))


def test_the_compacted_table_has_the_lakes_columns_source_rows_and_two_projected_partitions(built) -> None:
    _, _, resources = built
    table = only(resources, "AWS::Glue::Table", "CompactionTable")["TableInput"]
    assert table["Name"] == "compacted"
    assert [(column["Name"], column["Type"]) for column in table["StorageDescriptor"]["Columns"]] == list(COMPACTED_COLUMNS)
    assert list(COMPACTED_COLUMNS) == [*LAKE_COLUMNS, ("source_rows", "bigint")]
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}, {"Name": "late", "Type": "string"}]
    parameters = table["Parameters"]
    assert parameters["projection.enabled"] == "true" and parameters["projection.dt.type"] == "date"
    assert parameters["projection.late.type"] == "enum" and parameters["projection.late.values"] == "0,1"
    assert "storage.location.template" not in parameters, "INSERT INTO writes the Hive layout dt=.../late=.../"
    assert parameters["parquet.compression"] == "SNAPPY"


def test_a_second_schedule_summarizes_older_days_in_the_same_workgroup_and_group(built) -> None:
    """The summary query runs where the compaction's runs (the compaction workgroup: LakeCompactionFailed counts
    its failures; the schedule group: LakeCompactionNotStarted its dropped invocations), on days older than any
    the compaction may still write (today - 7 .. today - 5 with catch_up_days 4), as the summary role."""
    stack, compaction, resources = built
    schedule = only(resources, "AWS::Scheduler::Schedule", "SummarySchedule")
    assert schedule["Name"] == f"{PREFIX}-lake-summary" and schedule["GroupName"] == f"{PREFIX}-lake"
    assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)" and schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert stack.resolve(target["RoleArn"]) == {"Fn::GetAtt": [next(n for n in resources if "SummaryRole" in n), "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
    request = json.loads(target["Input"])
    assert request["WorkGroup"] == f"{PREFIX}-compaction" and request["QueryExecutionContext"] == {"Database": "test_lake"}
    query = request["QueryString"]
    assert query.startswith("INSERT INTO compacted_sections\n") and "?" not in query and "--" not in query and "{{" not in query
    assert query.count(day_expression(7)) == 2 and query.count(day_expression(5)) == 2
    assert "dt NOT IN (SELECT done.dt FROM compacted_sections AS done" in query, "a day already summarized is skipped"
    assert compaction.summary_query_string == query
    assert dataclasses.replace(build_props(), catch_up_days=6).summary_days_ago == (9, 7), "older than the compaction's first day"


def test_the_summary_role_may_do_exactly_what_its_query_needs(built) -> None:
    """It reads the compacted rows and summaries, writes only summaries and results; never a raw row, never a compacted row."""
    stack, _, resources = built
    found = statements(resources, "SummaryRole")
    assert set(found) == {
        "StartTheQuery",
        "ReadTheCatalog",
        "AddSummaryPartitions",
        "ReadCompactedRowsAndSummaries",
        "WriteSummariesAndResults",
        "ListTheseFolders",
        "LocateTheBucket",
    }
    assert stack.resolve(found["StartTheQuery"]["Resource"])["Fn::Join"][1][-1] == f":workgroup/{PREFIX}-compaction"
    tables = [json.dumps(arn) for arn in found["ReadTheCatalog"]["Resource"][2:]]
    assert len(tables) == 2 and tables[0].endswith(':table/test_lake/compacted"]]}')
    assert tables[1].endswith(':table/test_lake/compacted_sections"]]}')
    assert "requests" not in json.dumps(found), "no raw row"
    assert json.dumps(found["AddSummaryPartitions"]["Resource"][2]).endswith(':table/test_lake/compacted_sections"]]}')
    assert found["ReadCompactedRowsAndSummaries"]["Resource"]["Fn::Join"][1][-1] == "/compacted/*"
    assert [part["Fn::Join"][1][-1] for part in found["WriteSummariesAndResults"]["Resource"]] == [
        "/compacted/sections/*",
        "/athena-results/compaction/*",
    ]
    actions = json.dumps([statement["Action"] for statement in found.values()])
    assert "Delete" not in actions and "kms:" not in actions and '"*"' not in json.dumps(list(found.values()))


def test_the_sections_table_has_the_summary_columns_under_compacted(built) -> None:
    _, _, resources = built
    table = only(resources, "AWS::Glue::Table", "SectionsTable")["TableInput"]
    assert table["Name"] == "compacted_sections"
    assert [(column["Name"], column["Type"]) for column in table["StorageDescriptor"]["Columns"]] == list(SECTIONS_COLUMNS)
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    assert table["StorageDescriptor"]["Location"]["Fn::Join"][1][-1] == "/compacted/sections/"
    assert table["Parameters"]["projection.dt.type"] == "date" and "projection.late.type" not in table["Parameters"]
    from chat_analytics_ops import lake as ops_lake

    assert list(SECTIONS_COLUMNS) == list(ops_lake.SECTIONS_COLUMNS) and ops_lake.SECTIONS_PREFIX == "compacted/sections/"


def test_the_scheduled_summary_runs_on_duckdb_and_a_second_run_writes_nothing() -> None:
    """The schedule's summary statement, dates written in, on DuckDB over one compacted day of the window."""
    today = datetime.now(UTC).date()
    old = (today - timedelta(days=6)).isoformat()
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(
        "CREATE TABLE compacted AS SELECT 1::BIGINT AS request_key, ? AS day, 'web' AS source, 'none' AS match_type, 3.0::DOUBLE AS"
        " match_score, 'q' AS question_key, 12.0::DOUBLE AS latency_ms, 20::BIGINT AS response_latency_ms, 5::BIGINT AS"
        " query_ingest_lag_ms, 6::BIGINT AS response_ingest_lag_ms, ? AS dt, '0' AS late",
        [old, old],
    )
    typed = ", ".join(f"NULL::{'VARCHAR' if kind == 'string' else kind.upper()} AS {name}" for name, kind in SECTIONS_COLUMNS)
    connection.execute(f"CREATE TABLE compacted_sections AS SELECT {typed}, '' AS dt WHERE false")
    statement = scheduled_sections_sql(7, 5).replace("INSERT INTO compacted_sections", "INSERT INTO compacted_sections BY NAME", 1)
    connection.execute(statement)
    found = dict(connection.execute("SELECT section, sum(n) FROM compacted_sections WHERE dt = ? GROUP BY section", [old]).fetchall())
    assert found == {"rows": 1, "day": 1, "answer_ms": 1, "response_ms": 1, "query_lag_ms": 1, "response_lag_ms": 1, "question": 1}
    connection.execute(statement)
    assert connection.execute("SELECT sum(n) FROM compacted_sections WHERE section = 'rows'").fetchall() == [(1,)], "once"


def test_compacted_rows_expire_with_the_raw_rows(built) -> None:
    _, _, resources = built
    rules = only(resources, "AWS::S3::Bucket")["LifecycleConfiguration"]["Rules"]
    assert {"Id": "ExpireCompactedRows", "Prefix": "compacted/", "ExpirationInDays": 30, "Status": "Enabled"} in rules


def test_the_scheduled_sql_runs_on_duckdb_and_a_second_run_writes_nothing(tmp_path: Path) -> None:
    """The date arithmetic written in for Athena (current_date - INTERVAL 'n' DAY, cast to DATE, then to text)
    means the same on DuckDB: run the schedule's statement there twice over a small lake."""
    today = datetime.now(UTC).date()
    old = (today - timedelta(days=3)).isoformat()
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    typed = ", ".join(
        f"NULL::{'VARCHAR' if kind == 'string' else 'BIGINT' if kind == 'bigint' else kind.upper()} AS {name}"
        for name, kind in LAKE_COLUMNS
    )
    connection.execute(f"CREATE TABLE requests AS SELECT {typed}, '' AS dt WHERE false")
    connection.execute(
        "INSERT INTO requests (request_key, day, complete, request_id, dt) VALUES (1, ?, false, 'a', ?), (1, ?, true, 'a', ?), (2, ?, true, 'b', ?)",
        [old, old, old, old, old, (today - timedelta(days=1)).isoformat()],
    )
    connection.execute(f"CREATE TABLE compacted AS SELECT {typed}, 0::BIGINT AS source_rows, '' AS dt, '' AS late WHERE false")
    statement = scheduled_sql(4).replace("INSERT INTO compacted", "INSERT INTO compacted BY NAME", 1)
    connection.execute(statement)
    rows = connection.execute("SELECT request_key, complete, source_rows, dt, late FROM compacted ORDER BY request_key").fetchall()
    assert rows == [(1, True, 2, old, "0")], "the complete day only (yesterday's is not complete), one row per request"
    connection.execute(statement)
    assert connection.execute("SELECT count(*) FROM compacted").fetchall() == [(1,)], "a second run changes nothing"


def test_props_are_checked() -> None:
    with pytest.raises(ValueError, match="catch_up_days 1"):
        build(catch_up_days=1)
    with pytest.raises(ValueError, match="schedule_expression"):
        build(schedule_expression="every day")
    with pytest.raises(ValueError, match="summary_schedule_expression"):
        build(summary_schedule_expression="at three")
    with pytest.raises(ValueError, match="fewer than four"):
        scheduled_sections_sql(7, 5, "SELECT ?")
    with pytest.raises(ValueError, match="fewer than six"):
        scheduled_sql(7, "SELECT ? , ?")


def test_the_stack_alarms_on_a_failed_compaction_query_and_on_a_schedule_that_could_not_start_it() -> None:
    """Athena publishes per-query metrics of a workgroup with metrics enabled, with the QueryState, QueryType and
    WorkGroup dimensions (https://docs.aws.amazon.com/athena/latest/ug/query-metrics-viewing.html); EventBridge
    Scheduler publishes InvocationDroppedCount per ScheduleGroup
    (https://docs.aws.amazon.com/scheduler/latest/UserGuide/monitoring-cloudwatch.html)."""
    stack = ChatAnalyticsStack(App(), "Analytics", settings=Settings.from_context({"stage": "dev"}))
    resources = Template.from_stack(stack).to_json()["Resources"]
    alarms = {
        resource["Properties"]["AlarmName"]: resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    failed = alarms[f"{stack.settings.stack_name}-LakeCompactionFailed"]
    assert (failed["Namespace"], failed["MetricName"], failed["Statistic"]) == ("AWS/Athena", "TotalExecutionTime", "SampleCount")
    assert sorted((d["Name"], d["Value"]) for d in failed["Dimensions"]) == [
        ("QueryState", "FAILED"),
        ("QueryType", "DML"),
        ("WorkGroup", f"{stack.settings.stack_name}-compaction"),
    ]
    dropped = alarms[f"{stack.settings.stack_name}-LakeCompactionNotStarted"]
    assert (dropped["Namespace"], dropped["MetricName"]) == ("AWS/Scheduler", "InvocationDroppedCount")
    assert dropped["Dimensions"] == [{"Name": "ScheduleGroup", "Value": f"{stack.settings.stack_name}-lake"}]
    for alarm in (failed, dropped):
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching" and len(alarm["AlarmActions"]) == 1
    assert len(alarms) == 12
    without = ChatAnalyticsStack(App(), "Analytics", settings=Settings.from_context({"stage": "dev", "lakeCompaction": False}))
    names = [
        r["Properties"]["AlarmName"]
        for r in Template.from_stack(without).to_json()["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert len(names) == 10 and not any("Compaction" in name for name in names)


def test_what_the_construct_restates_of_the_lakes_is_the_lakes() -> None:
    names = ("REQUESTS_PREFIX", "ATHENA_RESULTS_PREFIX", "LAKE_COLUMNS")  # the Glue formats and projection: stacks/cdk_helpers.py
    for name in names:
        assert getattr(compaction_module, name) == getattr(lake_module, name), name
