"""What ``chat-analytics erase`` needs in AWS: one managed policy, published as output ``ErasurePolicyArn``.

Erasure (docs/erasure.md) deletes a request's table item, rewrites the lake objects that hold its rows
(the new object first, then the old one deleted): Firehose's under ``requests/`` and the daily compaction's
under ``compacted/``, deletes its dead-letter messages and writes one audit line under ``erasure-audit/`` of
the lake bucket. The policy allows exactly that, statement by statement, and nothing the command does not
call: no ``dynamodb:Scan``, no ``s3:*`` outside ``requests/`` and ``compacted/`` (list, read, rewrite,
delete) and ``erasure-audit/`` (PutObject only: an eraser can add audit lines, not read, change or delete
them; each run writes a new key), no ``sqs:SendMessage`` (erasure never moves a message). ``compacted/`` is
granted whether or not the stack compacts (``lakeCompaction``): objects a compaction wrote before it was
turned off hold questions too, until they expire.
``cloudformation:DescribeStacks`` on the stack is how the CLI finds the resources by output name.

The table is encrypted with the AWS managed key and the bucket and queues with SSE-S3 / SSE-SQS: no KMS
permission is needed. Attach the policy to the person's or the job's role for the run only.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Resource, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from schema import contract

# The folders of the lake bucket the eraser works in: Firehose's rows, the compaction's rows and summaries
# (schema/contract.py's folder, as stacks/compaction.py's), and its own audit lines.
REQUESTS_PREFIX = "requests/"
COMPACTED_PREFIX = contract.COMPACTED_PREFIX
ROW_PREFIXES = (REQUESTS_PREFIX, COMPACTED_PREFIX)
AUDIT_PREFIX = "erasure-audit/"


@dataclass(frozen=True)
class ErasureAccessProps:
    """``day_index`` is the table's index that ``--question-contains`` queries day by day (None: the table has
    none, setting ``tableDayIndex``; the lake alone then answers it)."""

    name_prefix: str
    events_table: dynamodb.ITable
    day_index: str | None
    dead_letter_queue: sqs.IQueue
    lake_bucket: s3.IBucket


class ErasureAccess(Construct):
    """``erasure_policy``: the managed policy ``chat-analytics erase`` needs (module docstring)."""

    def __init__(self, scope: Construct, construct_id: str, props: ErasureAccessProps) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        table_arn = props.events_table.table_arn
        bucket = props.lake_bucket
        self.erasure_policy = iam.ManagedPolicy(
            self,
            "ErasurePolicy",
            description=f"{props.name_prefix}: chat-analytics erase (table items, lake rows, compacted rows, dead letters, audit lines)",
            statements=[
                iam.PolicyStatement(
                    sid="FindTheStacksResources",
                    actions=["cloudformation:DescribeStacks"],
                    resources=[stack.stack_id],
                ),
                iam.PolicyStatement(
                    sid="FindAndDeleteTableItems",
                    # DescribeTable: whether the table has its day index (setting tableDayIndex), before querying it.
                    actions=["dynamodb:DeleteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"],
                    resources=[table_arn] + ([f"{table_arn}/index/{props.day_index}"] if props.day_index else []),
                ),
                iam.PolicyStatement(
                    sid="ListTheLakesRows",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    # The command lists only under requests/ and compacted/ (it names the prefix in every request).
                    conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in ROW_PREFIXES]}},
                ),
                iam.PolicyStatement(
                    sid="RewriteTheLakesObjects",
                    actions=["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                    resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in ROW_PREFIXES],
                ),
                iam.PolicyStatement(
                    sid="WriteAuditLines",
                    actions=["s3:PutObject"],
                    resources=[bucket.arn_for_objects(f"{AUDIT_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="DeleteDeadLetters",
                    actions=["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                    resources=[props.dead_letter_queue.queue_arn],
                ),
            ],
        )

    def nag_acknowledgements(self, bucket_arn: str) -> list[tuple[Resource, str, str]]:
        """The cdk-nag findings this policy raises, with why each is accepted (the stack acknowledges them all
        in one place); ``bucket_arn`` is the lake bucket's ARN as cdk-nag names it."""
        reasons = {
            REQUESTS_PREFIX: "Firehose names each object under requests/dt=<day>/ itself; erasure reads them all to find a request's rows "
            "and rewrites, by name, the ones that hold them; the grant is limited to that folder of the lake bucket.",
            COMPACTED_PREFIX: "The daily compaction (Athena's INSERT INTO) names each object under compacted/dt=<day>/late=<0|1>/ itself; "
            "erasure reads them all to find a request's compacted rows and rewrites, by name, the ones that hold them; the grant is "
            "limited to that folder of the lake bucket.",
            AUDIT_PREFIX: "Each erasure run adds one audit object under erasure-audit/ with a new name; the grant there is PutObject "
            "only (no read, no delete), limited to that folder.",
        }
        return [
            (self.erasure_policy, f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/{prefix}*]", reason)
            for prefix, reason in reasons.items()
        ]
