"""The pipeline's own promises, judged from what the stack's APIs report: which queue the producer secret names,
"3 receives, then the DLQ", the processor's event source, and, when the canary is not stored, the likeliest cause.

Each ``judge_*`` function returns ``(status, detail)`` for one row of ``chat-analytics check``; the reads are
plain API calls so that a broken version of each part (another DLQ, ``maxReceiveCount`` 10, a disabled
mapping, a processor pointed at another table) fails its own row with the part and the cause named.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from chat_analytics_ops.dlq import QueueState, queue_state
from chat_analytics_ops.errors import error_code
from chat_analytics_ops.render import plural

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"

# "3 receives, then the DLQ": the events queue's redrive policy as the stack sets it (stacks/queues.py's
# MAX_RECEIVE_COUNT; a test holds the two equal).
MAX_RECEIVE_COUNT = 3
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"

# The hosts AWS serves SQS queue URLs on, each naming its region: the regional endpoint, its FIPS variant, the
# legacy <region>.queue.amazonaws.com form (https://docs.aws.amazon.com/general/latest/gr/sqs-service.html),
# the China partition, and interface VPC endpoints (vpce-...sqs.<region>.vpce.amazonaws.com).
_AWS_SQS_HOST = re.compile(
    r"^(?:sqs(?:-fips)?\.(?P<r1>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"|(?P<r2>[a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?"
    r"|queue\.amazonaws\.com"
    r"|vpce-[a-z0-9-]+\.sqs\.(?P<r3>[a-z0-9-]+)\.vpce\.amazonaws\.com(?:\.cn)?)$"
)


@dataclass(frozen=True)
class QueueAddress:
    """What identifies a queue in a URL (account and name) and where the URL sends (scheme, host, port)."""

    origin: str
    host: str
    account: str
    name: str

    @property
    def aws_region(self) -> str | None:
        """The region an AWS SQS host names; ``us-east-1`` for the legacy ``queue.amazonaws.com``; None
        for any other host (a local endpoint)."""
        match = _AWS_SQS_HOST.match(self.host)
        if not match:
            return None
        return match.group("r1") or match.group("r2") or match.group("r3") or "us-east-1"


def queue_address(url: str) -> QueueAddress | None:
    """``https://host[:port]/<account>/<name>`` parsed, or None when the URL is not a queue URL."""
    parts = urlsplit(url)
    path = [segment for segment in parts.path.split("/") if segment]
    if parts.scheme not in ("http", "https") or not parts.hostname or len(path) != 2:
        return None
    return QueueAddress(f"{parts.scheme}://{parts.netloc}", parts.hostname.lower(), path[0], path[1])


def judge_secret_queue(secret_url: str, secret_region: str, stack_url: str, stack_region: str, endpoint_url: str | None) -> tuple[str, str]:
    """Whether the producer secret's queue URL and region send to the stack's events queue.

    A queue is the same when its account and name are; the host may differ where the URL is the same queue
    on another way in: any AWS SQS host of the stack's region, or the endpoint the check itself talks to
    (a local stack's CloudFormation reports AWS's host, while producers must send to the local endpoint).
    """
    secret, stack = queue_address(secret_url), queue_address(stack_url)
    if secret is None:
        return FAIL, f"its AWS_SQS_URL {secret_url!r} is not a queue URL (https://host/<account>/<queue>): producers send nowhere"
    if stack is None:
        return FAIL, f"the stack's EventsQueueUrl {stack_url!r} is not a queue URL"
    if (secret.account, secret.name) != (stack.account, stack.name):
        return FAIL, (
            f"its AWS_SQS_URL names queue {secret.account}/{secret.name}, not the stack's {stack.account}/{stack.name}:"
            " producers send elsewhere (rewrite the secret, or redeploy)"
        )
    if secret_region != stack_region:
        return FAIL, f"its AWS_REGION is {secret_region}, the stack's is {stack_region}: signatures would be refused"
    local = queue_address(f"{endpoint_url.rstrip('/')}/x/y") if endpoint_url else None
    if local is not None and secret.origin == local.origin:
        return OK, f"queue {secret.name} on the endpoint {local.origin}"
    region = secret.aws_region
    if region is None:
        where = f"the check's endpoint {local.origin}" if local else "an AWS SQS endpoint"
        return FAIL, f"its AWS_SQS_URL sends to {secret.origin}, which is neither {where} nor the stack's queue host {stack.origin}"
    if region != stack_region:
        return FAIL, f"its AWS_SQS_URL's host {secret.host} is in {region}, the stack is in {stack_region}"
    return OK, f"queue {secret.name} at {secret.host}"


def _queue_attributes(sqs: Any, url: str, *names: str) -> dict[str, str]:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(names))["Attributes"]


