"""Explicit steps that create, through the service APIs, what moto's CloudFormation cannot."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3

from local.emulator.template import STAND_INS


def create_stand_ins(session: boto3.Session, endpoint_url: str | None, stack_name: str, resolved: dict[str, dict]) -> list[str]:
    """Create each removed resource; returns one line per resource saying what stood in for it."""
    done = []
    for logical_id, resource in sorted(resolved.items(), key=lambda item: _ORDER.get(item[1]["Type"], 9)):
        creator = _CREATORS.get(resource["Type"])
        if creator is None:
            done.append(f"{logical_id} ({resource['Type']}): not created ({STAND_INS[resource['Type']]})")
            continue
        done.append(f"{logical_id} ({resource['Type']}): {creator(session, endpoint_url, stack_name, logical_id, resource['Properties'])}")
    return done


def _client(session: boto3.Session, service: str, endpoint_url: str | None) -> Any:
    return session.client(service, endpoint_url=endpoint_url)


def _queue_policy(session, endpoint_url, stack_name, logical_id, props) -> str:
    sqs = _client(session, "sqs", endpoint_url)
    for queue_url in props["Queues"]:
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
    return f"policy set on {', '.join(url.rsplit('/', 1)[-1] for url in props['Queues'])}"


def _topic_policy(session, endpoint_url, stack_name, logical_id, props) -> str:
    sns = _client(session, "sns", endpoint_url)
    for topic_arn in props["Topics"]:
        sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"]))
    return "policy set on the alarm topic"


def _secret(session, endpoint_url, stack_name, logical_id, props) -> str:
    secrets = _client(session, "secretsmanager", endpoint_url)
    secrets.create_secret(Name=props["Name"], Description=props.get("Description", ""), SecretString=props["SecretString"])
    return f"secret {props['Name']} created"


def _alarm(session, endpoint_url, stack_name, logical_id, props) -> str:
    cloudwatch = _client(session, "cloudwatch", endpoint_url)
    name = props.get("AlarmName", f"{stack_name}-{logical_id}")
    arguments = {
        "AlarmName": name,
        "MetricName": props["MetricName"],
        "Namespace": props["Namespace"],
        "Dimensions": props.get("Dimensions", []),
        "Period": int(props["Period"]),
        "EvaluationPeriods": int(props["EvaluationPeriods"]),
        "Threshold": float(props["Threshold"]),
        "ComparisonOperator": props["ComparisonOperator"],
        "AlarmActions": props.get("AlarmActions", []),
        "OKActions": props.get("OKActions", []),
    }
    for key in ("Statistic", "ExtendedStatistic", "TreatMissingData", "AlarmDescription", "DatapointsToAlarm"):
        if key in props:
            arguments[key] = props[key]
    cloudwatch.put_metric_alarm(**arguments)
    return f"alarm {name} created"


def _log_stream(session, endpoint_url, stack_name, logical_id, props) -> str:
    logs = _client(session, "logs", endpoint_url)
    logs.create_log_stream(logGroupName=props["LogGroupName"], logStreamName=props["LogStreamName"])
    return f"log stream {props['LogStreamName']} created"


def _delivery_stream(session, endpoint_url, stack_name, logical_id, props) -> str:
    firehose = _client(session, "firehose", endpoint_url)
    arguments = {
        key: props[key] for key in ("DeliveryStreamName", "DeliveryStreamType", "ExtendedS3DestinationConfiguration") if key in props
    }
    if "DeliveryStreamEncryptionConfigurationInput" in props:
        arguments["DeliveryStreamEncryptionConfigurationInput"] = props["DeliveryStreamEncryptionConfigurationInput"]
    firehose.create_delivery_stream(**arguments)
    return f"delivery stream {props['DeliveryStreamName']} created"


def _glue_database(session, endpoint_url, stack_name, logical_id, props) -> str:
    _client(session, "glue", endpoint_url).create_database(CatalogId=props["CatalogId"], DatabaseInput=props["DatabaseInput"])
    return f"Glue database {props['DatabaseInput']['Name']} created"


def _glue_table(session, endpoint_url, stack_name, logical_id, props) -> str:
    glue = _client(session, "glue", endpoint_url)
    glue.create_table(CatalogId=props["CatalogId"], DatabaseName=props["DatabaseName"], TableInput=props["TableInput"])
    return f"Glue table {props['DatabaseName']}.{props['TableInput']['Name']} created"


def _work_group(session, endpoint_url, stack_name, logical_id, props) -> str:
    athena = _client(session, "athena", endpoint_url)
    configuration = dict(props.get("WorkGroupConfiguration", {}))
    athena.create_work_group(Name=props["Name"], Description=props.get("Description", ""), Configuration=configuration)
    return f"Athena workgroup {props['Name']} created"


def _schedule_group(session, endpoint_url, stack_name, logical_id, props) -> str:
    _client(session, "scheduler", endpoint_url).create_schedule_group(Name=props["Name"])
    return f"EventBridge Scheduler group {props['Name']} created"


def _schedule(session, endpoint_url, stack_name, logical_id, props) -> str:
    target = props["Target"]
    _client(session, "scheduler", endpoint_url).create_schedule(
        Name=props["Name"],
        GroupName=props["GroupName"],
        ScheduleExpression=props["ScheduleExpression"],
        ScheduleExpressionTimezone=props.get("ScheduleExpressionTimezone", "UTC"),
        FlexibleTimeWindow=props["FlexibleTimeWindow"],
        State=props.get("State", "ENABLED"),
        Target={key: target[key] for key in ("Arn", "RoleArn", "Input", "RetryPolicy") if key in target},
    )
    return f"EventBridge Scheduler schedule {props['Name']} created (stored, never run locally)"


_CREATORS: dict[str, Callable[..., str]] = {
    "AWS::Scheduler::ScheduleGroup": _schedule_group,
    "AWS::Scheduler::Schedule": _schedule,
    "AWS::Logs::LogStream": _log_stream,
    "AWS::KinesisFirehose::DeliveryStream": _delivery_stream,
    "AWS::Glue::Database": _glue_database,
    "AWS::Glue::Table": _glue_table,
    "AWS::Athena::WorkGroup": _work_group,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::SecretsManager::Secret": _secret,
    "AWS::CloudWatch::Alarm": _alarm,
}
_ORDER = {
    "AWS::SecretsManager::Secret": 0,
    "AWS::SQS::QueuePolicy": 1,
    "AWS::SNS::TopicPolicy": 2,
    "AWS::CloudWatch::Alarm": 3,
    "AWS::Logs::LogStream": 4,
    "AWS::Glue::Database": 5,
    "AWS::Glue::Table": 6,
    "AWS::KinesisFirehose::DeliveryStream": 7,
    "AWS::Athena::WorkGroup": 7,
    "AWS::Scheduler::ScheduleGroup": 8,
    "AWS::Scheduler::Schedule": 9,
}
