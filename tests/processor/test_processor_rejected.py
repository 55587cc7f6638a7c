"""The processor's rejected rows: one per rejected record per receive, in the lake's table ``rejected``, with a
stable reason code and field for every invalid example of the contract, never the question or the reasoning,
and never changing a record's outcome (docs/contracts.md, "The rejected row")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from testkit.events import BASE_TS, metric_values, query_body, redelivered, response_body, sqs_record
from tests.processor.conftest import REGION, FakeClock, Processor, Table, run
from tests.processor.test_processor_lake import STREAM, Lake, RefusingSink

REPO = Path(__file__).resolve().parents[2]
INVALID = json.loads((REPO / "schema" / "analytics-event.examples.json").read_text(encoding="utf-8"))["invalid"]
BUCKET = "chat-analytics-test-lake-rejected"
REJECTED_STREAM = "chat-analytics-test-rejected"
# Every invalid example of the contract: the reason code and the field (JSON path) its rejected row names.
EXPECTED: dict[str, tuple[str, str]] = {
    "schemaVersion: 2 (v2.0), a major version this processor does not know": ("unknown_major_version", "$.schemaVersion"),
    "schemaVersion: 2 with a new major's own shape (refused for its version, not its fields)": ("unknown_major_version", "$.schemaVersion"),
    "schemaVersion: 999.0, the last major the field allows, unknown here": ("unknown_major_version", "$.schemaVersion"),
    "model: empty": ("too_short", "$.model"),
    "model: over 128 characters": ("too_long", "$.model"),
    "model: a number": ("invalid_type", "$.model"),
    "model: a control character": ("invalid_character", "$.model"),
    "query: a lone surrogate": ("invalid_character", "$.query"),
    "reasoning: a lone low surrogate": ("invalid_character", "$.reasoning"),
    "query: U+FFFE, which SQS refuses": ("invalid_character", "$.query"),
    "source: U+FFFF, which SQS refuses": ("invalid_character", "$.source"),
    "sessionId: NUL": ("invalid_character", "$.sessionId"),
    "query: a control character (U+001F)": ("invalid_character", "$.query"),
    "reasoning: vertical tab (U+000B)": ("invalid_character", "$.reasoning"),
    "query: form feed (U+000C)": ("invalid_character", "$.query"),
    "an extra field's string: a lone surrogate": ("invalid_character", "$.note"),
    "an extra field's name: a control character": ("invalid_extra_field", "$"),
    "an extra field's name: a lone surrogate": ("invalid_character", "$"),
    "a key inside an extra field: a control character": ("invalid_extra_field", "$.meta"),
    "an extra array nested 5 levels deep": ("invalid_extra_field", "$.nested"),
    "an extra object nested 5 levels deep": ("invalid_extra_field", "$.deep"),
    "matchScore: 5e-324, a magnitude DynamoDB cannot store": ("out_of_range", "$.matchScore"),
    "latencyMs: 1e-200, a magnitude DynamoDB cannot store": ("out_of_range", "$.latencyMs"),
    "latencyMs: 1e200, over the one-day bound": ("out_of_range", "$.latencyMs"),
    "latencyMs: over one day": ("out_of_range", "$.latencyMs"),
    "latencyMs: negative": ("out_of_range", "$.latencyMs"),
    "latencyMs: a string": ("invalid_type", "$.latencyMs"),
    "matchScore: over 100": ("out_of_range", "$.matchScore"),
    "matchScore: negative": ("out_of_range", "$.matchScore"),
    "matchScore: a string": ("invalid_type", "$.matchScore"),
    "matchScore: a boolean": ("invalid_type", "$.matchScore"),
    "matchScore: missing": ("missing_field", "$.matchScore"),
    "matchType: not one of full, partial, none": ("invalid_value", "$.matchType"),
    "reasoning: over 4096 characters": ("too_long", "$.reasoning"),
    "reasoning: missing": ("missing_field", "$.reasoning"),
    "schemaVersion: 0": ("unsupported_schema_version", "$.schemaVersion"),
    "schemaVersion: over 999": ("unsupported_schema_version", "$.schemaVersion"),
    "schemaVersion: 1e200": ("unsupported_schema_version", "$.schemaVersion"),
    "schemaVersion: a fraction": ("unsupported_schema_version", "$.schemaVersion"),
    "timestamp: a fraction": ("invalid_type", "$.timestamp"),
    "timestamp: negative": ("out_of_range", "$.timestamp"),
    "timestamp: after 9999-12-31": ("out_of_range", "$.timestamp"),
    "timestamp: a string": ("invalid_type", "$.timestamp"),
    "timestamp: a boolean": ("invalid_type", "$.timestamp"),
    "timestamp: missing": ("missing_field", "$.timestamp"),
    "requestId: empty": ("too_short", "$.requestId"),
    "requestId: over 128 characters": ("too_long", "$.requestId"),
    "requestId: a space": ("invalid_character", "$.requestId"),
    "requestId: a trailing line feed": ("invalid_character", "$.requestId"),
    "requestId: not ASCII": ("invalid_character", "$.requestId"),
    "requestId: missing": ("missing_field", "$.requestId"),
    "requestId: a number": ("invalid_type", "$.requestId"),
    "query: empty": ("too_short", "$.query"),
    "query: over 4096 characters": ("too_long", "$.query"),
    "query: 4097 code points": ("too_long", "$.query"),
    "query: missing": ("missing_field", "$.query"),
    "source: over 64 characters": ("too_long", "$.source"),
    "source: a number": ("invalid_type", "$.source"),
    "sessionId: over 128 characters": ("too_long", "$.sessionId"),
    "eventType: unknown": ("unknown_event_type", "$.eventType"),
    "eventType: missing": ("missing_field", "$.eventType"),
    "not JSON": ("invalid_json", "$"),
    "truncated JSON": ("invalid_json", "$"),
    "an array, not an object": ("not_an_object", "$"),
    "a JSON string, not an object": ("not_an_object", "$"),
    "NaN is not JSON": ("out_of_range", "$.latencyMs"),
    "latencyMs: 1e400 is not a finite number": ("out_of_range", "$.latencyMs"),
    "an extra number that is not finite (1e400)": ("invalid_extra_field", "$.huge"),
    "a lone surrogate written as an escape": ("invalid_character", "$.query"),
    "a NUL written as an escape": ("invalid_character", "$.query"),
    "an extra field nested 5,000 levels deep (past every JSON parser's recursion limit)": ("invalid_json", "$"),
    "a body nested 5,000 levels deep": ("invalid_json", "$"),
}


def body_of(example: dict[str, Any]) -> str:
    """The SQS body: a ``body`` example as it is, an ``event`` serialized with escapes (as a producer would)."""
    return example["body"] if "body" in example else json.dumps(example["event"])


class RejectedLake:
    """The rejected stream in moto, delivering under ``rejected/`` of its own bucket (each PutRecordBatch one object)."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        boto3.client("firehose", region_name=REGION).create_delivery_stream(
            DeliveryStreamName=REJECTED_STREAM,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{BUCKET}",
                "Prefix": "rejected/",
            },
        )

    def lines(self) -> list[str]:
        found: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for entry in page.get("Contents", []):
                assert entry["Key"].startswith("rejected/")
                body = self.s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read().decode("utf-8")
                assert body.endswith("\n"), "every row ends its line: Firehose concatenates records"
                found.extend(line for line in body.split("\n") if line)
        return found

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def rejected(processor: Processor, table: Table, monkeypatch: pytest.MonkeyPatch) -> Iterator[RejectedLake]:
    monkeypatch.setenv("REJECTED_STREAM_NAME", REJECTED_STREAM)
    processor.reset()  # the lake's sinks too
    try:
        yield RejectedLake()
    finally:
        monkeypatch.delenv("REJECTED_STREAM_NAME")
        processor.reset()