def judge_redrive(sqs: Any, events_url: str, dlq_url: str, max_receive_count: int = MAX_RECEIVE_COUNT) -> tuple[str, str]:
    """The events queue dead-letters into the stack's DLQ after exactly ``max_receive_count`` receives, and the
    DLQ accepts it (its redrive allow policy, when it has one, names the events queue)."""
    events = _queue_attributes(sqs, events_url, "QueueArn", "RedrivePolicy")
    dlq = _queue_attributes(sqs, dlq_url, "All")  # RedriveAllowPolicy by name is refused by some SQS emulators
    events_name, dlq_name = events_url.rsplit("/", 1)[-1], dlq_url.rsplit("/", 1)[-1]
    text = events.get("RedrivePolicy")
    if not text:
        return FAIL, f"{events_name} has no redrive policy: a poison event is retried until it expires, never reaches {dlq_name}"
    try:
        policy = json.loads(text)
        target, count = policy["deadLetterTargetArn"], int(policy["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        return FAIL, f"{events_name}'s redrive policy is not one SQS would apply: {text[:120]}"
    problems = []
    if target != dlq.get("QueueArn"):
        problems.append(f"dead-letters into {target.rsplit(':', 1)[-1]}, not the stack's {dlq_name}")
    if count != max_receive_count:
        problems.append(f"maxReceiveCount is {count}, not {max_receive_count}")
    allow = dlq.get("RedriveAllowPolicy")
    if allow and target == dlq.get("QueueArn"):
        try:
            allowed = json.loads(allow)
        except ValueError:
            allowed = {}
        permission = allowed.get("redrivePermission", "allowAll")
        if permission == "denyAll" or (permission == "byQueue" and events.get("QueueArn") not in allowed.get("sourceQueueArns", [])):
            problems.append(f"{dlq_name}'s redrive allow policy ({permission}) does not let {events_name} use it")
    if dlq.get("FifoQueue") != "true":
        problems.append(f"{dlq_name} is not FIFO (a FIFO queue's dead-letter queue must be)")
    if problems:
        return FAIL, f"{events_name}: " + "; ".join(problems)
    return OK, f"{events_name} -> {dlq_name} after {count} receives"


def judge_event_source(lambda_client: Any, sqs: Any, function_name: str, events_url: str, table_name: str | None) -> tuple[str, str]:
    """The processor consumes the events queue: one enabled mapping from that queue, reporting partial batch
    failures (else one bad event fails its whole batch), a visibility timeout that covers the function's timeout
    (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html), and the function writes the
    stack's table."""
    events = _queue_attributes(sqs, events_url, "QueueArn", "VisibilityTimeout")
    events_arn, events_name = events.get("QueueArn", ""), events_url.rsplit("/", 1)[-1]
    try:
        function = lambda_client.get_function_configuration(FunctionName=function_name)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return FAIL, f"no processor function {function_name}: nothing consumes {events_name}"
        raise
    mappings = lambda_client.list_event_source_mappings(FunctionName=function_name).get("EventSourceMappings", [])
    from_queue = [mapping for mapping in mappings if mapping.get("EventSourceArn") == events_arn]
    if not from_queue:
        sources = ", ".join(str(mapping.get("EventSourceArn", "?")).rsplit(":", 1)[-1] for mapping in mappings) or "none"
        return FAIL, f"{function_name} has no event source mapping from {events_name} (its sources: {sources}): nothing consumes the queue"
    mapping = from_queue[0]
    problems = []
    state = mapping.get("State", "?")
    if state not in ("Enabled", "Enabling", "Updating"):
        problems.append(
            f"its event source mapping is {state}: the consumer is stopped (enable it: aws lambda update-event-source-mapping --enabled)"
        )
    if REPORT_BATCH_ITEM_FAILURES not in (mapping.get("FunctionResponseTypes") or []):
        problems.append("the mapping does not report batch item failures: one bad event would retry its whole batch")
    timeout = int(function.get("Timeout", 0))
    visibility = int(events.get("VisibilityTimeout", "0"))
    if visibility < timeout:
        problems.append(f"{events_name}'s visibility timeout {visibility} s is shorter than the function's timeout {timeout} s")
    variables = function.get("Environment", {}).get("Variables", {})
    if table_name and variables.get("TABLE_NAME") not in (None, table_name):
        problems.append(f"the function writes table {variables.get('TABLE_NAME')}, not the stack's {table_name}")
    if problems:
        return FAIL, "; ".join(problems)
    return (
        OK,
        f"{function_name} consumes {events_name} (mapping {state}, partial batch failures, visibility {visibility} s >= timeout {timeout} s)",
    )


@dataclass(frozen=True)
class QueueDepths:
    """Both queues' depths at one moment, for the canary's diagnosis."""

    events: QueueState | None
    dlq: QueueState | None

    @property
    def dlq_total(self) -> int:
        return 0 if self.dlq is None else self.dlq.visible + self.dlq.in_flight


def depths(sqs: Any, events_url: str | None, dlq_url: str | None) -> QueueDepths:
    """Best effort: a queue that cannot be read counts as unknown (its own row says why)."""

    def state(url: str | None) -> QueueState | None:
        if not url:
            return None
        try:
            return queue_state(sqs, url)
        except ClientError:
            return None

    return QueueDepths(state(events_url), state(dlq_url))


def canary_diagnosis(before: QueueDepths, after: QueueDepths, function_name: str | None) -> str:
    """The likeliest cause of a canary that was sent and not stored, from the queues' depths before the send
    and after the wait; the hint names the part to look at."""
    logs = f"/aws/lambda/{function_name}" if function_name else "the processor's log group"
    grown = after.dlq_total - before.dlq_total
    if grown > 0:
        return (
            f"the DLQ grew by {grown} while waiting: the processor fails on the canary; look at its log ({logs}),"
            " its permissions on the table and the stream, and `chat-analytics dlq inspect`"
        )
    events = after.events
    if events is not None and events.visible > 0:
        return (
            f"{plural(events.visible, 'message')} wait{'s' if events.visible == 1 else ''} unconsumed in the events queue: the consumer is stopped"
            " (is the processor's event source mapping enabled? is it throttled to 0?)"
        )
    if events is not None and events.in_flight > 0:
        return (
            f"{plural(events.in_flight, 'message')} in flight: the processor receives them but has not finished; it is slow or failing"
            f" (see {logs}; after {MAX_RECEIVE_COUNT} receives they reach the DLQ)"
        )
    return f"both queues hold nothing of it: the processor took the events without storing them (its TABLE_NAME? see {logs})"
