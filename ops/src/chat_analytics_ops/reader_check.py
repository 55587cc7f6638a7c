"""``check``'s **report reader** row: the calls ``report --engine athena`` makes, made with the permissions of
the stack's ``ReportReaderPolicyArn`` policy and nothing else.

Only where the endpoint allows it: against a local stack (``--endpoint-url``, moto with IAM enforced) the check
creates a temporary IAM user (``chat-analytics-check-reader-<random>``), attaches only that policy, gives it an
access key and, with a new session on the same endpoint (the same timeouts, ``timeouts.CLIENT_CONFIG``), makes
the report's calls: Athena's GetWorkGroup and StartQueryExecution (the report's SQL for today, in the stack's
workgroup, as ``lake.AthenaEngine`` starts it), GetQueryExecution (and GetQueryResults once it succeeded);
Glue's GetDatabase and GetTable; S3's GetBucketLocation, ListBucket (``requests/``), GetObject of one lake
object if there is one, and PutObject of a small marker under ``athena-results/`` (Athena writes a query's
results with the caller's permissions; the marker expires with the results, by the bucket's lifecycle). The
user, its key and the attachment are deleted afterwards, whatever happened.

On AWS the row is SKIP with a hint: creating IAM users in a real account from a health check would be
intrusive; running ``report --engine athena`` as a principal holding the policy proves the same.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chat_analytics_ops import lake
from chat_analytics_ops.contract import REPORT_READER_POLICY_ARN
from chat_analytics_ops.errors import UNREACHABLE_ERRORS, OpsError, describe, error_code
from chat_analytics_ops.outputs import ATHENA_WORK_GROUP_NAME, LAKE_BUCKET_NAME, LAKE_DATABASE_NAME, LAKE_TABLE_NAME, AwsContext
from chat_analytics_ops.render import plural
from chat_analytics_ops.report_model import today_utc
from chat_analytics_ops.timeouts import CLIENT_CONFIG

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"
USER_PREFIX = "chat-analytics-check-reader-"
AWS_HINT = f"run `report --engine athena` as a principal holding {REPORT_READER_POLICY_ARN}"
RESULTS_PREFIX = "athena-results/"
MARKER_KEY = f"{RESULTS_PREFIX}chat-analytics-check/reader-{{token}}.txt"
REPORT_TOP = 10  # the report's default --top
QUERY_LOOKS = 10  # GetQueryExecution calls before the query is stopped (a local endpoint answers at once)
QUERY_PAUSE_S = 0.2

T = TypeVar("T")
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"})
ALLOWED, DENIED, NOT_TRIED = "allowed", "denied", "not tried"
QUERY_ACCESS = "the query's own reads and writes"  # what Athena does as the caller once the query runs


def pause(seconds: float) -> None:
    """The wait between two looks at the query; tests replace it."""
    time.sleep(seconds)


@dataclass(frozen=True)
class Call:
    """One call made as the reader: the IAM action it needs, on which resource, and what came of it."""

    action: str
    resource: str
    outcome: str
    note: str = ""


def is_access_denied(error: ClientError) -> bool:
    """Whether ``error`` is IAM refusing the call. AWS answers ``AccessDenied``/``AccessDeniedException``; moto's
    JSON services (Athena, Glue) answer HTTP 403 with an XML body, which botocore reads as the code ``403``."""
    code = error_code(error)
    if code in DENIED_CODES:
        return True
    message = str(error.response.get("Error", {}).get("Message", ""))
    return code == "403" and ("AccessDenied" in message or "not authorized" in message)


def report_query(day: date) -> tuple[str, list[str]]:
    """The SQL and ``ExecutionParameters`` of ``report --engine athena`` for the one ``day`` (``lake.lake_report``)."""
    text = day.isoformat()
    first_dt, last_dt = lake.partition_range([text], today=day)
    parameters: list[str | int] = [first_dt, last_dt, lake.day_number(text), lake.day_number(text), REPORT_TOP]
    return lake.report_sql(), [lake.athena_literal(value) for value in parameters]


def account_of(policy_arn: str) -> tuple[str, str]:
    """The (partition, account) of an IAM policy ARN ``arn:<partition>:iam::<account>:policy/<name>``."""
    parts = policy_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "iam" or not parts[4]:
        raise OpsError(f"{REPORT_READER_POLICY_ARN} {policy_arn!r} is not an IAM policy ARN")
    return parts[1], parts[4]


def judge_calls(calls: list[Call], policy_name: str) -> tuple[str, str]:
    """OK when every call was allowed; FAIL naming each action the policy lacks, and on what."""
    denied = [call for call in calls if call.outcome == DENIED]
    allowed = [call for call in calls if call.outcome == ALLOWED]
    made = [call for call in calls if call.outcome != NOT_TRIED]
    if denied:
        lacks = "; ".join(f"{call.action} on {call.resource}" + (f" ({call.note})" if call.note else "") for call in denied)
        return FAIL, f"{REPORT_READER_POLICY_ARN} ({policy_name}) lacks {lacks} ({len(allowed)} of {plural(len(made), 'call')} allowed)"
    if not made:
        return FAIL, "no call was made as the reader"
    notes = [
        f"{call.action} {call.outcome}: {call.note}" if call.outcome == NOT_TRIED else f"{call.action}: {call.note}"
        for call in calls
        if call.note
    ]
    return OK, (
        f"{len(allowed)} of {plural(len(made), 'call')} of `report --engine athena` allowed with only {policy_name} attached"
        + (f" ({'; '.join(notes)})" if notes else "")
    )


class _Reader:
    """Makes each call as the reader and records it."""

    def __init__(self, session: boto3.session.Session, endpoint_url: str) -> None:
        self.session, self.endpoint_url = session, endpoint_url
        self.calls: list[Call] = []
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url, config=CLIENT_CONFIG)
        return self._clients[service]

    def call(self, action: str, resource: str, run: Callable[[], T]) -> T | None:
        """``run()``'s answer, or None when IAM refused it (recorded); any other error is raised."""
        try:
            answer = run()
        except ClientError as error:
            if is_access_denied(error):
                self.calls.append(Call(action, resource, DENIED))
                return None
            raise
        self.calls.append(Call(action, resource, ALLOWED))
        return answer

    def note(self, text: str) -> None:
        last = self.calls[-1]
        self.calls[-1] = Call(last.action, last.resource, last.outcome, text)


