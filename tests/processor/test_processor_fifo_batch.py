"""The FIFO batch mechanics (``fifo_batch.py``) on their own: message groups, runs, skip-on-error, the
deadline and the partial-failure response, with a fake run handler (no DynamoDB, no event model)."""

from __future__ import annotations

import threading
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


class FakeRun:
    """A run under way: its outcome is known when it starts, given when it finishes (and noted in the journal)."""

    def __init__(self, journal: list[str], ids: list[str], ok: bool) -> None:
        self.journal, self.ids, self.ok = journal, ids, ok

    def finish(self) -> bool:
        self.journal.append("finish " + " ".join(self.ids))
        return self.ok


class FakeHandler:
    """Starts runs: a record and the ``join`` records right after it; a run holding ``fail`` fails. The journal
    lists each start and finish, with the thread each start ran in."""

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.deadlines: list[float | None] = []
        self.journal: list[str] = []

    def __call__(self, group: Group[Seen], position: int, deadline: float | None) -> tuple[int, FakeRun] | None:
        self.threads.add(threading.current_thread().name)
        self.deadlines.append(deadline)
        end = position + 1
        while end < len(group.records) and group.records[end]["body"] == "join":
            end += 1
        run = group.records[position:end]
        group.state.runs.append([r["messageId"] for r in run])
        names = [r["messageId"] for r in run]
        self.journal.append("start " + " ".join(names))
        return end, FakeRun(self.journal, names, not any(r["body"] == "fail" for r in run))


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


def test_every_groups_run_is_under_way_before_any_is_finished_in_the_calling_thread() -> None:
    """A round starts the next run of every group still going (their writes all in flight at once), then
    finishes them in batch order; groups with more records go again. No thread is handed anything."""
    a1, b1, b2, c1, a2 = record("ok", "a"), record("ok", "b"), record("fail", "b"), record("ok", "c"), record("ok", "a")
    handler = FakeHandler()
    batch = FifoBatchProcessor(handler, Seen).process([a1, b1, b2, c1, a2], None)
    assert handler.threads == {threading.current_thread().name}
    (ma1, mb1, mb2, mc1, ma2) = (r["messageId"] for r in (a1, b1, b2, c1, a2))
    assert handler.journal == [
        *(f"start {m}" for m in (ma1, mb1, mc1)),
        *(f"finish {m}" for m in (ma1, mb1, mc1)),
        *(f"start {m}" for m in (ma2, mb2)),
        *(f"finish {m}" for m in (ma2, mb2)),
    ]
    assert [group.state.runs for group in batch.groups] == [[ids(a1), ids(a2)], [ids(b1), ids(b2)], [ids(c1)]]
    assert batch.failed() == ids(b2)


def test_an_exception_propagates_once_every_group_has_ended() -> None:
    """An exception is not a record failure: it propagates (Lambda then returns the whole batch) once every
    run already under way has finished and every other group has ended."""
    handler = FakeHandler()

    def start(group: Group[Seen], position: int, deadline: float | None) -> tuple[int, FakeRun] | None:
        if group.records[position]["body"] == "boom":
            raise RuntimeError("boom")
        return handler(group, position, deadline)

    class Broken(FakeRun):
        def finish(self) -> bool:
            raise RuntimeError("broken finish")

    def start_broken(group: Group[Seen], position: int, deadline: float | None) -> tuple[int, FakeRun] | None:
        started = handler(group, position, deadline)
        if group.records[position]["body"] == "broken" and started is not None:
            return started[0], Broken(handler.journal, ["broken"], True)
        return started

    records = [record("ok", "a"), record("boom", "b"), record("ok", "c"), record("ok", "a")]
    with pytest.raises(RuntimeError, match="boom"):
        FifoBatchProcessor(start, Seen).process(records, None)
    assert handler.journal == [
        f"start {records[0]['messageId']}",
        f"start {records[2]['messageId']}",
        f"finish {records[0]['messageId']}",
        f"finish {records[2]['messageId']}",
        f"start {records[3]['messageId']}",
        f"finish {records[3]['messageId']}",
    ]
    handler.journal.clear()
    with pytest.raises(RuntimeError, match="broken finish"):
        FifoBatchProcessor(start_broken, Seen).process([record("broken", "a"), record("ok", "b"), record("ok", "b")], None)
    assert [entry.split()[0] for entry in handler.journal] == ["start", "start", "finish", "start", "finish"], "b went on"


def test_a_run_handler_must_move_on() -> None:
    journal: list[str] = []
    processor = FifoBatchProcessor(lambda group, position, deadline: (position, FakeRun(journal, ["stuck"], True)), Seen)
    with pytest.raises(ValueError, match="must move on"):
        processor.process([record("ok")], None)
    assert journal == ["finish stuck"], "its write is still read"


def test_the_deadline_is_the_remaining_time_less_the_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fifo_batch.time, "monotonic", lambda: 100.0)
    assert fifo_batch.deadline_of(LambdaContext(remaining_ms=15_000), 1_000) == 114.0
    assert fifo_batch.deadline_of(None, 1_000) is None, "no context: no deadline"
    handler = FakeHandler()
    FifoBatchProcessor(handler, Seen).process([record("ok", "a"), record("ok", "a")], 114.0)
    assert handler.deadlines == [114.0, 114.0], "every run is given the batch's deadline"
