"""``EventLake`` as a construct: built on a fresh stack from explicit props (none of the app's settings), and each
property that matters asserted with ``aws_cdk.assertions.Template``, as AWS Solutions Constructs test their
patterns. The whole-app checks are in test_lake.py; these show what the construct itself makes of its props.

One app, two stacks, one synth for the module: ``LakeFormationStack`` (Lake Formation with two report readers,
data protected) and ``PlainStack`` (the props' defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Match, Template

from stacks.lake import LAKE_COLUMNS, EventLake, EventLakeProps
from tests.cdk.conftest import logical_id, one_of, templates_of

ACCOUNT = {"Ref": "AWS::AccountId"}
READERS = ("arn:aws:iam::111122223333:role/analyst", "arn:aws:iam::111122223333:user/ci")
LF_PROPS = EventLakeProps(
    name_prefix="LakeTest",
    retention_days=45,
    scan_limit_bytes=123_000_000,
    database_name="lake_test",
    log_retention_days=14,
    buffer_interval_s=300,
    protect_data=True,
    lake_formation=True,
    report_reader_principal_arns=READERS,
)
PLAIN_PROPS = EventLakeProps(
    name_prefix="PlainLake", retention_days=30, scan_limit_bytes=10_000_000, database_name="plain_lake", log_retention_days=7
)


@dataclass(frozen=True)
class Built:
    stack: Stack
    lake: EventLake
    template: Template

    def logical_id(self, construct: Any) -> str:
        return logical_id(self.stack, construct)

    def only(self, resource_type: str) -> tuple[str, dict]:
        return one_of(self.template, resource_type)


@pytest.fixture(scope="module")
def built() -> dict[str, Built]:
    app = App()
    stacks = {name: Stack(app, name) for name in ("LakeFormationStack", "PlainStack")}
    lakes = {
        "lf": EventLake(stacks["LakeFormationStack"], "Lake", LF_PROPS),
        "plain": EventLake(stacks["PlainStack"], "Lake", PLAIN_PROPS),
    }
    templates = templates_of(app)
    return {key: Built(stack, lakes[key], templates[stack.stack_name]) for key, stack in zip(("lf", "plain"), stacks.values(), strict=True)}


@pytest.fixture(scope="module")
def lf(built: dict[str, Built]) -> Built:
    return built["lf"]


@pytest.fixture(scope="module")
def plain(built: dict[str, Built]) -> Built:
    return built["plain"]


def object_arn(bucket_id: str, pattern: str) -> dict:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, pattern]]}


def glue_arn(suffix: str) -> dict:
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":glue:", {"Ref": "AWS::Region"}, ":", ACCOUNT, suffix]]}


# What it makes --------------------------------------------------------------------------------

EXPECTED_COUNTS = {
    "AWS::S3::Bucket": 1,
    "AWS::S3::BucketPolicy": 1,  # enforce_ssl: the TLS-only bucket policy
    "AWS::Glue::Database": 1,
    "AWS::Glue::Table": 2,  # requests and rejected
    "AWS::Logs::LogGroup": 1,
    "AWS::Logs::LogStream": 2,  # one per delivery stream
    "AWS::IAM::Role": 1,
    "AWS::KinesisFirehose::DeliveryStream": 2,  # requests and rejected
    "AWS::Athena::WorkGroup": 1,
    "AWS::IAM::ManagedPolicy": 1,
}


@pytest.mark.parametrize(("variant", "grants"), [("lf", 2 + 3 * len(READERS)), ("plain", 0)])
def test_the_lake_makes_exactly_its_resources_and_no_custom_resource(variant: str, grants: int, built: dict[str, Built]) -> None:
    """No auto-delete Lambda, no separate IAM policy (the delivery role's is inline), and one Lake Formation grant
    per table for the delivery role plus three per report reader (the database, each table), only with ``lake_formation``."""
    b = built[variant]
    for resource_type, count in EXPECTED_COUNTS.items():
        b.template.resource_count_is(resource_type, count)
    b.template.resource_count_is("AWS::LakeFormation::PrincipalPermissions", grants)
    types = {resource["Type"] for resource in b.template.to_json()["Resources"].values()}
    assert types == set(EXPECTED_COUNTS) | ({"AWS::LakeFormation::PrincipalPermissions"} if grants else set())


def test_the_bucket_is_private_encrypted_retained_and_expires_each_folder_by_the_props(lf: Built) -> None:
    lf.template.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "LifecycleConfiguration": {
                    "Rules": [
                        {"Id": "ExpireRequestRows", "Prefix": "requests/", "ExpirationInDays": 45, "Status": "Enabled"},
                        {"Id": "ExpireErrorRecords", "Prefix": "errors/", "ExpirationInDays": 45, "Status": "Enabled"},
                        {"Id": "ExpireRejectedRows", "Prefix": "rejected/", "ExpirationInDays": 45, "Status": "Enabled"},
                        {"Id": "ExpireAthenaResults", "Prefix": "athena-results/", "ExpirationInDays": 7, "Status": "Enabled"},
                        {"Id": "AbortIncompleteUploads", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}, "Status": "Enabled"},
                    ]
                },
            },
        },
    )
    lf.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": lf.logical_id(lf.lake.lake_bucket)},
            "PolicyDocument": {
                "Statement": [
                    Match.object_like({"Effect": "Deny", "Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
                ]
            },
        },
    )


def test_the_glue_table_is_the_parquet_schema_over_requests_with_day_projection(lf: Built) -> None:
    bucket_id = lf.logical_id(lf.lake.lake_bucket)
    requests = {"Fn::Join": ["", ["s3://", {"Ref": bucket_id}, "/requests/"]]}
    lf.template.has_resource_properties(
        "AWS::Glue::Database", {"CatalogId": ACCOUNT, "DatabaseInput": Match.object_like({"Name": "lake_test"})}
    )
    lf.template.has_resource_properties(
        "AWS::Glue::Table",
        {
            "CatalogId": ACCOUNT,
            "DatabaseName": {"Ref": lf.logical_id(lf.lake.lake_database)},
            "TableInput": Match.object_like(
                {
                    "Name": "requests",
                    "TableType": "EXTERNAL_TABLE",
                    "PartitionKeys": [{"Name": "dt", "Type": "string"}],
                    "Parameters": Match.object_like(
                        {
                            "classification": "parquet",
                            "projection.enabled": "true",
                            "projection.dt.type": "date",
                            "projection.dt.format": "yyyy-MM-dd",
                            "projection.dt.range": "2026-01-01,NOW",
                            "storage.location.template": {"Fn::Join": ["", ["s3://", {"Ref": bucket_id}, "/requests/dt=${dt}/"]]},
                        }
                    ),
                    "StorageDescriptor": Match.object_like(
                        {
                            "Columns": [{"Name": name, "Type": kind} for name, kind in LAKE_COLUMNS],
                            "Location": requests,
                            "SerdeInfo": {
                                "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                                "Parameters": {"serialization.format": "1"},
                            },
                        }
                    ),
                }
            ),
        },
    )


@pytest.mark.parametrize(("variant", "days", "policy"), [("lf", 14, "Retain"), ("plain", 7, "Delete")])
def test_the_delivery_log_group_keeps_the_props_retention_and_protect_data_retains_it(
    variant: str, days: int, policy: str, built: dict[str, Built]
) -> None:
    b = built[variant]
    b.template.has_resource("AWS::Logs::LogGroup", {"Properties": {"RetentionInDays": days}, "DeletionPolicy": policy})
    b.template.has_resource_properties(
        "AWS::Logs::LogStream", {"LogGroupName": {"Ref": b.logical_id(b.lake.log_group)}, "LogStreamName": "S3Delivery"}
    )


def test_the_delivery_stream_turns_json_into_snappy_parquet_through_the_table_with_the_props_buffer(lf: Built) -> None:
    role_arn = {"Fn::GetAtt": [lf.logical_id(lf.lake.delivery_role), "Arn"]}
    lf.template.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamName": "LakeTest-requests",
            "DeliveryStreamType": "DirectPut",
            "DeliveryStreamEncryptionConfigurationInput": {"KeyType": "AWS_OWNED_CMK"},
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {
                    "BucketARN": {"Fn::GetAtt": [lf.logical_id(lf.lake.lake_bucket), "Arn"]},
                    "RoleARN": role_arn,
                    "Prefix": "requests/dt=!{timestamp:yyyy-MM-dd}/",
                    "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/",
                    "BufferingHints": {"IntervalInSeconds": 300, "SizeInMBs": 128},
                    "CompressionFormat": "UNCOMPRESSED",
                    "CloudWatchLoggingOptions": {
                        "Enabled": True,
                        "LogGroupName": {"Ref": lf.logical_id(lf.lake.log_group)},
                        "LogStreamName": "S3Delivery",
                    },
                    "DataFormatConversionConfiguration": {
                        "Enabled": True,
                        "InputFormatConfiguration": {"Deserializer": {"OpenXJsonSerDe": {}}},
                        "OutputFormatConfiguration": {"Serializer": {"ParquetSerDe": {"Compression": "SNAPPY"}}},
                        "SchemaConfiguration": {
                            "CatalogId": ACCOUNT,
                            "DatabaseName": {"Ref": lf.logical_id(lf.lake.lake_database)},
                            "TableName": {"Ref": lf.logical_id(lf.lake.lake_table)},
                            "Region": {"Ref": "AWS::Region"},
                            "RoleARN": role_arn,
                            "VersionId": "LATEST",
                        },
                    },
                }
            ),
        },
    )


@pytest.mark.parametrize("variant", ["lf", "plain"])
def test_the_delivery_stream_is_created_after_what_firehose_checks_at_creation(variant: str, built: dict[str, Built]) -> None:
    """The role (policy inline), the log stream, and with Lake Formation the role's table grant."""
    b = built[variant]
    streams = b.template.find_resources("AWS::KinesisFirehose::DeliveryStream")
    for stream, log_stream, grant in (
        (b.lake.delivery_stream, b.lake.log_stream, 0),
        (b.lake.rejected_stream, b.lake.rejected_log_stream, 1),
    ):
        expected = {b.logical_id(b.lake.delivery_role), b.logical_id(log_stream)}
        if variant == "lf":
            expected.add(b.logical_id(b.lake.lake_formation_grants[grant]))
        assert set(streams[b.logical_id(stream)]["DependsOn"]) == expected


def test_the_delivery_role_trusts_firehose_of_this_account_and_may_touch_only_the_lake(lf: Built) -> None:
    """https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-s3: the trust with
    sts:ExternalId = the account, then the bucket, its requests/ and errors/ objects, the table, the log stream."""
    bucket_id = lf.logical_id(lf.lake.lake_bucket)
    log_group_id = lf.logical_id(lf.lake.log_group)
    lf.template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"sts:ExternalId": ACCOUNT}},
                        "Effect": "Allow",
                        "Principal": {"Service": "firehose.amazonaws.com"},
                    }
                ],
                "Version": "2012-10-17",
            },
            "ManagedPolicyArns": Match.absent(),
            "Policies": [
                {
                    "PolicyName": "Delivery",
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Sid": "LakeBucket",
                                "Effect": "Allow",
                                "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                                "Resource": {"Fn::GetAtt": [bucket_id, "Arn"]},
                            },
                            {
                                "Sid": "LakeObjects",
                                "Effect": "Allow",
                                "Action": ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
                                "Resource": [
                                    object_arn(bucket_id, "/requests/*"),
                                    object_arn(bucket_id, "/rejected/*"),
                                    object_arn(bucket_id, "/errors/*"),
                                ],
                            },
                            {
                                "Sid": "LakeSchema",
                                "Effect": "Allow",
                                "Action": ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
                                "Resource": [
                                    glue_arn(":catalog"),
                                    glue_arn(":database/lake_test"),
                                    glue_arn(":table/lake_test/requests"),
                                    glue_arn(":table/lake_test/rejected"),
                                ],
                            },
                            {
                                "Sid": "DeliveryLogs",
                                "Effect": "Allow",
                                "Action": "logs:PutLogEvents",
                                "Resource": [
                                    {
                                        "Fn::Join": [
                                            "",
                                            [
                                                "arn:",
                                                {"Ref": "AWS::Partition"},
                                                ":logs:",
                                                {"Ref": "AWS::Region"},
                                                ":",
                                                ACCOUNT,
                                                ":log-group:",
                                                {"Ref": log_group_id},
                                                f":log-stream:{name}",
                                            ],
                                        ]
                                    }
                                    for name in ("S3Delivery", "RejectedS3Delivery")
                                ],
                            },
                        ],
                        "Version": "2012-10-17",
                    },
                }
            ],
        },
    )


