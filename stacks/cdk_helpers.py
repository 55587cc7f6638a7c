"""Helpers the constructs share: stated once here, so that no construct imports another construct's module
for them (the lake used to import ``log_retention`` from the processor's)."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_athena as athena
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.settings import LOG_RETENTION_DAYS


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
