"""The merge into one item per requestId: either order, replays, derived fields."""

from __future__ import annotations

import json

import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from testkit.events import BASE_TS, query_body, response_body
from tests.processor.conftest import FakeClock, Processor, Table

DAY_MS = 86_400_000


def merge(processor: Processor, table: Table, *bodies: dict, now_ms: int = BASE_TS + 250, retention_days: int = 30):
    """Store ``bodies`` (the events of one request) as the processor does: one ``write``."""
    store = processor.store.EventStore(table.client, table.name, retention_days)
    result = store.write([processor.models.parse_event(json.dumps(body)) for body in bodies], now_ms)
    assert result.item == table.item(result.request_id), "the item the store computed is the one DynamoDB (moto) holds"
    return result


def test_number_is_canonical_and_never_exponent(processor: Processor) -> None:
    number = processor.store.number
    assert [number(50), number(50.0), number(87.5), number(1e-7), number(0.1), number(1e20)] == [
        "50",
        "50",
        "87.5",
        "0.0000001",
        "0.1",
        "100000000000000000000",
    ]


def test_utc_day_is_the_utc_date_of_the_timestamp(processor: Processor) -> None:
    assert processor.store.utc_day(BASE_TS) == "2026-01-01"
    assert processor.store.utc_day(BASE_TS - 1) == "2025-12-31"
    assert processor.store.utc_day(0) == "1970-01-01"
    assert processor.store.utc_day(processor.models.MAX_TIMESTAMP_MS) == "9999-12-31"


