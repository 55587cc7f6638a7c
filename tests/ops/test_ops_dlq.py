"""dlq inspect and dlq redrive against a moto stack, including the round trip back into the table."""

from __future__ import annotations

import json
import time

import pytest

from chat_analytics_ops import dlq
from chat_analytics_ops.errors import EXIT_EMPTY
from testkit.events import query_event, response_event
from tests.ops.conftest import Cli, Processor, Stack, dead_letter

NOW_MS = time.time_ns() // 1_000_000
LONG_QUESTION = "Does the candidate have production experience with Kubernetes operators " + "and more " * 60


def test_inspect_shows_ids_counts_and_a_short_excerpt_without_consuming(stack: Stack, cli: Cli) -> None:
    dead_letter(stack, query_event("req-1", NOW_MS, LONG_QUESTION))
    result = cli("dlq", "inspect")
    assert result.code == 0, result.err
    assert "1 message in" in result.out
    assert "group req-1" in result.out
    assert "dedup req-1:query" in result.out
    assert "receives 3" in result.out  # the three failed deliveries, not this look
    assert "Does the candidate have" not in result.out  # the question is shown as its length only
    assert f"<question, {len(LONG_QUESTION)} characters>" in result.out
    shown = cli("dlq", "inspect", "--show-text")
    assert "Does the candidate have" in shown.out
    assert LONG_QUESTION.strip() not in shown.out
    assert "and more and more and more" not in shown.out  # even shown, the question is cut to a short excerpt
    # still there, and visible again at once (a FIFO group is not left locked)
    assert stack.depth(stack.dlq_url) == 1
    again = cli("dlq", "inspect", "--json")
    assert again.code == 0, again.err
    assert json.loads(again.out)["count"] == 1


