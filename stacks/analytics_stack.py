"""The stack: composes the constructs, publishes the outputs, acknowledges cdk-nag findings."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnOutput, Stack, Validations
from constructs import Construct

from schema import contract
from stacks.compaction import CompactedTable, LakeCompaction, LakeCompactionProps
from stacks.erasure import ErasureAccess, ErasureAccessProps
from stacks.event_table import EventTable, EventTableProps
from stacks.lake import EventLake, EventLakeProps
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
        # In this order: each construct takes what the ones before it made (the processor the lake's stream,
        # monitoring the processor's function); the template lists the resources in the order they are created.
        self.queues = EventQueues(
            self,
            "Queues",
            EventQueuesProps(
                name_prefix=settings.stack_name,
                processor_timeout_s=settings.processor_timeout_s,
                retain_dead_letters=settings.is_production,
            ),
        )
        self.table = EventTable(self, "Events", EventTableProps(protect_data=settings.is_production, day_index=settings.table_day_index))
        self.lake = self._lake(settings)
        self.compacted = self._compaction(settings)
        self.compaction = self.compacted if isinstance(self.compacted, LakeCompaction) else None
        self.processor = self._processor(settings)
        self.producer = self._producer(settings)
        self.monitoring = self._monitoring(settings)
        self.erasure = ErasureAccess(
            self,
            "Erasure",
            ErasureAccessProps(
                settings.stack_name, self.table.events_table, self.table.day_index, self.queues.dead_letter_queue, self.lake.lake_bucket
            ),
        )
        self._outputs()
        self._acknowledge_nag_findings()

    def _lake(self, settings: Settings) -> EventLake:
        """The event lake, before the processor: the processor's role and environment name the lake's stream."""
        return EventLake(
            self,
            "Lake",
            EventLakeProps(
                name_prefix=settings.stack_name,
                retention_days=settings.event_retention_days,
                scan_limit_bytes=settings.lake_scan_limit_bytes,
                database_name=settings.lake_database_name,
                log_retention_days=settings.log_retention_days,
                buffer_interval_s=900,
                protect_data=settings.is_production,
                lake_formation=settings.lake_formation,
                report_reader_principal_arns=settings.report_reader_principal_arns,
            ),
        )

    def _compaction(self, settings: Settings) -> LakeCompaction | CompactedTable:
        """The lake's daily compaction (its table, workgroup, schedule), or with ``lakeCompaction`` false its table
        alone (the report's SQL reads it either way); report readers may read the table."""
        lake = self.lake
        props = LakeCompactionProps(
            name_prefix=settings.stack_name,
            bucket=lake.lake_bucket,
            database_name=settings.lake_database_name,
            database_ref=lake.lake_database.ref,
            glue_catalog_arn=lake.glue_resources[0],
            glue_database_arn=lake.glue_resources[1],
            requests_table_arn=lake.table_arn,
            retention_days=settings.event_retention_days,
            scan_limit_bytes=settings.lake_scan_limit_bytes,
        )
        built = LakeCompaction(self, "Compaction", props) if settings.lake_compaction else CompactedTable(self, "CompactedTable", props)
        lake.report_reader_policy.add_statements(*built.reader_statements)
        if settings.lake_formation:  # the report's SQL reads compacted: each reader needs it as it needs requests
            lake.grant_report_readers(built.table, settings.report_reader_principal_arns, "Compacted")
            lake.grant_report_readers(built.sections_table, settings.report_reader_principal_arns, "CompactedSections")
        return built

    def _processor(self, settings: Settings) -> Processor:
        """The processor, wired to the resources it alone may touch: the events queue, the table, the lake's stream."""
        return Processor(
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
                table_retention_days=settings.table_retention_days,
                metrics_namespace=settings.metrics_namespace,
                retain_logs=settings.is_production,
                lake_stream_name=self.lake.stream_name,
                lake_stream_arn=self.lake.stream_arn,
                rejected_stream_name=self.lake.rejected_stream_name,
                rejected_stream_arn=self.lake.rejected_stream_arn,
                powertools_layer=settings.powertools_layer,
                system_log_level=settings.processor_system_log_level,
                log_level=settings.processor_log_level,
            ),
        )

    def _producer(self, settings: Settings) -> ProducerAccess:
        """The edge producer's credentials: send to the events queue, from the settings' CIDRs, in one named secret."""
        return ProducerAccess(
            self,
            "Producer",
            ProducerAccessProps(
                events_queue=self.queues.events_queue,
                secret_name=f"{settings.stack_name}/producer-credentials",
                key_serial=settings.producer_key_serial,
                source_cidrs=settings.producer_source_cidrs,
            ),
        )

    def _monitoring(self, settings: Settings) -> Monitoring:
        """Monitoring last: its alarms and dashboard watch the queues, the processor and the lake's stream."""
        return Monitoring(
            self,
            "Monitoring",
            MonitoringProps(
                name_prefix=settings.stack_name,
                retain_topic_key=settings.is_production,
                events_queue=self.queues.events_queue,
                dead_letter_queue=self.queues.dead_letter_queue,
                function=self.processor.function,
                processor_timeout_s=settings.processor_timeout_s,
                oldest_message_age_threshold_s=settings.oldest_message_age_threshold_s,
                alarm_email=settings.alarm_email,
                dashboard_name=settings.stack_name,
                metrics_namespace=settings.metrics_namespace,
                service_name=SERVICE_NAME,
                lake_stream_name=self.lake.stream_name,
                compaction_work_group=self.compaction.work_group_name if self.compaction else None,
                compaction_schedule_group=self.compaction.schedule_group_name if self.compaction else None,
            ),
        )

    def _outputs(self) -> None:
        """What the operations CLI, the local stack and a person read after a deploy, by output name (no secret:
        the producer's key is only in its secret)."""
        outputs = {
            contract.EVENTS_QUEUE_URL: self.queues.events_queue.queue_url,
            contract.DEAD_LETTER_QUEUE_URL: self.queues.dead_letter_queue.queue_url,
            contract.EVENTS_TABLE_NAME: self.table.events_table.table_name,
            contract.PRODUCER_SECRET_NAME: self.producer.secret_name,
            contract.DASHBOARD_NAME: self.monitoring.dashboard.dashboard_name,
            contract.ALARM_TOPIC_ARN: self.monitoring.alarm_topic.topic_arn,
            contract.RECOVERY_RULE_NAME: self.monitoring.recovery_rule.rule_name,
            contract.RECOVERY_DEAD_LETTER_QUEUE_URL: self.monitoring.recovery_dead_letter_queue.queue_url,
            contract.PROCESSOR_FUNCTION_NAME: self.processor.function.function_name,
            contract.LAKE_BUCKET_NAME: self.lake.lake_bucket.bucket_name,
            contract.LAKE_DATABASE_NAME: self.lake.lake_database.ref,
            contract.LAKE_TABLE_NAME: self.lake.lake_table.ref,
            contract.ATHENA_WORK_GROUP_NAME: self.lake.work_group.ref,
            contract.LAKE_STREAM_NAME: self.lake.stream_name,
            contract.REJECTED_TABLE_NAME: self.lake.rejected_table.ref,
            contract.REJECTED_STREAM_NAME: self.lake.rejected_stream.ref,
            contract.REPORT_READER_POLICY_ARN: self.lake.report_reader_policy.managed_policy_arn,
            contract.ERASURE_POLICY_ARN: self.erasure.erasure_policy.managed_policy_arn,
        }
        if self.compaction is not None:
            outputs[contract.COMPACTION_SCHEDULE] = f"{self.compaction.schedule_group_name}/{self.compaction.schedule.name}"
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    def _compaction_acknowledgements(self, bucket_arn: str) -> list[tuple[Any, str, str]]:
        """The compacted table's folder grants (stacks/compaction.py): a report reader's, in every stack; and with the
        schedule, its role's: Athena, running the query as that role, reads every object of the day partitions it
        selects and writes objects it names itself."""
        reader = self.lake.report_reader_policy
        readers = [
            (
                reader,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/compacted/*]",
                "Athena reads every Parquet file of the compacted day partitions a report selects; the grant is "
                "limited to the compacted/ folder of the lake bucket.",
            ),
        ]
        if self.compaction is None:  # lakeCompaction false: the table alone, no schedule's role
            return readers
        role = self.compaction.role
        return [
            *readers,
            (
                role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/requests/*]",
                "The compaction query reads every raw Parquet file of the day partitions it compacts (and of the 15 days "
                "before, for the request keys); the grant is limited to the requests/ folder.",
            ),
            (
                role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/compacted/*]",
                "INSERT INTO writes new objects under compacted/dt=<day>/late=<0|1>/ with names Athena chooses, and reads "
                "that folder to skip the days already compacted; the grant is limited to it.",
            ),
            (
                role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/athena-results/compaction/*]",
                "Athena writes the compaction query's result and manifest under its workgroup's results folder with a "
                "name it chooses (the query id); the grant is limited to that folder.",
            ),
            (
                self.compaction.summary_role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/compacted/*]",
                "The summary query reads every first-partition Parquet file of the compacted days it summarizes and the "
                "summaries there to skip the days done; the grant is limited to the compacted/ folder.",
            ),
            (
                self.compaction.summary_role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/compacted/sections/*]",
                "INSERT INTO writes new objects under compacted/sections/dt=<day>/ with names Athena chooses; the grant is "
                "limited to that folder.",
            ),
            (
                self.compaction.summary_role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/athena-results/compaction/*]",
                "Athena writes the summary query's result and manifest under its workgroup's results folder with a name it "
                "chooses (the query id); the grant is limited to that folder.",
            ),
        ]

    def _acknowledge_nag_findings(self) -> None:
        """Each cdk-nag finding we accept, with the reason it does not apply here."""
        acknowledgements = [
            (
                self.producer.producer_secret,
                "AwsSolutions::AwsSolutions-SMG4",
                "The secret holds an IAM access key that Secrets Manager cannot rotate by itself; it is rotated by bumping producerKeySerial and deploying (docs/runbook.md).",
            ),
            (
                self.monitoring.recovery_dead_letter_queue,
                "AwsSolutions::AwsSolutions-SQS3",
                "This queue is a dead-letter queue: the alarm-recovered rule's target dead-letters to it (EventBridge's "
                "DeadLetterConfig, which cdk-nag does not see; it recognizes only SQS redrive policies). A dead-letter "
                "queue has none of its own, and its depth is alarmed (RecoveryDeadLetters).",
            ),
        ]
        lake = self.lake
        bucket_arn = f"<{self.get_logical_id(lake.lake_bucket.node.default_child)}.Arn>"  # type: ignore[arg-type]
        acknowledgements += [
            (
                lake.lake_bucket,
                "AwsSolutions::AwsSolutions-S1",
                "The lake bucket is written only by the delivery stream's role and read through Athena with the report "
                "reader policy; access logs would need a second bucket of their own for little gain, and who read what is "
                "already in CloudTrail (S3 data events can be enabled on this bucket when an audit needs them).",
            ),
            (
                lake.delivery_role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/requests/*]",
                "Firehose writes one new object per buffer under requests/dt=<day>/ with names it chooses; the grant is "
                "limited to that folder of the lake bucket.",
            ),
            (
                lake.delivery_role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/errors/*]",
                "Firehose writes records it cannot convert under errors/<error type>/dt=<day>/ with names it chooses; "
                "the grant is limited to that folder of the lake bucket.",
            ),
            (
                lake.report_reader_policy,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/requests/*]",
                "Athena reads every Parquet file of the day partitions a query selects; the reader may read the "
                "requests/ folder of the lake bucket and nothing else of it but the query results.",
            ),
            (
                lake.delivery_role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/rejected/*]",
                "Firehose writes one new object per buffer of rejected events under rejected/dt=<day>/ with names it "
                "chooses; the grant is limited to that folder of the lake bucket.",
            ),
            (
                lake.report_reader_policy,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/rejected/*]",
                "Athena reads every Parquet file of the day partitions a query of the rejected table selects; the "
                "grant is limited to the rejected/ folder of the lake bucket.",
            ),
            (
                lake.report_reader_policy,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/athena-results/*]",
                "Athena writes each query's result under athena-results/ with a name it chooses (the query id) and "
                "the reader fetches it from there; the grant is limited to that folder.",
            ),
        ]
        acknowledgements += self.erasure.nag_acknowledgements(bucket_arn)
        acknowledgements += self._compaction_acknowledgements(bucket_arn)
        for construct, rule, reason in acknowledgements:
            Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
