"""The DynamoDB table that holds one merged item per chatbot request."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from schema.contract import DAY_INDEX, DAY_INDEX_ATTRIBUTES  # the index's name and projection, shared with the CLI
from stacks.cdk_helpers import retain_if

PARTITION_KEY = "requestId"
DAY_ATTRIBUTE = "day"
TTL_ATTRIBUTE = "expiresAt"


@dataclass(frozen=True)
class EventTableProps:
    protect_data: bool
    # The byDay index (setting ``tableDayIndex``): what ``report --engine dynamodb`` and the table half of
    # ``erase --question-contains`` query. Every write that changes a projected attribute is written to it
    # again (a second WRU per question, and its storage); without it the lake is where days are read.
    day_index: bool = True


class EventTable(Construct):
    """``events_table``: on-demand, point-in-time recovery, TTL on ``expiresAt``.

    The ``byDay`` index (``day`` = UTC date, sorted by ``requestId``; only when ``props.day_index``) lets a
    report read one day's requests without a scan; it projects only ``DAY_INDEX_ATTRIBUTES``, what its readers
    use. ``AWS::DynamoDB::Table`` rather than TableV2's GlobalTable: the pipeline is single-region and the
    local stack can deploy it.
    """

    def __init__(self, scope: Construct, construct_id: str, props: EventTableProps) -> None:
        super().__init__(scope, construct_id)
        self.events_table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            time_to_live_attribute=TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=props.protect_data,
            removal_policy=retain_if(props.protect_data),
        )
        self.day_index = DAY_INDEX if props.day_index else None
        if self.day_index is None:
            return
        self.events_table.add_global_secondary_index(
            index_name=DAY_INDEX,
            partition_key=dynamodb.Attribute(name=DAY_ATTRIBUTE, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(DAY_INDEX_ATTRIBUTES),
        )