def judge_report_reader(ctx: AwsContext) -> tuple[str, str]:
    """The ``report reader`` row (the module's docstring)."""
    if not ctx.endpoint_url:
        return SKIP, AWS_HINT + " (check creates no IAM user in an AWS account)"
    outputs = ctx.stack_outputs()
    needed = (REPORT_READER_POLICY_ARN, ATHENA_WORK_GROUP_NAME, LAKE_DATABASE_NAME, LAKE_TABLE_NAME, LAKE_BUCKET_NAME)
    missing = [name for name in needed if name not in outputs]
    if missing:
        return SKIP, f"the stack has no {', '.join(missing)} output (deployed before the lake existed?)"
    policy_arn = outputs[REPORT_READER_POLICY_ARN]
    partition, account = account_of(policy_arn)
    iam = ctx.client("iam")
    user = f"{USER_PREFIX}{uuid.uuid4().hex[:12]}"
    created: list[tuple[str, Callable[[], Any]]] = []
    failure: BaseException | None = None
    try:
        iam.create_user(UserName=user)
        created.append(("the user", lambda: iam.delete_user(UserName=user)))
        iam.attach_user_policy(UserName=user, PolicyArn=policy_arn)
        created.append(("the policy's attachment", lambda: iam.detach_user_policy(UserName=user, PolicyArn=policy_arn)))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        created.append(("the access key", lambda: iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])))
        session = boto3.session.Session(
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"], region_name=ctx.region_name
        )
        reader = _Reader(session, ctx.endpoint_url)
        _report_calls(reader, outputs, partition, account, ctx.region_name)
        status, detail = judge_calls(reader.calls, policy_arn.rsplit("/", 1)[-1])
    except BaseException as raised:
        failure = raised
        raise
    finally:
        # Removed whatever happened, except when the endpoint stopped answering (each removal would wait for it again).
        left = "" if isinstance(failure, UNREACHABLE_ERRORS) else _remove(created)
        if left and isinstance(failure, Exception):
            raise OpsError(f"{_reason(failure)}; the temporary IAM user {user} was not entirely removed: {left}") from failure
    if left:
        return FAIL, f"{detail}; the temporary IAM user {user} was not entirely removed: {left}"
    return status, detail


def _reason(error: BaseException) -> str:
    return describe(error) if isinstance(error, ClientError | BotoCoreError) else str(error) or type(error).__name__


