"""The event lake: request rows as Parquet on S3, a Glue table over them, an Athena workgroup to query them.

The processor sends each stored request's state as one JSON line to ``delivery_stream`` (Kinesis Data
Firehose, DirectPut). Firehose converts the lines to Parquet through the Glue table ``requests`` and writes
them to ``lake_bucket`` under ``requests/dt=YYYY-MM-DD/`` (the day Firehose received them, UTC); the table
finds those folders by partition projection, so no crawler and no ``MSCK REPAIR`` ever runs. Athena queries
through ``work_group``, whose results go to ``athena-results/`` in the same bucket; ``report_reader_policy`` is
what a person or CI attaches to run ``chat-analytics report --engine athena``.

The events the processor rejects go the same way through a second stream, ``rejected_stream``
(``<name_prefix>-rejected``), into the Glue table ``rejected`` under ``rejected/dt=YYYY-MM-DD/``: same
partitioning and projection, same retention (a lifecycle rule on ``rejected/``), same delivery role and log
group (a log stream of its own), its conversion errors under ``errors/rejected/``.

The delivery stream is the L1 ``CfnDeliveryStream`` with a role of our own rather than the L2
``DeliveryStream`` + ``S3Bucket`` (which does support Parquet conversion in aws-cdk-lib 2.275): the L2
destination grants its role ``grantReadWrite`` on the whole bucket (``s3:DeleteObject*``, ``s3:GetBucket*``,
``s3:List*`` on every key, Athena's results included) and a trust policy without a condition. This role can
write and read back only under ``requests/`` and ``errors/``, read the one Glue table, and write its one log
stream (https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html).

The stream depends explicitly on its role (whose inline policy is part of the role resource, so the two
exist together) and, with Lake Formation, on the role's table grant: Firehose checks that it can read the
table's schema when the stream is created, not at its first delivery. IAM is eventually consistent, so on
a first deploy Firehose can still refuse a role created seconds earlier ("unable to assume role"); the
stack then rolls back and a second deploy succeeds (docs/runbook.md, "First deploy").

With ``lake_formation`` (accounts where Lake Formation guards the Glue catalog, docs/aws-accounts.md) the
stack grants, through ``AWS::LakeFormation::PrincipalPermissions``: the delivery role DESCRIBE on the table
(what Firehose's Parquet conversion reads: the table's schema, through glue:GetTable*), and each report
reader DESCRIBE on the database and SELECT + DESCRIBE on the table (what an Athena query of the table needs).
``PrincipalPermissions`` rather than the older ``AWS::LakeFormation::Permissions``: CloudFormation's page for
the older one points to it as the newer resource, and the older one fails a stack deletion when a
permission it granted has already been revoked by hand. Report readers are IAM roles or users named in
the settings: the report reader policy is a managed policy, which Lake Formation cannot be granted to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_lakeformation as lakeformation
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.cdk_helpers import PARTITION_KEY, day_projection, enforced_work_group, log_group, parquet_storage

# Folders of the lake bucket. Firehose writes requests/, rejected/ and errors/; Athena writes athena-results/.
REQUESTS_PREFIX = "requests/"
REJECTED_PREFIX = "rejected/"
ERRORS_PREFIX = "errors/"
ATHENA_RESULTS_PREFIX = "athena-results/"
ATHENA_RESULTS_DAYS = 7

TABLE_NAME = "requests"
REJECTED_TABLE_NAME = "rejected"  # the events the processor rejected (one row per rejected record per receive)
# Firehose's own prefixes: the arrival day (UTC) names the partition the table projects.
DATA_PREFIX = f"{REQUESTS_PREFIX}{PARTITION_KEY}=!{{timestamp:yyyy-MM-dd}}/"
ERROR_PREFIX = f"{ERRORS_PREFIX}!{{firehose:error-output-type}}/{PARTITION_KEY}=!{{timestamp:yyyy-MM-dd}}/"
REJECTED_DATA_PREFIX = f"{REJECTED_PREFIX}{PARTITION_KEY}=!{{timestamp:yyyy-MM-dd}}/"
REJECTED_ERROR_PREFIX = f"{ERRORS_PREFIX}{REJECTED_TABLE_NAME}/!{{firehose:error-output-type}}/{PARTITION_KEY}=!{{timestamp:yyyy-MM-dd}}/"
# Parquet conversion needs a buffer of at least 64 MiB; 128 MiB makes fewer, larger files.
BUFFER_SIZE_MB = 128
LOG_STREAM_NAME = "S3Delivery"
REJECTED_LOG_STREAM_NAME = "RejectedS3Delivery"

# (column, Glue type), in order: schema/lake-columns.json, which schema/generate.py writes from the
# processor's LAKE_COLUMNS (the JSON lines it sends are these columns; a test keeps the file current).
LAKE_COLUMNS_FILE = Path(__file__).resolve().parent.parent / "schema" / "lake-columns.json"
LAKE_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (column["name"], column["type"]) for column in json.loads(LAKE_COLUMNS_FILE.read_text(encoding="utf-8"))["columns"]
)
# The rejected table's columns: schema/rejected-columns.json, from the processor's REJECTED_COLUMNS.
REJECTED_COLUMNS_FILE = LAKE_COLUMNS_FILE.parent / "rejected-columns.json"
REJECTED_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (column["name"], column["type"]) for column in json.loads(REJECTED_COLUMNS_FILE.read_text(encoding="utf-8"))["columns"]
)


@dataclass(frozen=True)
class EventLakeProps:
    """``name_prefix`` (the stack name) names the delivery stream (``<name_prefix>-requests``) and the
    workgroup; ``retention_days`` expires the lake's rows (and Firehose's error records) as the table's TTL
    expires items; ``scan_limit_bytes`` is the workgroup's per-query cutoff; ``buffer_interval_s`` is how long
    Firehose gathers rows before it writes a file (60..900); ``protect_data`` (prod) retains the log group
    with the stack; ``database_name`` is the Glue database (lowercase letters, digits, underscores);
    ``lake_formation`` adds the Lake Formation grants (the delivery role's, and one set per ARN of
    ``report_reader_principal_arns``)."""

    name_prefix: str
    retention_days: int
    scan_limit_bytes: int
    database_name: str
    log_retention_days: int
    buffer_interval_s: int = 900
    protect_data: bool = False
    lake_formation: bool = False
    report_reader_principal_arns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 60 <= self.buffer_interval_s <= 900:
            raise ValueError(f"buffer_interval_s {self.buffer_interval_s} is outside Firehose's 60..900")
        if not self.database_name.replace("_", "").isalnum() or self.database_name.lower() != self.database_name:
            raise ValueError(f"database_name {self.database_name!r}: Athena wants lowercase letters, digits and underscores")
        if self.scan_limit_bytes < 10_000_000:
            raise ValueError(f"scan_limit_bytes {self.scan_limit_bytes} is under Athena's 10 MB minimum")
        if self.report_reader_principal_arns and not self.lake_formation:
            raise ValueError("report_reader_principal_arns are Lake Formation grantees: they need lake_formation")


class EventLake(Construct):
    """``lake_bucket``, the Glue ``lake_database`` and ``lake_table``, ``delivery_stream`` (JSON in, Parquet
    out), ``work_group`` and ``report_reader_policy``.

    The bucket is retained when the stack is deleted, in dev too. CloudFormation cannot delete a bucket
    that still holds objects, and emptying it on deletion (``auto_delete_objects``) adds a custom-resource
    Lambda with ``s3:DeleteObject*`` on the bucket, a second function and role in a stack whose only function
    is the processor. A retained bucket costs nothing once empty, and its lifecycle rules empty it by
    themselves: every object expires (rows after ``retention_days``, Athena results after 7 days), so
    an abandoned dev bucket is empty within ``retention_days`` and can then be deleted with one call.
    """

    def __init__(self, scope: Construct, construct_id: str, props: EventLakeProps) -> None:
        super().__init__(scope, construct_id)
        self.database_name = props.database_name
        self.table_name = TABLE_NAME
        self.lake_formation_grants: list[lakeformation.CfnPrincipalPermissions] = []
        # In this order: each step uses what the ones before it made, and the template lists the
        # resources in the order they are created.
        self.lake_bucket = self._bucket(props)
        self.lake_database, self.lake_table = self._catalog(props)
        self.rejected_table = self._rejected_table(props)
        self.log_group, self.log_stream, log_stream_arn = self._delivery_logs(props)
        self.rejected_log_stream, rejected_log_stream_arn = self._log_stream("RejectedDeliveryLogStream", REJECTED_LOG_STREAM_NAME)
        self.delivery_role = self._delivery_role([log_stream_arn, rejected_log_stream_arn])
        self.delivery_stream = self._delivery_stream(props)
        # The stream's Ref (its name): what refers to it waits for it to exist.
        self.stream_name = self.delivery_stream.ref
        self.stream_arn = self.delivery_stream.attr_arn
        self.rejected_stream = self._rejected_delivery_stream(props)
        self.rejected_stream_arn = self.rejected_stream.attr_arn
        # The rejected stream's name as text (not its Ref): the processor's environment holds it as it is, and the
        # processor's role policy, which names the stream's ARN, already makes the function wait for the stream.
        self.rejected_stream_name = self.rejected_stream_name_for(props)
        self.work_group = self._work_group(props)
        self.report_reader_policy = self._report_reader_policy(props)
        if props.lake_formation:
            self._report_reader_grants(props.report_reader_principal_arns)

    def _bucket(self, props: EventLakeProps) -> s3.Bucket:
        """The one bucket of the lake: Firehose's rows and errors and Athena's results, each folder expiring on
        its own (rows with the table's items, results after a week), so that nothing in it outlives its use
        and a retained bucket empties itself (the class's docstring)."""
        bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=False,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireRequestRows", prefix=REQUESTS_PREFIX, expiration=Duration.days(props.retention_days)),
                s3.LifecycleRule(id="ExpireErrorRecords", prefix=ERRORS_PREFIX, expiration=Duration.days(props.retention_days)),
                s3.LifecycleRule(id="ExpireRejectedRows", prefix=REJECTED_PREFIX, expiration=Duration.days(props.retention_days)),
                s3.LifecycleRule(id="ExpireAthenaResults", prefix=ATHENA_RESULTS_PREFIX, expiration=Duration.days(ATHENA_RESULTS_DAYS)),
                s3.LifecycleRule(id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
        )
        self.requests_location = f"s3://{bucket.bucket_name}/{REQUESTS_PREFIX}"
        self.rejected_location = f"s3://{bucket.bucket_name}/{REJECTED_PREFIX}"
        return bucket

    def _catalog(self, props: EventLakeProps) -> tuple[glue.CfnDatabase, glue.CfnTable]:
        """The Glue database and the ``requests`` table: the one schema both Firehose's Parquet conversion and
        Athena read, with the day partitions found by projection (no crawler, no ``MSCK REPAIR``). Also the
        catalog ARNs (``glue_resources``) that the delivery role and the report reader policy may read."""
        stack = Stack.of(self)
        database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=props.database_name, description=f"{props.name_prefix}: the event lake (one row per stored request state)"
            ),
        )
        self.lake_database = database
        table = self._table(
            "Table",
            TABLE_NAME,
            "Request rows written by Kinesis Data Firehose as Parquet, one folder per arrival day (UTC)",
            LAKE_COLUMNS,
            self.requests_location,
        )
        catalog_arn = stack.format_arn(service="glue", resource="catalog")
        database_arn = stack.format_arn(service="glue", resource="database", resource_name=props.database_name)
        self.table_arn = stack.format_arn(service="glue", resource="table", resource_name=f"{props.database_name}/{TABLE_NAME}")
        self.rejected_table_arn = stack.format_arn(
            service="glue", resource="table", resource_name=f"{props.database_name}/{REJECTED_TABLE_NAME}"
        )
        self.glue_resources = [catalog_arn, database_arn, self.table_arn, self.rejected_table_arn]
        return database, table

    def _rejected_table(self, props: EventLakeProps) -> glue.CfnTable:
        """The ``rejected`` table: the processor's rejected events, partitioned and projected as ``requests`` is."""
        return self._table(
            "RejectedTable",
            REJECTED_TABLE_NAME,
            "Events the processor rejected (reason code, field, no question text), written by Kinesis Data Firehose as "
            "Parquet, one folder per arrival day (UTC)",
            REJECTED_COLUMNS,
            self.rejected_location,
        )

    def _table(self, construct_id: str, name: str, description: str, columns: tuple[tuple[str, str], ...], location: str) -> glue.CfnTable:
        """A Parquet table of the lake's database, its ``dt`` day partitions found by projection."""
        stack = Stack.of(self)
        return glue.CfnTable(
            self,
            construct_id,
            catalog_id=stack.account,
            database_name=self.lake_database.ref,
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                description=description,
                table_type="EXTERNAL_TABLE",
                parameters={"classification": "parquet", "EXTERNAL": "TRUE"}
                | day_projection()
                | {"storage.location.template": f"{location}{PARTITION_KEY}=${{{PARTITION_KEY}}}/"},
                partition_keys=[glue.CfnTable.ColumnProperty(name=PARTITION_KEY, type="string")],
                storage_descriptor=parquet_storage(columns, location),
            ),
        )

    def _delivery_logs(self, props: EventLakeProps) -> tuple[logs.LogGroup, logs.LogStream, str]:
        """Firehose's log group and its one log stream, made by the stack: Firehose writes delivery and conversion
        errors there but creates neither, and a role that may write only this stream needs its ARN (returned)."""
        group = log_group(self, "DeliveryLogGroup", retention_days=props.log_retention_days, retain=props.protect_data)
        self.log_group = group
        stream, stream_arn = self._log_stream("DeliveryLogStream", LOG_STREAM_NAME)
        return group, stream, stream_arn

    def _log_stream(self, construct_id: str, name: str) -> tuple[logs.LogStream, str]:
        """One log stream of Firehose's log group (one per delivery stream) and its ARN."""
        stream = logs.LogStream(self, construct_id, log_group=self.log_group, log_stream_name=name, removal_policy=RemovalPolicy.DESTROY)
        stream_arn = Stack.of(self).format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{self.log_group.log_group_name}:log-stream:{name}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return stream, stream_arn

    def _delivery_role(self, log_stream_arns: list[str]) -> iam.Role:
        """The role of both delivery streams, narrower than the L2 destination's (the module's docstring): write and
        read back under ``requests/``, ``rejected/`` and ``errors/``, read the two Glue tables, write the two log
        streams. Inline policies: they exist before the streams do, so Firehose's first delivery is authorized."""
        stack = Stack.of(self)
        return iam.Role(
            self,
            "DeliveryRole",
            description="Lake delivery streams: write Parquet under requests/, rejected/ and errors/, read the Glue tables, write their log streams",
            # Firehose's documented trust for a delivery role: its principal, with sts:ExternalId = this account
            # (https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html#using-iam-s3).
            assumed_by=iam.ServicePrincipal("firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": stack.account}}),
            inline_policies={
                "Delivery": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            sid="LakeBucket",
                            actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                            resources=[self.lake_bucket.bucket_arn],
                        ),
                        iam.PolicyStatement(
                            sid="LakeObjects",
                            actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
                            resources=[
                                self.lake_bucket.arn_for_objects(f"{REQUESTS_PREFIX}*"),
                                self.lake_bucket.arn_for_objects(f"{REJECTED_PREFIX}*"),
                                self.lake_bucket.arn_for_objects(f"{ERRORS_PREFIX}*"),
                            ],
                        ),
                        iam.PolicyStatement(
                            sid="LakeSchema",
                            actions=["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"],
                            resources=self.glue_resources,
                        ),
                        iam.PolicyStatement(sid="DeliveryLogs", actions=["logs:PutLogEvents"], resources=log_stream_arns),
                    ]
                )
            },
        )

    def _delivery_stream(self, props: EventLakeProps) -> firehose.CfnDeliveryStream:
        """The DirectPut stream that turns the processor's JSON lines into Parquet through the Glue table. It is
        created after what Firehose checks at creation (the role, the log stream, and with Lake Formation the
        role's table grant), so a first deploy does not fail on a missing one."""
        return self._stream(
            props,
            "DeliveryStream",
            f"{props.name_prefix}-requests",
            (DATA_PREFIX, ERROR_PREFIX),
            (self.log_stream, LOG_STREAM_NAME),
            self.lake_table,
            "DeliveryRoleTableGrant",
        )

    def _rejected_delivery_stream(self, props: EventLakeProps) -> firehose.CfnDeliveryStream:
        """The rejected events' stream: as the requests' one, into ``rejected/`` through the ``rejected`` table (its
        conversion errors under ``errors/rejected/``), with the same buffering, role and log group."""
        return self._stream(
            props,
            "RejectedDeliveryStream",
            self.rejected_stream_name_for(props),
            (REJECTED_DATA_PREFIX, REJECTED_ERROR_PREFIX),
            (self.rejected_log_stream, REJECTED_LOG_STREAM_NAME),
            self.rejected_table,
            "DeliveryRoleRejectedTableGrant",
        )

    @staticmethod
    def rejected_stream_name_for(props: EventLakeProps) -> str:
        return f"{props.name_prefix}-{REJECTED_TABLE_NAME}"

    def _stream(
        self,
        props: EventLakeProps,
        construct_id: str,
        name: str,
        prefixes: tuple[str, str],
        log: tuple[logs.LogStream, str],
        table: glue.CfnTable,
        grant_id: str,
    ) -> firehose.CfnDeliveryStream:
        stack = Stack.of(self)
        data_prefix, error_prefix = prefixes
        log_stream, log_stream_name = log
        cfn_stream = firehose.CfnDeliveryStream(
            self,
            construct_id,
            delivery_stream_name=name,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"
            ),
            extended_s3_destination_configuration=firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=self.lake_bucket.bucket_arn,
                role_arn=self.delivery_role.role_arn,
                prefix=data_prefix,
                error_output_prefix=error_prefix,
                buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                    interval_in_seconds=props.buffer_interval_s, size_in_m_bs=BUFFER_SIZE_MB
                ),
                # Parquet is compressed by its serializer (Snappy), not again at the S3 level.
                compression_format="UNCOMPRESSED",
                cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=self.log_group.log_group_name, log_stream_name=log_stream_name
                ),
                data_format_conversion_configuration=firehose.CfnDeliveryStream.DataFormatConversionConfigurationProperty(
                    enabled=True,
                    input_format_configuration=firehose.CfnDeliveryStream.InputFormatConfigurationProperty(
                        deserializer=firehose.CfnDeliveryStream.DeserializerProperty(
                            open_x_json_ser_de=firehose.CfnDeliveryStream.OpenXJsonSerDeProperty()
                        )
                    ),
                    output_format_configuration=firehose.CfnDeliveryStream.OutputFormatConfigurationProperty(
                        serializer=firehose.CfnDeliveryStream.SerializerProperty(
                            parquet_ser_de=firehose.CfnDeliveryStream.ParquetSerDeProperty(compression="SNAPPY")
                        )
                    ),
                    schema_configuration=firehose.CfnDeliveryStream.SchemaConfigurationProperty(
                        catalog_id=stack.account,
                        database_name=self.lake_database.ref,
                        table_name=table.ref,
                        region=stack.region,
                        role_arn=self.delivery_role.role_arn,
                        version_id="LATEST",
                    ),
                ),
            ),
        )
        # The schema configuration refers to the table (created first); the log stream must exist too, and the
        # role (its policy is inline: one resource) before Firehose is asked to assume it.
        cfn_stream.node.add_dependency(log_stream)
        cfn_stream.node.add_dependency(self.delivery_role)
        if props.lake_formation:
            delivery_grant = self._grant(grant_id, self.delivery_role.role_arn, ["DESCRIBE"], table=table)
            # Firehose reads the table's schema when the stream is created: the grant comes first.
            cfn_stream.node.add_dependency(delivery_grant)
        return cfn_stream

    def _work_group(self, props: EventLakeProps) -> athena.CfnWorkGroup:
        """The Athena workgroup every report query runs in: its settings are enforced (a client cannot lift the
        per-query scan cutoff or move the results), and its results go to ``athena-results/``, which expires."""
        work_group = enforced_work_group(
            self,
            "WorkGroup",
            name=props.name_prefix,
            description=f"{props.name_prefix}: queries over the event lake",
            scan_limit_bytes=props.scan_limit_bytes,
            results_location=f"s3://{self.lake_bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}",
        )
        self.work_group_arn = Stack.of(self).format_arn(service="athena", resource="workgroup", resource_name=props.name_prefix)
        return work_group

    def _report_reader_grants(self, principal_arns: tuple[str, ...]) -> None:
        """With Lake Formation, IAM alone does not let a report reader query the table: each named principal also
        gets DESCRIBE on the database and SELECT + DESCRIBE on the table (what an Athena query needs)."""
        for index, principal_arn in enumerate(principal_arns, start=1):
            self._grant(f"ReportReader{index}DatabaseGrant", principal_arn, ["DESCRIBE"], table=None)
            self._grant(f"ReportReader{index}TableGrant", principal_arn, ["DESCRIBE", "SELECT"], table=self.lake_table)
            self._grant(f"ReportReader{index}RejectedTableGrant", principal_arn, ["DESCRIBE", "SELECT"], table=self.rejected_table)

    def grant_report_readers(self, table: glue.CfnTable, principal_arns: tuple[str, ...], name: str) -> None:
        """With Lake Formation, SELECT + DESCRIBE on another table of the lake's database (``compacted``) for each
        report reader, as on ``requests``: the report's SQL reads it."""
        for index, principal_arn in enumerate(principal_arns, start=1):
            self._grant(f"ReportReader{index}{name}TableGrant", principal_arn, ["DESCRIBE", "SELECT"], table=table)

    def _grant(
        self, construct_id: str, principal_arn: str, permissions: list[str], *, table: glue.CfnTable | None
    ) -> lakeformation.CfnPrincipalPermissions:
        """One Lake Formation grant (no grant option) on the lake's database (``table`` None) or on one of its tables."""
        account = Stack.of(self).account
        if table is not None:
            resource = lakeformation.CfnPrincipalPermissions.ResourceProperty(
                table=lakeformation.CfnPrincipalPermissions.TableResourceProperty(
                    catalog_id=account, database_name=self.lake_database.ref, name=table.ref
                )
            )
        else:
            resource = lakeformation.CfnPrincipalPermissions.ResourceProperty(
                database=lakeformation.CfnPrincipalPermissions.DatabaseResourceProperty(catalog_id=account, name=self.lake_database.ref)
            )
        grant = lakeformation.CfnPrincipalPermissions(
            self,
            construct_id,
            catalog=account,
            principal=lakeformation.CfnPrincipalPermissions.DataLakePrincipalProperty(data_lake_principal_identifier=principal_arn),
            resource=resource,
            permissions=permissions,
            permissions_with_grant_option=[],
        )
        self.lake_formation_grants.append(grant)
        return grant

    def _report_reader_policy(self, props: EventLakeProps) -> iam.ManagedPolicy:
        """What ``chat-analytics report --engine athena`` needs, statement by statement from Athena's pages:
        run and read queries in the one workgroup, read the table's definition from the Glue catalog
        (https://docs.aws.amazon.com/athena/latest/ug/managed-policies.html), read the rows, and locate,
        list and write the workgroup's results in the lake bucket
        (https://docs.aws.amazon.com/athena/latest/ug/s3-permissions.html). Attach it to a person, group or CI role.

        ``s3:ListBucket`` has no ``s3:prefix`` condition: a condition on the prefix also denies the requests that
        name none (HeadBucket, a list of the bucket's root), which Athena and the AWS SDKs make. Listing shows
        the lake's key names (days, Firehose's file names); the objects themselves stay readable only under
        ``requests/`` and ``athena-results/``."""
        bucket = self.lake_bucket
        return iam.ManagedPolicy(
            self,
            "ReportReaderPolicy",
            description=f"{props.name_prefix}: query the event lake through the {props.name_prefix} Athena workgroup",
            statements=[
                iam.PolicyStatement(
                    sid="RunQueriesInTheWorkGroup",
                    actions=[
                        "athena:GetQueryExecution",
                        "athena:GetQueryResults",
                        "athena:GetWorkGroup",
                        "athena:StartQueryExecution",
                        "athena:StopQueryExecution",
                    ],
                    resources=[self.work_group_arn],
                ),
                iam.PolicyStatement(
                    sid="ReadTheTableDefinition",
                    actions=["glue:GetDatabase", "glue:GetPartitions", "glue:GetTable"],
                    resources=self.glue_resources,
                ),
                iam.PolicyStatement(
                    sid="ReadTheRows",
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{REQUESTS_PREFIX}*"), bucket.arn_for_objects(f"{REJECTED_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="ReadAndWriteQueryResults",
                    actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
                    resources=[bucket.arn_for_objects(f"{ATHENA_RESULTS_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="LocateAndListTheLakeBucket",
                    actions=["s3:GetBucketLocation", "s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                ),
            ],
        )
