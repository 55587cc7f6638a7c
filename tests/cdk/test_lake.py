"""The event lake (stacks/lake.py): each property that matters, asserted on the dev and prod templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.lake import EventLakeProps
from tests.cdk.conftest import REPO, Synthesized, resources_of

ACCOUNT = {"Ref": "AWS::AccountId"}


def only(s: Synthesized, resource_type: str) -> tuple[str, dict]:
    """The lake's one resource of a type, by logical id: the rejected events' table and stream
    (tests/cdk/test_rejected.py), the erasure policy (tests/cdk/test_stack_resources.py) and the compaction's
    ``compacted`` table and ``-compaction`` workgroup (tests/cdk/test_compaction.py) aside."""
    found = {
        name: res
        for name, res in resources_of(s.raw, resource_type).items()
        if not name.startswith(("LakeRejected", "Erasure", "Compaction", "CompactedTable"))
    }
    assert len(found) == 1, f"expected one {resource_type}, found {list(found)}"
    name, resource = next(iter(found.items()))
    return name, resource


def report_reader_policy(s: Synthesized) -> tuple[str, dict]:
    """The lake's managed policy (the stack has others: the erasure policy)."""
    found = {name: r for name, r in resources_of(s.raw, "AWS::IAM::ManagedPolicy").items() if name.startswith("LakeReportReaderPolicy")}
    assert len(found) == 1, f"expected one report reader policy, found {list(found)}"
    return next(iter(found.items()))


def bucket(s: Synthesized) -> tuple[str, dict]:
    return only(s, "AWS::S3::Bucket")


def table_input(s: Synthesized) -> dict:
    return only(s, "AWS::Glue::Table")[1]["Properties"]["TableInput"]


def s3_destination(s: Synthesized) -> dict:
    return only(s, "AWS::KinesisFirehose::DeliveryStream")[1]["Properties"]["ExtendedS3DestinationConfiguration"]


def in_bucket(bucket_id: str, suffix: str) -> dict:
    """``s3://<bucket>/<suffix>`` as the template writes it."""
    return {"Fn::Join": ["", ["s3://", {"Ref": bucket_id}, suffix]]}


def object_arn(bucket_id: str, pattern: str) -> dict:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, pattern]]}


def glue_arn(suffix: str) -> dict:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":glue:", {"Ref": "AWS::Region"}, ":", ACCOUNT, suffix]]}


def processor_lake_columns() -> tuple[tuple[str, str], ...]:
    """``LAKE_COLUMNS`` of the processor's lake module (lambda_src/chat_processor/lake.py), the authority."""
    from chat_processor import lake

    return tuple((name, kind) for name, kind in lake.LAKE_COLUMNS)