def _remove(created: list[tuple[str, Callable[[], Any]]]) -> str:
    """Undo ``created`` in reverse; what could not be undone, named (never dropped silently)."""
    problems = []
    for what, undo in reversed(created):
        try:
            undo()
        except (ClientError, BotoCoreError) as error:
            problems.append(f"{what}: {describe(error)}")
    return "; ".join(problems)


def _report_calls(reader: _Reader, outputs: dict[str, str], partition: str, account: str, region: str) -> None:
    work_group, database, table, bucket = (
        outputs[ATHENA_WORK_GROUP_NAME],
        outputs[LAKE_DATABASE_NAME],
        outputs[LAKE_TABLE_NAME],
        outputs[LAKE_BUCKET_NAME],
    )
    athena, glue, s3 = reader.client("athena"), reader.client("glue"), reader.client("s3")
    group_arn = f"arn:{partition}:athena:{region}:{account}:workgroup/{work_group}"
    glue_arn = f"arn:{partition}:glue:{region}:{account}"
    bucket_arn = f"arn:{partition}:s3:::{bucket}"

    reader.call("athena:GetWorkGroup", group_arn, lambda: athena.get_work_group(WorkGroup=work_group))
    sql, parameters = report_query(today_utc())
    started = reader.call(
        "athena:StartQueryExecution",
        group_arn,
        lambda: athena.start_query_execution(
            QueryString=sql, QueryExecutionContext={"Database": database}, WorkGroup=work_group, ExecutionParameters=parameters
        ),
    )
    if started is not None:
        _follow_query(reader, athena, group_arn, started["QueryExecutionId"])

    reader.call("glue:GetDatabase", f"{glue_arn}:database/{database}", lambda: glue.get_database(Name=database))
    reader.call("glue:GetTable", f"{glue_arn}:table/{database}/{table}", lambda: glue.get_table(DatabaseName=database, Name=table))

    reader.call("s3:GetBucketLocation", bucket_arn, lambda: s3.get_bucket_location(Bucket=bucket))
    listed = reader.call("s3:ListBucket", bucket_arn, lambda: s3.list_objects_v2(Bucket=bucket, Prefix=lake.PREFIX, MaxKeys=1))
    keys = [item["Key"] for item in (listed or {}).get("Contents", [])]
    if keys:
        reader.call("s3:GetObject", f"{bucket_arn}/{keys[0]}", lambda: s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read(1))
    elif listed is not None:
        reader.calls.append(Call("s3:GetObject", f"{bucket_arn}/{lake.PREFIX}*", NOT_TRIED, "no lake object yet"))
    marker = MARKER_KEY.format(token=uuid.uuid4().hex[:12])
    reader.call(
        "s3:PutObject",
        f"{bucket_arn}/{marker}",
        lambda: s3.put_object(Bucket=bucket, Key=marker, Body=b"chat-analytics check: the report reader may write results\n"),
    )


def _follow_query(reader: _Reader, athena: Any, group_arn: str, query_id: str) -> None:
    """GetQueryExecution until the query ends (stopped after ``QUERY_LOOKS`` looks), then GetQueryResults if it succeeded."""
    state = ""
    for look in range(QUERY_LOOKS):
        if look:
            pause(QUERY_PAUSE_S)
        answer = reader.call("athena:GetQueryExecution", group_arn, lambda: athena.get_query_execution(QueryExecutionId=query_id))
        if answer is None:
            return
        if look:
            reader.calls.pop()  # one GetQueryExecution counts once, however often it is repeated
        status = answer["QueryExecution"]["Status"]
        state = status["State"]
        if state in lake.FINAL_STATES:
            if state != "SUCCEEDED":
                reason = " ".join(str(status.get("StateChangeReason") or "no reason given").split())
                if any(word in reason.lower() for word in ("access denied", "not authorized", "permission")):
                    # Athena reads the catalog and the rows and writes the results as the caller: a refusal ends the query
                    reader.calls.append(Call(QUERY_ACCESS, group_arn, DENIED, f"query {query_id} {state.lower()}: {reason}"))
                else:
                    reader.note(f"query {query_id} {state.lower()}: {reason}")
            break
    else:
        reader.call("athena:StopQueryExecution", group_arn, lambda: athena.stop_query_execution(QueryExecutionId=query_id))
        reader.note(f"query {query_id} still {state.lower()} after {QUERY_LOOKS} looks: stopped")
        return
    if state == "SUCCEEDED":
        reader.call("athena:GetQueryResults", group_arn, lambda: athena.get_query_results(QueryExecutionId=query_id, MaxResults=1))
