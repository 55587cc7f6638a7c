"""The FIFO batch mechanics (``fifo_batch.py``) on their own: message groups, runs, skip-on-error, the
deadline and the partial-failure response, with a fake run handler (no DynamoDB, no event model)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from chat_processor import fifo_batch
from chat_processor.fifo_batch import FifoBatchProcessor, Group

from testkit.events import LambdaContext, sqs_record


@dataclass
class Seen:
    """A group's state for the fake handler: the runs it handled, as message ids."""

    runs: list[list[str]] = field(default_factory=list)


def record(body: str, group: str | None = "g") -> dict:
    """An SQS record whose body says what the fake handler does with it: ``ok``, ``fail``, ``join`` (joins the run before it)."""
    made = sqs_record(body, group=group)
    if group is None:
        made["attributes"].pop("MessageGroupId", None)
    return made


class FakeHandler:
    """Handles runs: a record and the ``join`` records right after it; a run holding ``fail`` fails."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.barrier = barrier
        self.threads: set[str] = set()
        self.lock = threading.Lock()
        self.deadlines: list[float | None] = []

    def __call__(self, group: Group[Seen], position: int, deadline: float | None) -> int | None:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.deadlines.append(deadline)
        if self.barrier is not None:
            self.barrier.wait()
        end = position + 1
        while end < len(group.records) and group.records[end]["body"] == "join":
            end += 1
        run = group.records[position:end]
        group.state.runs.append([r["messageId"] for r in run])
        if any(r["body"] == "fail" for r in run):
            return None
        return end


def ids(*records: dict) -> list[str]:
    return [r["messageId"] for r in records]


def test_records_are_grouped_by_message_group_in_batch_order() -> None:
    a1, b1, a2, lone, b2 = record("ok", "a"), record("ok", "b"), record("ok", "a"), record("ok", None), record("ok", "b")
    groups = fifo_batch.group_records([a1, b1, a2, lone, b2])
    assert [ids(*g) for g in groups] == [ids(a1, a2), ids(b1, b2), ids(lone)], "a record without a group is a group of its own"


def test_a_failed_run_fails_the_rest_of_its_group_and_other_groups_go_on() -> None:
    """Powertools' skip_group_on_error: the failure and every later record of its group, nothing else."""
    a1, a2, a3 = record("ok", "a"), record("fail", "a"), record("ok", "a")
    b1, b2 = record("ok", "b"), record("ok", "b")
    handler = FakeHandler()
    batch = FifoBatchProcessor(handler, Seen).process([a1, b1, a2, b2, a3], None)
    assert batch.failed() == ids(a2, a3), "in batch order"
    assert [group.state.runs for group in batch.groups] == [[ids(a1), ids(a2)], [ids(b1), ids(b2)]], "a3 is never handled"
    assert fifo_batch.failure_response(batch.failed()) == {
        "batchItemFailures": [{"itemIdentifier": a2["messageId"]}, {"itemIdentifier": a3["messageId"]}]
    }


def test_a_run_is_handled_once_and_a_failed_run_fails_all_its_records() -> None:
    first, joined, failing, joined_too, after = record("ok"), record("join"), record("fail"), record("join"), record("ok")
    batch = FifoBatchProcessor(FakeHandler(), Seen).process([first, joined, failing, joined_too, after], None)
    assert batch.groups[0].state.runs == [ids(first, joined), ids(failing, joined_too)]
    assert batch.failed() == ids(failing, joined_too, after)


def test_a_later_step_can_fail_a_run_and_the_rest_of_its_group() -> None:
    """The lake's delivery, after the groups: a refused run fails from its position on, whatever failed already."""
    records = [record("ok"), record("ok"), record("fail"), record("ok")]
    batch = FifoBatchProcessor(FakeHandler(), Seen).process(records, None)
    (group,) = batch.groups
    assert group.failed() == ids(*records[2:])
    group.fail_from(3)
    assert group.failed() == ids(*records[2:]), "an earlier failure stays"
    group.fail_from(1)
    assert batch.failed() == ids(*records[1:])
    assert fifo_batch.failure_response([]) == {"batchItemFailures": []}


def test_groups_are_handled_at_the_same_time_in_a_pool_kept_across_batches() -> None:
    """Every group's run is in flight at once (the barrier needs all five); the first group runs in the
    caller's thread, the others in the pool's named threads, which the next batch reuses."""
    handler = FakeHandler(threading.Barrier(5, timeout=10))
    processor = FifoBatchProcessor(handler, Seen, max_concurrent_groups=5, thread_name_prefix="test-group")
    try:
        processor.process([record("ok", f"g{n}") for n in range(5)], None)
        first_threads, pool = set(handler.threads), processor._pool
        handler.threads.clear()
        processor.process([record("ok", f"g{n}") for n in range(5)], None)
    finally:
        processor.close()
    assert threading.current_thread().name in first_threads
    assert len(first_threads - {threading.current_thread().name}) == 4
    assert all(name.startswith("test-group") for name in first_threads - {threading.current_thread().name})
    assert pool is not None and handler.threads <= first_threads, "the same pool's threads"


def test_one_group_at_a_time_handles_every_group_in_the_calling_thread_in_batch_order() -> None:
    handler = FakeHandler()
    processor = FifoBatchProcessor(handler, Seen, max_concurrent_groups=1)
    records = [record("ok", "a"), record("ok", "b"), record("fail", "b"), record("ok", "c"), record("ok", "a")]
    batch = processor.process(records, None)
    assert handler.threads == {threading.current_thread().name} and processor._pool is None
    assert [group.state.runs for group in batch.groups] == [
        [ids(records[0]), ids(records[4])],
        [ids(records[1]), ids(records[2])],
        [ids(records[3])],
    ]
    assert batch.failed() == ids(records[2])
    with pytest.raises(ValueError, match="at least 1"):
        FifoBatchProcessor(handler, Seen, max_concurrent_groups=0)


def test_group_done_runs_once_per_group_even_when_a_run_handler_raises() -> None:
    """An exception is not a record failure: it propagates once every group has ended (Lambda then returns the
    whole batch), and each group's ``group_done`` ran in its own thread."""
    done: list[str] = []
    ended = threading.Event()

    def handle(group: Group[Seen], position: int, deadline: float | None) -> int | None:
        if group.records[position]["body"] == "boom":
            raise RuntimeError("boom")
        time.sleep(0.05)
        ended.set()
        return position + 1

    processor = FifoBatchProcessor(handle, Seen, group_done=lambda: done.append(threading.current_thread().name))
    try:
        with pytest.raises(RuntimeError, match="boom"):
            processor.process([record("boom", "a"), record("ok", "b"), record("ok", "c")], None)
    finally:
        processor.close()
    assert len(done) == 3 and ended.is_set()


def test_a_run_handler_must_move_on() -> None:
    processor = FifoBatchProcessor(lambda group, position, deadline: position, Seen)
    with pytest.raises(ValueError, match="must move on"):
        processor.process([record("ok")], None)


def test_the_deadline_is_the_remaining_time_less_the_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fifo_batch.time, "monotonic", lambda: 100.0)
    assert fifo_batch.deadline_of(LambdaContext(remaining_ms=15_000), 1_000) == 114.0
    assert fifo_batch.deadline_of(None, 1_000) is None, "no context: no deadline"
    handler = FakeHandler()
    FifoBatchProcessor(handler, Seen).process([record("ok", "a"), record("ok", "a")], 114.0)
    assert handler.deadlines == [114.0, 114.0], "every run is given the batch's deadline"