# The bucket -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "days", "table_days"), [("dev", 30, 30), ("prod", 400, 90)])
def test_lake_bucket_is_encrypted_private_tls_only_and_expires_rows_with_the_events(
    stage: str, days: int, table_days: int, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    bucket_id, lake = bucket(s)
    props = lake["Properties"]
    assert props["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "VersioningConfiguration" not in props
    rules = {rule.get("Prefix", ""): rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert all(rule["Status"] == "Enabled" for rule in rules.values())
    _, fn = only(s, "AWS::Lambda::Function")
    assert rules["requests/"]["ExpirationInDays"] == days, "the lake keeps eventRetentionDays"
    assert int(fn["Properties"]["Environment"]["Variables"]["EVENT_RETENTION_DAYS"]) == table_days, "the table's TTL: tableRetentionDays"
    assert rules["errors/"]["ExpirationInDays"] == days
    assert rules["athena-results/"]["ExpirationInDays"] == 7, "the compaction's results (athena-results/compaction/) too"
    assert rules[""]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1} and "ExpirationInDays" not in rules[""]
    assert rules["compacted/"]["Id"] == "ExpireCompactedRows"
    assert rules["compacted/"]["ExpirationInDays"] == days, "the compacted rows expire with the raw rows they restate"
    assert {prefix: rule["Id"] for prefix, rule in rules.items()} == {
        "requests/": "ExpireRequestRows",
        "errors/": "ExpireErrorRecords",
        "rejected/": "ExpireRejectedRows",
        "athena-results/": "ExpireAthenaResults",
        "": "AbortIncompleteUploads",
        "compacted/": "ExpireCompactedRows",
    }, "every folder the stack writes expires"
    [policy] = resources_of(s.raw, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}
    [deny] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_lake_bucket_is_retained_in_every_stage_and_needs_no_custom_resource(dev: Synthesized, prod: Synthesized) -> None:
    """No auto-delete: that would add a custom-resource Lambda; the lifecycle rules empty an abandoned bucket."""
    for s in (dev, prod):
        _, lake = bucket(s)
        assert (lake["DeletionPolicy"], lake["UpdateReplacePolicy"]) == ("Retain", "Retain")
        assert len(resources_of(s.raw, "AWS::Lambda::Function")) == 1
        assert not [r for r in s.raw["Resources"].values() if r["Type"].startswith("Custom::")]


def test_lake_retention_follows_event_retention_days_from_context(tmp_path: Path) -> None:
    from tests.cdk.conftest import synthesize

    s = synthesize({"stage": "dev", "eventRetentionDays": 90, "tableRetentionDays": 14, "lakeScanLimitGb": 3}, tmp_path)
    _, lake = bucket(s)
    rules = {rule.get("Prefix", ""): rule for rule in lake["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["requests/"]["ExpirationInDays"] == rules["errors/"]["ExpirationInDays"] == 90
    assert rules["compacted/"]["ExpirationInDays"] == 90
    _, fn = only(s, "AWS::Lambda::Function")
    assert fn["Properties"]["Environment"]["Variables"]["EVENT_RETENTION_DAYS"] == "14"
    config = only(s, "AWS::Athena::WorkGroup")[1]["Properties"]["WorkGroupConfiguration"]
    assert config["BytesScannedCutoffPerQuery"] == 3 * 1024**3


# The Glue table ----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_glue_database_and_table_are_parquet_with_day_projection_over_firehose_prefix(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    bucket_id, _ = bucket(s)
    database_id, database = only(s, "AWS::Glue::Database")
    assert database["Properties"]["DatabaseInput"]["Name"] == f"chat_analytics_{stage}"
    assert database["Properties"]["CatalogId"] == ACCOUNT
    _, table = only(s, "AWS::Glue::Table")
    assert table["Properties"]["DatabaseName"] == {"Ref": database_id}
    assert table["Properties"]["CatalogId"] == ACCOUNT
    table_props = table_input(s)
    assert table_props["Name"] == "requests" and table_props["TableType"] == "EXTERNAL_TABLE"
    assert table_props["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    storage = table_props["StorageDescriptor"]
    assert storage["Location"] == in_bucket(bucket_id, "/requests/")
    assert storage["InputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    assert storage["OutputFormat"] == "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    parameters = table_props["Parameters"]
    assert {key: value for key, value in parameters.items() if key != "storage.location.template"} == {
        "classification": "parquet",
        "EXTERNAL": "TRUE",
        "projection.enabled": "true",
        "projection.dt.type": "date",
        "projection.dt.format": "yyyy-MM-dd",
        "projection.dt.range": "2026-01-01,NOW",
        "projection.dt.interval": "1",
        "projection.dt.interval.unit": "DAYS",
    }
    assert parameters["storage.location.template"] == in_bucket(bucket_id, "/requests/dt=${dt}/")


def test_the_projected_location_is_where_firehose_writes(dev: Synthesized) -> None:
    """Firehose's prefix ``requests/dt=!{timestamp:yyyy-MM-dd}/`` names the folder the template projects as
    ``requests/dt=${dt}/`` with the same date format (https://docs.aws.amazon.com/athena/latest/ug/partition-projection-kinesis-firehose-example.html)."""
    destination = s3_destination(dev)
    parameters = table_input(dev)["Parameters"]
    template_suffix = parameters["storage.location.template"]["Fn::Join"][1][-1]
    java_format = parameters["projection.dt.format"]
    assert destination["Prefix"] == template_suffix.lstrip("/").replace("${dt}", f"!{{timestamp:{java_format}}}")
    assert destination["ErrorOutputPrefix"] == "errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
    assert not destination["ErrorOutputPrefix"].startswith("requests/"), "failed records never land in the table's location"


def test_glue_columns_are_the_processors_lake_columns(dev: Synthesized) -> None:
    """The JSON lines the processor sends and the table Firehose converts them with are one list of columns."""
    try:
        expected = processor_lake_columns()
    except ImportError as error:  # the processor's lake module is written separately
        pytest.skip(f"lambda_src/chat_processor/lake.py cannot be imported yet ({error}); the Glue columns are unchecked")
    columns = tuple((c["Name"], c["Type"]) for c in table_input(dev)["StorageDescriptor"]["Columns"])
    assert columns == expected


def test_glue_columns_are_the_designed_ones_in_order(dev: Synthesized) -> None:
    """The order is part of the design (lambda_src/chat_processor/lake.py): the columns report.sql reads come first,
    in one run, and the large text (request id, session, question, reasoning) last, so Athena reads fewer,
    merged ranges of each Parquet file."""
    columns = [(c["Name"], c["Type"]) for c in table_input(dev)["StorageDescriptor"]["Columns"]]
    assert columns == [
        ("request_key", "bigint"),
        ("day", "string"),
        ("source", "string"),
        ("complete", "boolean"),
        ("match_type", "string"),
        ("match_score", "double"),
        ("question_key", "string"),
        ("latency_ms", "double"),
        ("response_latency_ms", "bigint"),
        ("query_ingest_lag_ms", "bigint"),
        ("response_ingest_lag_ms", "bigint"),
        ("schema_version", "int"),
        ("query_timestamp", "bigint"),
        ("query_ingested_at", "bigint"),
        ("response_timestamp", "bigint"),
        ("response_ingested_at", "bigint"),
        ("written_at", "bigint"),
        ("request_id", "string"),
        ("session_id", "string"),
        ("query", "string"),
        ("reasoning", "string"),
        # added later (contract 1.1), at the end: a deploy adds it to the table; files written before read it as NULL
        ("model", "string"),
    ]


# The delivery stream -----------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_delivery_stream_converts_json_to_snappy_parquet_through_the_table(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    bucket_id, _ = bucket(s)
    database_id, _ = only(s, "AWS::Glue::Database")
    table_id, _ = only(s, "AWS::Glue::Table")
    _, stream = only(s, "AWS::KinesisFirehose::DeliveryStream")
    props = stream["Properties"]
    assert props["DeliveryStreamName"] == f"ChatAnalytics-{stage}-requests"
    assert props["DeliveryStreamType"] == "DirectPut"
    assert props["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    destination = props["ExtendedS3DestinationConfiguration"]
    role_arn = destination["RoleARN"]
    assert destination["BucketARN"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert destination["BufferingHints"] == {"IntervalInSeconds": 900, "SizeInMBs": 128}
    assert destination["CompressionFormat"] == "UNCOMPRESSED", "Parquet is compressed by its serializer"
    assert destination["DataFormatConversionConfiguration"] == {
        "Enabled": True,
        "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
        "SchemaConfiguration": {
            "CatalogId": ACCOUNT,
            "DatabaseName": {"Ref": database_id},
            "TableName": {"Ref": table_id},
            "Region": {"Ref": "AWS::Region"},
            "RoleARN": role_arn,
            "VersionId": "LATEST",
        },
    }


@pytest.mark.parametrize(("stage", "days"), [("dev", 14), ("prod", 90)])
def test_delivery_stream_logs_to_its_own_log_group_with_the_stacks_retention(stage: str, days: int, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    logging = s3_destination(s)["CloudWatchLoggingOptions"]
    assert logging["Enabled"] is True
    log_group = s.raw["Resources"][logging["LogGroupName"]["Ref"]]
    assert log_group["Type"] == "AWS::Logs::LogGroup" and log_group["Properties"]["RetentionInDays"] == days
    _, log_stream = only(s, "AWS::Logs::LogStream")
    assert log_stream["Properties"] == {"LogGroupName": logging["LogGroupName"], "LogStreamName": logging["LogStreamName"]}


def test_delivery_role_trusts_firehose_of_this_account_and_grants_only_the_lake(dev: Synthesized) -> None:
    """https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-s3: the trust names
    firehose.amazonaws.com with sts:ExternalId = the account (the page's trust policy; Firehose passes the
    account as the external id), then the S3 actions on the bucket and its objects (here only requests/ and
    errors/), the Glue table's versions, and the log stream."""
    bucket_id, _ = bucket(dev)
    role_id = s3_destination(dev)["RoleARN"]["Fn::GetAtt"][0]
    role = dev.raw["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": ACCOUNT}},
            "Effect": "Allow",
            "Principal": {"Service": "firehose.amazonaws.com"},
        }
    ]
    assert "ManagedPolicyArns" not in role
    assert not [p for p in resources_of(dev.raw, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"].get("Roles", [])]
    [policy] = role["Policies"]
    statements = {st["Sid"]: st for st in policy["PolicyDocument"]["Statement"]}
    assert all(st["Effect"] == "Allow" and "Condition" not in st for st in statements.values())
    assert statements["LakeBucket"]["Action"] == ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    assert statements["LakeBucket"]["Resource"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert statements["LakeObjects"]["Action"] == ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    assert sorted(map(json.dumps, statements["LakeObjects"]["Resource"])) == sorted(
        json.dumps(object_arn(bucket_id, suffix)) for suffix in ("/requests/*", "/rejected/*", "/errors/*")
    )
    assert statements["LakeSchema"]["Action"] == ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"]
    assert statements["LakeSchema"]["Resource"] == [
        glue_arn(":catalog"),
        glue_arn(":database/chat_analytics_dev"),
        glue_arn(":table/chat_analytics_dev/rejected"),
        glue_arn(":table/chat_analytics_dev/requests"),
    ]
    assert statements["DeliveryLogs"]["Action"] == "logs:PutLogEvents"
    log_streams = sorted(json.dumps(arn).split(":log-stream:")[1].split('"')[0] for arn in statements["DeliveryLogs"]["Resource"])
    assert log_streams == ["RejectedS3Delivery", "S3Delivery"]
    assert set(statements) == {"LakeBucket", "LakeObjects", "LakeSchema", "DeliveryLogs"}


# Athena ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_work_group_enforces_its_encrypted_results_engine_3_and_the_scan_cutoff(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    bucket_id, _ = bucket(s)
    _, work_group = only(s, "AWS::Athena::WorkGroup")
    props = work_group["Properties"]
    assert props["Name"] == f"ChatAnalytics-{stage}" and props["State"] == "ENABLED" and props["RecursiveDeleteOption"] is True
    assert props["WorkGroupConfiguration"] == {
        "BytesScannedCutoffPerQuery": 10 * 1024**3,
        "EnforceWorkGroupConfiguration": True,
        "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
        "PublishCloudWatchMetricsEnabled": True,
        "ResultConfiguration": {
            "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
            "OutputLocation": in_bucket(bucket_id, "/athena-results/"),
        },
    }


ATHENA_MANAGED_POLICIES = "https://docs.aws.amazon.com/athena/latest/ug/managed-policies.html"
ATHENA_S3_ACCESS = "https://docs.aws.amazon.com/athena/latest/ug/s3-permissions.html"

# The report reader policy, statement by statement: (Sid, actions, resource, the page that says the
# actions are what running an Athena query with its results in S3 needs). Resources: "workgroup", "glue"
# (catalog, database, table), "bucket", or an object prefix of the lake bucket.
REPORT_READER_STATEMENTS = (
    (
        "RunQueriesInTheWorkGroup",
        [
            "athena:GetQueryExecution",
            "athena:GetQueryResults",
            "athena:GetWorkGroup",
            "athena:StartQueryExecution",
            "athena:StopQueryExecution",
        ],
        "workgroup",
        ATHENA_MANAGED_POLICIES,
    ),
    ("ReadTheTableDefinition", ["glue:GetDatabase", "glue:GetPartitions", "glue:GetTable"], "glue", ATHENA_MANAGED_POLICIES),
    ("ReadTheRows", "s3:GetObject", "rows", ATHENA_S3_ACCESS),
    (
        "ReadAndWriteQueryResults",
        ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
        "/athena-results/*",
        ATHENA_S3_ACCESS,
    ),
    ("LocateAndListTheLakeBucket", ["s3:GetBucketLocation", "s3:ListBucket"], "bucket", ATHENA_S3_ACCESS),
    # The report reads the compacted days from ``compacted`` and their summaries from ``compacted_sections``
    # (stacks/compaction.py); their catalog and database are ReadTheTableDefinition's.
    ("ReadCompactedTable", ["glue:GetPartitions", "glue:GetTable"], "compacted table", ATHENA_MANAGED_POLICIES),
    ("ReadCompactedRows", "s3:GetObject", "/compacted/*", ATHENA_S3_ACCESS),
)


def test_report_reader_policy_is_athenas_documented_list_and_nothing_else(dev: Synthesized) -> None:
    """What running an Athena query with its results in S3 needs, from Athena's managed-policy page (the
    athena:* query actions on the workgroup, the glue:Get* catalog reads; AmazonAthenaFullAccess grants the
    same on its results buckets: s3:GetBucketLocation, s3:GetObject, s3:ListBucket, s3:PutObject,
    s3:AbortMultipartUpload, s3:ListMultipartUploadParts, https://docs.aws.amazon.com/athena/latest/ug/managed-policies.html)
    and its "Access to Amazon S3" page (the caller's own S3 permissions are what Athena reads the data and
    writes the results with, https://docs.aws.amazon.com/athena/latest/ug/s3-permissions.html). Each
    statement of ``REPORT_READER_STATEMENTS`` names its page. s3:ListBucket has no s3:prefix condition: with
    one, every request that names no prefix (HeadBucket, a list of the bucket's root) is denied."""
    bucket_id, _ = bucket(dev)
    _, policy = report_reader_policy(dev)
    props = policy["Properties"]
    assert not {"Users", "Groups", "Roles"} & set(props), "attached by whoever runs the report, not by the stack"
    resources = {
        "workgroup": {
            "Fn::Join": [
                "",
                ["arn:", {"Ref": "AWS::Partition"}, ":athena:", {"Ref": "AWS::Region"}, ":", ACCOUNT, ":workgroup/ChatAnalytics-dev"],
            ]
        },
        "glue": [
            glue_arn(":catalog"),
            glue_arn(":database/chat_analytics_dev"),
            glue_arn(":table/chat_analytics_dev/rejected"),
            glue_arn(":table/chat_analytics_dev/requests"),
        ],
        "rows": [object_arn(bucket_id, "/rejected/*"), object_arn(bucket_id, "/requests/*")],  # CDK sorts them
        "bucket": {"Fn::GetAtt": [bucket_id, "Arn"]},
        "compacted table": [glue_arn(":table/chat_analytics_dev/compacted"), glue_arn(":table/chat_analytics_dev/compacted_sections")],
    }
    expected = [
        {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources.get(where) or object_arn(bucket_id, where)}
        for sid, actions, where, _page in REPORT_READER_STATEMENTS
    ]
    assert {page for *_, page in REPORT_READER_STATEMENTS} == {ATHENA_MANAGED_POLICIES, ATHENA_S3_ACCESS}
    assert props["PolicyDocument"]["Statement"] == expected
    assert "Condition" not in json.dumps(props)
    assert "errors/" not in json.dumps(props), "the reader reads no record Firehose refused"


# The processor -------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_processor_knows_the_stream_and_may_only_put_record_batches_to_it(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    stream_id, _ = only(s, "AWS::KinesisFirehose::DeliveryStream")
    _, fn = only(s, "AWS::Lambda::Function")
    assert fn["Properties"]["Environment"]["Variables"]["LAKE_STREAM_NAME"] == {"Ref": stream_id}
    firehose_statements = [
        st
        for policy in resources_of(s.raw, "AWS::IAM::Policy").values()
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if any(str(action).startswith("firehose:") for action in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]]))
    ]
    rejected_id = "LakeRejectedDeliveryStream26B9E2F7"  # the rejected events' stream (tests/cdk/test_rejected.py)
    assert firehose_statements == [
        {
            "Action": "firehose:PutRecordBatch",
            "Effect": "Allow",
            "Resource": [{"Fn::GetAtt": [stream_id, "Arn"]}, {"Fn::GetAtt": [rejected_id, "Arn"]}],
        }
    ]
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    [policy] = [p for p in resources_of(s.raw, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"].get("Roles", [])]
    assert firehose_statements[0] in policy["Properties"]["PolicyDocument"]["Statement"]


# Monitoring and outputs --------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_lake_alarms_watch_delivery_freshness_and_conversion(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    [topic_id] = resources_of(s.raw, "AWS::SNS::Topic")
    stream_id, _ = only(s, "AWS::KinesisFirehose::DeliveryStream")
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in resources_of(s.raw, "AWS::CloudWatch::Alarm").values()}
    firehose = [{"Name": "DeliveryStreamName", "Value": {"Ref": stream_id}}]
    expected = {
        f"ChatAnalytics-{stage}-LakeDeliveryFailures": (
            "ChatAnalytics",
            "LakeDeliveryFailures",
            [{"Name": "service", "Value": "chat-analytics-processor"}],
            "Sum",
            1,
            "GreaterThanOrEqualToThreshold",
        ),
        f"ChatAnalytics-{stage}-LakeFreshness": (
            "AWS/Firehose",
            "DeliveryToS3.DataFreshness",
            firehose,
            "Maximum",
            1800,
            "GreaterThanThreshold",
        ),
        f"ChatAnalytics-{stage}-LakeConversionFailures": (
            "AWS/Firehose",
            "FailedConversion.Records",
            firehose,
            "Sum",
            1,
            "GreaterThanOrEqualToThreshold",
        ),
    }
    for name, (namespace, metric, dimensions, statistic, threshold, comparison) in expected.items():
        props = alarms[name]
        assert (props["Namespace"], props["MetricName"], props["Dimensions"]) == (namespace, metric, dimensions)
        assert (props["Statistic"], props["Threshold"], props["ComparisonOperator"]) == (statistic, threshold, comparison)
        assert (props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (300, 1, 1)
        assert props["TreatMissingData"] == "notBreaching"
        assert props["AlarmActions"] == [{"Ref": topic_id}] and "OKActions" not in props


def test_dashboard_shows_the_lake(dev: Synthesized) -> None:
    [dashboard] = resources_of(dev.raw, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for text in (
        "Event lake",
        "LakeRows",
        "IncomingRecords",
        "DeliveryToS3.Records",
        "DeliveryToS3.DataFreshness",
        "FailedConversion.Records",
    ):
        assert text in body, text


def test_lake_outputs_name_what_the_report_needs(dev: Synthesized) -> None:
    bucket_id, _ = bucket(dev)
    outputs = {name: output["Value"] for name, output in dev.raw["Outputs"].items()}
    refs = {
        "LakeBucketName": bucket_id,
        "LakeDatabaseName": only(dev, "AWS::Glue::Database")[0],
        "LakeTableName": only(dev, "AWS::Glue::Table")[0],
        "AthenaWorkGroupName": only(dev, "AWS::Athena::WorkGroup")[0],
        "LakeStreamName": only(dev, "AWS::KinesisFirehose::DeliveryStream")[0],
        "ReportReaderPolicyArn": report_reader_policy(dev)[0],
    }
    for name, logical_id in refs.items():
        assert outputs[name] == {"Ref": logical_id}, name


# Lake Formation ----------------------------------------------------------------------------

READER_A = "arn:aws:iam::111122223333:role/analysts"
READER_B = "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Reports_0123456789abcdef"


@pytest.fixture(scope="module")
def with_lake_formation(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from tests.cdk.conftest import synthesize

    context = {"stage": "dev", "lakeFormation": True, "reportReaderPrincipalArns": [READER_A, READER_B]}
    return synthesize(context, tmp_path_factory.mktemp("cdk-lake-formation"))


def lake_formation_grants(s: Synthesized) -> dict[str, dict]:
    return {name: r["Properties"] for name, r in resources_of(s.raw, "AWS::LakeFormation::PrincipalPermissions").items()}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_without_lake_formation_the_stack_grants_nothing_in_it(stage: str, request: pytest.FixtureRequest) -> None:
    """``lakeFormation`` defaults to false: IAM alone guards the catalog (IAMAllowedPrincipals keeps Super on
    new databases and tables, https://docs.aws.amazon.com/lake-formation/latest/dg/change-settings.html), and a
    grant would fail for a deploying role that is no Lake Formation administrator."""
    s: Synthesized = request.getfixturevalue(stage)
    assert not [r for r in s.raw["Resources"].values() if r["Type"].startswith("AWS::LakeFormation::")]


def test_lake_formation_grants_firehose_describe_and_each_reader_select_and_describe(with_lake_formation: Synthesized) -> None:
    """With Lake Formation guarding the catalog, glue:GetTable needs a Lake Formation permission on the
    table as well as IAM's (DESCRIBE lets a principal read a table's metadata,
    https://docs.aws.amazon.com/lake-formation/latest/dg/lf-permissions-reference.html). Firehose's Parquet
    conversion reads only the table's schema (glue:GetTable, GetTableVersion(s), from Firehose's
    "Grant Firehose access to AWS Glue for data format conversion",
    https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-glue), and it writes to S3
    with IAM: DESCRIBE on the table. An Athena reader needs DESCRIBE on the database and SELECT on the table
    (https://docs.aws.amazon.com/athena/latest/ug/lf-athena-user-permissions.html). No grant option:
    nobody re-grants. ``AWS::LakeFormation::PrincipalPermissions``, the resource CloudFormation's page for the
    older ``AWS::LakeFormation::Permissions`` points to
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-lakeformation-permissions.html)."""
    s = with_lake_formation
    database_id, _ = only(s, "AWS::Glue::Database")
    table_id, _ = only(s, "AWS::Glue::Table")
    role_id = s3_destination(s)["RoleARN"]["Fn::GetAtt"][0]
    table = {"Table": {"CatalogId": ACCOUNT, "DatabaseName": {"Ref": database_id}, "Name": {"Ref": table_id}}}
    # With Lake Formation the lake is not compacted (lakeCompaction defaults to false), but report.sql reads the
    # empty compacted table and its summaries' table all the same: each reader may read them too.
    compacted_id, sections_id = sorted(name for name in resources_of(s.raw, "AWS::Glue::Table") if name.startswith("CompactedTable"))
    assert "Sections" in sections_id and "Sections" not in compacted_id
    compacted = {"Table": {"CatalogId": ACCOUNT, "DatabaseName": {"Ref": database_id}, "Name": {"Ref": compacted_id}}}
    sections = {"Table": {"CatalogId": ACCOUNT, "DatabaseName": {"Ref": database_id}, "Name": {"Ref": sections_id}}}
    assert not [name for name in s.raw["Resources"] if name.startswith("Compaction")], "no schedule, role or workgroup"
    database = {"Database": {"CatalogId": ACCOUNT, "Name": {"Ref": database_id}}}
    granted = sorted(
        (json.dumps(g["Principal"]["DataLakePrincipalIdentifier"]), json.dumps(g["Resource"], sort_keys=True), sorted(g["Permissions"]))
        for g in lake_formation_grants(s).values()
        if "LakeRejectedTable" not in json.dumps(g["Resource"])  # granted alike (tests/cdk/test_rejected.py)
    )
    assert granted == sorted(
        [
            (json.dumps({"Fn::GetAtt": [role_id, "Arn"]}), json.dumps(table, sort_keys=True), ["DESCRIBE"]),
            (json.dumps(READER_A), json.dumps(database, sort_keys=True), ["DESCRIBE"]),
            (json.dumps(READER_A), json.dumps(table, sort_keys=True), ["DESCRIBE", "SELECT"]),
            (json.dumps(READER_B), json.dumps(database, sort_keys=True), ["DESCRIBE"]),
            (json.dumps(READER_B), json.dumps(table, sort_keys=True), ["DESCRIBE", "SELECT"]),
            (json.dumps(READER_A), json.dumps(compacted, sort_keys=True), ["DESCRIBE", "SELECT"]),
            (json.dumps(READER_B), json.dumps(compacted, sort_keys=True), ["DESCRIBE", "SELECT"]),
            (json.dumps(READER_A), json.dumps(sections, sort_keys=True), ["DESCRIBE", "SELECT"]),
            (json.dumps(READER_B), json.dumps(sections, sort_keys=True), ["DESCRIBE", "SELECT"]),
        ]
    )
    for grant in lake_formation_grants(s).values():
        assert grant["Catalog"] == ACCOUNT and grant["PermissionsWithGrantOption"] == []


def test_the_delivery_stream_waits_for_its_role_and_with_lake_formation_for_its_grant(
    dev: Synthesized, with_lake_formation: Synthesized
) -> None:
    """Firehose checks, when the stream is created, that it can assume the role and read the table
    (https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-glue): the stream
    depends on the role (its policy is inline, part of the same resource: no separate policy resource to
    wait for) and, with Lake Formation, on the role's table grant, or the create fails with "Insufficient
    Lake Formation permission(s)". IAM's eventual consistency can still refuse a brand-new role; that is
    the runbook's "First deploy" entry."""
    for s in (dev, with_lake_formation):
        _, stream = only(s, "AWS::KinesisFirehose::DeliveryStream")
        role_id = s3_destination(s)["RoleARN"]["Fn::GetAtt"][0]
        assert role_id in stream["DependsOn"]
        assert not [p for p in resources_of(s.raw, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"].get("Roles", [])]
        assert s.raw["Resources"][role_id]["Properties"]["Policies"], "the delivery policy is inline"
    [delivery_grant] = [
        name
        for name, g in lake_formation_grants(with_lake_formation).items()
        if g["Principal"]["DataLakePrincipalIdentifier"]
        == {"Fn::GetAtt": [s3_destination(with_lake_formation)["RoleARN"]["Fn::GetAtt"][0], "Arn"]}
        and "LakeRejectedTable" not in json.dumps(g["Resource"])  # the rejected stream's grant: tests/cdk/test_rejected.py
    ]
    _, stream = only(with_lake_formation, "AWS::KinesisFirehose::DeliveryStream")
    assert delivery_grant in stream["DependsOn"]
    runbook = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
    assert "## First deploy: Firehose" in runbook


@pytest.fixture(scope="module")
def uncompacted(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """dev with ``lakeCompaction`` false: what ``lakeFormation`` true implies (the compaction needs grants it has not)."""
    from tests.cdk.conftest import synthesize

    return synthesize({"stage": "dev", "lakeCompaction": False}, tmp_path_factory.mktemp("cdk-uncompacted"))


def test_lake_formation_changes_nothing_else(uncompacted: Synthesized, with_lake_formation: Synthesized) -> None:
    """The setting adds grants (and the stream's dependency on its own) and leaves the lake uncompacted (its
    default there: stacks/settings.py); every other resource is the same as a stack without compaction."""

    def rest(s: Synthesized) -> dict:
        return {
            name: {key: value for key, value in r.items() if key != "DependsOn"}
            for name, r in s.raw["Resources"].items()
            if r["Type"] != "AWS::LakeFormation::PrincipalPermissions"
        }

    assert rest(uncompacted) == rest(with_lake_formation)


def test_the_lake_formation_template_passes_cfn_lint_and_cdk_nag(with_lake_formation: Synthesized) -> None:
    """The grants are valid ``AWS::LakeFormation::PrincipalPermissions`` (cfn-lint's schema of the resource),
    and cdk-nag finds nothing new in them (synthesis raises on an unacknowledged finding)."""
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(Path(with_lake_formation.path), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}" for m in matches if m.rule.id.startswith("E")] == []
    report = json.loads((with_lake_formation.assembly_dir / "validation-report.json").read_text())
    assert [r for r in report["pluginReports"] if r.get("violations")] == []


# The props ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"buffer_interval_s": 30}, "buffer_interval_s"),
        ({"buffer_interval_s": 901}, "buffer_interval_s"),
        ({"database_name": "Chat-Analytics"}, "database_name"),
        ({"scan_limit_bytes": 1000}, "scan_limit_bytes"),
        ({"report_reader_principal_arns": ("arn:aws:iam::111122223333:role/r",)}, "lake_formation"),
    ],
)
def test_lake_props_refuse_what_aws_would(change: dict, message: str) -> None:
    base: dict[str, Any] = {
        "name_prefix": "ChatAnalytics-dev",
        "retention_days": 30,
        "scan_limit_bytes": 10 * 1024**3,
        "database_name": "x_y",
    }
    EventLakeProps(**base, log_retention_days=14)
    with pytest.raises(ValueError, match=message):
        EventLakeProps(**{**base, **change}, log_retention_days=14)
