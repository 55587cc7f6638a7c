"""The rejected events' table and stream in the template: a Glue table ``rejected`` partitioned and projected as
``requests`` is, a second Firehose stream into ``rejected/`` through it, the bucket's retention on ``rejected/``,
and a processor that may ``PutRecordBatch`` on exactly the two streams (least privilege). The existing lake
resources keep their logical ids (a renamed one would be replaced: a new table, a new stream)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template
from chat_processor import lake as processor_lake

from stacks.lake import REJECTED_COLUMNS, EventLake
from tests.cdk.conftest import REPO, Synthesized, logical_id, resources_of, templates_of
from tests.cdk.test_lake_construct import LF_PROPS, READERS

# The lake's resources as they were before the rejected table: the same logical ids, so an update changes them in place.
EXISTING_IDS = {
    "AWS::S3::Bucket": "LakeBucketB1D32E10",
    "AWS::Glue::Database": "LakeDatabase161E1CC7",
    "AWS::Glue::Table": "LakeTableB95DFC7E",
    "AWS::Logs::LogStream": "LakeDeliveryLogStream53814CAF",
    "AWS::IAM::Role": "LakeDeliveryRoleAA0270EB",
    "AWS::KinesisFirehose::DeliveryStream": "LakeDeliveryStream9B0449C4",
    "AWS::IAM::ManagedPolicy": "LakeReportReaderPolicy89E0D3E8",
}
REJECTED_TABLE_ID = "LakeRejectedTable0D25F137"
REJECTED_STREAM_ID = "LakeRejectedDeliveryStream26B9E2F7"


def resource(s: Synthesized, logical: str) -> dict[str, Any]:
    return s.raw["Resources"][logical]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_existing_lake_resources_keep_their_logical_ids(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    for resource_type, logical in EXISTING_IDS.items():
        assert resource(s, logical)["Type"] == resource_type
    assert resource(s, REJECTED_TABLE_ID)["Type"] == "AWS::Glue::Table"
    assert resource(s, REJECTED_STREAM_ID)["Type"] == "AWS::KinesisFirehose::DeliveryStream"


def test_the_rejected_table_has_the_processors_columns_and_the_requests_partitioning(dev: Synthesized) -> None:
    requests = resource(dev, EXISTING_IDS["AWS::Glue::Table"])["Properties"]
    rejected = resource(dev, REJECTED_TABLE_ID)["Properties"]
    assert rejected["DatabaseName"] == requests["DatabaseName"] and rejected["CatalogId"] == requests["CatalogId"]
    table = rejected["TableInput"]
    assert table["Name"] == "rejected"
    columns = [(column["Name"], column["Type"]) for column in table["StorageDescriptor"]["Columns"]]
    # the processor's lake.py, as Lambda imports it: the authority
    assert columns == list(processor_lake.REJECTED_COLUMNS) == list(REJECTED_COLUMNS)
    schema_file = json.loads((REPO / "schema" / "rejected-columns.json").read_text(encoding="utf-8"))
    assert columns == [(column["name"], column["type"]) for column in schema_file["columns"]]
    assert table["PartitionKeys"] == requests["TableInput"]["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    parameters, expected = dict(table["Parameters"]), dict(requests["TableInput"]["Parameters"])
    bucket = {"Ref": EXISTING_IDS["AWS::S3::Bucket"]}
    assert parameters.pop("storage.location.template") == {"Fn::Join": ["", ["s3://", bucket, "/rejected/dt=${dt}/"]]}
    expected.pop("storage.location.template")
    assert parameters == expected, "the same day projection as requests (dt=YYYY-MM-DD, from 2026-01-01 to NOW)"
    assert table["StorageDescriptor"]["Location"] == {"Fn::Join": ["", ["s3://", bucket, "/rejected/"]]}
    for key in ("InputFormat", "OutputFormat", "SerdeInfo", "Compressed"):
        assert table["StorageDescriptor"][key] == requests["TableInput"]["StorageDescriptor"][key]


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_rejected_stream_delivers_parquet_under_rejected_as_the_requests_stream_does(
    stage: str, request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    requests = resource(s, EXISTING_IDS["AWS::KinesisFirehose::DeliveryStream"])["Properties"]
    rejected = resource(s, REJECTED_STREAM_ID)["Properties"]
    assert rejected["DeliveryStreamName"] == f"ChatAnalytics-{stage}-rejected"
    assert rejected["DeliveryStreamType"] == "DirectPut"
    assert rejected["DeliveryStreamEncryptionConfigurationInput"] == requests["DeliveryStreamEncryptionConfigurationInput"]
    destination, expected = dict(rejected["ExtendedS3DestinationConfiguration"]), dict(requests["ExtendedS3DestinationConfiguration"])
    assert destination.pop("Prefix") == "rejected/dt=!{timestamp:yyyy-MM-dd}/"
    assert destination.pop("ErrorOutputPrefix") == "errors/rejected/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
    assert destination["CloudWatchLoggingOptions"]["LogStreamName"] == "RejectedS3Delivery"
    conversion = destination["DataFormatConversionConfiguration"]
    assert conversion["SchemaConfiguration"]["TableName"] == {"Ref": REJECTED_TABLE_ID}
    for key in ("Prefix", "ErrorOutputPrefix"):
        expected.pop(key)
    expected_conversion = json.loads(json.dumps(expected["DataFormatConversionConfiguration"]))
    expected_conversion["SchemaConfiguration"]["TableName"] = {"Ref": REJECTED_TABLE_ID}
    assert conversion == expected_conversion
    for key in ("BucketARN", "RoleARN", "BufferingHints", "CompressionFormat"):
        assert destination[key] == expected[key], key
    depends = resource(s, REJECTED_STREAM_ID)["DependsOn"]
    assert EXISTING_IDS["AWS::IAM::Role"] in depends and any(name.startswith("LakeRejectedDeliveryLogStream") for name in depends)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_rejected_rows_expire_with_the_lake(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    rules = {rule["Id"]: rule for rule in resource(s, EXISTING_IDS["AWS::S3::Bucket"])["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireRejectedRows"] == {**rules["ExpireRequestRows"], "Id": "ExpireRejectedRows", "Prefix": "rejected/"}


def firehose_statements(s: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every IAM policy in the template that names a Firehose action, with its policy's logical id."""
    found = []
    for name, policy in {**resources_of(s.raw, "AWS::IAM::Policy"), **resources_of(s.raw, "AWS::IAM::ManagedPolicy")}.items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(str(action).startswith("firehose:") or action == "*" for action in actions):
                found.append((name, statement))
    return found


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_processor_may_put_record_batches_on_exactly_the_two_streams(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    [(function_id, function)] = resources_of(s.raw, "AWS::Lambda::Function").items()
    variables = function["Properties"]["Environment"]["Variables"]
    assert (
        variables["REJECTED_STREAM_NAME"]
        == f"ChatAnalytics-{stage}-rejected"
        == resource(s, REJECTED_STREAM_ID)["Properties"]["DeliveryStreamName"]
    )
    assert variables["LAKE_STREAM_NAME"] == {"Ref": EXISTING_IDS["AWS::KinesisFirehose::DeliveryStream"]}
    [(policy_id, statement)] = firehose_statements(s)
    assert statement == {
        "Action": "firehose:PutRecordBatch",
        "Effect": "Allow",
        "Resource": [
            {"Fn::GetAtt": [EXISTING_IDS["AWS::KinesisFirehose::DeliveryStream"], "Arn"]},
            {"Fn::GetAtt": [REJECTED_STREAM_ID, "Arn"]},
        ],
    }
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    assert resource(s, policy_id)["Properties"]["Roles"] == [{"Ref": role_id}]
    # The name is text in the environment; the function still waits for the stream: it depends on the policy naming it.
    assert policy_id in resource(s, function_id)["DependsOn"]


def same_set(found: list[Any], expected: list[Any]) -> bool:
    """The same values, in any order (CDK sorts a statement's resources)."""
    return sorted(json.dumps(value, sort_keys=True) for value in found) == sorted(json.dumps(value, sort_keys=True) for value in expected)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_delivery_role_and_the_report_reader_reach_rejected_and_nothing_more(stage: str, request: pytest.FixtureRequest) -> None:
    s: Synthesized = request.getfixturevalue(stage)
    bucket_arn = {"Fn::GetAtt": [EXISTING_IDS["AWS::S3::Bucket"], "Arn"]}

    def objects(prefix: str) -> dict:
        return {"Fn::Join": ["", [bucket_arn, f"/{prefix}*"]]}

    role = resource(s, EXISTING_IDS["AWS::IAM::Role"])["Properties"]
    delivery = {st["Sid"]: st for policy in role["Policies"] for st in policy["PolicyDocument"]["Statement"]}
    assert same_set(delivery["LakeObjects"]["Resource"], [objects("requests/"), objects("rejected/"), objects("errors/")])
    assert len(delivery["DeliveryLogs"]["Resource"]) == 2, "its two log streams, each by ARN"
    reader = {st["Sid"]: st for st in resource(s, EXISTING_IDS["AWS::IAM::ManagedPolicy"])["Properties"]["PolicyDocument"]["Statement"]}
    assert same_set(delivery["LakeSchema"]["Resource"], reader["ReadTheTableDefinition"]["Resource"]), "the catalog, database, two tables"
    assert same_set(reader["ReadTheRows"]["Resource"], [objects("requests/"), objects("rejected/")])
    assert reader["ReadTheRows"]["Action"] == "s3:GetObject"
    tables = [json.dumps(arn) for arn in reader["ReadTheTableDefinition"]["Resource"] if ":table/" in json.dumps(arn)]
    assert sorted(arn.split(":table/")[1].split('"')[0] for arn in tables) == [
        f"chat_analytics_{stage}/{name}" for name in ("rejected", "requests")
    ]


def test_the_outputs_name_the_rejected_table_and_stream(dev: Synthesized) -> None:
    outputs = dev.raw["Outputs"]
    assert outputs["RejectedTableName"]["Value"] == {"Ref": REJECTED_TABLE_ID}
    assert outputs["RejectedStreamName"]["Value"] == {"Ref": REJECTED_STREAM_ID}


@pytest.fixture(scope="module")
def lake_formation() -> tuple[Stack, EventLake, Template]:
    app = App()
    stack = Stack(app, "RejectedLakeFormationStack")
    lake = EventLake(stack, "Lake", LF_PROPS)
    return stack, lake, templates_of(app)[stack.stack_name]


def test_with_lake_formation_the_rejected_table_is_granted_as_the_requests_table(lake_formation: tuple[Stack, EventLake, Template]) -> None:
    stack, lake, template = lake_formation
    table_id, rejected_id = logical_id(stack, lake.lake_table), logical_id(stack, lake.rejected_table)
    grants = template.find_resources("AWS::LakeFormation::PrincipalPermissions")

    def on(table: str) -> list[tuple[Any, list[str]]]:
        return sorted(
            (json.dumps(grant["Properties"]["Principal"]["DataLakePrincipalIdentifier"]), sorted(grant["Properties"]["Permissions"]))
            for grant in grants.values()
            if grant["Properties"]["Resource"].get("Table", {}).get("Name") == {"Ref": table}
        )

    role_arn = {"Fn::GetAtt": [logical_id(stack, lake.delivery_role), "Arn"]}
    expected = [(json.dumps(role_arn), ["DESCRIBE"]), *((json.dumps(reader), ["DESCRIBE", "SELECT"]) for reader in READERS)]
    assert on(rejected_id) == on(table_id) == sorted(expected)
    rejected_stream = template.find_resources("AWS::KinesisFirehose::DeliveryStream")[logical_id(stack, lake.rejected_stream)]
    [delivery_grant] = [
        name
        for name, grant in grants.items()
        if grant["Properties"]["Resource"].get("Table", {}).get("Name") == {"Ref": rejected_id}
        and grant["Properties"]["Principal"]["DataLakePrincipalIdentifier"] == role_arn
    ]
    assert delivery_grant in rejected_stream["DependsOn"], "Firehose reads the table's schema when the stream is created"
