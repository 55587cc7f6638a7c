"""Alarms on the pipeline, an SNS topic they notify, and a dashboard.

Hand-written rather than cdk-monitoring-constructs: ten alarms with thresholds that are part of
the contract (each asserted by a test and explained in the runbook) are shorter to state than to
configure through a facade, and the template carries no alarm nobody asked for.

What AWS requires for a notification to arrive (moto checks none of it):

* A topic policy replaces SNS's default one, so the TLS-only policy must also allow
  ``cloudwatch.amazonaws.com`` to ``sns:Publish``, and the topic's KMS key must let CloudWatch use it
  (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).
  Both grants carry ``aws:SourceAccount`` and ``aws:SourceArn`` (this stack's alarms only), so no other
  account's alarms can use them (https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html).
* Alarms notify on ALARM only. An OK action would also fire on INSUFFICIENT_DATA -> OK, i.e. ten
  "OK" e-mails after every fresh deploy; recoveries (ALARM -> OK, and nothing else) reach the topic
  through an EventBridge rule instead.

How the recovery rule publishes, under either reading of AWS's pages. EventBridge's "Using
resource-based policies" page says, in one version, "for targets that use resource-based policies (Lambda,
Amazon SNS, ...) do not specify a RoleArn ... event delivery may fail, particularly for ... Amazon SNS targets
with AWS KMS encryption enabled. Use resource-based policies only", and in another that SNS targets may use
either a role or a resource-based policy, "if no execution role is configured, EventBridge uses
resource-based policies on the target resource"
(https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html). A target with no
role is delivered through resource-based policies under both readings; one with a role fails under the
first. So the target has no role (the former ``RecoveryPublishRole`` is gone) and:

* the topic policy lets ``events.amazonaws.com`` publish. The same page says condition blocks cannot be
  used in SNS topic policies for EventBridge (the request may carry no ``aws:SourceArn``), so the
  statement's conditions are ``...IfExists``: when EventBridge names the calling rule or account, it must
  be this stack's recovery rule in this account; when it names none, the grant still applies;
* the topic key lets ``events.amazonaws.com`` use it (kms:Decrypt, kms:GenerateDataKey*,
  https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services) only
  for this stack's topics: ``kms:EncryptionContext:aws:sns:topicArn`` (SNS puts the topic's ARN in the
  encryption context of every data key it asks for). SNS's page says ``aws:SourceAccount`` and
  ``aws:SourceArn`` are not supported in a key policy for EventBridge-to-encrypted-topic delivery, so the
  key grant has neither. The topic's ARN is matched by the stack's name (CloudFormation names the topic
  ``<stack>-<logical id>-<suffix>``): naming it in the key policy directly would make the key depend on
  the topic, which depends on the key;
* the target has a retry policy (``RECOVERY_MAX_EVENT_AGE``, ``RECOVERY_RETRY_ATTEMPTS``) and a dead-letter
  queue (standard, as EventBridge requires; SSE-SQS, which needs no key grant; its policy lets only
  ``events.amazonaws.com`` send, only for this rule: aws:SourceArn, as EventBridge's dead-letter page
  shows, https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html);
* two alarms watch the path: the rule's ``FailedInvocations`` (AWS/Events, dimension RuleName) and the
  dead-letter queue's depth. They notify through CloudWatch's grant, not through the rule, so a broken
  recovery path still mails.
"""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk.interfaces import aws_events as events_refs
from constructs import Construct

from schema import contract
from stacks.cdk_helpers import retain_if, secure_queue

ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)
PROCESSOR_METRICS = (contract.QUERY_EVENTS, contract.RESPONSE_EVENTS, contract.INVALID_EVENTS)
MATCH_METRICS = tuple(contract.MATCH_METRICS[kind] for kind in contract.MATCH_TYPES)
# The event lake's promise: a row is queryable within 30 minutes of reaching Firehose (its buffer is 15).
LAKE_FRESHNESS_THRESHOLD_S = 1800
# A recovery notice EventBridge could not publish is retried for up to an hour (or 24 times, whichever
# comes first), then kept in the recovery dead-letter queue for SQS's maximum of 14 days.
RECOVERY_MAX_EVENT_AGE = Duration.hours(1)
RECOVERY_RETRY_ATTEMPTS = 24
RECOVERY_DLQ_RETENTION = Duration.days(14)