def test_inspect_json_names_the_schema_violation(stack: Stack, cli: Cli) -> None:
    bad = response_event("req-2", NOW_MS, "maybe", 140)
    stack.send("this is not json {", group="req-3", dedup="req-3:query")
    dead_letter(stack, bad)
    result = cli("dlq", "inspect", "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    by_group = {m["messageGroupId"]: m for m in payload["messages"]}
    assert set(by_group) == {"req-2", "req-3"}
    error = by_group["req-2"]["validationError"]
    assert "matchType" in error and "matchScore" in error
    assert by_group["req-2"]["eventType"] == "response"
    assert by_group["req-2"]["messageDeduplicationId"] == "req-2:response"
    assert by_group["req-2"]["receiveCount"] == 3
    assert by_group["req-2"]["ageSeconds"] >= 0
    assert by_group["req-3"]["validationError"].startswith("not JSON")
    assert "Body" not in json.dumps(payload) and "receipt" not in json.dumps(payload).lower()
    assert stack.depth(stack.dlq_url) == 2


def test_inspect_max_limits_and_text_flags_invalid_events(stack: Stack, cli: Cli) -> None:
    dead_letter(stack, *(query_event(f"req-{i}", NOW_MS, "", source="cv-worker") for i in range(4)))
    result = cli("dlq", "inspect", "--max", "2")
    assert result.code == 0, result.err
    assert "2 messages in" in result.out
    assert "query: shorter than 1 characters" in result.out
    assert "fail the event schema" in result.out
    assert stack.depth(stack.dlq_url) == 4


def test_inspect_empty_dlq_is_one_line_and_exit_3(stack: Stack, cli: Cli) -> None:
    result = cli("dlq", "inspect")
    assert result.code == EXIT_EMPTY
    assert result.out == ""
    assert result.err.strip().count("\n") == 0
    assert "dead-letter queue is empty" in result.err


def test_inspect_json_prints_json_in_every_case(stack: Stack, cli: Cli) -> None:
    """--json prints the object even when there is nothing to list; the exit status and the one line on
    stderr say why (ops/README.md): 3 for an empty DLQ, 1 when its messages are all in flight."""
    empty = cli("dlq", "inspect", "--json")
    assert empty.code == EXIT_EMPTY
    assert json.loads(empty.out) == {"queueUrl": stack.dlq_url, "count": 0, "approximateNumberOfMessages": 0, "messages": []}
    assert empty.err.strip().count("\n") == 0 and "dead-letter queue is empty" in empty.err

    fill_dlq(stack, [["query"]])
    stack.sqs.receive_message(QueueUrl=stack.dlq_url, VisibilityTimeout=60)  # someone else holds it
    held = cli("dlq", "inspect", "--json")
    assert held.code == 1
    assert json.loads(held.out)["messages"] == []
    assert held.err.strip() == (
        "chat-analytics: the dead-letter queue's 1 message is in flight (another inspect or redrive holds it); try again in a minute"
    )


def test_inspect_says_what_it_could_not_list(stack: Stack, cli: Cli) -> None:
    """One request with 12 messages: SQS returns at most 10 of one group together and none of the rest while
    they are held, so two cannot be seen without deleting. They are not silently missing: stderr says so."""
    fill_dlq(stack, [["query"] * 12])
    result = cli("dlq", "inspect", "--max", "100")
    assert result.code == 0
    if "12 messages in" in result.out:
        # On a slow machine the first hold can run out during the look: the two come back and are listed too.
        assert "could not be received" not in result.err
    else:
        assert "10 messages in" in result.out
        assert result.err.strip().startswith("chat-analytics: listed 10 of about 12 messages: 2 could not be received")
    assert queue_counts(stack, stack.dlq_url) == (12, 0)


def test_redrive_dry_run_moves_nothing(stack: Stack, cli: Cli) -> None:
    dead_letter(stack, query_event("req-1", NOW_MS, "Python?"), query_event("req-2", NOW_MS, "Go?"))
    result = cli("dlq", "redrive", "--dry-run")
    assert result.code == 0, result.err
    assert "would move 2 messages" in result.out
    assert stack.depth(stack.dlq_url) == 2
    assert stack.depth(stack.events_url) == 0
    assert cli("dlq", "inspect").code == 0  # nothing left locked


def test_poisoned_event_fixed_and_redriven_ends_as_one_item(stack: Stack, cli: Cli) -> None:
    """The processor was broken when the response came; after the fix, a redrive completes the item."""
    fixed = Processor(stack)
    stack.send(query_event("req-42", NOW_MS - 900, "Does she know Rust?"))
    assert fixed.drain() == 1
    dead_letter(stack, response_event("req-42", NOW_MS, "partial", 55.5, latencyMs=12))
    inspected = json.loads(cli("dlq", "inspect", "--json").out)
    assert inspected["messages"][0]["validationError"] is None  # a valid event: redrive is the fix

    result = cli("dlq", "redrive", "--json")
    assert result.code == 0, result.err
    moved = json.loads(result.out)
    assert moved["method"] == "manual"  # moto has no StartMessageMoveTask: the fallback ran
    assert [m["messageGroupId"] for m in moved["moved"]] == ["req-42"]
    assert moved["moved"][0]["messageDeduplicationId"] == "req-42:response"
    assert stack.depth(stack.dlq_url) == 0

    assert fixed.drain() == 1
    items = stack.items()
    assert len(items) == 1
    item = items[0]
    assert item["requestId"] == {"S": "req-42"}
    assert item["query"] == {"S": "Does she know Rust?"}
    assert item["matchType"] == {"S": "partial"}
    assert item["responseLatencyMs"] == {"N": "900"}

    # safe to repeat: nothing left to move is reported, not an error
    again = cli("dlq", "redrive")
    assert again.code == EXIT_EMPTY
    assert "empty" in again.err
    assert len(stack.items()) == 1


def test_redrive_keeps_order_of_a_group_and_honours_max(stack: Stack, cli: Cli) -> None:
    dead_letter(
        stack,
        query_event("req-7", NOW_MS, "Kotlin?"),
        response_event("req-7", NOW_MS + 5, "none", 3),
        query_event("req-8", NOW_MS, "Java?"),
    )
    result = cli("dlq", "redrive", "--max", "2")
    assert result.code == 0, result.err
    assert "moved 2 messages" in result.out
    assert stack.depth(stack.dlq_url) == 1
    assert stack.depth(stack.events_url) == 2
    fixed = Processor(stack)
    fixed.drain()
    assert cli("dlq", "redrive").code == 0
    fixed.drain()
    items = {item["requestId"]["S"]: item for item in stack.items()}
    assert set(items) == {"req-7", "req-8"}
    assert items["req-7"]["matchType"] == {"S": "none"}
    assert stack.depth(stack.dlq_url) == 0


def test_redrive_move_task_method_reports_unsupported_endpoint(stack: Stack, cli: Cli) -> None:
    dead_letter(stack, query_event("req-1", NOW_MS, "Python?"))
    result = cli("dlq", "redrive", "--method", "move-task")
    assert result.code == 1
    assert "StartMessageMoveTask" in result.err
    assert "Traceback" not in result.err
    assert stack.depth(stack.dlq_url) == 1
    conflict = cli("dlq", "redrive", "--method", "move-task", "--max", "1")
    assert conflict.code == 1 and "cannot be combined" in conflict.err


def test_redrive_moves_only_what_passes_the_contract_and_leaves_the_rest(stack: Stack, cli: Cli) -> None:
    secret_question = "What is the candidate's home address?"
    dead_letter(
        stack,
        query_event("req-ok", NOW_MS, "Python?"),
        response_event("req-bad", NOW_MS, "maybe", 140),  # fails the contract: would dead-letter again
        query_event("req-neg", -5, secret_question),  # fails too; its question must not be printed
    )
    stack.send("this is not json {", group="req-raw", dedup="req-raw:query")
    dead_letter(stack)
    assert stack.depth(stack.dlq_url) == 4

    dry = cli("dlq", "redrive", "--dry-run")
    assert dry.code == 0, dry.err
    assert "would move 1 message to" in dry.out and "would leave 3 messages" in dry.out
    assert stack.depth(stack.dlq_url) == 4 and stack.depth(stack.events_url) == 0

    result = cli("dlq", "redrive")
    assert result.code == 0, result.err
    assert "moved 1 message to" in result.out
    assert "left 3 messages in the DLQ that fail the event contract" in result.out and "--include-invalid" in result.out
    reasons = [line for line in result.out.splitlines() if "reason:" in line]
    assert len(reasons) == 3
    assert any("group req-bad" in line and "matchType" in line and "matchScore" in line for line in reasons)
    assert any("group req-neg" in line and "timestamp" in line for line in reasons)
    assert any("group req-raw" in line and "not JSON" in line for line in reasons)
    assert secret_question not in result.out and "address" not in result.out
    assert stack.depth(stack.dlq_url) == 3  # the invalid ones stay, visible again at once
    assert stack.depth(stack.events_url) == 1
    Processor(stack).drain()
    assert [item["requestId"]["S"] for item in stack.items()] == ["req-ok"]

    # Only invalid ones left: nothing moves, they are listed again (as JSON here), and the queue keeps them.
    again = cli("dlq", "redrive", "--json")
    assert again.code == 0, again.err
    payload = json.loads(again.out)
    assert payload["moved"] == [] and payload["leftCount"] == 3
    assert {m["messageGroupId"] for m in payload["left"]} == {"req-bad", "req-neg", "req-raw"}
    assert all(m["reason"] for m in payload["left"])
    assert stack.depth(stack.dlq_url) == 3

    forced = cli("dlq", "redrive", "--include-invalid", "--json")
    assert forced.code == 0, forced.err
    assert len(json.loads(forced.out)["moved"]) == 3 and json.loads(forced.out)["leftCount"] == 0
    assert stack.depth(stack.dlq_url) == 0 and stack.depth(stack.events_url) == 3


def test_redrive_max_counts_moved_messages_not_the_invalid_ones(stack: Stack, cli: Cli) -> None:
    dead_letter(
        stack, response_event("req-bad", NOW_MS, "maybe", 1), query_event("req-1", NOW_MS, "Go?"), query_event("req-2", NOW_MS, "C?")
    )
    result = cli("dlq", "redrive", "--max", "2", "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert sorted(m["messageGroupId"] for m in payload["moved"]) == ["req-1", "req-2"]
    assert [m["messageGroupId"] for m in payload["left"]] == ["req-bad"]
    assert stack.depth(stack.dlq_url) == 1


def test_move_task_method_refuses_a_queue_with_invalid_messages(stack: Stack, cli: Cli) -> None:
    dead_letter(stack, query_event("req-1", NOW_MS, "Python?"), response_event("req-bad", NOW_MS, "maybe", 1))
    result = cli("dlq", "redrive", "--method", "move-task")
    assert result.code == 1
    assert result.err.strip().startswith("chat-analytics: 1 of 2 messages fails the event contract and StartMessageMoveTask cannot")
    assert "--method manual" in result.err and "--include-invalid" in result.err
    assert stack.depth(stack.dlq_url) == 2 and stack.depth(stack.events_url) == 0
    assert cli("dlq", "inspect").code == 0  # the look released them: nothing left locked


class MoveTaskSqs:
    """An SQS endpoint that has StartMessageMoveTask (AWS does; moto does not): records the calls. Its DLQ
    holds ``bodies``; a receive returns them all once (held), a visibility change releases them."""

    def __init__(self, bodies: list[str]) -> None:
        self.bodies = bodies
        self.calls: list[dict] = []
        self.received = 0
        self.released: list[str] = []

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict:
        name = QueueUrl.rsplit("/", 1)[-1]
        visible = str(len(self.bodies)) if "dlq" in name else "0"
        return {
            "Attributes": {
                "QueueArn": f"arn:aws:sqs:us-east-1:123456789012:{name}",
                "ApproximateNumberOfMessages": visible,
                "ApproximateNumberOfMessagesNotVisible": "0",
                "FifoQueue": "true",
            }
        }

    def receive_message(self, **kwargs) -> dict:
        if self.received:
            return {"Messages": []}
        self.received += 1
        return {
            "Messages": [
                {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body, "Attributes": {"MessageGroupId": f"g{i}"}}
                for i, body in enumerate(self.bodies)
            ]
        }

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.released += [entry["ReceiptHandle"] for entry in Entries]
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}

    def start_message_move_task(self, **kwargs: str) -> dict:
        self.calls.append(kwargs)
        return {"TaskHandle": "handle-1"}


BASE = "https://sqs.us-east-1.amazonaws.com/123456789012/ChatAnalytics-prod"


def test_auto_uses_the_sqs_move_task_where_the_endpoint_has_it_and_every_message_passes() -> None:
    from chat_analytics_ops.dlq import redrive

    sqs = MoveTaskSqs([json.dumps(query_event(f"req-{i}", NOW_MS, "Python?")) for i in range(7)])
    result = redrive(sqs, f"{BASE}-dlq.fifo", f"{BASE}-events.fifo", limit=None, dry_run=False)
    assert result.method == "move-task"
    assert result.task_handle == "handle-1" and result.approximate_count == 7
    assert sorted(sqs.released) == [f"r{i}" for i in range(7)]  # looked at, judged, released before the move
    assert sqs.calls == [
        {
            "SourceArn": "arn:aws:sqs:us-east-1:123456789012:ChatAnalytics-prod-dlq.fifo",
            "DestinationArn": "arn:aws:sqs:us-east-1:123456789012:ChatAnalytics-prod-events.fifo",
        }
    ]


def test_move_task_is_not_started_for_a_queue_with_invalid_messages_unless_forced() -> None:
    from chat_analytics_ops.dlq import redrive
    from chat_analytics_ops.errors import OpsError

    bodies = [json.dumps(query_event("req-1", NOW_MS, "Python?")), "not json"]
    refused = MoveTaskSqs(bodies)
    with pytest.raises(OpsError, match="1 of 2 message"):
        redrive(refused, f"{BASE}-dlq.fifo", f"{BASE}-events.fifo", limit=None, dry_run=False, method="move-task")
    assert refused.calls == []

    forced = MoveTaskSqs(bodies)
    result = redrive(forced, f"{BASE}-dlq.fifo", f"{BASE}-events.fifo", limit=None, dry_run=False, include_invalid=True)
    assert result.method == "move-task" and len(forced.calls) == 1
    assert forced.received == 0  # forced: no look needed


# --- FIFO groups across receives ------------------------------------------------------------------------
#
# SQS FIFO returns a group's later message only together with the earlier ones (as many of one group as
# fit in the 10 of a receive) or once they are deleted, never while they are in flight: "FIFO queue
# delivery logic in Amazon SQS", receiving messages,
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html
# ("you can't receive additional messages with the same message group ID in subsequent requests unless
# the currently received messages are deleted or they become visible again"). moto does the same. So a
# look that holds what it received never sees the second event of a request whose first event came last
# in a full receive. The DLQs below are filled directly, in the order given.


def fill_dlq(stack: Stack, requests: list[list[str]]) -> list[str]:
    """Each request's events (``query``/``response``) sent to the DLQ as one FIFO group, in order; returns the
    group ids in order."""
    groups = []
    for index, kinds in enumerate(requests):
        group = f"req-{index:03d}"
        groups.append(group)
        for offset, kind in enumerate(kinds):
            event = (
                query_event(group, NOW_MS + offset, "Python?") if kind == "query" else response_event(group, NOW_MS + offset, "full", 90)
            )
            stack.sqs.send_message(
                QueueUrl=stack.dlq_url,
                MessageBody=json.dumps(event),
                MessageGroupId=group,
                MessageDeduplicationId=f"{group}:{kind}:{offset}",
            )
    return groups


def queue_counts(stack: Stack, url: str) -> tuple[int, int]:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


# 9 one-event requests, then one with both events: a receive of 10 ends with that request's query.
ELEVEN = [["query"]] * 9 + [["query", "response"]]
# One lone query, then 21 requests with both events, then a lone query: 44 messages, and every receive of
# 10 (ten messages from the start) ends in the middle of a request.
FORTY_FOUR = [["query"]] + [["query", "response"]] * 21 + [["query"]]


@pytest.mark.parametrize("requests", [ELEVEN, FORTY_FOUR], ids=["11-messages", "44-messages"])
def test_inspect_lists_every_message_of_groups_that_straddle_receives(stack: Stack, cli: Cli, requests) -> None:
    total = sum(len(kinds) for kinds in requests)
    fill_dlq(stack, requests)
    result = cli("dlq", "inspect", "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert payload["count"] == total == payload["approximateNumberOfMessages"]
    ids = [message["messageId"] for message in payload["messages"]]
    assert len(set(ids)) == total  # every message, once
    kinds = {(m["messageGroupId"], m["eventType"]) for m in payload["messages"]}
    assert len(kinds) == total
    assert queue_counts(stack, stack.dlq_url) == (total, 0)  # all left in the queue, none left locked
    text = cli("dlq", "inspect", "--max", "100")
    assert text.code == 0 and f"{total} messages in" in text.out and text.err == ""


def test_redrive_dry_run_lists_every_message_and_redrive_moves_every_message(stack: Stack, cli: Cli) -> None:
    groups = fill_dlq(stack, FORTY_FOUR)
    dry = cli("dlq", "redrive", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    payload = json.loads(dry.out)
    assert len(payload["moved"]) == 44 and payload["left"] == [] and payload["heldBack"] == []
    assert queue_counts(stack, stack.dlq_url) == (44, 0) and stack.depth(stack.events_url) == 0

    moved = cli("dlq", "redrive", "--json")
    assert moved.code == 0, moved.err
    payload = json.loads(moved.out)
    assert len({m["messageId"] for m in payload["moved"]}) == 44
    assert stack.depth(stack.dlq_url) == 0 and stack.depth(stack.events_url) == 44
    # Each request's query went before its response (a group keeps its order): the processor completes them all.
    Processor(stack).drain(rounds=10)
    items = {item["requestId"]["S"]: item for item in stack.items()}
    assert set(items) == set(groups)
    assert sum(1 for item in items.values() if "matchType" in item) == 21


def test_redrive_holds_back_the_rest_of_a_group_behind_a_message_that_stays(stack: Stack, cli: Cli) -> None:
    """The first event of a request fails the contract and stays: its valid second event stays behind it
    (moved, it would overtake it), and is listed as such instead of being left unsaid."""
    fill_dlq(stack, [["query"]] * 3)
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody="not json", MessageGroupId="req-bad", MessageDeduplicationId="req-bad:query")
    event = response_event("req-bad", NOW_MS, "full", 90)
    stack.sqs.send_message(
        QueueUrl=stack.dlq_url, MessageBody=json.dumps(event), MessageGroupId="req-bad", MessageDeduplicationId="req-bad:response"
    )
    for dry_run in (True, False):
        result = cli("dlq", "redrive", *(["--dry-run"] if dry_run else []))
        assert result.code == 0, result.err
        verb = "would move" if dry_run else "moved"
        assert f"{verb} 3 messages" in result.out
        assert f"{'would leave' if dry_run else 'left'} 1 message in the DLQ that fails the event contract" in result.out
        assert "1 message in the DLQ behind an earlier message of its group that stays" in result.out
        assert [line for line in result.out.splitlines() if "group req-bad" in line and "response" in line]
    assert queue_counts(stack, stack.dlq_url) == (2, 0) and stack.depth(stack.events_url) == 3


class SimulatedHolds:
    """The test stack's SQS client on a simulated clock (``dlq.clock`` reads it): each receive takes
    ``step_s``, and a received message becomes visible again when its hold ends on that clock (its
    ``VisibilityTimeout``, or a later ``ChangeMessageVisibility``), as in a look longer than ``HOLD_SECONDS``.
    Like SQS, it refuses to change the visibility of a message that is no longer in flight."""

    def __init__(self, sqs, step_s: float) -> None:
        self.sqs = sqs
        self.step_s = step_s
        self.now = 0.0
        self.until: dict[str, float] = {}  # receipt handle of each message in flight -> when its hold ends
        self.expired = 0  # holds that ran out
        self.extended = 0  # holds extended
        self.returned: list[str] = []  # every MessageId any receive returned, repeats included

    def __getattr__(self, name: str):
        return getattr(self.sqs, name)

    def clock(self) -> float:
        return self.now

    def receive_message(self, **kwargs):
        self.now += self.step_s
        due = [handle for handle, until in self.until.items() if until <= self.now]
        for handle in due:
            del self.until[handle]
        for start in range(0, len(due), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(due[start : start + 10])]
            self.sqs.change_message_visibility_batch(QueueUrl=kwargs["QueueUrl"], Entries=entries)
        self.expired += len(due)
        response = self.sqs.receive_message(**kwargs)
        for message in response.get("Messages", []):
            self.until[message["ReceiptHandle"]] = self.now + kwargs["VisibilityTimeout"]
            self.returned.append(message["MessageId"])
        return response

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        in_flight = [entry for entry in Entries if entry["ReceiptHandle"] in self.until]
        failed = [
            {"Id": entry["Id"], "SenderFault": True, "Code": "MessageNotInflight", "Message": "not in flight"}
            for entry in Entries
            if entry["ReceiptHandle"] not in self.until
        ]
        if in_flight:
            self.sqs.change_message_visibility_batch(QueueUrl=QueueUrl, Entries=in_flight)
        for entry in in_flight:
            if entry["VisibilityTimeout"] == 0:
                del self.until[entry["ReceiptHandle"]]
            else:
                self.until[entry["ReceiptHandle"]] = self.now + entry["VisibilityTimeout"]
                self.extended += 1
        return {"Successful": [{"Id": entry["Id"]} for entry in in_flight], "Failed": failed}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        for entry in Entries:
            self.until.pop(entry["ReceiptHandle"], None)
        return self.sqs.delete_message_batch(QueueUrl=QueueUrl, Entries=Entries)


def simulated(stack: Stack, monkeypatch: pytest.MonkeyPatch, step_s: float) -> SimulatedHolds:
    sqs = SimulatedHolds(stack.sqs, step_s)
    monkeypatch.setattr(dlq, "clock", sqs.clock)
    return sqs


def test_a_look_longer_than_one_hold_lists_every_message_once(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each receive takes 20 s here: a hold (HOLD_SECONDS, 60 s) lasts three receives, fewer than the look
    needs. The look extends its holds before they end, so nothing comes back in its way; every message
    is listed once and nothing is left locked."""
    fill_dlq(stack, FORTY_FOUR)
    sqs = simulated(stack, monkeypatch, step_s=dlq.HOLD_SECONDS / 3)
    seen = dlq.inspect(sqs, stack.dlq_url, 1000)
    assert sqs.now > dlq.HOLD_SECONDS  # the look outlasted one hold
    assert sqs.extended and sqs.expired == 0  # holds were extended, none ran out
    ids = [letter.message_id for letter in seen.letters]
    assert len(ids) == len(set(ids)) == 44 and seen.missing == 0
    assert queue_counts(stack, stack.dlq_url) == (44, 0)


def test_holds_that_run_out_anyway_end_the_look_with_what_it_saw_once(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receive that takes longer than a hold (70 s): every message is visible again at the next receive,
    and the same ten come back each time. The look stops (no endless loop), lists each message it saw
    once, says how many it could not see, and leaves nothing locked."""
    fill_dlq(stack, FORTY_FOUR)
    sqs = simulated(stack, monkeypatch, step_s=dlq.HOLD_SECONDS + 10)
    seen = dlq.inspect(sqs, stack.dlq_url, 1000)
    assert sqs.expired and len(sqs.returned) > len(set(sqs.returned))  # holds ran out and messages came back
    ids = [letter.message_id for letter in seen.letters]
    assert len(ids) == len(set(ids)) and seen.missing == 44 - len(ids) > 0
    assert queue_counts(stack, stack.dlq_url) == (44, 0)


def test_a_redrive_longer_than_one_hold_moves_every_message_once(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    fill_dlq(stack, FORTY_FOUR)
    sqs = simulated(stack, monkeypatch, step_s=dlq.HOLD_SECONDS / 3)
    result = dlq.redrive(sqs, stack.dlq_url, stack.events_url, limit=None, dry_run=True)
    assert sqs.now > dlq.HOLD_SECONDS and sqs.extended and sqs.expired == 0
    assert len({letter.message_id for letter in result.moved}) == len(result.moved) == 44
    assert queue_counts(stack, stack.dlq_url) == (44, 0)
    sqs = simulated(stack, monkeypatch, step_s=dlq.HOLD_SECONDS / 3)
    result = dlq.redrive(sqs, stack.dlq_url, stack.events_url, limit=None, dry_run=False)
    assert len({letter.message_id for letter in result.moved}) == len(result.moved) == 44 and not result.failed
    assert stack.depth(stack.dlq_url) == 0 and stack.depth(stack.events_url) == 44


class RecordedReceives:
    """The test stack's SQS client, recording the bodies each receive returned (in order)."""

    def __init__(self, sqs) -> None:
        self.sqs = sqs
        self.batches: list[list[str]] = []

    def __getattr__(self, name: str):
        return getattr(self.sqs, name)

    def receive_message(self, **kwargs):
        response = self.sqs.receive_message(**kwargs)
        self.batches.append([message["Body"] for message in response.get("Messages", [])])
        return response


def tie_the_clock_of_the_first_release(monkeypatch: pytest.MonkeyPatch, body: str) -> list[int]:
    """Make moto's SQS read one time twice while it releases (``ChangeMessageVisibility`` to 0) the message with
    ``body`` the first time: it sets the message visible from that time and then checks ``time > visible_at``,
    which the equal reading fails, so moto keeps the message marked in flight. That is what happened in the
    failed CI run (moto's SQS clock is ``time.time()`` once ``local.emulator.stack.speed_up_moto_sqs`` ran in the
    process, and two readings are equal for about 4% of releases). Otherwise the clock only moves forward (no
    other release is tied, whatever clock an earlier test left moto with). Returns a list that gets one entry
    per release tied."""
    from moto.sqs import models

    clock = models.unix_time_millis
    stopped: list[float] = []
    tied: list[int] = []
    last = [0.0]

    def read(dt=None):
        if dt is not None:
            return clock(dt)
        if stopped:
            return stopped[0]
        last[0] = max(clock(), last[0] + 0.001)  # milliseconds: every other reading is later than the one before
        return last[0]

    original = models.SQSBackend.change_message_visibility

    def change_message_visibility(self, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        messages = self.get_queue(queue_name)._messages
        target = next((m for m in messages if m.had_receipt_handle(receipt_handle) and m.body == body), None)
        if target is None or int(visibility_timeout) != 0 or tied:
            return original(self, queue_name, receipt_handle, visibility_timeout)
        stopped.append(read())
        try:
            return original(self, queue_name, receipt_handle, visibility_timeout)
        finally:
            stopped.clear()
            tied.append(1)

    monkeypatch.setattr(models, "unix_time_millis", read)
    monkeypatch.setattr(models.SQSBackend, "change_message_visibility", change_message_visibility)
    return tied


def test_redrive_holds_a_group_back_even_when_the_endpoint_returns_its_second_message_first(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS returns a FIFO group's messages in order and never a later one while an earlier one is visible
    or in flight ("FIFO queue delivery logic in Amazon SQS",
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html).
    moto does not always: a release that leaves a message marked in flight (its clock read the same time twice)
    makes its next receive skip the group's first message and return the second alone. The redrive must not
    take that for the group's order: the invalid first message stays, so the valid second one stays behind it.
    (The failed CI run: "moved 4 messages" where 3 were expected; before the fix this test moves 4 every time.)"""
    fill_dlq(stack, [["query"]] * 3)
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody="not json", MessageGroupId="req-bad", MessageDeduplicationId="req-bad:query")
    second = json.dumps(response_event("req-bad", NOW_MS, "full", 90))
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=second, MessageGroupId="req-bad", MessageDeduplicationId="req-bad:response")
    tied = tie_the_clock_of_the_first_release(monkeypatch, second)
    sqs = RecordedReceives(stack.sqs)

    result = dlq.redrive(sqs, stack.dlq_url, stack.events_url, limit=None, dry_run=False)

    # The endpoint did break the group's order once: a receive returned the second message without the first.
    assert tied == [1]
    assert any(second in batch and "not json" not in batch for batch in sqs.batches)
    assert sorted(letter.group_id or "" for letter in result.moved) == ["req-000", "req-001", "req-002"]
    assert [letter.body for letter in result.left] == ["not json"]
    assert [letter.body for letter in result.held_back] == [second]
    assert not result.failed
    assert queue_counts(stack, stack.dlq_url) == (2, 0) and stack.depth(stack.events_url) == 3


class ScriptedFifoSqs:
    """A FIFO DLQ endpoint that answers receives from a script (one list of (MessageId, group, body) per receive,
    then nothing); visibility changes succeed, sends and deletes are recorded. It lets a test play an endpoint
    that breaks a group's order, which SQS never does (see the test below)."""

    def __init__(self, script: list[list[tuple[str, str, str]]], count: int) -> None:
        self.script = list(script)
        self.count = count
        self.sent: list[str] = []
        self.deleted: list[str] = []
        self.deleted_handles: list[str] = []
        self.receipts = 0

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict:
        name = QueueUrl.rsplit("/", 1)[-1]
        visible = str(self.count) if "dlq" in name else "0"
        attributes = {"QueueArn": f"arn:aws:sqs:us-east-1:123456789012:{name}", "FifoQueue": "true"}
        return {"Attributes": {**attributes, "ApproximateNumberOfMessages": visible, "ApproximateNumberOfMessagesNotVisible": "0"}}

    def receive_message(self, **kwargs) -> dict:
        batch = self.script.pop(0) if self.script else []
        messages = []
        for message_id, group, body in batch:
            self.receipts += 1
            attributes = {"MessageGroupId": group, "MessageDeduplicationId": f"{message_id}-dedup", "ApproximateReceiveCount": "4"}
            messages.append(
                {"MessageId": message_id, "ReceiptHandle": f"{message_id}/{self.receipts}", "Body": body, "Attributes": attributes}
            )
        return {"Messages": messages}

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.sent += [entry["MessageBody"] for entry in Entries]
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.deleted += [entry["ReceiptHandle"].split("/")[0] for entry in Entries]
        self.deleted_handles += [entry["ReceiptHandle"] for entry in Entries]
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "redrive"])
def test_a_group_whose_order_no_receive_showed_moves_whole_or_not_at_all(dry_run: bool) -> None:
    """An endpoint that returns a group's second message before its first (SQS never does: "FIFO queue delivery
    logic in Amazon SQS",
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/FIFO-queues-understanding-logic.html)
    and never both in one receive: the redrive cannot tell which one is first, so a group with one that stays
    (here the invalid one) keeps the other back too instead of trusting the order the receives came in. A group
    of valid messages in that case moves whole."""
    second = json.dumps(response_event("req-bad", NOW_MS, "full", 90))
    script = [
        [("q-1", "req-ok", json.dumps(query_event("req-ok", NOW_MS, "Go?"))), ("r-bad", "req-bad", second)],
        [("q-bad", "req-bad", "not json")],
        [("r-2", "req-2", json.dumps(response_event("req-2", NOW_MS, "none", 5)))],
        [("q-2", "req-2", json.dumps(query_event("req-2", NOW_MS, "C?")))],
    ]
    sqs = ScriptedFifoSqs(script, count=5)
    result = dlq.redrive(sqs, f"{BASE}-dlq.fifo", f"{BASE}-events.fifo", limit=None, dry_run=dry_run, method="manual")
    assert sorted(letter.message_id for letter in result.moved) == ["q-1", "q-2", "r-2"]
    assert [letter.message_id for letter in result.left] == ["q-bad"]
    assert [letter.message_id for letter in result.held_back] == ["r-bad"]
    assert sorted(sqs.deleted) == ([] if dry_run else ["q-1", "q-2", "r-2"])
    assert second not in sqs.sent


def test_a_message_that_did_not_come_back_after_a_release_is_held_again_before_it_moves() -> None:
    """The look releases a group to receive it again (``Receiver.recover_tails``) and the endpoint returns only
    its second message (moto does so when the release leaves that one marked in flight). The first one is
    seen but no longer held: moving it would delete it by a stale receipt handle, and it could be received by
    someone else meanwhile. The redrive releases the group again and moves both once they are back, in their
    order, each deleted by its latest receipt handle."""
    first = json.dumps(query_event("req-1", NOW_MS, "Go?"))
    second = json.dumps(response_event("req-1", NOW_MS, "none", 5))
    script = [
        [("q-1", "req-1", first), ("r-1", "req-1", second)],
        [],  # all held: the look's first part ends, one message short of the count
        [("r-1", "req-1", second)],  # the group released and received again: its first message does not come back
        [("q-1", "req-1", first), ("r-1", "req-1", second)],  # released again: both
    ]
    sqs = ScriptedFifoSqs(script, count=3)
    result = dlq.redrive(sqs, f"{BASE}-dlq.fifo", f"{BASE}-events.fifo", limit=None, dry_run=False, method="manual")
    assert not result.failed
    assert [letter.message_id for letter in result.moved] == ["q-1", "r-1"]
    assert sqs.sent == [first, second]
    assert sqs.deleted_handles == ["q-1/4", "r-1/5"]  # the handles of the last receive, not of the first


class RefusesOneSend:
    """The test stack's SQS client, whose SendMessageBatch refuses the entry of one message (by deduplication
    id) the first time it is sent, as SQS may refuse one entry of a batch and take the others ("Successful"
    and "Failed" lists of SendMessageBatch:
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html)."""

    def __init__(self, sqs, refused: str) -> None:
        self.sqs = sqs
        self.refused = refused
        self.batches: list[list[str]] = []  # each batch's deduplication ids, as sent

    def __getattr__(self, name: str):
        return getattr(self.sqs, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        self.batches.append([entry["MessageDeduplicationId"] for entry in Entries])
        taken = [entry for entry in Entries if entry["MessageDeduplicationId"] != self.refused]
        failed = [
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
            for entry in Entries
            if entry["MessageDeduplicationId"] == self.refused
        ]
        response = self.sqs.send_message_batch(QueueUrl=QueueUrl, Entries=taken) if taken else {"Successful": []}
        return {"Successful": response.get("Successful", []), "Failed": failed}


def test_a_refused_send_is_never_overtaken_by_the_next_message_of_its_group(stack: Stack) -> None:
    """SendMessageBatch refuses a group's first message and takes the rest of the batch: had the group's second
    message been in that batch, it would now be in the events queue ahead of the first. The redrive sends at
    most one message of a group per batch, a group's next only after its previous one was taken, and stops
    at the refusal: the refused message and everything behind it stay in the DLQ, a rerun moves them in order."""
    groups = fill_dlq(stack, [["query", "response"], ["query", "response"]])
    sqs = RefusesOneSend(stack.sqs, refused=f"{groups[0]}:query:0")
    result = dlq.redrive(sqs, stack.dlq_url, stack.events_url, limit=None, dry_run=False, method="manual")
    assert all(len({dedup.split(":")[0] for dedup in batch}) == len(batch) for batch in sqs.batches), sqs.batches
    assert [letter.deduplication_id for letter, _ in result.failed] == [f"{groups[0]}:query:0"]
    sent = [dedup for batch in sqs.batches for dedup in batch if dedup != sqs.refused]
    assert f"{groups[0]}:response:1" not in sent, "the group's second message did not overtake its refused first"
    assert stack.depth(stack.events_url) == len(result.moved) and queue_counts(stack, stack.dlq_url)[0] == 4 - len(result.moved)
    again = dlq.redrive(stack.sqs, stack.dlq_url, stack.events_url, limit=None, dry_run=False, method="manual")
    assert len(result.moved) + len(again.moved) == 4 and not again.failed and stack.depth(stack.dlq_url) == 0


def test_the_command_says_where_a_refused_send_stopped_it(stack: Stack, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dlq redrive` when the events queue refuses a message: exit 1, the message and SQS's reason named, and one
    line saying the rest stays in the DLQ and a rerun is safe; the rerun then moves everything."""
    from chat_analytics_ops.outputs import AwsContext

    groups = fill_dlq(stack, [["query", "response"]])
    real_client = AwsContext.client
    refusing = RefusesOneSend(stack.sqs, refused=f"{groups[0]}:query:0")
    monkeypatch.setattr(AwsContext, "client", lambda self, service: refusing if service == "sqs" else real_client(self, service))
    result = cli("dlq", "redrive", "--method", "manual")
    assert result.code == 1
    assert "not moved:" in result.err and "InternalError: try again" in result.err
    assert "stopped there: what was not moved stays in the DLQ in its order; rerunning is safe" in result.err
    assert stack.depth(stack.events_url) == 0 and queue_counts(stack, stack.dlq_url)[0] == 2, "nothing moved past the refusal"
    monkeypatch.setattr(AwsContext, "client", real_client)
    again = cli("dlq", "redrive", "--method", "manual")
    assert again.code == 0 and "moved 2 messages" in again.out and stack.depth(stack.dlq_url) == 0
