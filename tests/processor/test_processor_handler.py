"""The handler end to end on moto: batches as Lambda delivers them, partial failures, metrics and logs."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from testkit.events import (
    BASE_TS,
    LambdaContext,
    emf_documents,
    log_records,
    metric_values,
    query_body,
    redelivered,
    response_body,
    sqs_event,
    sqs_record,
)
from tests.processor.conftest import NAMESPACE, SERVICE, FakeClock, Processor, Table, run

SECRET_QUESTION = "Does the candidate know the secret handshake?"


def ids(*records: dict) -> list[str]:
    return [record["messageId"] for record in records]


class FlakyClient:
    """The real (moto) client, except that ``update_item`` raises ``code`` for chosen calls."""

    def __init__(self, client: Any, code: str, status: int, *, request_ids: set[str], failures: int = 1, call: str = "any") -> None:
        self.client, self.code, self.status = client, code, status
        self.request_ids, self.failures, self.call = request_ids, failures, call

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_item(self, **kwargs: Any) -> dict:
        conditional = "ConditionExpression" in kwargs
        wanted = self.call == "any" or (self.call == "conditional") == conditional
        if wanted and kwargs["Key"]["requestId"]["S"] in self.request_ids and self.failures > 0:
            self.failures -= 1
            error = {"Error": {"Code": self.code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": self.status}}
            raise ClientError(error, "UpdateItem")
        return self.client.update_item(**kwargs)


@pytest.fixture
def flaky(processor: Processor, table: Table):
    def pin(code: str = "ProvisionedThroughputExceededException", status: int = 400, **kwargs: Any) -> FlakyClient:
        client = FlakyClient(table.client, code, status, **kwargs)
        processor.pin(store=processor.store.EventStore(client, table.name, 30))
        return client

    return pin


def test_happy_path_both_event_types(processor: Processor, table: Table, clock: FakeClock, capsys: pytest.CaptureFixture) -> None:
    records = [sqs_record(query_body("r-1", source="cv-worker")), sqs_record(response_body("r-1", latencyMs=2.5))]
    assert run(processor, *records) == []
    item = table.item("r-1")
    assert item["query"] == {"S": "Does the candidate know Python?"} and item["matchType"] == {"S": "full"}
    assert item["responseLatencyMs"] == {"N": "12"} and item["latencyMs"] == {"N": "2.5"} and item["source"] == {"S": "cv-worker"}
    assert item["queryIngestedAt"] == item["responseIngestedAt"] == {"N": str(clock.now_ms)}
    summary = [log for log in log_records(capsys.readouterr().out) if log["message"] == "Batch processed"]
    assert summary and summary[0]["records"] == 2 and summary[0]["failed"] == 0


def test_response_before_query_in_separate_batches_ends_like_query_first(processor: Processor, table: Table, clock: FakeClock) -> None:
    query, response = query_body("r-1"), response_body("r-1")
    assert run(processor, sqs_record(query)) == [] and run(processor, sqs_record(response)) == []
    in_order = table.item("r-1")
    table.delete("r-1")
    assert run(processor, sqs_record(response)) == []
    assert "query" not in table.item("r-1") and table.item("r-1")["day"] == {"S": "2026-01-01"}
    assert run(processor, sqs_record(query)) == []
    assert table.item("r-1") == in_order


def test_duplicates_within_one_batch_are_stored_and_counted_once(
    processor: Processor, table: Table, clock: FakeClock, capsys: pytest.CaptureFixture
) -> None:
    # The same event sent twice (outside the deduplication window): two messages, one item.
    query = query_body("r-1")
    assert run(processor, sqs_record(query)) == []
    once = table.item("r-1")
    table.delete("r-1")
    capsys.readouterr()
    assert run(processor, sqs_record(query), sqs_record(query)) == []
    assert table.item("r-1") == once
    assert metric_values(capsys.readouterr().out)["QueryEvents"] == [1.0]


def test_redelivery_in_a_later_batch_leaves_the_item_byte_identical(
    processor: Processor, table: Table, clock: FakeClock, capsys: pytest.CaptureFixture
) -> None:
    query, response = sqs_record(query_body("r-1")), sqs_record(response_body("r-1", match_type="none", match_score=0))
    assert run(processor, query, response) == []
    once = table.item("r-1")
    capsys.readouterr()
    clock.now_ms += 60_000
    assert run(processor, redelivered(response), redelivered(query)) == []
    assert table.item("r-1") == once
    assert "QueryEvents" not in metric_values(capsys.readouterr().out), "replays are not counted again"


def test_a_poison_record_fails_alone_when_other_groups_are_fine(processor: Processor, table: Table, clock: FakeClock) -> None:
    poison = sqs_record('{"eventType": "query", "requestId": "r-2", "timestamp": "yesterday"}', group="r-2")
    records = [
        sqs_record(query_body("r-1")),
        poison,
        sqs_record(query_body("r-3")),
        sqs_record(response_body("r-1")),
        sqs_record(response_body("r-3")),
    ]
    assert run(processor, *records) == ids(poison)
    assert "responseLatencyMs" in table.item("r-1") and "responseLatencyMs" in table.item("r-3")
    assert table.item("r-2") is None


def test_a_poison_record_fails_the_rest_of_its_own_group(processor: Processor, table: Table, clock: FakeClock) -> None:
    before = sqs_record(query_body("r-1"))
    poison = sqs_record(response_body("r-1", match_score=250))
    after = sqs_record(response_body("r-1", reasoning="a later, valid response"))
    other = sqs_record(query_body("r-2"))
    assert run(processor, before, poison, other, after) == ids(poison, after)
    item = table.item("r-1")
    assert "query" in item and "matchType" not in item, "the group stopped at the poison record, in order"
    assert table.item("r-2") is not None


def test_a_batch_where_every_record_fails_reports_every_message(
    processor: Processor, table: Table, clock: FakeClock, capsys: pytest.CaptureFixture
) -> None:
    records = [sqs_record("not json", group=f"g-{n}") for n in range(3)] + [sqs_record({"eventType": "query"}, group="g-9")]
    assert run(processor, *records) == ids(*records)
    out = capsys.readouterr().out
    assert metric_values(out)["InvalidEvents"] == [1.0] * 4
    assert [log["level"] for log in log_records(out) if log["message"] == "Invalid event"] == ["ERROR"] * 4
    assert table.count() == 0


INVALID_BODIES = {
    "not json": "Does the candidate know the secret handshake?",
    "truncated json": '{"eventType": "query", "requestId": "r-1", "timestamp": 1, "query": "Does the candidate know the secret handshake?',
    "fails the schema": json.dumps(response_body("r-1", match_type="excellent")),
    "unknown eventType": json.dumps({**query_body("r-1", query=SECRET_QUESTION), "eventType": "feedback"}),
    "missing requestId": json.dumps({k: v for k, v in query_body("r-1", query=SECRET_QUESTION).items() if k != "requestId"}),
    "oversize field": json.dumps(query_body("r-1", query=SECRET_QUESTION + " " * 5000)),
    "not an object": json.dumps([query_body("r-1", query=SECRET_QUESTION)]),
    # Past the JSON parser's recursion limit: the excerpt must not raise RecursionError out of the invalid path.
    "nested 5,000 deep": "[" * 5000 + "]" * 5000,
    "extra field nested 5,000 deep": json.dumps(query_body("r-1", query=SECRET_QUESTION))[:-1] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}",
    "extra field nested 5 deep": json.dumps(query_body("r-1", query=SECRET_QUESTION, x=[[[[[1]]]]])),
    # SQS accepts the escape (plain ASCII) but DynamoDB cannot store a lone surrogate: refused as invalid, not retried.
    "lone surrogate escape": json.dumps(query_body("r-1", query=SECRET_QUESTION + "\ud800")),
    "number DynamoDB cannot store": json.dumps(response_body("r-1", match_score=5e-324)),
    "latency over a day": json.dumps(response_body("r-1", latencyMs=1e200)),
}


@pytest.mark.parametrize("kind", list(INVALID_BODIES))
def test_an_invalid_record_gets_one_error_log_and_one_metric_without_the_question(
    processor: Processor, table: Table, clock: FakeClock, capsys: pytest.CaptureFixture, kind: str
) -> None:
    bad, good = sqs_record(INVALID_BODIES[kind], group="bad"), sqs_record(query_body("r-ok"))
    assert run(processor, bad, good) == ids(bad)
    out = capsys.readouterr().out
    errors = [log for log in log_records(out) if log["level"] == "ERROR"]
    assert len(errors) == 1
    (error,) = errors
    assert error["message"] == "Invalid event" and error["messageId"] == bad["messageId"]
    assert error["validationErrors"] and all({"loc", "type", "msg"} == set(e) for e in error["validationErrors"])
    assert len(error["excerpt"]) <= 200 and error["bodyLength"] == len(bad["body"])
    assert metric_values(out)["InvalidEvents"] == [1.0]
    assert "secret handshake" not in out
    assert table.item("r-ok") is not None


def test_the_question_text_never_reaches_the_logs_even_at_debug(
    processor: Processor, table: Table, clock: FakeClock, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    level = processor.app.logger.log_level
    processor.app.logger.setLevel("DEBUG")
    try:
        assert run(processor, sqs_record(query_body("r-1", query=SECRET_QUESTION)), sqs_record(response_body("r-1"))) == []
    finally:
        processor.app.logger.setLevel(level)
    out = capsys.readouterr().out
    assert "secret handshake" not in out
    stored = [log for log in log_records(out) if log["message"] == "Event stored"]
    assert [log["correlation_id"] for log in stored] == ["r-1", "r-1"]
    assert table.item("r-1")["query"] == {"S": SECRET_QUESTION}


def test_metrics_are_emitted_as_emf_with_the_contract_names(
    processor: Processor, table: Table, clock: FakeClock, capsys: pytest.CaptureFixture
) -> None:
    records = [
        sqs_record(query_body("r-1")),
        sqs_record(query_body("r-2")),
        sqs_record(response_body("r-1", match_type="full", match_score=100)),
        sqs_record(response_body("r-2", match_type="partial", match_score=50)),
        sqs_record(response_body("r-3", match_type="none", match_score=0)),
        sqs_record("{}", group="r-4"),
    ]
    assert run(processor, *records) == ids(records[-1])
    out = capsys.readouterr().out
    values = metric_values(out)
    lag = float(clock.now_ms - BASE_TS)
    assert values == {
        "QueryEvents": [1.0, 1.0],
        "ResponseEvents": [1.0, 1.0, 1.0],
        "MatchFull": [1.0],
        "MatchPartial": [1.0],
        "MatchNone": [1.0],
        "MatchScore": [100.0, 50.0, 0.0],
        "IngestLagMs": [lag, lag, lag - 12, lag - 12, lag - 12],
        "InvalidEvents": [1.0],
    }
    (document,) = emf_documents(out)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE and directive["Dimensions"] == [["service"]] and document["service"] == SERVICE
    units = {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
    assert units == {
        "QueryEvents": "Count",
        "ResponseEvents": "Count",
        "MatchFull": "Count",
        "MatchPartial": "Count",
        "MatchNone": "Count",
        "MatchScore": "None",
        "IngestLagMs": "Milliseconds",
        "InvalidEvents": "Count",
    }


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_a_transient_dynamodb_error_fails_only_the_records_it_touched(
    processor: Processor, table: Table, clock: FakeClock, flaky, capsys: pytest.CaptureFixture, code: str, status: int
) -> None:
    flaky(code, status, request_ids={"r-2"})
    a_query, b_query, b_response, c_query = (
        sqs_record(query_body("r-1")),
        sqs_record(query_body("r-2")),
        sqs_record(response_body("r-2")),
        sqs_record(query_body("r-3")),
    )
    assert run(processor, a_query, b_query, c_query, b_response) == ids(b_query, b_response)
    assert table.item("r-1") is not None and table.item("r-3") is not None and table.item("r-2") is None
    warnings = [log for log in log_records(capsys.readouterr().out) if log["message"] == "Event not stored"]
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING" and warnings[0]["errorCode"] == code
    assert warnings[0]["transient"] is True and warnings[0]["correlation_id"] == "r-2"
    # SQS delivers the failed records again: they now succeed and the item is complete.
    assert run(processor, redelivered(b_query), redelivered(b_response)) == []
    assert table.item("r-2")["responseLatencyMs"] == {"N": "12"}


def test_a_throttled_second_write_is_completed_by_the_retry_and_counted_once(
    processor: Processor, table: Table, clock: FakeClock, flaky, capsys: pytest.CaptureFixture
) -> None:
    """A response that overtakes its query: its conditional write fails, the plain one is throttled."""
    flaky(request_ids={"r-1"}, call="unconditional")
    response = sqs_record(response_body("r-1"))
    assert run(processor, response) == ids(response)
    assert table.item("r-1") is None
    assert run(processor, redelivered(response), sqs_record(query_body("r-1"))) == []
    assert table.item("r-1")["responseLatencyMs"] == {"N": "12"}
    assert metric_values(capsys.readouterr().out)["ResponseEvents"] == [1.0]


class RecordingClient:
    """The real (moto) client; records each ``UpdateItem``'s request id."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def update_item(self, **kwargs: Any) -> dict:
        self.calls.append(kwargs["Key"]["requestId"]["S"])
        return self.client.update_item(**kwargs)


