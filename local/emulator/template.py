"""Turn the synthesized CloudFormation template into what moto's CloudFormation can deploy.

The template that ``cdk deploy`` would ship is deployed as is, except for resource types that
moto's CloudFormation does not implement. Each of those is taken out and stood in for by an
explicit step (``local.emulator.standins``), or replaced by the event-source-mapping emulator; none is
dropped silently: :data:`STAND_INS` lists every type that is handled, and an unknown
unsupported type stops the deployment.

Intrinsic functions inside a removed resource (a queue policy's ``Ref`` to its queue, the
secret's ``GetAtt`` of the access key) are resolved by moto itself: each becomes a local-only
stack output, read back after the deployment and substituted into the stand-in's properties.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

INTRINSICS = {"Ref", "Fn::GetAtt", "Fn::Join", "Fn::Sub", "Fn::Select", "Fn::Split", "Fn::If", "Fn::ImportValue", "Fn::FindInMap"}

# Types moto's CloudFormation cannot create, and what happens to each instead.
STAND_INS: dict[str, str] = {
    "AWS::SQS::QueuePolicy": "SetQueueAttributes(Policy) on each queue",
    "AWS::SNS::TopicPolicy": "SetTopicAttributes(Policy) on each topic",
    "AWS::SecretsManager::Secret": "CreateSecret with the resolved SecretString",
    "AWS::CloudWatch::Alarm": "PutMetricAlarm with the resolved properties",
    "AWS::Lambda::EventSourceMapping": "the event-source-mapping emulator (local.emulator.esm) polls the queue instead: moto would need Docker to run the function",
    "AWS::CDK::Metadata": "not an AWS resource (CDK's version report): nothing to create",
    "AWS::S3::BucketPolicy": (
        "not applied: moto 5.2 evaluates a bucket policy's conditions without the request's context, so the"
        " TLS-only deny (aws:SecureTransport) would refuse every request, HTTPS included; tests/cdk asserts the policy"
    ),
    "AWS::Logs::LogStream": "CreateLogStream in its log group",
    "AWS::KinesisFirehose::DeliveryStream": (
        "CreateDeliveryStream with the same destination (each stream: the requests' and the rejected events'); moto"
        " writes the JSON lines as they come (no Parquet conversion) under the prefix, whose !{timestamp:...}"
        " expressions local.emulator.stack evaluates as Firehose does"
    ),
    "AWS::Glue::Database": "CreateDatabase (DuckDB, not Athena, reads the lake locally)",
    "AWS::Glue::Table": "CreateTable with the same columns and partitions (requests, rejected, compacted, compacted_sections)",
    "AWS::Athena::WorkGroup": "CreateWorkGroup with the same configuration (moto runs no query: the duckdb engine does, locally)",
    "AWS::Scheduler::ScheduleGroup": "CreateScheduleGroup (moto's Scheduler API; its CloudFormation has no Scheduler types)",
    "AWS::Scheduler::Schedule": (
        "CreateSchedule with the same expression, target and input (moto stores it and never runs it: locally"
        " `chat-analytics compact` runs the compaction with DuckDB)"
    ),
}

PLACEHOLDER = "__local_resolve_{}__"


@dataclass
class LocalTemplate:
    """The deployable template, the resources taken out of it, and how to resolve their intrinsics."""

    body: dict
    removed: dict[str, dict]
    resolve_outputs: dict[str, str] = field(default_factory=dict)  # output name -> placeholder
    patches: list[str] = field(default_factory=list)

    def resolved(self, outputs: dict[str, str]) -> dict[str, dict]:
        """The removed resources with every intrinsic replaced by its value from the deployed stack."""
        text = json.dumps(self.removed)
        for name, placeholder in self.resolve_outputs.items():
            text = text.replace(json.dumps(placeholder)[1:-1], json.dumps(outputs[name])[1:-1])
        return json.loads(text)


def adapt(template: dict, supported_types: set[str]) -> LocalTemplate:
    """Split ``template`` into what moto deploys and what :mod:`local.emulator.standins` creates."""
    body = copy.deepcopy(template)
    removed: dict[str, dict] = {}
    for logical_id, resource in list(body["Resources"].items()):
        resource_type = resource["Type"]
        if resource_type in supported_types and resource_type not in STAND_INS:
            continue
        if resource_type not in STAND_INS:
            raise ValueError(f"{logical_id}: moto's CloudFormation cannot create {resource_type} and there is no local stand-in for it")
        removed[logical_id] = body["Resources"].pop(logical_id)
    local = LocalTemplate(body=body, removed=removed)
    for resources in (body["Resources"], removed):
        for logical_id, resource in resources.items():
            resources[logical_id] = _refer_to_stand_ins(resource, removed)
    if "Outputs" in body:
        body["Outputs"] = _refer_to_stand_ins(body["Outputs"], removed)
    counter = iter(range(10_000))
    for resource in removed.values():
        resource["Properties"] = _extract(resource.get("Properties", {}), local, counter)
    for resource in body["Resources"].values():
        _drop_dependencies_on(resource, removed)
    local.patches.extend(_patch_moto_gaps(body))
    return local


def _extract(node: Any, local: LocalTemplate, counter) -> Any:
    if isinstance(node, dict):
        if len(node) == 1 and next(iter(node)) in INTRINSICS:
            index = next(counter)
            name = f"LocalResolve{index}"
            local.body.setdefault("Outputs", {})[name] = {"Value": node}
            local.resolve_outputs[name] = PLACEHOLDER.format(index)
            return PLACEHOLDER.format(index)
        return {key: _extract(value, local, counter) for key, value in node.items()}
    if isinstance(node, list):
        return [_extract(value, local, counter) for value in node]
    return node


# What a Ref to a stood-in resource returns (CloudFormation's "return values"): the property holding
# its name; and its Fn::GetAtt attributes. Names must be explicit in the template for this to work.
_STAND_IN_REFS: dict[str, tuple[str, ...]] = {
    "AWS::KinesisFirehose::DeliveryStream": ("DeliveryStreamName",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Table": ("TableInput", "Name"),
    "AWS::Athena::WorkGroup": ("Name",),
    "AWS::Logs::LogStream": ("LogStreamName",),
}
_STAND_IN_ATTRIBUTES = {
    (
        "AWS::KinesisFirehose::DeliveryStream",
        "Arn",
    ): "arn:${{AWS::Partition}}:firehose:${{AWS::Region}}:${{AWS::AccountId}}:deliverystream/{}",
}


def _stand_in_name(logical_id: str, resource: dict) -> str:
    path = _STAND_IN_REFS.get(resource["Type"])
    value: Any = resource.get("Properties", {})
    for key in path or ():
        value = value.get(key) if isinstance(value, dict) else None
    if not path or not isinstance(value, str):
        raise ValueError(f"{logical_id} ({resource['Type']}) is referred to but has no explicit name the local stack can stand in with")
    return value


def _refer_to_stand_ins(node: Any, removed: dict[str, dict]) -> Any:
    """``node`` with every Ref/Fn::GetAtt of a removed resource replaced by what the stand-in will answer."""
    if isinstance(node, dict):
        if len(node) == 1 and node.get("Ref") in removed:
            return _stand_in_name(node["Ref"], removed[node["Ref"]])
        if len(node) == 1 and "Fn::GetAtt" in node and node["Fn::GetAtt"][0] in removed:
            logical_id, attribute = node["Fn::GetAtt"][0], node["Fn::GetAtt"][1]
            pattern = _STAND_IN_ATTRIBUTES.get((removed[logical_id]["Type"], attribute))
            if pattern is None:
                raise ValueError(f"{logical_id}.{attribute}: no local stand-in answers this attribute")
            return {"Fn::Sub": pattern.format(_stand_in_name(logical_id, removed[logical_id]))}
        return {key: _refer_to_stand_ins(value, removed) for key, value in node.items()}
    if isinstance(node, list):
        return [_refer_to_stand_ins(value, removed) for value in node]
    return node


def _drop_dependencies_on(resource: dict, removed: dict[str, dict]) -> None:
    depends = resource.get("DependsOn", [])
    depends = [depends] if isinstance(depends, str) else depends
    kept = [d for d in depends if d not in removed]
    if kept:
        resource["DependsOn"] = kept
    else:
        resource.pop("DependsOn", None)


def _patch_moto_gaps(body: dict) -> list[str]:
    """Work around moto bugs without changing what is deployed; each patch is reported."""
    patches = []
    for logical_id, resource in body["Resources"].items():
        props = resource.get("Properties", {})
        # moto 5.2's KMS CloudFormation model reads tags as TagKey/TagValue (the API's shape).
        if resource["Type"] == "AWS::KMS::Key" and props.get("Tags"):
            props["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props["Tags"]]
            patches.append(f"{logical_id}: KMS key tags passed as TagKey/TagValue (moto 5.2 reads the API's shape)")
    return patches


def table_arguments(template: dict, table_name: str) -> tuple[dict[str, Any], str | None]:
    """``CreateTable`` arguments for the template's one ``AWS::DynamoDB::Table`` (and its TTL attribute),
    for tests that need the table without the rest of the stack. Only API-shaped properties are
    copied; CloudFormation-only ones (tags, retention, PITR) do not change how items are stored or read."""
    [table] = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    arguments: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": table["BillingMode"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "KeySchema": table["KeySchema"],
    }
    if table.get("GlobalSecondaryIndexes"):
        arguments["GlobalSecondaryIndexes"] = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")} for index in table["GlobalSecondaryIndexes"]
        ]
    ttl = table.get("TimeToLiveSpecification", {})
    return arguments, ttl.get("AttributeName") if ttl.get("Enabled") else None


# The events queue's CloudFormation properties that are also SetQueueAttributes/CreateQueue attributes.
_QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "SqsManagedSseEnabled",
)


def events_queue_attributes(template: dict) -> dict[str, str]:
    """``CreateQueue`` attributes of the template's events queue (not its name nor its DLQ), for tests that
    need a queue of their own like it: FIFO, explicit deduplication scoped to the group, high throughput."""
    [queue] = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SQS::Queue" and str(r["Properties"].get("QueueName", "")).endswith("-events.fifo")
    ]
    return {
        name: str(queue[name]).lower() if isinstance(queue[name], bool) else str(queue[name]) for name in _QUEUE_ATTRIBUTES if name in queue
    }
