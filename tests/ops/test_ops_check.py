"""check: the deployed dev template in moto, the canary through AnalyticsLogger and the real processor,
the alarms, the topic policy and the notification test; and each way it fails."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time

import boto3
import pytest

from chat_analytics_ops import check
from chat_analytics_ops.check import FAIL, OK, SKIP, judge_topic_policy
from tests.ops.conftest import REGION, STACK_NAME, Cli, Processor, Stack

TOPIC = "arn:aws:sns:us-east-1:123456789012:ChatAnalytics-dev-AlarmTopic"
ALARMS = [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:ChatAnalytics-dev-{name}" for name in ("DeadLetters", "ProcessorErrors")]


@pytest.fixture
def processed(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Processor:
    """In-process moto only intercepts botocore, so the producer sends through a boto3 client here (the
    lean transport is exercised against a moto server in test_ops_server.py); while check waits for the
    item, the real processor takes one round of the queue, as the Lambda would meanwhile."""
    processor = Processor(stack)

    def one_round(seconds: float) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # the processor's EMF metrics are not the CLI's output
            processor.poll()

    monkeypatch.setattr(check, "PRODUCER_TRANSPORT", "botocore")
    monkeypatch.setattr(check, "pause", one_round)
    return processor


def statuses(output: str) -> dict[str, dict[str, str]]:
    return {row["name"]: row for row in json.loads(output)["checks"]}


def test_check_passes_on_the_deployed_stack_and_the_canary_is_left_out_of_report(stack: Stack, processed: Processor, cli: Cli) -> None:
    result = cli("check", "--json")
    assert result.code == 0, result.out + result.err
    rows = statuses(result.out)
    assert {name: row["status"] for name, row in rows.items()} == {
        "stack outputs": OK,
        "producer secret": OK,
        "canary sent": OK,
        "canary stored": OK,
        "dead-letter queue": OK,
        "redrive policy": OK,
        "event source": OK,
        "alarm actions": OK,
        "topic policy": OK,
        "recovery rule": OK,
        "recovery grants": OK,
        "recovery dead letters": OK,
        "event lake": OK,
        "lake compaction": OK,
        "report reader": SKIP,
        "notification test": SKIP,
    }
    # In-process moto has no endpoint: check creates no IAM user there, as on AWS, and says how to prove it.
    assert "run `report --engine athena` as a principal holding ReportReaderPolicyArn" in rows["report reader"]["detail"]
    assert "AnalyticsLogger" in rows["canary sent"]["detail"]
    assert "stops queries past 10 GB" in rows["event lake"]["detail"]
    assert "ChatAnalytics-dev-lake/ChatAnalytics-dev-lake-compaction enabled" in rows["lake compaction"]["detail"]
    assert stack.secret["AWS_SECRET_ACCESS_KEY"] not in result.out and stack.secret["AWS_ACCESS_KEY_ID"] not in result.out
    assert "responseLatencyMs 7 ms" in rows["canary stored"]["detail"]
    alarms = sum(1 for resource in stack.template["Resources"].values() if resource["Type"] == "AWS::CloudWatch::Alarm")
    assert f"{alarms} alarms notify" in rows["alarm actions"]["detail"]
    assert f"covering all {alarms} alarms" in rows["topic policy"]["detail"]
    assert "aws:SourceAccount and aws:SourceArn" in rows["topic policy"]["detail"]
    assert json.loads(result.out)["ok"] is True

    # The item the processor stored is a complete request marked as the check's canary ...
    [item] = stack.items()
    assert item["source"] == {"S": "chat-analytics-check"}
    assert item["requestId"]["S"].startswith("chat-analytics-check-")
    assert {"query", "matchType", "responseLatencyMs"} <= set(item)
    # ... and report (default range: the last 7 days, today included) leaves it out.
    reported = json.loads(cli("report", "--json").out)
    assert reported["requests"] == 0 and reported["queries"] == 0
    assert reported["canariesExcluded"] == 1
    text = cli("report").out
    assert "1 canary request of `chat-analytics check` left out" in text


def test_check_text_is_a_table(stack: Stack, processed: Processor, cli: Cli) -> None:
    result = cli("check")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"chat-analytics check {STACK_NAME} ({REGION})"
    row = next(line for line in lines if line.strip().startswith("canary stored"))
    assert row.split()[2] == "OK"
    assert lines[-1].startswith("OK: 14 passed, 0 failed, 2 skipped")


def test_canary_not_stored_fails_within_the_timeout(stack: Stack, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """No processor runs (a disabled event source): the item check looks every POLL_INTERVAL_S until
    --timeout runs out, then fails; it never waits longer than --timeout in all.

    Time is the check's own clock, advanced only by its ``pause`` hook: the test counts the waits and
    their lengths, not the wall clock (a busy machine changes neither)."""

    class Clock:
        """``check``'s view of ``time``: monotonic() moves only when check pauses."""

        def __init__(self) -> None:
            self.now = 1000.0

        def monotonic(self) -> float:
            return self.now

        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

    clock = Clock()
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        clock.now += seconds

    import re

    from botocore.client import BaseClient

    looks: list[str] = []
    make_api_call = BaseClient._make_api_call

    def counting(client: BaseClient, operation: str, params: dict) -> object:
        if operation == "GetItem":
            looks.append(params["Key"]["requestId"]["S"])
        return make_api_call(client, operation, params)

    monkeypatch.setattr(check, "PRODUCER_TRANSPORT", "botocore")
    monkeypatch.setattr(check, "time", clock)
    monkeypatch.setattr(check, "pause", pause)
    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    assert check.POLL_INTERVAL_S == 1.0  # "every second" (ops/README.md)
    result = cli("check", "--timeout", "3.5", "--json")
    assert result.code == 1
    rows = statuses(result.out)
    assert rows["canary sent"]["status"] == OK
    assert rows["canary stored"]["status"] == FAIL
    detail = rows["canary stored"]["detail"]
    assert "within 3.5 s (nothing stored)" in detail
    # the two canary events wait in the events queue: the consumer is stopped
    assert re.search(r"\b2 messages?\b.* in the events queue", detail) and "consumer is stopped" in detail
    assert rows["alarm actions"]["status"] == OK  # the other checks still ran
    # Looked at t = 0, 1, 2, 3 and 3.5: four waits, one poll interval each until the last, cut to what was left.
    assert pauses == [1.0, 1.0, 1.0, 0.5]
    assert sum(pauses) == 3.5
    assert len(looks) == 5 and len(set(looks)) == 1 and looks[0] in detail  # five polls of the canary's item, none after
    assert json.loads(result.out)["ok"] is False