@dataclass(frozen=True)
class MonitoringProps:
    """``name_prefix`` names the alarms and the recovery rule (the topic's grants match on it);
    ``retain_topic_key`` keeps the topic's key when the stack is deleted (prod), else it is scheduled
    for deletion after the 7-day minimum waiting period (a retained key costs $1 a month)."""

    name_prefix: str
    retain_topic_key: bool
    events_queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    function: lambda_.IFunction
    processor_timeout_s: int
    oldest_message_age_threshold_s: int
    alarm_email: str | None
    dashboard_name: str
    metrics_namespace: str
    service_name: str
    lake_stream_name: str
    # The lake's compaction (stacks/compaction.py), when deployed: its workgroup and schedule group.
    compaction_work_group: str | None = None
    compaction_schedule_group: str | None = None


@jsii.implements(events.IRuleTarget)
class _TopicThroughResourcePolicies:
    """An SNS target with no role that grants nothing by itself: ``targets.SnsTopic`` without a role adds an
    unconditioned ``events.amazonaws.com`` statement to the topic policy and to the key policy, which this
    stack writes itself (conditioned: the module's docstring). Dead-letter queue and retry policy as ``targets.SnsTopic``'s."""

    def __init__(
        self,
        topic: sns.ITopic,
        message: events.RuleTargetInput,
        dead_letter_queue: sqs.IQueue,
        max_event_age: Duration,
        retry_attempts: int,
    ) -> None:
        self.topic, self.message, self.dead_letter_queue = topic, message, dead_letter_queue
        self.max_event_age, self.retry_attempts = max_event_age, retry_attempts

    def bind(self, rule: events_refs.IRuleRef, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(
            arn=self.topic.topic_arn,
            input=self.message,
            dead_letter_config=events.CfnRule.DeadLetterConfigProperty(arn=self.dead_letter_queue.queue_arn),
            retry_policy=events.CfnRule.RetryPolicyProperty(
                maximum_event_age_in_seconds=int(self.max_event_age.to_seconds()), maximum_retry_attempts=self.retry_attempts
            ),
        )


class Monitoring(Construct):
    """``alarm_topic`` (KMS-encrypted, TLS only), the ten ``alarms``, the ``recovery_rule`` with its
    ``recovery_dead_letter_queue``, and the ``dashboard``.

    Five alarms watch the pipeline (queue age, DLQ, processor errors, throttles, duration); three the event
    lake: rows the processor could not hand to Firehose, rows older than the lake's 30-minute freshness, and
    rows Firehose could not convert to Parquet (they land under ``errors/``); two the recovery rule: failed
    invocations and notices in its dead-letter queue."""

    def __init__(self, scope: Construct, construct_id: str, props: MonitoringProps) -> None:
        super().__init__(scope, construct_id)
        self.alarm_name_prefix = f"{props.name_prefix}-"
        self.alarm_arn_prefix = Stack.of(self).format_arn(
            service="cloudwatch", resource="alarm", resource_name=self.alarm_name_prefix, arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        # In this order: the alarms notify the topic, the recovery alarms watch the rule, the dashboard shows
        # them all; the template lists the resources in the order they are created.
        self.alarms: dict[str, cloudwatch.Alarm] = {}  # by name, without the prefix; _alarm adds each
        self.topic_key, self.alarm_topic = self._alarm_topic(props)
        self._pipeline_alarms(props)
        self._lake_alarms(props)
        self._compaction_alarms(props)
        self.recovery_rule = self._recovery_rule(props.name_prefix)
        self._recovery_alarms()
        self.dashboard = self._dashboard(props)

    def _alarm_topic(self, props: MonitoringProps) -> tuple[kms.Key, sns.Topic]:
        """The topic the alarms notify and its key. A topic policy replaces SNS's default one and CloudWatch cannot
        use the AWS-managed aws/sns key, so both grant CloudWatch explicitly, for this stack's alarms only
        (``aws:SourceAccount``, ``aws:SourceArn``: the module's docstring)."""
        alarms_of_this_stack = {
            "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
            "ArnLike": {"aws:SourceArn": self.alarm_arn_prefix + "*"},
        }
        key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the analytics alarm topic",
            enable_key_rotation=True,
            removal_policy=retain_if(props.retain_topic_key),
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=alarms_of_this_stack,
            )
        )
        topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=alarms_of_this_stack,
            )
        )
        if props.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(props.alarm_email))
        return key, topic

    def _pipeline_alarms(self, props: MonitoringProps) -> None:
        """Five alarms on the path every event takes (queue, dead-letter queue, processor): each one means events
        wait, fail or are about to, and the runbook has a section per alarm name."""
        processor_timeout_ms = props.processor_timeout_s * 1000
        self._alarm(
            "OldestMessageAge",
            props.events_queue.metric_approximate_age_of_oldest_message(period=ONE_MINUTE, statistic="Maximum"),
            threshold=props.oldest_message_age_threshold_s,
            description=f"Events wait more than {props.oldest_message_age_threshold_s} s in the queue: the processor is stuck or too slow",
        )
        self._alarm(
            "DeadLetters",
            props.dead_letter_queue.metric_approximate_number_of_messages_visible(period=ONE_MINUTE, statistic="Maximum"),
            threshold=0,
            description="Events failed 3 times and are in the dead-letter queue",
        )
        self._alarm(
            "ProcessorErrors",
            props.function.metric_errors(period=ONE_MINUTE, statistic="Sum"),
            threshold=0,
            description="The processor Lambda raised (whole batches are being retried)",
        )
        self._alarm(
            "ProcessorThrottles",
            props.function.metric_throttles(period=ONE_MINUTE, statistic="Sum"),
            threshold=0,
            description="The processor Lambda is throttled",
        )
        self._alarm(
            "ProcessorDuration",
            props.function.metric_duration(period=ONE_MINUTE, statistic="p99"),
            threshold=int(processor_timeout_ms * 0.8),
            description="The processor's p99 duration is above 80% of its timeout",
        )

    def _lake_alarms(self, props: MonitoringProps) -> None:
        """Three alarms on the event lake, whose failures the pipeline's alarms do not see (the table is written
        either way): rows the processor could not send, rows late to S3, rows Firehose could not convert."""
        self._alarm(
            "LakeDeliveryFailures",
            self._own(props, contract.LAKE_DELIVERY_FAILURES),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description="The processor could not send lake rows to Firehose (their records are retried through SQS)",
        )
        self._alarm(
            "LakeFreshness",
            self._firehose(props, "DeliveryToS3.DataFreshness", "Maximum"),
            threshold=LAKE_FRESHNESS_THRESHOLD_S,
            description=f"The oldest lake row in Firehose is older than {LAKE_FRESHNESS_THRESHOLD_S} s: deliveries to S3 are failing or late",
        )
        self._alarm(
            "LakeConversionFailures",
            self._firehose(props, "FailedConversion.Records", "Sum"),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description="Firehose could not convert lake rows to Parquet; they are under errors/ in the lake bucket",
        )

    def _compaction_alarms(self, props: MonitoringProps) -> None:
        """Two alarms on the lake's daily compaction: its query failed in Athena (the compaction workgroup
        publishes per-query metrics with the QueryState dimension), or the schedule could not start it (the
        schedule group's invocations dropped after their retries). A failed day is read raw by the reports."""
        if props.compaction_work_group is None or props.compaction_schedule_group is None:
            return
        self._alarm(
            "LakeCompactionFailed",
            cloudwatch.Metric(
                namespace="AWS/Athena",
                metric_name="TotalExecutionTime",
                dimensions_map={"WorkGroup": props.compaction_work_group, "QueryState": "FAILED", "QueryType": "DML"},
                statistic="SampleCount",
                period=Duration.hours(1),
            ),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description="The lake's compaction query failed in Athena (docs/runbook.md, Lake compaction); reports read that day raw",
        )
        self._alarm(
            "LakeCompactionNotStarted",
            cloudwatch.Metric(
                namespace="AWS/Scheduler",
                metric_name="InvocationDroppedCount",
                dimensions_map={"ScheduleGroup": props.compaction_schedule_group},
                statistic="Sum",
                period=Duration.hours(1),
            ),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description="EventBridge Scheduler could not start the lake's compaction query (its retries exhausted)",
        )

    def _recovery_alarms(self) -> None:
        """Two alarms on the recovery rule itself: they notify through CloudWatch's grant, not through the rule, so
        a broken recovery path (failed invocations, notices in its dead-letter queue) still mails."""
        self._alarm(
            "RecoveryFailedInvocations",
            self._recovery_failures(),
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            description="EventBridge could not publish an alarm-recovered notice to the alarm topic (it is retried, then dead-lettered)",
        )
        self._alarm(
            "RecoveryDeadLetters",
            self.recovery_dead_letter_queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum"),
            threshold=0,
            description="Alarm-recovered notices EventBridge gave up publishing are in the recovery dead-letter queue",
        )

    def _recovery_rule(self, name_prefix: str) -> events.Rule:
        """ALARM -> OK transitions of this stack's alarms, published to the topic as one readable line, through
        resource-based grants only (see the module's docstring), retried, then dead-lettered. The grants and the
        dead-letter queue come first: they name the rule by its ARN, built from its name (no reference, no cycle)."""
        self.recovery_rule_name = f"{name_prefix}-alarm-recovered"
        rule_arn = Stack.of(self).format_arn(service="events", resource="rule", resource_name=self.recovery_rule_name)
        self._grant_recovery_rule(rule_arn)
        self.recovery_dead_letter_queue = self._recovery_dead_letter_queue(name_prefix, rule_arn)
        rule = events.Rule(
            self,
            "AlarmRecoveredRule",
            rule_name=self.recovery_rule_name,
            description="An alarm of this stack went from ALARM back to OK",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                # By name prefix, as the topic's grants match: no reference to the alarms themselves.
                resources=events.Match.prefix(self.alarm_arn_prefix),
                detail={"state": {"value": ["OK"]}, "previousState": {"value": ["ALARM"]}},
            ),
        )
        rule.add_target(
            _TopicThroughResourcePolicies(
                self.alarm_topic,
                events.RuleTargetInput.from_text(
                    f"OK: {events.EventField.from_path('$.detail.alarmName')} recovered at {events.EventField.time}"
                    f" ({events.EventField.from_path('$.detail.state.reason')})"
                ),
                self.recovery_dead_letter_queue,
                RECOVERY_MAX_EVENT_AGE,
                RECOVERY_RETRY_ATTEMPTS,
            )
        )
        return rule

    def _grant_recovery_rule(self, rule_arn: str) -> None:
        """The target has no role, so the topic and its key grant EventBridge themselves: the topic for the recovery
        rule whenever EventBridge names a rule (``...IfExists``), the key for this stack's topics only (matched by
        the stack's name: naming the topic in the key policy would make the two depend on each other)."""
        stack = Stack.of(self)
        self.alarm_topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAlarmRecoveredRuleToPublish",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.alarm_topic.topic_arn],
                conditions={
                    "ArnEqualsIfExists": {"aws:SourceArn": rule_arn},
                    "StringEqualsIfExists": {"aws:SourceAccount": stack.account},
                },
            )
        )
        # This stack's topics, by the name CloudFormation gives them (the key cannot name the topic: a cycle).
        self.topic_arn_pattern = stack.format_arn(service="sns", resource=f"{stack.stack_name}-*", arn_format=ArnFormat.NO_RESOURCE_NAME)
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowEventBridgeToUseTheKeyForThisStacksTopics",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringLike": {"kms:EncryptionContext:aws:sns:topicArn": self.topic_arn_pattern}},
            )
        )

    def _recovery_dead_letter_queue(self, name_prefix: str, rule_arn: str) -> sqs.Queue:
        """Where EventBridge puts a notice it gave up publishing, so a failed recovery notice is kept (14 days) and
        alarmed rather than lost: a standard queue (EventBridge requires one) that only the recovery rule may send to."""
        queue = secure_queue(
            self,
            "RecoveryDeadLetterQueue",
            queue_name=f"{name_prefix}-alarm-recovered-dlq",
            retention_period=RECOVERY_DLQ_RETENTION,
            # It holds only "recovered" notices, which the mail log and the alarm history also have.
            removal_policy=RemovalPolicy.DESTROY,
        )
        queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAlarmRecoveredRuleToDeadLetter",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                conditions={"ArnEquals": {"aws:SourceArn": rule_arn}},
            )
        )
        return queue

    def _recovery_failures(self) -> cloudwatch.Metric:
        """The recovery rule's failed deliveries (EventBridge's FailedInvocations), over 5 minutes."""
        return cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions_map={"RuleName": self.recovery_rule_name},
            statistic="Sum",
            period=FIVE_MINUTES,
        )

    @staticmethod
    def _own(props: MonitoringProps, name: str, statistic: str = "Sum") -> cloudwatch.Metric:
        """One of the processor's own (EMF) metrics, over 5 minutes."""
        return cloudwatch.Metric(
            namespace=props.metrics_namespace,
            metric_name=name,
            dimensions_map={"service": props.service_name},
            statistic=statistic,
            period=FIVE_MINUTES,
        )

    @staticmethod
    def _firehose(props: MonitoringProps, name: str, statistic: str) -> cloudwatch.Metric:
        """A metric of the lake's delivery stream, over 5 minutes."""
        return cloudwatch.Metric(
            namespace="AWS/Firehose",
            metric_name=name,
            dimensions_map={"DeliveryStreamName": props.lake_stream_name},
            statistic=statistic,
            period=FIVE_MINUTES,
        )

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    ) -> cloudwatch.Alarm:
        """One alarm, set up as all ten are: named ``<name_prefix>-<name>`` (the prefix the recovery
        rule and the topic's grants match), one breaching period, no data = healthy, and an action on ALARM only."""
        alarm = cloudwatch.Alarm(
            self,
            f"{name}Alarm",
            alarm_name=self.alarm_name_prefix + name,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            comparison_operator=comparison,
            # No data means an idle pipeline (no messages, no invocations), which is healthy.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        # ALARM only: an OK action would also fire on a new alarm's INSUFFICIENT_DATA -> OK (see above).
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        self.alarms[name] = alarm
        return alarm

    def _dashboard(self, props: MonitoringProps) -> cloudwatch.Dashboard:
        """Every metric an alarm watches, and those that explain it (traffic, match types, cold starts, the
        lake's rows in and out), on one page: docs/runbook.md says it shows every metric the runbook names."""

        def own(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return self._own(props, name, statistic)

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
                left=[own(contract.MATCH_SCORE, "Average")],
                right=[own(contract.INGEST_LAG_MS, "p99")],
                width=8,
            ),
        )
        # Cold starts (the processor's own ColdStart metric, one per execution environment) and how often
        # an invocation pays for one: a rising share means Lambda keeps scaling out and in.
        cold_starts = own(contract.COLD_START)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Processor cold starts",
                left=[cold_starts],
                right=[
                    cloudwatch.MathExpression(
                        expression="100 * cold / IF(invocations > 0, invocations, 1)",
                        using_metrics={"cold": cold_starts, "invocations": fn.metric_invocations(period=Duration.minutes(5))},
                        label="cold starts per 100 invocations",
                        period=Duration.minutes(5),
                    )
                ],
                width=12,
            ),
        )
        # The event lake: rows the processor sent, what Firehose took in and delivered, what failed, and
        # how old the oldest undelivered row is (the alarm's line at 30 minutes).
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Event lake: rows in and out",
                left=[
                    own(contract.LAKE_ROWS),
                    self._firehose(props, "IncomingRecords", "Sum"),
                    self._firehose(props, "DeliveryToS3.Records", "Sum"),
                ],
                right=[own(contract.LAKE_DELIVERY_FAILURES), self._firehose(props, "FailedConversion.Records", "Sum")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Event lake: freshness (s)",
                left=[self._firehose(props, "DeliveryToS3.DataFreshness", "Maximum")],
                left_annotations=[cloudwatch.HorizontalAnnotation(value=LAKE_FRESHNESS_THRESHOLD_S, label="alarm")],
                width=12,
            ),
        )
        # The recovery rule's own health: notices it could not publish, and those it gave up on.
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Alarm recoveries not delivered",
                left=[self._recovery_failures()],
                right=[self.recovery_dead_letter_queue.metric_approximate_number_of_messages_visible(statistic="Maximum")],
                width=24,
            ),
        )
        return dashboard
