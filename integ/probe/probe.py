"""The integration test's probe: what an ``AwsApiCall`` cannot do by itself, run inside the account.

One Lambda, deployed only with the integration test's stack (``integ/harness.py``), called by the
test's ``invoke_function`` assertions with ``{"action": ...}`` and, as a CloudFormation custom resource,
when the stack is deleted. Every answer is a small JSON object: a custom resource's data must stay
under 4 KB, and the assertions match on a few fields of it.

* ``send``: reads the producer secret and sends one ``SendMessageBatch`` *signed with the producer's
  key* (the IAM user that may only ``sqs:SendMessage``): the query and response events of
  ``REQUESTS``, as a chatbot sends them (group = requestId, dedup = requestId:eventType).
* ``poison``: the same key sends one event that breaks the contract (a query without its question).
* ``reports``: the report of yesterday and today from the table (``--engine dynamodb``) and from the
  lake through Athena (``--engine athena``), with ``chat_analytics_ops``'s own code, and whether they
  are equal; also whether every file under ``requests/`` is Parquet (magic bytes at both ends).
* ``notifications``: what reached the test subscriber of the alarm topic: alarms notified as ALARM
  (CloudWatch's message) and alarms notified as recovered (the EventBridge rule's ``OK: <name> ...``).
* ``receives``: how many times the processor logged the poison event as invalid (one line per receive).
* a CloudFormation ``Delete`` (``Custom::EmptyLakeBucket``): empties the lake bucket, so the bucket can
  be deleted with the stack.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from chat_analytics_ops import lake
from chat_analytics_ops.report_model import Report, day_range
from chat_analytics_ops.table_engine import build_report, read_items

# Two requests, both answered: a full match and a miss (its question is the report's top unmatched one).
REQUESTS = (
    {"requestId": "integ-full", "query": "Does the candidate know Python?", "matchType": "full", "matchScore": 100},
    {"requestId": "integ-none", "query": "Has the candidate flown a plane?", "matchType": "none", "matchScore": 0},
)
POISON_REQUEST_ID = "integ-poison"
SOURCE = "integ-test"
ANSWER_DELAY_MS = 9
PARQUET_MAGIC = b"PAR1"
REPORT_TOP = 10
ATHENA_TIMEOUT_S = 60.0
RECEIVE_ROUNDS = 5


def handler(event: dict[str, Any], context: Any) -> dict[str, Any] | None:
    if "RequestType" in event:
        _custom_resource(event)
        return None
    action = event.get("action")
    actions = {"send": send, "poison": poison, "reports": reports, "notifications": notifications, "receives": receives}
    if action not in actions:
        return {"error": f"unknown action {action!r} (known: {', '.join(actions)})"}
    try:
        return actions[action]()
    except Exception as error:  # the assertion shows this answer; the waiter asks again
        return {"error": f"{type(error).__name__}: {error}"[:500]}


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


def producer_client() -> tuple[Any, str]:
    """An SQS client signed with the producer's access key (from its secret), and the queue URL."""
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=_env("PRODUCER_SECRET_NAME"))["SecretString"])
    client = boto3.client(
        "sqs",
        region_name=secret["AWS_REGION"],
        aws_access_key_id=secret["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret["AWS_SECRET_ACCESS_KEY"],
    )
    return client, secret["AWS_SQS_URL"]


def events(now_ms: int) -> list[dict[str, Any]]:
    """The query and response events of ``REQUESTS``, in the order a producer sends them."""
    out: list[dict[str, Any]] = []
    for request in REQUESTS:
        common = {"schemaVersion": 1, "requestId": request["requestId"], "source": SOURCE}
        out.append({**common, "eventType": "query", "timestamp": now_ms, "query": request["query"]})
        out.append(
            {
                **common,
                "eventType": "response",
                "timestamp": now_ms + ANSWER_DELAY_MS,
                "matchType": request["matchType"],
                "matchScore": request["matchScore"],
                "reasoning": "integration test",
            }
        )
    return out


def entry(index: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": str(index),
        "MessageBody": json.dumps(body, separators=(",", ":")),
        "MessageGroupId": body["requestId"],
        "MessageDeduplicationId": f"{body['requestId']}:{body['eventType']}",
    }


def send() -> dict[str, Any]:
    client, queue_url = producer_client()
    batch = [entry(index, body) for index, body in enumerate(events(int(time.time() * 1000)))]
    answer = client.send_message_batch(QueueUrl=queue_url, Entries=batch)
    return {"sent": len(answer.get("Successful", [])), "failed": [item.get("Code") for item in answer.get("Failed", [])]}


def poison() -> dict[str, Any]:
    client, queue_url = producer_client()
    # A query event without its question: the processor refuses it on every receive.
    body = {"schemaVersion": 1, "eventType": "query", "requestId": POISON_REQUEST_ID, "timestamp": int(time.time() * 1000)}
    client.send_message(**{key: value for key, value in entry(0, body).items() if key != "Id"}, QueueUrl=queue_url)
    return {"sent": 1}


def report_days(today: datetime | None = None) -> list[str]:
    """Yesterday and today (UTC): the events were sent today, or yesterday if the run crossed midnight."""
    day = (today or datetime.now(UTC)).date()
    return day_range(day - timedelta(days=1), day)


def comparable(result: Report) -> dict[str, Any]:
    """A report's figures without where and how it was computed (the engine's time and bytes)."""
    return {**result.to_json(), "engine": None}


def reports() -> dict[str, Any]:
    days = report_days()
    stack = _env("STACK_NAME")
    items = read_items(boto3.client("dynamodb"), _env("TABLE_NAME"), days)
    from_table = comparable(build_report(items, days, top=REPORT_TOP, stack_name=stack))
    engine = lake.AthenaEngine(boto3.client("athena"), _env("WORK_GROUP"), _env("LAKE_DATABASE"), timeout_s=ATHENA_TIMEOUT_S)
    from_lake = comparable(lake.lake_report(engine, days, top=REPORT_TOP, stack_name=stack))
    parquet, other = lake_files(boto3.client("s3"), _env("LAKE_BUCKET"))
    return {
        "equal": from_table == from_lake,
        "requests": from_table["requests"],
        "lakeRequests": from_lake["requests"],
        "differences": sorted(key for key in from_table if from_table[key] != from_lake.get(key))[:10],
        "parquetFiles": parquet,
        "otherFiles": other,
    }


def lake_files(s3: Any, bucket: str) -> tuple[int, int]:
    """(Parquet files, other files) under ``requests/``: Parquet starts and ends with ``PAR1``."""
    parquet = other = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="requests/"):
        for item in page.get("Contents", []):
            size = item["Size"]
            head = s3.get_object(Bucket=bucket, Key=item["Key"], Range="bytes=0-3")["Body"].read()
            tail = s3.get_object(Bucket=bucket, Key=item["Key"], Range=f"bytes={max(size - 4, 0)}-{size - 1}")["Body"].read()
            if head == PARQUET_MAGIC and tail == PARQUET_MAGIC and size >= 8:
                parquet += 1
            else:
                other += 1
    return parquet, other


