"""The events FIFO queue and its dead-letter queue."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_sqs as sqs
from constructs import Construct

MAX_RECEIVE_COUNT = 3


@dataclass(frozen=True)
class EventQueuesProps:
    """What the queues need to know.

    ``visibility_timeout_s`` must be at least six times the processor's timeout (AWS's
    guidance for SQS event sources); ``retain_dead_letters`` keeps the DLQ, and the
    evidence of failures in it, when the stack is deleted.
    """

    name_prefix: str
    visibility_timeout_s: int
    retain_dead_letters: bool


class EventQueues(Construct):
    """``events_queue`` (FIFO, high throughput) redriving to ``dead_letter_queue`` after 3 receives.

    Both queues are encrypted with SSE-SQS and refuse requests without TLS. Deduplication is by
    explicit ``MessageDeduplicationId`` only (content-based deduplication would merge two events
    with equal bodies), scoped to the message group so high-throughput FIFO applies.
    """

    def __init__(self, scope: Construct, construct_id: str, props: EventQueuesProps) -> None:
        super().__init__(scope, construct_id)
        events_queue_name = f"{props.name_prefix}-events.fifo"
        # The DLQ names its only allowed source by ARN, built from the name: a token reference
        # would make the two queues depend on each other.
        events_queue_arn = Stack.of(self).format_arn(service="sqs", resource=events_queue_name)

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=f"{props.name_prefix}-dlq.fifo",
            fifo=True,
            content_based_deduplication=False,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.BY_QUEUE,
                source_queues=[sqs.Queue.from_queue_arn(self, "EventsQueueArn", events_queue_arn)],
            ),
            removal_policy=RemovalPolicy.RETAIN if props.retain_dead_letters else RemovalPolicy.DESTROY,
        )
        self.events_queue = sqs.Queue(
            self,
            "EventsQueue",
            queue_name=events_queue_name,
            fifo=True,
            content_based_deduplication=False,
            deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
            fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(props.visibility_timeout_s),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVE_COUNT),
            removal_policy=RemovalPolicy.DESTROY,
        )
