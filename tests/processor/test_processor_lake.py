"""The processor's lake rows: one per stored run, the item as the table holds it, delivered at least once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from testkit.events import (
    BASE_TS,
    LambdaContext,
    metric_values,
    query_body,
    redelivered,
    response_body,
    sqs_record,
)
from tests.processor.conftest import REGION, FakeClock, Processor, Table
from tests.processor.test_processor_handler import run

BUCKET = "chat-analytics-test-lake"
STREAM = "chat-analytics-test-requests"


class Lake:
    """A moto Firehose stream delivering to a moto bucket (moto writes each PutRecordBatch as one object)."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        firehose = boto3.client("firehose", region_name=REGION)
        firehose.create_delivery_stream(
            DeliveryStreamName=STREAM,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{BUCKET}",
                "Prefix": "requests/",
            },
        )

    def rows(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for entry in page.get("Contents", []):
                body = self.s3.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read().decode("utf-8")
                assert body.endswith("\n"), "every row ends its line: Firehose concatenates records"
                found.extend(json.loads(line) for line in body.split("\n") if line)
        return found


@pytest.fixture
def lake(processor: Processor, table: Table, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    monkeypatch.setenv("LAKE_STREAM_NAME", STREAM)
    processor.reset()
    try:
        yield Lake()
    finally:
        monkeypatch.delenv("LAKE_STREAM_NAME")
        processor.reset()


def table_row(processor: Processor, table: Table, request_id: str) -> dict[str, Any]:
    """What the lake's row for the table's current item is (without ``written_at``)."""
    row = processor.lake.lake_row(table.item(request_id), 0)
    del row["written_at"]
    return row


def without_written_at(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name != "written_at"}


def test_without_a_stream_name_there_is_no_lake(processor: Processor, table: Table) -> None:
    processor.reset()
    assert processor.app.lake is None
    assert run(processor, sqs_record(query_body("r-1"))) == []


def test_a_question_answered_together_is_one_complete_row_equal_to_the_item(
    processor: Processor, table: Table, lake: Lake, clock: FakeClock
) -> None:
    records = [sqs_record(query_body("r-1", source="cv-worker", sessionId="s")), sqs_record(response_body("r-1", latencyMs=2.5))]
    assert run(processor, *records) == []
    (row,) = lake.rows()
    assert [name for name, _ in processor.lake.LAKE_COLUMNS] == list(row), "every column, in the Glue table's order"
    assert without_written_at(row) == table_row(processor, table, "r-1")
    assert row["complete"] is True and row["written_at"] == clock.now_ms
    assert row["response_latency_ms"] == 12 and row["latency_ms"] == 2.5 and row["day"] == "2026-01-01"
    assert row["request_key"] == processor.lake.request_key("r-1")


def test_events_apart_are_successive_states_and_the_last_is_the_item(processor: Processor, table: Table, lake: Lake) -> None:
    assert run(processor, sqs_record(response_body("r-1", source="from-response"))) == []
    assert run(processor, sqs_record(query_body("r-1", source="from-query"))) == []
    first, second = lake.rows() if lake.rows()[0]["query"] is None else reversed(lake.rows())
    assert (first["complete"], first["source"], first["query_timestamp"]) == (False, "from-response", None)
    assert second["complete"] is True and without_written_at(second) == table_row(processor, table, "r-1")


def test_a_replay_sends_the_same_row_again(processor: Processor, table: Table, lake: Lake, clock: FakeClock) -> None:
    record = sqs_record(query_body("r-1"))
    assert run(processor, record) == []
    clock.now_ms += 5_000
    assert run(processor, redelivered(record)) == []
    first, second = lake.rows()
    assert without_written_at(first) == without_written_at(second), "the first delivery's ingestedAt is kept, as in the table"


class RefusingSink:
    """A sink that refuses the rows of chosen requests (``PutRecordBatch`` entries with an error code)."""

    def __init__(self, processor: Processor, refuse: set[str]) -> None:
        self.processor, self.refuse = processor, refuse
        self.rows: list[dict[str, Any]] = []

    def put(self, records: list[bytes], *, deadline: float | None = None) -> Any:
        refused = {}
        for index, record in enumerate(records):
            row = json.loads(record)
            if row["request_id"] in self.refuse:
                refused[index] = "ServiceUnavailableException"
            else:
                self.rows.append(row)
        return self.processor.lake.PutResult(len(records) - len(refused), refused, 1)


def test_a_refused_row_fails_its_records_and_the_rest_of_its_group_only(
    processor: Processor, table: Table, capsys: pytest.CaptureFixture
) -> None:
    sink = RefusingSink(processor, {"r-2"})
    processor.pin(lake=sink)
    try:
        group = "session-1"
        records = [
            sqs_record(query_body("r-1"), group=group),
            sqs_record(query_body("r-2"), group=group),
            sqs_record(response_body("r-2"), group=group),
            sqs_record(query_body("r-3"), group=group),
            sqs_record(query_body("r-4")),
        ]
        failed = run(processor, *records)
    finally:
        processor.pin(lake=None)
    assert failed == [record["messageId"] for record in records[1:4]], "from the refused run on, in its group; r-4's group goes on"
    assert sorted(row["request_id"] for row in sink.rows) == ["r-1", "r-3", "r-4"]
    out = capsys.readouterr().out
    values = metric_values(out)
    assert values["LakeDeliveryFailures"] == [1] and values["LakeRows"] == [3]
    assert table.item("r-2") is not None, "the table holds it; the redelivery writes it again (idempotent) and resends the row"


class ScriptedFirehose:
    """``put_record_batch`` answers from a script: a list of per-call outcomes (an exception, or error codes by entry)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:
        self.calls.append([record["Data"] for record in Records])
        outcome = self.script.pop(0) if self.script else {}
        if isinstance(outcome, Exception):
            raise outcome
        responses = [{"ErrorCode": outcome[i]} if i in outcome else {"RecordId": f"id-{i}"} for i in range(len(Records))]
        return {"FailedPutCount": len(outcome), "RequestResponses": responses}


def test_the_sink_retries_only_the_refused_entries(processor: Processor) -> None:
    """The rows of one put go packed in one record (test_processor_lake_packing.py); a refused record is sent again."""
    client = ScriptedFirehose([{0: "ServiceUnavailableException"}, {}])
    result = processor.lake.LakeSink(client, STREAM).put([b"a\n", b"b\n", b"c\n"])
    assert (result.delivered, result.refused, result.requests) == (3, {}, 2)
    assert client.calls == [[b"a\nb\nc\n"], [b"a\nb\nc\n"]]


def test_the_sink_gives_up_after_its_attempts_and_on_a_failed_call(processor: Processor) -> None:
    always = ScriptedFirehose([{0: "InternalFailure"}] * 5)
    result = processor.lake.LakeSink(always, STREAM).put([b"a\n", b"b\n"])  # one record: both rows refused with it
    expected = (0, {0: "InternalFailure", 1: "InternalFailure"}, processor.lake.MAX_PUT_ATTEMPTS)
    assert (result.delivered, result.refused, result.requests) == expected
    broken = ScriptedFirehose([ConnectionError("no route")])
    result = processor.lake.LakeSink(broken, STREAM).put([b"a\n"])
    assert (result.delivered, result.refused) == (0, {0: "ConnectionError"})


def test_request_key_is_a_stable_signed_64_bit_hash(processor: Processor) -> None:
    key = processor.lake.request_key
    assert key("r-1") == key("r-1") != key("r-2")
    assert key("8c6f1d2a-1b7e-4e0f-9a55-3c2d1e0f9b8a") == int.from_bytes(
        bytes.fromhex(__import__("hashlib").sha256(b"8c6f1d2a-1b7e-4e0f-9a55-3c2d1e0f9b8a").hexdigest()[:16]), "big", signed=True
    )
    assert all(-(2**63) <= key(f"r-{n}") < 2**63 for n in range(1000))


def test_a_row_is_valid_json_for_any_contract_text(processor: Processor) -> None:
    item = {
        "requestId": {"S": "r-1"},
        "day": {"S": "2026-01-01"},
        "query": {"S": 'quote " backslash \\ tab \t emoji 🐍 U+2028 \u2028'},
        "queryTimestamp": {"N": str(BASE_TS)},
        "matchScore": {"N": "87.5"},
        "latencyMs": {"N": "3"},
    }
    line = processor.lake.encode(processor.lake.lake_row(item, 1))
    assert line.endswith(b"\n") and line.count(b"\n") == 1, "one line per row, whatever the text"
    row = json.loads(line)
    assert row["query"] == item["query"]["S"] and row["match_score"] == 87.5 and row["latency_ms"] == 3.0
    assert isinstance(row["latency_ms"], float), "double columns are always JSON numbers with a fraction-capable type"


class SlowFirehose(ScriptedFirehose):
    """A ``ScriptedFirehose`` whose calls each move a fake ``time.monotonic`` on by ``seconds``."""

    def __init__(self, script: list[Any], clock: list[float], seconds: float) -> None:
        super().__init__(script)
        self.clock, self.seconds = clock, seconds

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:
        self.clock[0] += self.seconds
        return super().put_record_batch(DeliveryStreamName, Records)


def test_the_sink_starts_no_attempt_without_time_left(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow Firehose must not time the invocation out (that would return the whole batch): a call
    that one attempt of the client could take past the deadline is not started, its rows are refused,
    and their records come back."""
    clock = [1_000.0]
    monkeypatch.setattr(processor.clients.time, "monotonic", lambda: clock[0])
    client = SlowFirehose([{0: "ServiceUnavailableException"}, {}], clock, seconds=5)
    attempt_s = processor.clients.CallLimits.of(processor.clients.FIREHOSE_CONFIG).attempt_s
    result = processor.lake.LakeSink(client, STREAM).put([b"a\n", b"b\n"], deadline=clock[0] + attempt_s + 4)
    # both rows are one record: refused by the first call, and its retry is not started
    assert (result.delivered, result.refused, result.requests, len(client.calls)) == (0, {0: "NoTimeLeft", 1: "NoTimeLeft"}, 1, 1)


def test_a_batch_near_its_deadline_fails_its_rows_records_instead_of_timing_out(
    processor: Processor, table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writes fit in what is left, one attempt of the lake's client does not (its read timeout
    lengthened for the test): the rows are not sent, their records fail (SQS delivers them again) and
    the table holds the items (its writes are idempotent)."""
    monkeypatch.setattr(processor.lake, "FIREHOSE_CONFIG", processor.clients.FIREHOSE_CONFIG.merge(Config(read_timeout=10)))
    client = ScriptedFirehose([])
    processor.pin(lake=processor.lake.LakeSink(client, STREAM))
    store_attempt_s = processor.clients.CallLimits.of(processor.clients.DYNAMODB_CONFIG).attempt_s
    lake_attempt_s = processor.clients.CallLimits.of(processor.lake.FIREHOSE_CONFIG).attempt_s
    left_ms = int((store_attempt_s + 3) * 1000) + processor.handler.RETURN_RESERVE_MS
    assert lake_attempt_s > store_attempt_s + 3, "the lake's one attempt does not fit"
    try:
        records = [sqs_record(query_body("r-1")), sqs_record(query_body("r-2"))]
        failed = run(processor, *records, context=LambdaContext(remaining_ms=left_ms))
    finally:
        processor.pin(lake=None)
    assert failed == [r["messageId"] for r in records]
    assert client.calls == [] and table.item("r-1") is not None


def test_the_largest_rows_fit_firehose_limits(processor: Processor) -> None:
    """PutRecordBatch takes at most 500 records, 1,000 KiB each, 4 MiB in all
    (https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html); moto checks none of it.
    A batch of 10 SQS records makes at most 10 rows; the largest row the contract allows is a question and a
    reasoning of 4,096 four-byte characters, and a question whose normalized key grows 18-fold (NFKC of
    U+FDFA is 18 characters)."""
    lake = processor.lake
    item = {
        "requestId": {"S": "r" * 128},
        "day": {"S": "2026-01-01"},
        "source": {"S": "\U0001f40d" * 64},
        "sessionId": {"S": "\U0001f40d" * 128},
        "query": {"S": "\ufdfa" * 4096},
        "queryTimestamp": {"N": str(processor.models.MAX_TIMESTAMP_MS)},
        "queryIngestedAt": {"N": str(processor.models.MAX_TIMESTAMP_MS)},
        "matchType": {"S": "none"},
        "matchScore": {"N": "99.99999999999999"},
        "reasoning": {"S": "\U0001f40d" * 4096},
        "latencyMs": {"N": "86400000"},
        "responseTimestamp": {"N": str(processor.models.MAX_TIMESTAMP_MS)},
        "responseIngestedAt": {"N": str(processor.models.MAX_TIMESTAMP_MS)},
        "responseLatencyMs": {"N": "0"},
    }
    row = lake.encode(lake.lake_row(item, processor.models.MAX_TIMESTAMP_MS))
    assert len(json.loads(row)["question_key"]) > 18 * 4096 - 4096, "the key really grew"
    assert len(row) <= 1_000 * 1024
    assert 10 * len(row) <= 4 * 1024 * 1024
    assert lake.MAX_RECORDS_PER_PUT <= 500
