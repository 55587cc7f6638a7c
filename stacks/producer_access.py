"""Credentials for the edge producer: an IAM user that can send to one queue and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import SecretValue, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# The names the Worker reads (wrangler secrets) and the Python producer's from_env() reads.
SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SQS_URL", "AWS_REGION")


@dataclass(frozen=True)
class ProducerAccessProps:
    events_queue: sqs.IQueue
    secret_name: str
    key_serial: int
    source_cidrs: tuple[str, ...] = ()


class ProducerAccess(Construct):
    """``producer_user`` with only ``sqs:SendMessage`` on the events queue, its access key, and
    ``producer_secret`` holding the key with the queue URL and region.

    ``sqs:SendMessage`` also authorizes ``SendMessageBatch`` in AWS. Bumping ``key_serial``
    replaces the access key (CloudFormation creates the new one and deletes the old) and the
    secret follows, so rotation is one deploy. The key never appears in an output.
    """

    def __init__(self, scope: Construct, construct_id: str, props: ProducerAccessProps) -> None:
        super().__init__(scope, construct_id)
        # The plain name, as given: the secret's own secretName attribute is derived from its ARN.
        self.secret_name = props.secret_name
        conditions = {"IpAddress": {"aws:SourceIp": list(props.source_cidrs)}} if props.source_cidrs else None
        self.producer_user = iam.User(self, "User")
        self.send_policy = iam.Policy(
            self,
            "SendPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="SendAnalyticsEvents",
                    actions=["sqs:SendMessage"],
                    resources=[props.events_queue.queue_arn],
                    conditions=conditions,
                )
            ],
            users=[self.producer_user],
        )
        self.access_key = iam.AccessKey(self, "AccessKey", user=self.producer_user, serial=props.key_serial)
        self.producer_secret = secretsmanager.Secret(
            self,
            "Secret",
            secret_name=props.secret_name,
            description="Edge producer credentials: send analytics events to the events queue",
            secret_object_value={
                "AWS_ACCESS_KEY_ID": SecretValue.unsafe_plain_text(self.access_key.access_key_id),
                "AWS_SECRET_ACCESS_KEY": self.access_key.secret_access_key,
                "AWS_SQS_URL": SecretValue.unsafe_plain_text(props.events_queue.queue_url),
                "AWS_REGION": SecretValue.unsafe_plain_text(Stack.of(self).region),
            },
        )