@pytest.fixture
def recording(processor: Processor, table: Table):
    def pin() -> RecordingClient:
        client = RecordingClient(table.client)
        processor.pin(store=processor.store.EventStore(client, table.name, 30))
        return client

    yield pin
    processor.pin(store=None)


def test_a_query_and_its_response_in_one_batch_are_one_write(processor: Processor, table: Table, clock: FakeClock, recording) -> None:
    client = recording()
    assert run(processor, sqs_record(query_body("r-1")), sqs_record(response_body("r-1"))) == []
    assert client.calls == ["r-1"]
    assert table.item("r-1")["responseLatencyMs"] == {"N": "12"}


class HoldingDynamoDB:
    """A DynamoDB endpoint on 127.0.0.1 that answers no ``UpdateItem`` until ``hold`` of them are in flight at once
    (each on its own connection, held at a barrier), then applies each to moto's table and answers what moto
    returned: the writes are real, and a client that waits for one answer before sending the next request
    never gets any (the barrier breaks, the connections close)."""

    def __init__(self, table: Table, hold: int) -> None:
        self.table, self.barrier = table, threading.Barrier(hold, timeout=10)
        self.request_ids: list[str] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as reader:
            while True:
                request_line = reader.readline()
                if not request_line:
                    return
                headers = {}
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                arguments = json.loads(reader.read(int(headers["content-length"])))
                with self.lock:
                    self.request_ids.append(arguments["Key"]["requestId"]["S"])
                try:
                    self.barrier.wait()  # BrokenBarrierError unless every group's write is in flight at once
                except threading.BrokenBarrierError:
                    return
                with self.lock:  # moto's backend is not built for concurrent writers
                    answer = self.table.client.update_item(**arguments)
                body = json.dumps({"Attributes": answer.get("Attributes", {})}).encode()
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {len(body)}\r\n\r\n"
                connection.sendall(head.encode() + body)


