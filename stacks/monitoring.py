"""Alarms on the pipeline, an SNS topic they notify, and a dashboard.

Hand-written rather than cdk-monitoring-constructs: five alarms with thresholds that are part of
the contract (each asserted by a test and explained in the runbook) are shorter to state than to
configure through a facade, and the template carries no alarm nobody asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ONE_MINUTE = Duration.minutes(1)
PROCESSOR_METRICS = ("QueryEvents", "ResponseEvents", "InvalidEvents")
MATCH_METRICS = ("MatchFull", "MatchPartial", "MatchNone")


@dataclass(frozen=True)
class MonitoringProps:
    events_queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    function: lambda_.IFunction
    processor_timeout_s: int
    oldest_message_age_threshold_s: int
    alarm_email: str | None
    dashboard_name: str
    metrics_namespace: str
    service_name: str


class Monitoring(Construct):
    """``alarm_topic`` (KMS-encrypted, TLS only), the five ``alarms`` and the ``dashboard``."""

    def __init__(self, scope: Construct, construct_id: str, props: MonitoringProps) -> None:
        super().__init__(scope, construct_id)
        # CloudWatch cannot publish to a topic encrypted with the AWS-managed aws/sns key,
        # so the topic gets a customer-managed key that lets CloudWatch use it.
        self.topic_key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the analytics alarm topic",
            enable_key_rotation=True,
        )
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.alarm_topic = sns.Topic(self, "AlarmTopic", master_key=self.topic_key, enforce_ssl=True)
        if props.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(props.alarm_email))

        processor_timeout_ms = props.processor_timeout_s * 1000
        self.alarms = {
            "OldestMessageAge": self._alarm(
                "OldestMessageAgeAlarm",
                props.events_queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE, statistic="Maximum"),
                threshold=props.oldest_message_age_threshold_s,
                description=f"Events wait more than {props.oldest_message_age_threshold_s} s in the queue: the processor is stuck or too slow",
            ),
            "DeadLetters": self._alarm(
                "DeadLettersAlarm",
                props.dead_letter_queue.metric_approximate_number_of_messages_visible(period=ONE_MINUTE, statistic="Maximum"),
                threshold=0,
                description="Events failed 3 times and are in the dead-letter queue",
            ),
            "ProcessorErrors": self._alarm(
                "ProcessorErrorsAlarm",
                props.function.metric_errors(period=ONE_MINUTE, statistic="Sum"),
                threshold=0,
                description="The processor Lambda raised (whole batches are being retried)",
            ),
            "ProcessorThrottles": self._alarm(
                "ProcessorThrottlesAlarm",
                props.function.metric_throttles(period=ONE_MINUTE, statistic="Sum"),
                threshold=0,
                description="The processor Lambda is throttled",
            ),
            "ProcessorDuration": self._alarm(
                "ProcessorDurationAlarm",
                props.function.metric_duration(period=ONE_MINUTE, statistic="p99"),
                threshold=int(processor_timeout_ms * 0.8),
                description="The processor's p99 duration is above 80% of its timeout",
            ),
        }
        self.dashboard = self._dashboard(props)

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, *, threshold: float, description: str) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            # No data means an idle pipeline (no messages, no invocations), which is healthy.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        action = cw_actions.SnsAction(self.alarm_topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        return alarm

    def _dashboard(self, props: MonitoringProps) -> cloudwatch.Dashboard:
        def own(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=props.metrics_namespace,
                metric_name=name,
                dimensions_map={"service": props.service_name},
                statistic=statistic,
                period=Duration.minutes(5),
            )

        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=props.dashboard_name)
        queue, dlq, fn = props.events_queue, props.dead_letter_queue, props.function
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Events queue",
                left=[queue.metric_number_of_messages_sent(), queue.metric_approximate_number_of_messages_visible()],
                right=[queue.metric_approximate_age_of_oldest_message()],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Dead-letter queue", left=[dlq.metric_approximate_number_of_messages_visible()], width=8),
            cloudwatch.GraphWidget(
                title="Processor Lambda",
                left=[fn.metric_invocations(), fn.metric_errors(), fn.metric_throttles()],
                right=[fn.metric_duration(statistic="p99")],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Events processed", left=[own(name) for name in PROCESSOR_METRICS], width=8),
            cloudwatch.GraphWidget(title="Answers by match type", left=[own(name) for name in MATCH_METRICS], width=8),
            cloudwatch.GraphWidget(
                title="Match score and ingest lag",
                left=[own("MatchScore", "Average")],
                right=[own("IngestLagMs", "p99")],
                width=8,
            ),
        )
        return dashboard