def test_topic_policy_without_the_cloudwatch_grant_fails(stack: Stack, processed: Processor, cli: Cli) -> None:
    topic = stack.outputs["AlarmTopicArn"]
    sns = boto3.client("sns", region_name=REGION)
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Effect") == "Deny"]  # only the TLS rule is left
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy))
    result = cli("check", "--json")
    assert result.code == 1
    rows = statuses(result.out)
    assert rows["topic policy"]["status"] == FAIL
    assert "no statement lets cloudwatch.amazonaws.com sns:Publish" in rows["topic policy"]["detail"]
    assert rows["canary stored"]["status"] == OK


def test_alarm_without_actions_fails(stack: Stack, processed: Processor, cli: Cli) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[f"{STACK_NAME}-ProcessorThrottles"])["MetricAlarms"]
    keys = ("AlarmName", "MetricName", "Namespace", "Dimensions", "Period", "EvaluationPeriods", "Threshold", "ComparisonOperator")
    cloudwatch.put_metric_alarm(**{key: alarm[key] for key in keys}, Statistic=alarm["Statistic"], AlarmActions=[])
    result = cli("check")
    assert result.code == 1
    row = next(line for line in result.out.splitlines() if line.strip().startswith("alarm actions"))
    assert "FAIL" in row and "no ALARM action to the alarm topic: ChatAnalytics-dev-ProcessorThrottles" in row
    assert result.out.splitlines()[-1].startswith("FAILED: 13 passed, 1 failed, 2 skipped")


def test_notify_test_drives_an_alarm_to_alarm_and_back(stack: Stack, processed: Processor, cli: Cli) -> None:
    topic = stack.outputs["AlarmTopicArn"]
    alone = statuses(cli("check", "--notify-test", "--json").out)["notification test"]
    assert alone["status"] == FAIL and "no confirmed subscription" in alone["detail"]  # nobody would get the mails

    boto3.client("sns", region_name=REGION).subscribe(TopicArn=topic, Protocol="email", Endpoint="oncall@example.com")
    result = cli("check", "--notify-test", "--json")
    assert result.code == 0, result.out
    row = statuses(result.out)["notification test"]
    assert row["status"] == OK
    assert row["detail"].startswith(f"{STACK_NAME}-DeadLetters: ALARM then OK accepted")
    assert "a person must check" in row["detail"]
    assert "oncall@example.com" not in result.out
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    [alarm] = cloudwatch.describe_alarms(AlarmNames=[f"{STACK_NAME}-DeadLetters"])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("OK", check.NOTIFY_REASON)  # set by the test, and back to OK


def test_a_missing_stack_is_one_line(stack: Stack, cli: Cli) -> None:
    result = cli("--stack-name", "ChatAnalytics-nope", "check", stage=False)
    assert result.code == 1
    assert result.out == ""
    assert (
        result.err.strip()
        == f"chat-analytics: no such stack: ChatAnalytics-nope in {REGION} (deploy it, or pass --stack-name/--stage/--region)"
    )


