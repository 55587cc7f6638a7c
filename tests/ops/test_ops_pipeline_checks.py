"""``check``'s judgements of the pipeline's own promises, case by case (the rows against a live local stack, intact
and broken, are in ``tests/local/test_local_serve_check.py``)."""

from __future__ import annotations

import json

import pytest

from chat_analytics_ops import pipeline_checks, recovery_checks
from chat_analytics_ops.dlq import QueueState
from stacks.queues import MAX_RECEIVE_COUNT

STACK_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo"
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/ChatAnalytics-dev-alarm-recovered"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ChatAnalytics-dev-MonitoringAlarmTopic-ABC"


def test_the_check_expects_the_stacks_max_receive_count() -> None:
    assert pipeline_checks.MAX_RECEIVE_COUNT == MAX_RECEIVE_COUNT == 3


@pytest.mark.parametrize(
    ("secret_url", "region", "endpoint", "status", "words"),
    [
        (STACK_URL, "us-east-1", None, "OK", "at sqs.us-east-1.amazonaws.com"),
        # The same queue on the endpoint the check talks to (the local stack's secret).
        ("http://127.0.0.1:4566/123456789012/ChatAnalytics-dev-events.fifo", "us-east-1", "http://127.0.0.1:4566", "OK", "on the endpoint"),
        # Other ways in to the same queue: the legacy host, an interface VPC endpoint, FIPS.
        ("https://us-east-1.queue.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo", "us-east-1", None, "OK", "queue"),
        ("https://queue.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo", "us-east-1", None, "OK", "queue"),
        (
            "https://vpce-0a1b2c3d-abcdefgh.sqs.us-east-1.vpce.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo",
            "us-east-1",
            None,
            "OK",
            "queue",
        ),
        ("https://sqs-fips.us-east-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo", "us-east-1", None, "OK", "queue"),
        # Another queue, another account, another region, another host.
        ("https://sqs.us-east-1.amazonaws.com/123456789012/ChatAnalytics-dev-dlq.fifo", "us-east-1", None, "FAIL", "not the stack's"),
        ("https://sqs.us-east-1.amazonaws.com/999999999999/ChatAnalytics-dev-events.fifo", "us-east-1", None, "FAIL", "not the stack's"),
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo", "us-east-1", None, "FAIL", "is in eu-west-1"),
        (STACK_URL, "eu-west-1", None, "FAIL", "its AWS_REGION is eu-west-1"),
        ("http://127.0.0.1:9999/123456789012/ChatAnalytics-dev-events.fifo", "us-east-1", "http://127.0.0.1:4566", "FAIL", "sends to"),
        ("not a url", "us-east-1", None, "FAIL", "is not a queue URL"),
    ],
)
def test_the_secret_names_the_stacks_queue(secret_url: str, region: str, endpoint: str | None, status: str, words: str) -> None:
    got, detail = pipeline_checks.judge_secret_queue(secret_url, region, STACK_URL, "us-east-1", endpoint)
    assert got == status and words in detail, detail


def state(visible: int = 0, in_flight: int = 0) -> QueueState:
    return QueueState(url="u", arn="a", visible=visible, in_flight=in_flight, fifo=True)


@pytest.mark.parametrize(
    ("before", "after", "words"),
    [
        ((state(), state(2)), (state(), state(4)), "the DLQ grew by 2"),
        ((state(), state()), (state(visible=2), state()), "the consumer is stopped"),
        ((state(), state()), (state(in_flight=2), state()), "slow or failing"),
        ((state(), state()), (state(), state()), "took the events without storing them"),
    ],
)
def test_a_canary_not_stored_names_the_likeliest_cause(before: tuple, after: tuple, words: str) -> None:
    diagnosis = pipeline_checks.canary_diagnosis(pipeline_checks.QueueDepths(*before), pipeline_checks.QueueDepths(*after), "fn")
    assert words in diagnosis


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


EVENTS = {"Service": "events.amazonaws.com"}


@pytest.mark.parametrize(
    ("statement", "status"),
    [
        ({"Effect": "Allow", "Principal": EVENTS, "Action": "sns:Publish", "Resource": TOPIC_ARN}, "OK"),
        (
            {
                "Effect": "Allow",
                "Principal": EVENTS,
                "Action": "sns:Publish",
                "Resource": TOPIC_ARN,
                "Condition": {
                    "ArnEqualsIfExists": {"aws:SourceArn": RULE_ARN},
                    "StringEqualsIfExists": {"aws:SourceAccount": "123456789012"},
                },
            },
            "OK",
        ),
        (
            {
                "Effect": "Allow",
                "Principal": EVENTS,
                "Action": "sns:Publish",
                "Resource": TOPIC_ARN,
                "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN + "-other"}},
            },
            "FAIL",
        ),
        ({"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish", "Resource": TOPIC_ARN}, "FAIL"),
        ({"Effect": "Deny", "Principal": EVENTS, "Action": "sns:Publish", "Resource": TOPIC_ARN}, "FAIL"),
        ({"Effect": "Allow", "Principal": EVENTS, "Action": "sns:Subscribe", "Resource": TOPIC_ARN}, "FAIL"),
    ],
)
def test_the_topic_grant_to_eventbridge(statement: dict, status: str) -> None:
    assert recovery_checks.judge_topic_grant(policy(statement), TOPIC_ARN, RULE_ARN)[0] == status


@pytest.mark.parametrize(
    ("condition", "actions", "status"),
    [
        ({"StringLike": {"kms:EncryptionContext:aws:sns:topicArn": "arn:aws:sns:us-east-1:123456789012:ChatAnalytics-dev-*"}}, None, "OK"),
        ({"StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": "arn:aws:sns:us-east-1:123456789012:other"}}, None, "FAIL"),
        ({}, ["kms:Decrypt"], "FAIL"),
        ({}, None, "OK"),
    ],
)
def test_the_key_grant_to_eventbridge(condition: dict, actions: list[str] | None, status: str) -> None:
    statement = {
        "Effect": "Allow",
        "Principal": EVENTS,
        "Action": actions or ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        **({"Condition": condition} if condition else {}),
    }
    assert recovery_checks.judge_key_grant(policy(statement), TOPIC_ARN)[0] == status


def test_the_rule_target_needs_a_dead_letter_queue_and_a_retry_policy() -> None:
    dlq = "arn:aws:sqs:us-east-1:123456789012:ChatAnalytics-dev-alarm-recovered-dlq"
    good = {"Arn": TOPIC_ARN, "DeadLetterConfig": {"Arn": dlq}, "RetryPolicy": {"MaximumRetryAttempts": 24}}
    assert recovery_checks.judge_rule_target(good, dlq) == []
    assert "no dead-letter queue" in recovery_checks.judge_rule_target({"Arn": TOPIC_ARN, "RetryPolicy": {}}, dlq)[0]
    assert "not the stack's" in recovery_checks.judge_rule_target({**good, "DeadLetterConfig": {"Arn": dlq + "-x"}}, dlq)[0]
    assert "no retry policy" in recovery_checks.judge_rule_target({**good, "RetryPolicy": None}, dlq)[0]
