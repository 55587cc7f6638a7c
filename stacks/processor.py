"""The processor Lambda: reads FIFO batches from the events queue and merges them into the table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.cdk_helpers import log_group

# The asset is lambda_src/, which holds the package chat_processor/ and nothing else (a test holds it so).
ASSET_DIR = Path(__file__).resolve().parent.parent / "lambda_src"
HANDLER = "chat_processor.handler.handler"
BATCH_SIZE = 10
SERVICE_NAME = "chat-analytics-processor"
ARCHITECTURE = lambda_.Architecture.ARM_64


def powertools_layer_parameter(python_runtime: str, release: str = "latest") -> str:
    """The public SSM parameter pointing at a Powertools release's layer (``latest``: the newest) for a runtime.

    Published in the commercial regions that have the layer; not in aws-cn or GovCloud, where the
    ``powertoolsLayer`` context key takes the layer's ARN instead.
    """
    return f"/aws/service/powertools/python/{ARCHITECTURE.name}/{python_runtime}/{release}"


@dataclass(frozen=True)
class ProcessorProps:
    events_queue: sqs.IQueue
    events_table: dynamodb.ITable
    python_runtime: str
    timeout_s: int
    memory_mb: int
    max_concurrency: int
    log_retention_days: int
    table_retention_days: int  # the TTL of the table's items (EVENT_RETENTION_DAYS)
    metrics_namespace: str
    retain_logs: bool
    # The event lake's delivery stream: the processor sends each stored request's state there (PutRecordBatch).
    lake_stream_name: str
    lake_stream_arn: str
    # The rejected events' stream (table ``rejected``): the processor sends a row per rejected record there.
    rejected_stream_name: str = ""
    rejected_stream_arn: str = ""
    powertools_layer: str | None = None  # a layer version ARN, a Powertools release (3.x.y), or None for the latest
    # Lambda's own records (settings ``processorSystemLogLevel``): at WARN, no START and REPORT per invocation.
    system_log_level: str = "INFO"
    # The processor's level (``processorLogLevel``, POWERTOOLS_LOG_LEVEL): at WARNING, no "Batch processed" line.
    # Lambda's application log filter (ApplicationLogLevel) is never set: it counts a line without a "level" key,
    # as every metrics (EMF) document is, as INFO, so at WARN it would drop the metrics; and Powertools follows
    # it (AWS_LAMBDA_LOG_LEVEL) before POWERTOOLS_LOG_LEVEL.
    log_level: str = "INFO"


class Processor(Construct):
    """``function`` with its own log group, a role limited to its queue, table, log group and the lake's
    delivery stream, and an SQS event source that reports partial batch failures."""

    def __init__(self, scope: Construct, construct_id: str, props: ProcessorProps) -> None:
        super().__init__(scope, construct_id)
        self.log_group = log_group(self, "LogGroup", retention_days=props.log_retention_days, retain=props.retain_logs)
        # A role of our own instead of AWSLambdaBasicExecutionRole: that managed policy lets the
        # function write to any log group in the account.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Processor: read the events queue, update the events table, send lake rows, write its own logs",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        # UpdateItem is the only write the processor makes: it merges events into one item.
        self.role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:UpdateItem"], resources=[props.events_table.table_arn]))
        # The lake's rows go out in batches: PutRecordBatch on the lake's delivery streams (requests, rejected), nothing else.
        streams = [props.lake_stream_arn] + ([props.rejected_stream_arn] if props.rejected_stream_arn else [])
        self.role.add_to_policy(iam.PolicyStatement(actions=["firehose:PutRecordBatch"], resources=streams))

        if props.powertools_layer and props.powertools_layer.startswith("arn:"):
            layer_arn = props.powertools_layer
        else:
            release = props.powertools_layer or "latest"
            layer_arn = ssm.StringParameter.value_for_string_parameter(self, powertools_layer_parameter(props.python_runtime, release))
        self.function = lambda_.Function(
            self,
            "Function",
            description="Validates analytics events from the events queue and merges them into the events table",
            runtime=lambda_.Runtime(props.python_runtime, lambda_.RuntimeFamily.PYTHON),
            architecture=ARCHITECTURE,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(ASSET_DIR), exclude=["__pycache__", "*.pyc"]),
            layers=[lambda_.LayerVersion.from_layer_version_arn(self, "PowertoolsLayer", layer_arn)],
            timeout=Duration.seconds(props.timeout_s),
            memory_size=props.memory_mb,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            system_log_level_v2=lambda_.SystemLogLevel[props.system_log_level],
            environment={
                "TABLE_NAME": props.events_table.table_name,
                "EVENT_RETENTION_DAYS": str(props.table_retention_days),
                "LAKE_STREAM_NAME": props.lake_stream_name,
                **({"REJECTED_STREAM_NAME": props.rejected_stream_name} if props.rejected_stream_name else {}),
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": props.metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": props.log_level,
            },
        )
        self.event_source = event_sources.SqsEventSource(
            props.events_queue,
            batch_size=BATCH_SIZE,
            report_batch_item_failures=True,
            max_concurrency=props.max_concurrency,
        )
        self.function.add_event_source(self.event_source)
