"""The mechanics of an SQS FIFO batch with partial failures, apart from what its records mean.

As Powertools' ``SqsFifoPartialProcessor(skip_group_on_error=True)`` does it
(``aws_lambda_powertools/utilities/batch/sqs_fifo_partial_processor.py``): a batch is split by message
group; the records of a group are handled in order, and the first failure fails that record and every
later record of its group, so order within a group is kept while other groups go on. The response lists
exactly the failed message IDs (``batchItemFailures``); SQS redelivers them.

Unlike Powertools' record handler, a ``RunStarter`` is given the group and a position and starts a *run*:
the record there and as many following ones as it chooses to handle together (the processor stores the
query and the response of one request in one write). A run is handled in two steps so that every group's
network wait overlaps in one thread, without handing groups to threads (15-23 µs a record, measured in
docs/benchmarks/processor.md): the batch goes in rounds, each round starting the next run of every group
still going (the processor sends its write), then finishing them in batch order (the first finish reads
every answer: the round waits about as long as its slowest write, not the sum). A step after the groups
(the lake's delivery) can still fail a run and the rest of its group (``Group.fail_from``).

An exception a starter or a run raises is not a record failure: it propagates (after every run already
started has finished and every group has ended) and fails the invocation, so the whole batch comes back,
as with any unexpected error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
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


class Run(Protocol):
    """A run under way (its write sent): ``finish`` waits for its outcome, True when its records are done."""

    def finish(self) -> bool: ...


# Starts the run at ``position`` of the group: (the position after it, the run under way), or None when the run
# failed at once (its records and the rest of the group fail). The deadline is ``time.monotonic()`` seconds (or None).
RunStarter = Callable[[Group[S], int, float | None], tuple[int, Run] | None]


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
    """Handles the groups of FIFO batches with ``start_run``, in rounds (the module docstring); ``new_state`` makes
    each group's state."""

    def __init__(self, start_run: RunStarter[S], new_state: Callable[[], S]) -> None:
        self.start_run = start_run
        self.new_state = new_state

    def process(self, records: list[Record], deadline: float | None) -> Batch[S]:
        """Every group of ``records`` handled, each stopped at its first failed run."""
        batch = Batch(records, [Group(group, self.new_state()) for group in group_records(records)])
        going = [(group, 0) for group in batch.groups]  # each group still going, and the position of its next run
        error: Exception | None = None  # the first exception, raised once every group has ended
        while going:
            started: list[tuple[Group[S], int, int, Run]] = []
            for group, position in going:  # every group's next run under way at once...
                try:
                    begun = self.start_run(group, position, deadline)
                except Exception as caught:
                    error = error or caught
                    begun = None
                if begun is None:
                    group.fail_from(position)
                    continue
                if begun[0] <= position:  # a bug of the starter: its run is still finished (its write read), then fails
                    error = error or ValueError(f"a run must move on: it ends at {begun[0]}, its start")
                started.append((group, position, *begun))
            going = []
            for group, position, end, run in started:  # ...then their outcomes, in batch order
                try:
                    done = run.finish()
                except Exception as caught:
                    error = error or caught
                    done = False
                if not done or end <= position:
                    group.fail_from(position)
                elif end < len(group.records):
                    going.append((group, end))
        if error is not None:
            raise error
        return batch