def private_texts(value: Any) -> list[str]:
    """Every ``query`` and ``reasoning`` string in an event, at any depth."""
    if isinstance(value, dict):
        return [
            text
            for key, item in value.items()
            for text in ([item] if key in ("query", "reasoning") and isinstance(item, str) else private_texts(item))
        ]
    if isinstance(value, list):
        return [text for item in value for text in private_texts(item)]
    return []


def test_the_expected_rows_cover_every_invalid_example() -> None:
    assert sorted(EXPECTED) == sorted(example["name"] for example in INVALID), "a new invalid example needs its expected row"


def test_every_invalid_example_is_exactly_its_rejected_row(
    processor: Processor, rejected: RejectedLake, clock: FakeClock, capsys: pytest.CaptureFixture
) -> None:
    records = {example["name"]: sqs_record(body_of(example), group=f"g-{index}") for index, example in enumerate(INVALID)}
    names = list(records)
    for start in range(0, len(names), 10):  # Lambda's batches of 10
        batch = [records[name] for name in names[start : start + 10]]
        assert run(processor, *batch) == [record["messageId"] for record in batch], "every invalid record still fails"
    rows = {row["message_id"]: row for row in rejected.rows()}
    assert len(rows) == len(INVALID), "one row per rejected record"
    columns = [name for name, _ in processor.lake.REJECTED_COLUMNS]
    for example in INVALID:
        body = body_of(example)
        row = rows[records[example["name"]]["messageId"]]
        assert list(row) == columns, "every column, in the Glue table's order"
        assert (row["reason"], row["field_path"]) == EXPECTED[example["name"]], example["name"]
        assert row["reason"] in processor.invalid.REASONS
        assert (row["received_at"], row["received_day"], row["receive_count"]) == (clock.now_ms, "2026-01-01", 1)
        assert row["body_length"] == len(body) and row["error_count"] >= 1
        assert len(row["excerpt"]) <= processor.invalid.REJECTED_EXCERPT_CHARS
        event = example.get("event")
        if isinstance(event, dict):  # what could be read of the event
            assert row["event_type"] == (event.get("eventType") if isinstance(event.get("eventType"), str) else None)
            request_id = event.get("requestId")
            assert row["request_id"] == (
                request_id[: processor.invalid.MAX_TEXT_COLUMN] if isinstance(request_id, str) and request_id else None
            )
            timestamp = event.get("timestamp")
            valid_timestamp = isinstance(timestamp, int) and not isinstance(timestamp, bool) and 0 <= timestamp <= 253402300799999
            assert row["event_timestamp"] == (timestamp if valid_timestamp else None)
            version = event.get("schemaVersion")
            assert row["schema_version"] == (version if isinstance(version, int) and not isinstance(version, bool) else None)
    values = metric_values(capsys.readouterr().out)
    assert sum(values["InvalidEvents"]) == len(INVALID) and sum(values["RejectedRows"]) == len(INVALID)
    assert "RejectedDeliveryFailures" not in values