def test_query_then_response_builds_the_whole_item(processor: Processor, table: Table) -> None:
    first = merge(processor, table, query_body("r-1", source="cv-worker", sessionId="s-1"))
    second = merge(processor, table, response_body("r-1", match_type="partial", match_score=50.0, latencyMs=1.5), now_ms=BASE_TS + 300)
    assert (first.first_delivery, first.writes) == (True, 1)
    assert (second.first_delivery, second.writes) == (True, 1)
    assert table.item("r-1") == {
        "requestId": {"S": "r-1"},
        "day": {"S": "2026-01-01"},
        "schemaVersion": {"N": "1"},
        "source": {"S": "cv-worker"},
        "sessionId": {"S": "s-1"},
        "query": {"S": "Does the candidate know Python?"},
        "queryTimestamp": {"N": str(BASE_TS)},
        "queryIngestedAt": {"N": str(BASE_TS + 250)},
        "matchType": {"S": "partial"},
        "matchScore": {"N": "50"},
        "reasoning": {"S": "matched 1 of 1 skills"},
        "responseTimestamp": {"N": str(BASE_TS + 12)},
        "responseIngestedAt": {"N": str(BASE_TS + 300)},
        "latencyMs": {"N": "1.5"},
        "responseLatencyMs": {"N": "12"},
        "expiresAt": {"N": str(BASE_TS // 1000 + 30 * 86_400)},
    }


def test_either_order_ends_in_the_same_item(processor: Processor, table: Table) -> None:
    # The response straddles midnight: until the query arrives, the item's day is the response's.
    query = query_body("r-1", timestamp=BASE_TS - 5, source="cv-worker")
    response = response_body("r-1", timestamp=BASE_TS + 5, source="other", sessionId="s-9")
    merge(processor, table, query)
    merge(processor, table, response)
    in_order = table.item("r-1")
    table.delete("r-1")
    merge(processor, table, response)
    assert table.item("r-1")["day"] == {"S": "2026-01-01"} and "responseLatencyMs" not in table.item("r-1")
    merge(processor, table, query)
    assert table.item("r-1") == in_order
    assert in_order["day"] == {"S": "2025-12-31"} and in_order["source"] == {"S": "cv-worker"} and in_order["sessionId"] == {"S": "s-9"}
    assert in_order["responseLatencyMs"] == {"N": "10"}


@pytest.mark.parametrize("order", ["QR", "RQ"])
def test_replays_leave_the_item_exactly_as_one_delivery(processor: Processor, table: Table, order: str) -> None:
    bodies = {"Q": query_body("r-1"), "R": response_body("r-1", latencyMs=3)}
    for step, key in enumerate(order):
        merge(processor, table, bodies[key], now_ms=BASE_TS + 100 + step)
    once = table.item("r-1")
    for step, key in enumerate(order + order[::-1]):
        result = merge(processor, table, bodies[key], now_ms=BASE_TS + 10_000 + step)
        assert result.first_delivery is False
        assert table.item("r-1") == once


def test_expires_at_follows_the_retention_days(processor: Processor, table: Table) -> None:
    merge(processor, table, response_body("r-1"), retention_days=400)
    assert table.item("r-1")["expiresAt"] == {"N": str((BASE_TS + 12) // 1000 + 400 * 86_400)}
    merge(processor, table, query_body("r-1"), retention_days=400)  # the query's timestamp wins
    assert table.item("r-1")["expiresAt"] == {"N": str(BASE_TS // 1000 + 400 * 86_400)}


def test_a_changed_query_timestamp_recomputes_the_latency(processor: Processor, table: Table) -> None:
    merge(processor, table, query_body("r-1"))
    merge(processor, table, response_body("r-1", timestamp=BASE_TS + 40))
    merge(processor, table, query_body("r-1", timestamp=BASE_TS + 10))
    assert table.item("r-1")["responseLatencyMs"] == {"N": "30"}


def test_the_byday_index_finds_the_item(processor: Processor, table: Table, clock: FakeClock) -> None:
    merge(processor, table, query_body("r-1", timestamp=BASE_TS + DAY_MS))
    found = table.client.query(
        TableName=table.name,
        IndexName="byDay",
        KeyConditionExpression="#day = :day",
        ExpressionAttributeNames={"#day": "day"},
        ExpressionAttributeValues={":day": {"S": "2026-01-02"}},
    )["Items"]
    assert [item["requestId"]["S"] for item in found] == ["r-1"]


def test_the_store_client_makes_exactly_three_attempts(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's ``retries={"max_attempts": N}`` means N *retries*; ``total_max_attempts`` counts attempts
    including the first (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html,
    botocore ``Config``: "total_max_attempts ... including the initial request"). The processor's client
    makes three attempts per write, then the record fails and SQS redelivers it. Counted on the wire
    against an endpoint that never answers (the read timeout shortened; the retry settings are the real ones)."""
    from testkit.faults import SilentEndpoint

    assert processor.clients.DYNAMODB_CONFIG.retries == {"mode": "standard", "total_max_attempts": 3}
    with SilentEndpoint() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        quick = processor.clients.DYNAMODB_CONFIG.merge(Config(read_timeout=0.3, connect_timeout=0.3))
        monkeypatch.setattr(processor.store, "DYNAMODB_CONFIG", quick)
        store = processor.store.store_from_environment()
        with pytest.raises(ReadTimeoutError):
            store.write([processor.models.parse_event(json.dumps(query_body("r-1")))], 1)
        assert server.actions == ["UpdateItem"] * 3


class CountingClient:
    """The real (moto) client, counting ``UpdateItem`` requests."""

    def __init__(self, client) -> None:
        self.client, self.updates = client, 0

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def update_item(self, **kwargs):
        self.updates += 1
        return self.client.update_item(**kwargs)


def write_counted(processor: Processor, table: Table, *bodies: dict, now_ms: int = BASE_TS + 250):
    client = CountingClient(table.client)
    store = processor.store.EventStore(client, table.name, 30)
    result = store.write([processor.models.parse_event(json.dumps(body)) for body in bodies], now_ms)
    assert result.writes == client.updates
    assert result.item == table.item(result.request_id), "the item the store computed is the one DynamoDB (moto) holds"
    return result


def test_both_events_together_are_one_write_of_the_whole_item(processor: Processor, table: Table) -> None:
    query, response = query_body("r-1", source="cv-worker"), response_body("r-1", latencyMs=1.5)
    result = write_counted(processor, table, query, response)
    assert result.writes == 1 and result.first == {"query", "response"}
    together = table.item("r-1")
    assert together["responseLatencyMs"] == {"N": "12"} and together["query"] == {"S": query["query"]}
    table.delete("r-1")
    write_counted(processor, table, query)
    write_counted(processor, table, response)
    assert table.item("r-1") == together, "together or apart, the same item"


def test_apart_in_the_usual_order_each_event_is_one_write(processor: Processor, table: Table) -> None:
    assert write_counted(processor, table, query_body("r-1")).writes == 1
    assert "responseLatencyMs" not in table.item("r-1")
    result = write_counted(processor, table, response_body("r-1"))
    assert result.writes == 1 and result.first == {"response"}
    assert table.item("r-1")["responseLatencyMs"] == {"N": "12"}


def test_a_response_that_overtakes_its_query_costs_one_failed_condition_each(processor: Processor, table: Table) -> None:
    """Documented price of the rare order: a conditional write that fails (it still costs a write) and the real one."""
    first = write_counted(processor, table, response_body("r-1"))
    assert (first.writes, first.first) == (2, {"response"})
    assert "responseLatencyMs" not in table.item("r-1")
    second = write_counted(processor, table, query_body("r-1"))
    assert (second.writes, second.first) == (2, {"query"})
    assert table.item("r-1")["responseLatencyMs"] == {"N": "12"}


@pytest.mark.parametrize("first", ["together", "Q", "R"])
def test_replays_are_never_first_deliveries(processor: Processor, table: Table, first: str) -> None:
    query, response = query_body("r-1"), response_body("r-1")
    bodies = {"together": (query, response), "Q": (query,), "R": (response,)}[first]
    merge(processor, table, *bodies)
    merge(processor, table, query, response)
    once = table.item("r-1")
    for replay in ((query,), (response,), (query, response), (response, query)):
        result = merge(processor, table, *replay, now_ms=BASE_TS + 99_999)
        assert result.first == set() and result.first_delivery is False
        assert table.item("r-1") == once


def test_a_repeated_event_type_in_one_write_keeps_the_last(processor: Processor, table: Table) -> None:
    merge(processor, table, query_body("r-1", query="first"), query_body("r-1", query="second"))
    assert table.item("r-1")["query"] == {"S": "second"}
    with pytest.raises(ValueError, match="different requests"):
        merge(processor, table, query_body("r-1"), response_body("r-2"))


def test_one_update_description_renders_the_expression_and_gives_the_item(processor: Processor) -> None:
    """The write's description renders its ``UpdateExpression`` and applies itself to the old item as DynamoDB
    does (every operand reads the item before the write); ``merge`` above holds the result equal to moto's item."""
    store = processor.store
    update = store.Update()
    update.set("query", {"S": "q"})
    update.set("queryIngestedAt", {"N": "5"}, keep_existing=True)
    update.difference("responseLatencyMs", store.VALUE_MINUS, {"N": "12"}, "queryTimestamp")
    update.difference("gap", store.MINUS_VALUE, {"N": "0.5"}, "queryTimestamp")
    update.require("attribute_exists", "queryTimestamp")
    assert update.arguments() == {
        "UpdateExpression": "SET #query = :query, #queryIngestedAt = if_not_exists(#queryIngestedAt, :queryIngestedAt), "
        "#responseLatencyMs = :responseLatencyMs - #queryTimestamp, #gap = #queryTimestamp - :gap",
        "ExpressionAttributeNames": {
            "#query": "query",
            "#queryIngestedAt": "queryIngestedAt",
            "#responseLatencyMs": "responseLatencyMs",
            "#queryTimestamp": "queryTimestamp",
            "#gap": "gap",
        },
        "ExpressionAttributeValues": {
            ":query": {"S": "q"},
            ":queryIngestedAt": {"N": "5"},
            ":responseLatencyMs": {"N": "12"},
            ":gap": {"N": "0.5"},
        },
        "ConditionExpression": "attribute_exists(#queryTimestamp)",
    }
    key = {"requestId": {"S": "r-1"}}
    old = {"queryTimestamp": {"N": "2"}, "queryIngestedAt": {"N": "1"}}
    assert update.applied_to(old, key) == {
        "requestId": {"S": "r-1"},
        "queryTimestamp": {"N": "2"},
        "queryIngestedAt": {"N": "1"},
        "query": {"S": "q"},
        "responseLatencyMs": {"N": "10"},
        "gap": {"N": "1.5"},
    }
    with pytest.raises(ValueError, match="queryTimestamp is missing"):  # DynamoDB refuses it; the write's condition prevents it
        update.applied_to({}, key)


def test_the_request_body_is_botocores_byte_for_byte(processor: Processor) -> None:
    """``Update.request_body`` (what the store hands ``transport.JsonClient``) is ``json.dumps`` of the request's
    arguments, and the body botocore's own client sends for them, for every update the store makes and for texts
    that need escaping; an update that names an attribute twice still renders as a dict of them does."""
    from tests.processor.test_processor_transport import captured, session

    store, models = processor.store, processor.models
    texts = {"query": 'Straße "quoted" \\ back\tslash 🐍 \u2028 \x7f\r\n', "sessionId": "s-é", "source": "</script>"}
    query = models.parse_event(json.dumps(query_body('r-"1\\', **texts)))
    response = models.parse_event(json.dumps(response_body('r-"1\\', latencyMs=1.5, model="m-\u4e2d", sessionId="s-é")))
    updates = [
        store.build_update(query, response, BASE_TS + 250, 30, latency="events"),
        store.build_update(None, response, BASE_TS + 250, 30, latency="stored query"),
        store.build_update(None, response, BASE_TS + 250, 30, latency="none"),
        store.build_update(query, None, BASE_TS + 250, 30, latency="none"),
        store.build_update(query, None, BASE_TS + 250, 30, latency="stored response"),
    ]
    updates[1].require("attribute_exists", "queryTimestamp")
    updates[3].require("attribute_not_exists", "responseTimestamp")
    operand_first = store.Update()  # an operand named before it is assigned, and a condition on an assigned attribute
    operand_first.difference("gap", store.MINUS_VALUE, {"N": "1"}, "day")
    operand_first.set("day", {"S": "d"})
    operand_first.require("attribute_exists", "gap")
    twice = store.Update()
    twice.set("day", {"S": "first"})
    twice.set("day", {"S": "second"})
    key = {"requestId": {"S": query.requestId}}
    reference = session().client("dynamodb", config=processor.clients.DYNAMODB_CONFIG)
    sent = captured(reference)
    for update in [*updates, operand_first, twice]:
        arguments = update.request_arguments("events-table", key)
        body = update.request_body("events-table", key)
        assert body == json.dumps(arguments).encode()
        reference.update_item(**arguments)
        assert body == sent[-1].body
    assert b'"ReturnValuesOnConditionCheckFailure": "ALL_OLD"' in updates[1].request_body("t", key)
