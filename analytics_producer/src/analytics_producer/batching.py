"""From queued events to ``SendMessageBatch`` entries, within SQS's size limits.

This runs in the sender thread, never in the caller's: JSON serialization and the FIFO ids are
the expensive part of an event, so ``log()`` defers them here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from analytics_producer.events import deduplication_id

MAX_BATCH_ENTRIES = 10
# SQS's limit for a whole SendMessageBatch payload is 1 MiB; a single message is kept within the
# classic 256 KiB so the producer works with queues (and emulators) still configured for it.
MAX_BATCH_BYTES = 1024 * 1024
MAX_MESSAGE_BYTES = 256 * 1024
# MessageGroupId and MessageDeduplicationId (at most 128 bytes each) count towards the payload.
ENTRY_OVERHEAD_BYTES = 256

GroupKey = Callable[[Mapping[str, Any]], str]


class UnsendableEventError(ValueError):
    """The event passed ``log()``'s checks but cannot become an SQS message (not JSON, too large)."""

    code = "UnsendableEvent"


@dataclass(slots=True)
class Entry:
    """One event ready to send. Its ids are computed once, so every retry reuses them."""

    event: dict[str, Any]
    body: str
    group_id: str
    deduplication_id: str
    size: int
    entry_id: str = "0"

    def as_request(self, entry_id: str) -> dict[str, str]:
        """The ``SendMessageBatch`` entry; ``entry_id`` is unique within one request."""
        return {"Id": entry_id, "MessageBody": self.body, "MessageGroupId": self.group_id, "MessageDeduplicationId": self.deduplication_id}


def to_entry(event: dict[str, Any], group_key: GroupKey | None) -> Entry:
    """Serialize ``event``; raise :class:`UnsendableEventError` when SQS could never accept it."""
    try:
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        group_id = group_key(event) if group_key is not None else event["requestId"]
    except (TypeError, ValueError) as error:  # a datetime, a set, NaN in an extra field, ...
        raise UnsendableEventError(f"event is not JSON-serializable: {error}") from error
    except Exception as error:  # a group_id callable that raised
        raise UnsendableEventError(f"group_id callable failed: {error!r}") from error
    if not isinstance(group_id, str) or not 0 < len(group_id) <= 128:
        raise UnsendableEventError("group_id callable must return 1 to 128 characters")
    size = len(body.encode()) + ENTRY_OVERHEAD_BYTES
    if size > MAX_MESSAGE_BYTES:
        raise UnsendableEventError(f"event body is {size} bytes, over the {MAX_MESSAGE_BYTES}-byte message limit")
    return Entry(event, body, group_id, deduplication_id(event), size)


def fits(batch: list[Entry], entry: Entry, max_entries: int) -> bool:
    """Whether ``entry`` can join ``batch`` without passing the entry count or the batch byte limit."""
    return len(batch) < max_entries and sum(item.size for item in batch) + entry.size <= MAX_BATCH_BYTES