def test_no_rejected_row_holds_the_question_or_the_reasoning(processor: Processor, rejected: RejectedLake) -> None:
    secret_question = "What is the salary of the candidate named Ada Lovelace?"
    secret_reasoning = "private reasoning about Ada Lovelace's salary"
    bodies = [body_of(example) for example in INVALID] + [
        json.dumps(query_body("r-1", query=secret_question, timestamp=-1)),
        json.dumps(response_body("r-2", reasoning=secret_reasoning, match_score=101)),
        json.dumps(
            query_body("r-3", query=secret_question, meta={"query": secret_question, "reasoning": [secret_reasoning]}, x=[[[[[1]]]]])
        ),
        '{"eventType": "query", "requestId": "r-4", "q\\u0075ery": "' + secret_question + '", "timestamp": "x"}',  # an escaped key
        '{"eventType": "query", "requestId": "r-5", "query": "' + secret_question + '"',  # broken JSON
        secret_question,  # not JSON: it may be the question itself
        json.dumps(secret_question),  # a bare JSON string
    ]
    records = [sqs_record(body, group=f"g-{index}") for index, body in enumerate(bodies)]
    for start in range(0, len(records), 10):
        run(processor, *records[start : start + 10])
    lines = {json.loads(line)["message_id"]: line for line in rejected.lines()}
    assert len(lines) == len(bodies)
    texts = {secret_question, secret_reasoning}
    for example in INVALID:
        texts.update(text for text in private_texts(example.get("event", {})) if len(text) >= 8)
    for line in lines.values():
        for text in texts:
            assert text not in line and json.dumps(text)[1:-1] not in line
            assert text[:32] not in json.loads(line)["excerpt"]
    excerpts = [json.loads(lines[record["messageId"]])["excerpt"] for record in records[-7:]]
    assert f'"query":"<query, {len(secret_question)} characters>"' in excerpts[0]
    assert f'"reasoning":"<reasoning, {len(secret_reasoning)} characters>"' in excerpts[1]
    assert '"meta":{"query":"<query, ' in excerpts[2] and '"reasoning":"<reasoning, list>"' in excerpts[2]
    assert excerpts[-3:] == [
        f"<not parseable JSON, {len(bodies[-3])} characters>",
        f"<not parseable JSON, {len(secret_question)} characters>",
        f"<a JSON string, {len(secret_question)} characters>",
    ]