def test_the_work_group_enforces_the_props_scan_cutoff_and_writes_results_to_the_lake_bucket(lf: Built) -> None:
    lf.template.has_resource_properties(
        "AWS::Athena::WorkGroup",
        {
            "Name": "LakeTest",
            "State": "ENABLED",
            "WorkGroupConfiguration": {
                "EnforceWorkGroupConfiguration": True,
                "PublishCloudWatchMetricsEnabled": True,
                "BytesScannedCutoffPerQuery": 123_000_000,
                "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
                "ResultConfiguration": {
                    "OutputLocation": {"Fn::Join": ["", ["s3://", {"Ref": lf.logical_id(lf.lake.lake_bucket)}, "/athena-results/"]]},
                    "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
                },
            },
        },
    )


def test_the_report_reader_policy_grants_the_one_work_group_the_table_the_rows_and_the_results(lf: Built) -> None:
    bucket_id = lf.logical_id(lf.lake.lake_bucket)
    work_group_arn = {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":athena:", {"Ref": "AWS::Region"}, ":", ACCOUNT, ":workgroup/LakeTest"]]
    }
    _, policy = lf.only("AWS::IAM::ManagedPolicy")
    statements = {st["Sid"]: st for st in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert all(st["Effect"] == "Allow" and "Condition" not in st for st in statements.values())
    assert {sid: (st["Action"], st["Resource"]) for sid, st in statements.items()} == {
        "RunQueriesInTheWorkGroup": (
            [
                "athena:GetQueryExecution",
                "athena:GetQueryResults",
                "athena:GetWorkGroup",
                "athena:StartQueryExecution",
                "athena:StopQueryExecution",
            ],
            work_group_arn,
        ),
        "ReadTheTableDefinition": (
            ["glue:GetDatabase", "glue:GetPartitions", "glue:GetTable"],
            [
                glue_arn(":catalog"),
                glue_arn(":database/lake_test"),
                glue_arn(":table/lake_test/requests"),
                glue_arn(":table/lake_test/rejected"),
            ],
        ),
        "ReadTheRows": ("s3:GetObject", [object_arn(bucket_id, "/requests/*"), object_arn(bucket_id, "/rejected/*")]),
        "ReadAndWriteQueryResults": (
            ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
            object_arn(bucket_id, "/athena-results/*"),
        ),
        "LocateAndListTheLakeBucket": (["s3:GetBucketLocation", "s3:ListBucket"], {"Fn::GetAtt": [bucket_id, "Arn"]}),
    }
    assert "Roles" not in policy["Properties"] and "Users" not in policy["Properties"], "attached by whoever reads, not here"


def test_lake_formation_grants_the_delivery_role_describe_and_each_reader_select_on_the_table(lf: Built) -> None:
    database = {"Ref": lf.logical_id(lf.lake.lake_database)}
    table = {"Table": {"CatalogId": ACCOUNT, "DatabaseName": database, "Name": {"Ref": lf.logical_id(lf.lake.lake_table)}}}
    rejected = {"Table": {"CatalogId": ACCOUNT, "DatabaseName": database, "Name": {"Ref": lf.logical_id(lf.lake.rejected_table)}}}
    on_database = {"Database": {"CatalogId": ACCOUNT, "Name": database}}
    role_arn = {"Fn::GetAtt": [lf.logical_id(lf.lake.delivery_role), "Arn"]}
    expected: list[tuple[Any, dict, list[str]]] = [(role_arn, table, ["DESCRIBE"]), (role_arn, rejected, ["DESCRIBE"])]
    for reader in READERS:
        expected += [
            (reader, on_database, ["DESCRIBE"]),
            (reader, table, ["DESCRIBE", "SELECT"]),
            (reader, rejected, ["DESCRIBE", "SELECT"]),
        ]
    grants = lf.template.find_resources("AWS::LakeFormation::PrincipalPermissions")
    found = [
        (p["Principal"]["DataLakePrincipalIdentifier"], p["Resource"], p["Permissions"])
        for p in (grant["Properties"] for grant in grants.values())
    ]
    assert found == expected
    assert all(g["Properties"]["PermissionsWithGrantOption"] == [] and g["Properties"]["Catalog"] == ACCOUNT for g in grants.values())
    assert [lf.logical_id(grant) for grant in lf.lake.lake_formation_grants] == list(grants)


def test_what_the_lake_hands_to_other_constructs_resolves_to_its_own_resources(lf: Built) -> None:
    """The processor takes ``stream_name``/``stream_arn``, monitoring ``stream_name``, the stack's outputs the rest."""
    stream_id = lf.logical_id(lf.lake.delivery_stream)
    resolve = lf.stack.resolve
    assert resolve(lf.lake.stream_name) == {"Ref": stream_id}
    assert resolve(lf.lake.stream_arn) == {"Fn::GetAtt": [stream_id, "Arn"]}
    assert resolve(lf.lake.work_group.ref) == {"Ref": lf.logical_id(lf.lake.work_group)}
    assert resolve(lf.lake.report_reader_policy.managed_policy_arn) == {"Ref": lf.only("AWS::IAM::ManagedPolicy")[0]}
    assert (lf.lake.database_name, lf.lake.table_name) == ("lake_test", "requests")