def test_a_secret_naming_another_queue_fails_and_sends_nothing(stack: Stack, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "PRODUCER_TRANSPORT", "botocore")
    secrets = boto3.client("secretsmanager", region_name=REGION)
    name = stack.outputs["ProducerSecretName"]
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps({**stack.secret, "AWS_SQS_URL": stack.dlq_url}))
    rows = statuses(cli("check", "--json", "--timeout", "1").out)
    assert (
        rows["producer secret"]["status"] == FAIL
        and "names queue 123456789012/ChatAnalytics-dev-dlq.fifo, not the stack's" in rows["producer secret"]["detail"]
    )
    assert rows["canary sent"]["status"] == SKIP and rows["canary stored"]["status"] == SKIP
    assert stack.depth(stack.dlq_url) == 0 and stack.depth(stack.events_url) == 0


def grant(**condition: dict) -> str:
    statement = {
        "Sid": "AllowCloudWatchAlarmsToPublish",
        "Effect": "Allow",
        "Principal": {"Service": ["cloudwatch.amazonaws.com"]},
        "Action": ["sns:Publish"],
        "Resource": TOPIC,
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.mark.parametrize(
    ("policy", "status", "words"),
    [
        (
            grant(
                StringEquals={"aws:SourceAccount": "123456789012"},
                ArnLike={"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ChatAnalytics-dev-*"},
            ),
            OK,
            "covering all 2 alarms",
        ),
        (grant(), OK, "no condition (any account's alarms)"),
        (grant(ArnLike={"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ChatAnalytics-prod-*"}), FAIL, "do not cover"),
        (grant(StringEquals={"aws:SourceAccount": "999999999999"}), FAIL, "do not cover ChatAnalytics-dev-DeadLetters"),
        (grant(StringEquals={"aws:SourceArn": ALARMS[0]}), FAIL, "do not cover ChatAnalytics-dev-ProcessorErrors"),
        (grant(IpAddress={"aws:SourceIp": "10.0.0.0/8"}), FAIL, "operator IpAddress is not one the check evaluates"),
        (None, FAIL, "has no policy"),
        ("{not json", FAIL, "not JSON"),
        (
            json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sns:Subscribe", "Resource": TOPIC}]}),
            FAIL,
            "no statement",
        ),
    ],
)
def test_topic_policy_judgement(policy: str | None, status: str, words: str) -> None:
    got, detail = judge_topic_policy(policy, TOPIC, ALARMS)
    assert (got, words in detail) == (status, True), detail


def test_a_refused_send_fails_the_canary_row_with_the_reason(stack: Stack, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret names a queue that does not exist (the stack's output agrees, so the secret row passes):
    the producer's refusal reaches the row through its on_error, and nothing is waited for."""
    monkeypatch.setattr(check, "PRODUCER_TRANSPORT", "botocore")
    gone = stack.events_url.replace("events.fifo", "gone.fifo")
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.put_secret_value(SecretId=stack.outputs["ProducerSecretName"], SecretString=json.dumps({**stack.secret, "AWS_SQS_URL": gone}))
    result = cli("--queue-url", gone, "check", "--json")
    assert result.code == 1
    rows = statuses(result.out)
    assert rows["producer secret"]["status"] == OK
    assert rows["canary sent"]["status"] == FAIL
    assert rows["canary sent"]["detail"].startswith("0 of 2 events sent with the producer key AKIA")
    assert "SendMessageBatch" in rows["canary sent"]["detail"]
    assert rows["canary stored"] == {"name": "canary stored", "status": SKIP, "detail": "no canary was sent"}


def test_without_the_python_producer_the_canary_row_says_how_to_install_it(stack: Stack, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "analytics_producer", None)  # import fails as if not installed
    rows = statuses(cli("check", "--json").out)
    assert rows["canary sent"]["status"] == FAIL
    assert "pip install ./analytics_producer" in rows["canary sent"]["detail"]
    assert rows["alarm actions"]["status"] == OK


def test_check_fails_a_lake_whose_glue_table_lost_a_column(stack: Stack, processed: Processor, cli: Cli) -> None:
    glue = boto3.client("glue", region_name=REGION)
    database, name = stack.outputs["LakeDatabaseName"], stack.outputs["LakeTableName"]
    table = glue.get_table(DatabaseName=database, Name=name)["Table"]
    dropped = table["StorageDescriptor"]["Columns"][-1]
    descriptor = dict(table["StorageDescriptor"], Columns=table["StorageDescriptor"]["Columns"][:-1])
    glue.update_table(
        DatabaseName=database,
        TableInput={
            "Name": name,
            "StorageDescriptor": descriptor,
            "PartitionKeys": table["PartitionKeys"],
            "Parameters": table["Parameters"],
        },
    )
    result = cli("check", "--json")
    assert result.code == 1
    row = statuses(result.out)["event lake"]
    assert row["status"] == FAIL and f"missing {dropped['Name']} {dropped['Type']}" in row["detail"] and "deploy again" in row["detail"]
