"""The mechanics of an SQS FIFO batch with partial failures, apart from what its records mean.

As Powertools' ``SqsFifoPartialProcessor(skip_group_on_error=True)`` does it
(``aws_lambda_powertools/utilities/batch/sqs_fifo_partial_processor.py``): a batch is split by message
group; the records of a group are handled in order, and the first failure fails that record and every
later record of its group, so order within a group is kept while other groups go on. The response lists
exactly the failed message IDs (``batchItemFailures``); SQS redelivers them.

Unlike Powertools' record handler, a ``RunHandler`` is given the group and a position and handles a *run*:
the record there and as many following ones as it chooses to handle together (the processor stores the
query and the response of one request in one write). Groups are handled concurrently (at most
``max_concurrent_groups`` at a time, in a thread pool kept across invocations): the first group in the
calling thread, the others in the pool. With ``max_concurrent_groups=1`` every group is handled in the calling
thread, one after the other (no thread hand-off, and no overlap of the groups' network waits: the benchmark
measures the hand-off's CPU with it). A step after the groups (the lake's delivery) can still fail a
run and the rest of its group (``Group.fail_from``).

An exception a run handler raises is not a record failure: it propagates (after every group has ended)
and fails the invocation, so the whole batch comes back, as with any unexpected error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

Record = dict[str, Any]  # an SQS record as Lambda delivers it (JSON)
S = TypeVar("S")  # what the run handler keeps for one group


class RemainingTime(Protocol):
    """What the batch needs of Lambda's context object."""

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass
class Group(Generic[S]):
    """The records of one message group, in batch order, the run handler's state for them, and from which
    position on they failed (``len(records)``: none)."""

    records: list[Record]
    state: S
    failed_from: int = 0

    def __post_init__(self) -> None:
        self.failed_from = len(self.records)

    @property
    def message_ids(self) -> list[str]:
        return [record["messageId"] for record in self.records]

    def fail_from(self, position: int) -> None:
        """Fail the record at ``position`` and every later one of the group (those already failed included)."""
        self.failed_from = min(self.failed_from, position)

    def failed(self) -> list[str]:
        return [record["messageId"] for record in self.records[self.failed_from :]]


# Handles the run that starts at ``position`` of the group; returns the position after it, or None when the
# run failed (its records and the rest of the group fail). The deadline is ``time.monotonic()`` seconds (or None).
RunHandler = Callable[[Group[S], int, float | None], int | None]


@dataclass
class Batch(Generic[S]):
    """A handled batch: its records and its groups, in batch order."""

    records: list[Record]
    groups: list[Group[S]] = field(default_factory=list)

    def failed(self) -> list[str]:
        """The failed message IDs, in batch order."""
        failed = {message_id for group in self.groups for message_id in group.failed()}
        return [record["messageId"] for record in self.records if record["messageId"] in failed]

    def positions(self) -> dict[str, int]:
        """Each record's position in the batch, by message ID."""
        return {record["messageId"]: index for index, record in enumerate(self.records)}


def group_records(records: Sequence[Record]) -> list[list[Record]]:
    """Records by message group, each group in batch order (Lambda delivers a FIFO batch in queue order).
    A record without a group (a standard queue) is a group of its own."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        group = record.get("attributes", {}).get("MessageGroupId") or record["messageId"]
        groups.setdefault(group, []).append(record)
    return list(groups.values())


def deadline_of(context: RemainingTime | None, reserve_ms: int) -> float | None:
    """When the network waits must be over (``time.monotonic()`` seconds): the invocation's remaining
    time less ``reserve_ms``; None without a context (no deadline)."""
    if context is None:
        return None
    return time.monotonic() + (context.get_remaining_time_in_millis() - reserve_ms) / 1000


def failure_response(failed: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """Lambda's partial batch response for an SQS event source (``ReportBatchItemFailures``)."""
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


class FifoBatchProcessor(Generic[S]):
    """Handles the groups of FIFO batches with ``handle_run``; ``new_state`` makes each group's state and
    ``group_done`` (optional) runs in the group's thread once it is handled (e.g. to clear thread-local log keys)."""

    def __init__(
        self,
        handle_run: RunHandler[S],
        new_state: Callable[[], S],
        *,
        max_concurrent_groups: int = 10,
        thread_name_prefix: str = "fifo-group",
        group_done: Callable[[], None] | None = None,
    ) -> None:
        if max_concurrent_groups < 1:
            raise ValueError(f"max_concurrent_groups must be at least 1, not {max_concurrent_groups}")
        self.handle_run = handle_run
        self.new_state = new_state
        self.max_concurrent_groups = max_concurrent_groups
        self.thread_name_prefix = thread_name_prefix
        self.group_done = group_done
        # Reused across invocations (Lambda freezes its threads in between); created on first concurrent use.
        self._pool: ThreadPoolExecutor | None = None

    def process(self, records: list[Record], deadline: float | None) -> Batch[S]:
        """Every group of ``records`` handled (concurrently), each stopped at its first failed run."""
        batch = Batch(records, [Group(group, self.new_state()) for group in group_records(records)])
        if len(batch.groups) == 1 or self.max_concurrent_groups == 1:  # one at a time: in this thread, in batch order
            for group in batch.groups:
                self._handle(group, deadline)
            return batch
        # The first group in this thread, the others in the pool, all at once (one thread hand-off fewer).
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.max_concurrent_groups - 1, thread_name_prefix=self.thread_name_prefix)
        pending = [self._pool.submit(self._handle, group, deadline) for group in batch.groups[1:]]
        try:
            self._handle(batch.groups[0], deadline)
        finally:
            wait(pending)  # no group's work outlives the invocation, whatever happened in this thread
        for future in pending:
            future.result()  # a run handler's exception fails the invocation
        return batch

    def close(self) -> None:
        """Stop the pool's threads (a process that builds processors again: tests, the local stack)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _handle(self, group: Group[S], deadline: float | None) -> None:
        position = 0
        try:
            while position < len(group.records):
                end = self.handle_run(group, position, deadline)
                if end is None:
                    break
                if end <= position:
                    raise ValueError(f"a run handler must move on: it returned {end} at {position}")
                position = end
        finally:
            if self.group_done is not None:
                self.group_done()
        group.fail_from(position)