def classify(body: str) -> tuple[str, str] | None:
    """(alarm name, "ALARM" or "RECOVERED") for a notification of the alarm topic, else None.

    CloudWatch publishes a JSON document (``AlarmName``, ``NewStateValue``); the recovery rule publishes
    the line ``OK: <alarm name> recovered at <time> (<reason>)`` (stacks/monitoring.py)."""
    try:
        message = json.loads(body)
    except ValueError:
        words = body.split()
        if len(words) >= 3 and words[0] == "OK:" and words[2] == "recovered":
            return words[1], "RECOVERED"
        return None
    if isinstance(message, dict) and message.get("NewStateValue") == "ALARM" and isinstance(message.get("AlarmName"), str):
        return message["AlarmName"], "ALARM"
    return None


def notifications() -> dict[str, Any]:
    """Looks at the subscriber queue without consuming it (visibility 0): every call sees every message."""
    sqs = boto3.client("sqs")
    seen: dict[str, str] = {}
    for _ in range(RECEIVE_ROUNDS):
        answer = sqs.receive_message(
            QueueUrl=_env("NOTIFICATION_QUEUE_URL"), MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1
        )
        for message in answer.get("Messages", []):
            seen[message["MessageId"]] = message["Body"]
    kinds = [kind for kind in map(classify, seen.values()) if kind]
    return {
        "alarm": sorted({name for name, state in kinds if state == "ALARM"}),
        "recovered": sorted({name for name, state in kinds if state == "RECOVERED"}),
        "messages": len(seen),
    }


def receives() -> dict[str, Any]:
    """The processor logs an invalid record once per receive ("Invalid event", with the body's excerpt)."""
    logs = boto3.client("logs")
    count = 0
    for page in logs.get_paginator("filter_log_events").paginate(
        logGroupName=_env("PROCESSOR_LOG_GROUP"), filterPattern=f'"Invalid event" "{POISON_REQUEST_ID}"'
    ):
        count += len(page.get("events", []))
    return {"invalidReceives": count}


def empty_bucket(s3: Any, bucket: str) -> int:
    """Deletes every object of ``bucket`` (it is not versioned); returns how many."""
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise RuntimeError(f"could not delete {first.get('Key')}: {first.get('Code')}")
            deleted += len(keys)
    return deleted


def _custom_resource(event: dict[str, Any]) -> None:
    """Custom::EmptyLakeBucket: nothing on Create and Update; on Delete, empty the bucket first."""
    status, reason = "SUCCESS", "nothing to do"
    if event["RequestType"] == "Delete":
        try:
            reason = f"deleted {empty_bucket(boto3.client('s3'), event['ResourceProperties']['BucketName'])} objects"
        except Exception as error:
            status, reason = "FAILED", f"{type(error).__name__}: {error}"[:500]
    respond(event, status, reason)


def respond(event: dict[str, Any], status: str, reason: str) -> None:
    """PUTs the answer to CloudFormation's pre-signed ``ResponseURL``."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason,
            "PhysicalResourceId": event.get("PhysicalResourceId") or f"empty-{event['ResourceProperties']['BucketName']}",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(request, timeout=30) as answer:  # CloudFormation's pre-signed https URL
        answer.read()