def test_each_receive_writes_a_row_of_the_same_message(processor: Processor, rejected: RejectedLake, clock: FakeClock) -> None:
    """The record fails on every receive (the DLQ after the third, as before); each receive's row names the same
    message id, which the SQL counts once."""
    record = sqs_record(query_body("r-1", query=""))
    assert run(processor, record) == [record["messageId"]]
    again = redelivered(record)
    clock.now_ms += 60_000
    assert run(processor, again) == [record["messageId"]]
    assert run(processor, redelivered(again)) == [record["messageId"]]
    rows = sorted(rejected.rows(), key=lambda row: row["receive_count"])
    assert [(row["message_id"], row["receive_count"], row["reason"]) for row in rows] == [
        (record["messageId"], count, "too_short") for count in (1, 2, 3)
    ]
    assert rows[0]["received_at"] == BASE_TS + 250 and rows[1]["received_at"] == BASE_TS + 250 + 60_000


def test_only_the_invalid_record_of_a_group_is_rejected_the_rest_of_its_group_fails_without_a_row(
    processor: Processor, table: Table, rejected: RejectedLake
) -> None:
    records = [sqs_record(query_body("r-1"), group="s"), sqs_record(query_body("r-2", timestamp=-5), group="s")]
    records.append(sqs_record(query_body("r-3"), group="s"))
    assert run(processor, *records) == [records[1]["messageId"], records[2]["messageId"]]
    (row,) = rejected.rows()
    assert (row["message_id"], row["reason"], row["field_path"], row["request_id"]) == (
        records[1]["messageId"],
        "out_of_range",
        "$.timestamp",
        "r-2",
    )
    assert table.item("r-1") is not None and table.item("r-3") is None


class RaisingSink:
    def __init__(self) -> None:
        self.calls = 0

    def put(self, records: list[bytes], *, deadline: float | None = None) -> Any:
        self.calls += 1
        raise RuntimeError("broken sink")


@pytest.mark.parametrize("broken", ["refused", "raises"])
def test_a_rejected_row_not_delivered_is_counted_and_changes_no_outcome(
    processor: Processor, table: Table, broken: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The valid events are stored once and their lake rows delivered; the invalid record fails as it would anyway."""
    monkeypatch.setenv("LAKE_STREAM_NAME", STREAM)
    processor.reset()
    lake = Lake()
    sink: Any = RefusingSink(processor, {"r-bad"}) if broken == "refused" else RaisingSink()
    processor.pin(rejected=sink)
    try:
        records = [sqs_record(query_body("r-1")), sqs_record({**query_body("r-bad"), "query": None}), sqs_record(response_body("r-1"))]
        failed = run(processor, *records)
    finally:
        processor.pin(rejected=None)
        monkeypatch.delenv("LAKE_STREAM_NAME")
        processor.reset()
    assert failed == [records[1]["messageId"]]
    assert [row["request_id"] for row in lake.rows()] == ["r-1"] and lake.rows()[0]["complete"] is True
    out = capsys.readouterr().out
    values = metric_values(out)
    assert values["RejectedDeliveryFailures"] == [1] and values["QueryEvents"] == [1] and values["ResponseEvents"] == [1]
    assert values["LakeRows"] == [1] and "LakeDeliveryFailures" not in values
    assert "Rejected rows not delivered to the lake" in out


def test_a_row_that_cannot_be_built_is_counted_and_the_record_fails_as_before(
    processor: Processor, table: Table, rejected: RejectedLake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(body: str, error: Any) -> dict:
        raise ValueError("a bug")

    monkeypatch.setattr(processor.handler, "describe_rejection", broken)
    valid, invalid = sqs_record(query_body("r-1")), sqs_record("not json")
    assert run(processor, valid, invalid) == [invalid["messageId"]]
    assert rejected.rows() == [] and table.item("r-1") is not None
    values = metric_values(capsys.readouterr().out)
    assert values["RejectedDeliveryFailures"] == [1] and values["InvalidEvents"] == [1]


def test_without_a_rejected_stream_there_are_no_rejected_rows(processor: Processor, table: Table, capsys: pytest.CaptureFixture) -> None:
    processor.reset()
    assert processor.app.rejected is None
    record = sqs_record("not json")
    assert run(processor, record) == [record["messageId"]]
    assert "RejectedRows" not in metric_values(capsys.readouterr().out)
