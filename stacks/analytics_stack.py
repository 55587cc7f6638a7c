"""The stack: composes the constructs, publishes the outputs, acknowledges cdk-nag findings."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Stack, Validations
from constructs import Construct

from stacks.event_table import EventTable, EventTableProps
from stacks.monitoring import Monitoring, MonitoringProps
from stacks.processor import SERVICE_NAME, Processor, ProcessorProps
from stacks.producer_access import ProducerAccess, ProducerAccessProps
from stacks.queues import EventQueues, EventQueuesProps
from stacks.settings import Settings


class ChatAnalyticsStack(Stack):
    """The AWS side of the fire-and-forget analytics pipeline for one stage."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, **kwargs) -> None:
        super().__init__(scope, construct_id, stack_name=settings.stack_name, **kwargs)
        self.settings = settings
        prod = settings.is_production

        self.queues = EventQueues(
            self,
            "Queues",
            EventQueuesProps(
                name_prefix=settings.stack_name,
                processor_timeout_s=settings.processor_timeout_s,
                retain_dead_letters=prod,
            ),
        )
        self.table = EventTable(self, "Events", EventTableProps(protect_data=prod))
        self.processor = Processor(
            self,
            "Processor",
            ProcessorProps(
                events_queue=self.queues.events_queue,
                events_table=self.table.events_table,
                python_runtime=settings.python_runtime,
                timeout_s=settings.processor_timeout_s,
                memory_mb=settings.processor_memory_mb,
                max_concurrency=settings.processor_max_concurrency,
                log_retention_days=settings.log_retention_days,
                event_retention_days=settings.event_retention_days,
                metrics_namespace=settings.metrics_namespace,
                retain_logs=prod,
                powertools_layer=settings.powertools_layer,
            ),
        )
        self.producer = ProducerAccess(
            self,
            "Producer",
            ProducerAccessProps(
                events_queue=self.queues.events_queue,
                secret_name=f"{settings.stack_name}/producer-credentials",
                key_serial=settings.producer_key_serial,
                source_cidrs=settings.producer_source_cidrs,
            ),
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            MonitoringProps(
                name_prefix=settings.stack_name,
                retain_topic_key=prod,
                events_queue=self.queues.events_queue,
                dead_letter_queue=self.queues.dead_letter_queue,
                function=self.processor.function,
                processor_timeout_s=settings.processor_timeout_s,
                oldest_message_age_threshold_s=settings.oldest_message_age_threshold_s,
                alarm_email=settings.alarm_email,
                dashboard_name=settings.stack_name,
                metrics_namespace=settings.metrics_namespace,
                service_name=SERVICE_NAME,
            ),
        )

        outputs = {
            "EventsQueueUrl": self.queues.events_queue.queue_url,
            "DeadLetterQueueUrl": self.queues.dead_letter_queue.queue_url,
            "EventsTableName": self.table.events_table.table_name,
            "ProducerSecretName": self.producer.secret_name,
            "DashboardName": self.monitoring.dashboard.dashboard_name,
            "AlarmTopicArn": self.monitoring.alarm_topic.topic_arn,
            "ProcessorFunctionName": self.processor.function.function_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
        self._acknowledge_nag_findings()

    def _acknowledge_nag_findings(self) -> None:
        """Each cdk-nag finding we accept, with the reason it does not apply here."""
        acknowledgements = [
            (
                self.producer.producer_secret,
                "AwsSolutions::AwsSolutions-SMG4",
                "The secret holds an IAM access key that Secrets Manager cannot rotate by itself; it is rotated by bumping producerKeySerial and deploying (docs/runbook.md).",
            ),
            (
                self.monitoring.recovery_role,
                "AwsSolutions::AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                "Publishing to a KMS-encrypted topic needs GenerateDataKey (and its variants, as CDK's grantPublish grants them); the statement names the one topic key.",
            ),
        ]
        for construct, rule, reason in acknowledgements:
            Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
