"""Where the stack's resources are: CloudFormation outputs by stack name, or explicit overrides.

The CLI never guesses queue or table names: it reads the outputs the stack publishes
(``docs/contracts.md``), so the same command works against any stage, against AWS and against the
local moto stack. Outputs are read once, and only when a command needs a value that was not given
on the command line, so ``--queue-url`` and friends also work without CloudFormation permissions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from chat_analytics_ops.contract import (
    ALARM_TOPIC_ARN,
    ATHENA_WORK_GROUP_NAME,
    DEAD_LETTER_QUEUE_URL,
    EVENTS_QUEUE_URL,
    EVENTS_TABLE_NAME,
    LAKE_BUCKET_NAME,
    LAKE_DATABASE_NAME,
    LAKE_STREAM_NAME,
    LAKE_TABLE_NAME,
    PROCESSOR_FUNCTION_NAME,
    PRODUCER_SECRET_NAME,
    RECOVERY_DEAD_LETTER_QUEUE_URL,
    RECOVERY_RULE_NAME,
)
from chat_analytics_ops.errors import OpsError, error_code
from chat_analytics_ops.timeouts import CLIENT_CONFIG

DEFAULT_STAGE = "dev"
LOCAL_DEFAULT_REGION = "us-east-1"  # the local moto stack's region

# The contract's output names (contract.py, generated from schema/contract.py), and the CLI override that stands in for each.
__all__ = [  # the output names other modules read from here, with the context that resolves them
    "ALARM_TOPIC_ARN",
    "ATHENA_WORK_GROUP_NAME",
    "DEAD_LETTER_QUEUE_URL",
    "EVENTS_QUEUE_URL",
    "EVENTS_TABLE_NAME",
    "LAKE_BUCKET_NAME",
    "LAKE_DATABASE_NAME",
    "LAKE_STREAM_NAME",
    "LAKE_TABLE_NAME",
    "OVERRIDE_OPTIONS",
    "PROCESSOR_FUNCTION_NAME",
    "PRODUCER_SECRET_NAME",
    "RECOVERY_DEAD_LETTER_QUEUE_URL",
    "RECOVERY_RULE_NAME",
    "AwsContext",
    "stack_name_for",
]
OVERRIDE_OPTIONS = {
    EVENTS_QUEUE_URL: "--queue-url",
    DEAD_LETTER_QUEUE_URL: "--dlq-url",
    EVENTS_TABLE_NAME: "--table-name",
    PRODUCER_SECRET_NAME: "--secret-name",
}


def stack_name_for(stage: str) -> str:
    """``ChatAnalytics-<stage>``, the name the CDK app gives each stage's stack."""
    return f"ChatAnalytics-{stage}"


@dataclass
class AwsContext:
    """The session, endpoint and stack a command works against; builds clients and resolves outputs."""

    stack_name: str = stack_name_for(DEFAULT_STAGE)
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    _session: boto3.session.Session | None = field(default=None, init=False, repr=False)
    _outputs: dict[str, str] | None = field(default=None, init=False, repr=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def session(self) -> boto3.session.Session:
        if self._session is None:
            region = self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            # A named profile (``--profile``) gives the credentials and, unless --region or AWS_REGION says
            # otherwise, the region; an unknown name raises ProfileNotFound (one line, errors.py).
            session = boto3.session.Session(profile_name=self.profile, region_name=region)
            if session.region_name is None and self.endpoint_url:
                session = boto3.session.Session(profile_name=self.profile, region_name=LOCAL_DEFAULT_REGION)
            self._session = session
        return self._session

    def client(self, service: str) -> Any:
        """One client per service for the whole command (connections are reused); every call is bounded by
        ``CLIENT_CONFIG``'s timeouts and attempts (``timeouts.py``)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG)
        return self._clients[service]

    @property
    def region_name(self) -> str:
        return self.session.region_name or "(no region)"

    def output(self, name: str) -> str:
        """The value of stack output ``name``, unless its override option was given."""
        if self.overrides.get(name):
            return self.overrides[name]
        outputs = self.stack_outputs()
        if name not in outputs:
            option = OVERRIDE_OPTIONS.get(name)
            hint = f" (or pass {option})" if option else ""
            raise OpsError(f"stack {self.stack_name} has no output {name}{hint}; it has: {', '.join(sorted(outputs)) or 'none'}")
        return outputs[name]

    def stack_outputs(self) -> dict[str, str]:
        """All outputs of the stack, read with one DescribeStacks call and cached."""
        if self._outputs is None:
            self._outputs = describe_outputs(self.client("cloudformation"), self.stack_name, self.region_name)
        return self._outputs


def describe_outputs(cloudformation: Any, stack_name: str, region: str) -> dict[str, str]:
    """``{OutputKey: OutputValue}`` of a stack; a missing stack is one clear error, not a ValidationError."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", ""))
        if error_code(error) == "ValidationError" and "does not exist" in message:
            raise OpsError(f"no such stack: {stack_name} in {region} (deploy it, or pass --stack-name/--stage/--region)") from None
        raise
    if not stacks:
        raise OpsError(f"no such stack: {stack_name} in {region}")
    stack = stacks[0]
    status = str(stack.get("StackStatus", ""))
    if status.startswith("DELETE") or status in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"}:
        raise OpsError(f"stack {stack_name} is in state {status}: its resources are not usable")
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