def test_message_groups_are_written_concurrently(processor: Processor, table: Table, clock: FakeClock) -> None:
    """Ten single-event groups: every write is in flight at once (the endpoint answers none until it holds all
    ten), so a batch waits for DynamoDB's latency about once, not ten times."""
    server = HoldingDynamoDB(table, 10)
    origin = boto3.session.Session()
    client = origin.client("dynamodb", endpoint_url=server.url, config=processor.clients.DYNAMODB_CONFIG)
    processor.pin(store=processor.store.EventStore(processor.transport.JsonClient(client, origin.get_credentials()), table.name, 30))
    try:
        records = [sqs_record(query_body(f"r-{n}")) for n in range(10)]
        assert run(processor, *records) == []
    finally:
        processor.pin(store=None)
        server.close()
    assert sorted(server.request_ids) == sorted(f"r-{n}" for n in range(10)) and table.count() == 10


def test_the_records_of_one_group_are_written_in_order_and_a_failure_skips_the_rest(
    processor: Processor, table: Table, clock: FakeClock, flaky
) -> None:
    """One message group holding three requests (a producer's custom group key): written in order, and
    after a failure its later records fail (FIFO skip-on-error) while other groups go on."""
    client = flaky("ProvisionedThroughputExceededException", 400, request_ids={"r-2"})
    group = [
        sqs_record(query_body("r-1"), group="session-1"),
        sqs_record(query_body("r-2"), group="session-1"),
        sqs_record(response_body("r-1"), group="session-1"),
    ]
    other = [sqs_record(query_body("r-9"), group="session-9"), sqs_record(response_body("r-9"), group="session-9")]
    assert run(processor, group[0], other[0], group[1], other[1], group[2]) == ids(group[1], group[2])
    assert "responseTimestamp" not in table.item("r-1") and table.item("r-2") is None
    assert table.item("r-9")["responseLatencyMs"] == {"N": "12"}
    assert client.failures == 0


