"""Helpers the constructs share: stated once here, so that no construct imports another construct's module
for them (the lake used to import ``log_retention`` from the processor's)."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.settings import LOG_RETENTION_DAYS

# The lake's Glue tables (stacks/lake.py's and stacks/compaction.py's): Parquet, one ``dt`` folder per day.
PARTITION_KEY = "dt"
# The first day partition projection considers; days before it hold no data (the lake starts in 2026).
PROJECTION_START = "2026-01-01"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def day_projection() -> dict[str, str]:
    """A Glue table's parameters that let Athena find the ``dt`` day folders by partition projection (no crawler,
    no ``MSCK REPAIR``): every day from ``PROJECTION_START`` to now."""
    return {
        "projection.enabled": "true",
        f"projection.{PARTITION_KEY}.type": "date",
        f"projection.{PARTITION_KEY}.format": "yyyy-MM-dd",
        f"projection.{PARTITION_KEY}.range": f"{PROJECTION_START},NOW",
        f"projection.{PARTITION_KEY}.interval": "1",
        f"projection.{PARTITION_KEY}.interval.unit": "DAYS",
    }


def parquet_storage(columns: tuple[tuple[str, str], ...], location: str) -> glue.CfnTable.StorageDescriptorProperty:
    """A Glue table's storage: Parquet files of ``columns`` (name, Hive type) under ``location``."""
    return glue.CfnTable.StorageDescriptorProperty(
        columns=[glue.CfnTable.ColumnProperty(name=column, type=kind) for column, kind in columns],
        location=location,
        input_format=PARQUET_INPUT_FORMAT,
        output_format=PARQUET_OUTPUT_FORMAT,
        serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=PARQUET_SERDE, parameters={"serialization.format": "1"}),
        compressed=False,
        stored_as_sub_directories=False,
    )


def log_retention(days: int) -> logs.RetentionDays:
    """The ``RetentionDays`` member for a day count that settings already validated."""
    finite = [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, finite, strict=True))[days]


def retain_if(retain: bool) -> RemovalPolicy:
    """``RETAIN`` when the data (or the key that reads it) must outlive the stack (prod), else ``DESTROY``."""
    return RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY


def log_group(scope: Construct, construct_id: str, *, retention_days: int, retain: bool) -> logs.LogGroup:
    """A log group the stack owns, so its retention and its fate on deletion are in the template (one Lambda
    creates on its first write never expires and is left behind): ``retention_days``, kept when ``retain``."""
    return logs.LogGroup(scope, construct_id, retention=log_retention(retention_days), removal_policy=retain_if(retain))


def secure_queue(scope: Construct, construct_id: str, **props: Any) -> sqs.Queue:
    """An SQS queue as every queue of the stack is: encrypted with SSE-SQS (no key policy for a sender to need)
    and refusing plain HTTP; ``props`` say the rest (FIFO, names, retention, redrive)."""
    return sqs.Queue(scope, construct_id, encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True, **props)


def enforced_work_group(
    scope: Construct, construct_id: str, *, name: str, description: str, scan_limit_bytes: int, results_location: str
) -> athena.CfnWorkGroup:
    """An Athena workgroup whose settings are enforced (a client cannot lift the per-query scan cutoff or move the
    results), engine version 3, CloudWatch metrics on, results SSE-S3 at ``results_location`` (an ``s3://`` URL)."""
    return athena.CfnWorkGroup(
        scope,
        construct_id,
        name=name,
        description=description,
        state="ENABLED",
        recursive_delete_option=True,
        work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
            enforce_work_group_configuration=True,
            publish_cloud_watch_metrics_enabled=True,
            bytes_scanned_cutoff_per_query=scan_limit_bytes,
            engine_version=athena.CfnWorkGroup.EngineVersionProperty(selected_engine_version="Athena engine version 3"),
            result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                output_location=results_location,
                encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(encryption_option="SSE_S3"),
            ),
        ),
    )
