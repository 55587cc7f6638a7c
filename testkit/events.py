"""The analytics events (one set of builders for every test and benchmark), the Lambda events built from them in
the exact shape Lambda delivers from an SQS FIFO event source, a fake Lambda context, and readers for what the
processor prints (EMF metrics and JSON logs).

``query_body``/``response_body`` take everything but the request ID by keyword; ``query_event``/``response_event``
are the same events with the timestamp, text, match type and score given in order (the CLI's tests' shorthand)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:chat-analytics-dev-events.fifo"
SENDER_ID = "AIDAIENQZJOLO23YVJ4VO"
BASE_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_sequence = itertools.count(18_849_496_460_467_696_128)


def query_body(request_id: str, *, timestamp: Any = BASE_TS, query: str = "Does the candidate know Python?", **extra: Any) -> dict:
    """A valid query event."""
    return {"schemaVersion": 1, "eventType": "query", "requestId": request_id, "timestamp": timestamp, "query": query, **extra}


def response_body(
    request_id: str,
    *,
    timestamp: Any = BASE_TS + 12,  # any JSON value: tests send invalid ones too
    match_type: str = "full",
    match_score: Any = 100,
    reasoning: str = "matched 1 of 1 skills",
    **extra: Any,
) -> dict:
    """A valid response event."""
    return {
        "schemaVersion": 1,
        "eventType": "response",
        "requestId": request_id,
        "timestamp": timestamp,
        "matchType": match_type,
        "matchScore": match_score,
        "reasoning": reasoning,
        **extra,
    }


def query_event(request_id: str, timestamp: int, text: str, **extra: Any) -> dict[str, Any]:
    """``query_body`` with its timestamp and text in order."""
    return query_body(request_id, timestamp=timestamp, query=text, **extra)


def response_event(request_id: str, timestamp: int, match_type: str, score: float, **extra: Any) -> dict[str, Any]:
    """``response_body`` with its timestamp, match type and score in order."""
    return response_body(request_id, timestamp=timestamp, match_type=match_type, match_score=score, **extra)


def sqs_record(
    body: dict | str,
    *,
    group: str | None = None,
    message_id: str | None = None,
    dedup_id: str | None = None,
    receive_count: int = 1,
    message_attributes: dict | None = None,
) -> dict:
    """One record as Lambda's SQS (FIFO) event source delivers it.

    ``group`` and ``dedup_id`` default to what producers send (``requestId`` and
    ``requestId:eventType``); a retry of the same message keeps ``message_id`` and raises ``receive_count``.
    """
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    parsed = body if isinstance(body, dict) else {}
    request_id = str(parsed.get("requestId", "unknown"))
    sent = int(time.time() * 1000)
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": base64.b64encode(uuid.uuid4().bytes * 4).decode(),
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent),
            "SenderId": SENDER_ID,
            "ApproximateFirstReceiveTimestamp": str(sent + 5),
            "SequenceNumber": str(next(_sequence)),
            "MessageGroupId": group or request_id,
            "MessageDeduplicationId": dedup_id or f"{request_id}:{parsed.get('eventType', 'unknown')}",
        },
        "messageAttributes": message_attributes or {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


def redelivered(record: dict) -> dict:
    """The same message received again after a failure or timeout: new receipt handle, one more receive."""
    again = json.loads(json.dumps(record))
    again["receiptHandle"] = base64.b64encode(uuid.uuid4().bytes * 4).decode()
    again["attributes"]["ApproximateReceiveCount"] = str(int(record["attributes"]["ApproximateReceiveCount"]) + 1)
    return again


def sqs_event(*records: dict) -> dict:
    return {"Records": list(records)}


@dataclass
class LambdaContext:
    """The context attributes Powertools and the handler read."""

    remaining_ms: int = 30_000
    function_name: str = "ChatAnalytics-dev-Processor"
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/processor"
    log_stream_name: str = "2026/01/01/[$LATEST]abc"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time of the write (pytest's capture of the running test):
    the processor's Logger is configured once per process, so its stream must follow the test."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` that is a JSON object."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def emf_documents(text: str) -> list[dict]:
    """The EMF documents (CloudWatch embedded metric format) in printed output."""
    return [doc for doc in json_lines(text) if "_aws" in doc]


def metric_values(text: str) -> dict[str, list[float]]:
    """Every value of every metric in the EMF documents, by metric name."""
    values: dict[str, list[float]] = {}
    for doc in emf_documents(text):
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                values.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    return values


def log_records(text: str) -> list[dict]:
    """The Powertools Logger records in printed output."""
    return [doc for doc in json_lines(text) if "level" in doc and "message" in doc]
