"""The events FIFO queue and its dead-letter queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.cdk_helpers import retain_if, secure_queue

MAX_RECEIVE_COUNT = 3
# AWS's guidance for SQS event sources: a visibility timeout of at least six times the function's
# timeout, so a batch being retried by Lambda is not delivered again mid-run
# (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
VISIBILITY_TIMEOUT_FACTOR = 6


@dataclass(frozen=True)
class EventQueuesProps:
    """What the queues need to know.

    ``processor_timeout_s`` sets the events queue's visibility timeout (``VISIBILITY_TIMEOUT_FACTOR``
    times it, or ``visibility_timeout_s`` when given, which must not be shorter); ``retain_dead_letters``
    keeps the DLQ, and the evidence of failures in it, when the stack is deleted.
    """

    name_prefix: str
    processor_timeout_s: int
    retain_dead_letters: bool
    visibility_timeout_s: int | None = None

    def __post_init__(self) -> None:
        minimum = VISIBILITY_TIMEOUT_FACTOR * self.processor_timeout_s
        if self.visibility_timeout_s is not None and self.visibility_timeout_s < minimum:
            raise ValueError(
                f"visibility_timeout_s {self.visibility_timeout_s} is under {VISIBILITY_TIMEOUT_FACTOR} x the processor's "
                f"timeout ({minimum} s)"
            )

    @property
    def events_visibility_timeout_s(self) -> int:
        return self.visibility_timeout_s or VISIBILITY_TIMEOUT_FACTOR * self.processor_timeout_s


def fifo_queue(scope: Construct, construct_id: str, *, queue_name: str, **props: Any) -> sqs.Queue:
    """A FIFO queue with this project's safe defaults, stated once: those of every queue (``secure_queue``:
    SSE-SQS, TLS-only), and deduplication by explicit ``MessageDeduplicationId`` only (content-based
    deduplication would merge two events with equal bodies)."""
    if not queue_name.endswith(".fifo"):
        raise ValueError(f"a FIFO queue's name ends with .fifo: {queue_name!r}")
    return secure_queue(scope, construct_id, queue_name=queue_name, fifo=True, content_based_deduplication=False, **props)


class EventQueues(Construct):
    """``events_queue`` (FIFO, high throughput) redriving to ``dead_letter_queue`` after 3 receives.

    Deduplication is scoped to the message group so high-throughput FIFO applies.
    """

    def __init__(self, scope: Construct, construct_id: str, props: EventQueuesProps) -> None:
        super().__init__(scope, construct_id)
        events_queue_name = f"{props.name_prefix}-events.fifo"
        # The DLQ names its only allowed source by ARN, built from the name: a token reference
        # would make the two queues depend on each other.
        events_queue_arn = Stack.of(self).format_arn(service="sqs", resource=events_queue_name)

        self.dead_letter_queue = fifo_queue(
            self,
            "DeadLetterQueue",
            queue_name=f"{props.name_prefix}-dlq.fifo",
            retention_period=Duration.days(14),
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.BY_QUEUE,
                source_queues=[sqs.Queue.from_queue_arn(self, "EventsQueueArn", events_queue_arn)],
            ),
            removal_policy=retain_if(props.retain_dead_letters),
        )
        self.events_queue = fifo_queue(
            self,
            "EventsQueue",
            queue_name=events_queue_name,
            deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
            fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            visibility_timeout=Duration.seconds(props.events_visibility_timeout_s),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letter_queue, max_receive_count=MAX_RECEIVE_COUNT),
            removal_policy=RemovalPolicy.DESTROY,
        )