def test_a_non_transient_dynamodb_error_is_logged_as_an_error(
    processor: Processor, table: Table, clock: FakeClock, flaky, capsys: pytest.CaptureFixture
) -> None:
    flaky("AccessDeniedException", 400, request_ids={"r-1"})
    record = sqs_record(query_body("r-1"))
    assert run(processor, record) == ids(record)
    (error,) = [log for log in log_records(capsys.readouterr().out) if log["message"] == "Event not stored"]
    assert error["level"] == "ERROR" and error["transient"] is False and error["errorCode"] == "AccessDeniedException"


def test_records_are_not_started_when_the_invocation_is_about_to_time_out(processor: Processor, table: Table, clock: FakeClock) -> None:
    records = [sqs_record(query_body("r-1")), sqs_record(query_body("r-2"))]
    assert run(processor, *records, context=LambdaContext(remaining_ms=1_000)) == ids(*records)
    assert table.count() == 0


def test_lambdas_handler_builds_one_processor_from_the_environment_at_its_first_invocation(
    processor: Processor, table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda's environment never changes: ``handler.handler`` builds its processor (the store and its client)
    from the environment once, at the execution environment's first invocation (importing the module reads
    nothing); an incomplete environment fails every invocation until it is fixed."""
    monkeypatch.setattr(processor.handler, "_processor", None)  # a new execution environment

    def invoke(request_id: str) -> list[dict]:
        return processor.handler.handler(sqs_event(sqs_record(query_body(request_id))), LambdaContext())["batchItemFailures"]

    try:
        assert invoke("r-1") == []
        first = processor.handler._processor
        assert isinstance(first, processor.handler.Processor) and isinstance(first.store, processor.store.EventStore)
        assert invoke("r-2") == [] and processor.handler._processor is first, "one client per execution environment"
        monkeypatch.setenv("EVENT_RETENTION_DAYS", "400")
        assert invoke("r-3") == [] and processor.handler._processor is first, "the environment is read once"
        assert first.store.retention_days == 30
        first.close()
        monkeypatch.setattr(processor.handler, "_processor", None)
        assert invoke("r-4") == []
        assert processor.handler._processor is not first and processor.handler._processor.store.retention_days == 400
        processor.handler._processor.close()
        monkeypatch.setattr(processor.handler, "_processor", None)
        monkeypatch.delenv("TABLE_NAME")
        for _ in range(2):
            with pytest.raises(processor.clients.ConfigurationError):
                invoke("r-5")
        monkeypatch.setenv("TABLE_NAME", "x")
        monkeypatch.setenv("EVENT_RETENTION_DAYS", "thirty")
        with pytest.raises(processor.clients.ConfigurationError):
            processor.handler.processor_from_environment()
    finally:
        if processor.handler._processor is not None:
            processor.handler._processor.close()


def test_the_processors_parts_not_given_are_built_from_the_environment_once(
    processor: Processor, table: Table, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store (and its client) is built once per processor. A process that changes the environment
    itself (the local stack, a test) builds a new processor."""
    assert run(processor, sqs_record(query_body("r-1"))) == []
    first = processor.app.store
    assert processor.app.store is first, "one client per execution environment"
    monkeypatch.setenv("EVENT_RETENTION_DAYS", "400")
    assert processor.app.store is first, "the environment is read once"
    processor.reset()
    assert processor.app.store is not first and processor.built_store.retention_days == 400
    monkeypatch.delenv("TABLE_NAME")
    processor.reset()
    with pytest.raises(processor.clients.ConfigurationError):
        run(processor, sqs_record(query_body("r-2")))
    monkeypatch.setenv("TABLE_NAME", "x")
    monkeypatch.setenv("EVENT_RETENTION_DAYS", "thirty")
    processor.reset()
    with pytest.raises(processor.clients.ConfigurationError):
        _ = processor.app.store


def test_the_first_invocation_of_an_execution_environment_counts_one_cold_start(
    processor: Processor, table: Table, clock: FakeClock, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's cold-start rate: ``ColdStart`` is 1 in the first invocation only."""
    monkeypatch.setattr(processor.app, "cold_start", True)
    assert run(processor, sqs_record(query_body("r-1"))) == []
    assert metric_values(capsys.readouterr().out)["ColdStart"] == [1.0]
    assert run(processor, sqs_record(query_body("r-2"))) == []
    assert "ColdStart" not in metric_values(capsys.readouterr().out)
