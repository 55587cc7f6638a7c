"""From queued events to ``SendMessageBatch`` entries, within SQS's size limits.

This runs in the sender thread, never in the caller's: JSON serialization and the FIFO ids are
the expensive part of an event, so ``log()`` defers them here.
"""

from __future__ import annotations

import json
import json.encoder
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from analytics_producer.events import SQS_SAFE_RULE, deduplication_id, not_sqs_safe

MAX_BATCH_ENTRIES = 10
# SQS's limit for a whole SendMessageBatch payload is 1 MiB; a single message is kept within the
# classic 256 KiB so the producer works with queues (and emulators) still configured for it.
MAX_BATCH_BYTES = 1024 * 1024
MAX_MESSAGE_BYTES = 256 * 1024
# MessageGroupId and MessageDeduplicationId (at most 128 bytes each) count towards the payload.
ENTRY_OVERHEAD_BYTES = 256

_GROUP_ID = re.compile(r"[!-~]+").fullmatch  # what SQS accepts in a MessageGroupId

GroupKey = Callable[[Mapping[str, Any]], str]

# json.dumps(..., separators=(",", ":"), ensure_ascii=False, allow_nan=False), with its encoder built once
# (json.dumps builds a new JSONEncoder for every call given options).
_encode_event = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
json_str: Callable[[str], str] = json.encoder.encode_basestring  # a str as json.dumps(..., ensure_ascii=False) writes it


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
    settled: bool = False  # counted as sent or failed; set once, by the sender thread only
    json_after_id: bytes = b""  # request_json(), built on its first use

    def as_request(self, entry_id: str) -> dict[str, str]:
        """The ``SendMessageBatch`` entry; ``entry_id`` is unique within one request."""
        return {"Id": entry_id, "MessageBody": self.body, "MessageGroupId": self.group_id, "MessageDeduplicationId": self.deduplication_id}

    def request_json(self) -> bytes:
        """The entry's JSON in a request after its ``"Id":...,`` (as ``json.dumps`` writes :meth:`as_request`'s dict), built once."""
        if not self.json_after_id:
            self.json_after_id = (
                f'"MessageBody":{json_str(self.body)},"MessageGroupId":{json_str(self.group_id)},'
                f'"MessageDeduplicationId":{json_str(self.deduplication_id)}}}'
            ).encode()
        return self.json_after_id


def to_entry(event: dict[str, Any], group_key: GroupKey | None) -> Entry:
    """Serialize ``event``; raise :class:`UnsendableEventError` when SQS could never accept it.

    Any exception on the way (``json.dumps``, UTF-8 encoding, the ``group_id`` callable, the
    deduplication id) becomes an :class:`UnsendableEventError`: it concerns this event alone.
    """
    try:
        body = _encode_event(event)
        size = len(body.encode()) + ENTRY_OVERHEAD_BYTES  # a lone surrogate fails here, not in botocore
    except Exception as error:  # a datetime, a set, NaN or a lone surrogate in an extra field, nesting too deep, ...
        raise UnsendableEventError(f"event is not JSON that SQS accepts: {type(error).__name__}: {error}") from error
    try:
        group_id = group_key(event) if group_key is not None else event["requestId"]
    except Exception as error:  # a group_id callable that raised
        raise UnsendableEventError(f"group_id callable failed: {error!r}") from error
    if not isinstance(group_id, str) or not 0 < len(group_id) <= 128 or not _GROUP_ID(group_id):
        raise UnsendableEventError("group_id callable must return 1 to 128 characters from '!' to '~'")
    if not_sqs_safe(body):  # U+FFFE/U+FFFF (json.dumps escapes control characters): SQS would refuse the body
        raise UnsendableEventError(f"event body is not SQS-safe text: {SQS_SAFE_RULE}")
    if size > MAX_MESSAGE_BYTES:
        raise UnsendableEventError(f"event body is {size} bytes, over the {MAX_MESSAGE_BYTES}-byte message limit")
    try:
        dedup = deduplication_id(event)
    except Exception as error:
        raise UnsendableEventError(f"no deduplication id: {type(error).__name__}") from error
    return Entry(event, body, group_id, dedup, size)


def fits(batch: list[Entry], entry: Entry, max_entries: int) -> bool:
    """Whether ``entry`` can join ``batch`` without passing the entry count or the batch byte limit."""
    return len(batch) < max_entries and sum(item.size for item in batch) + entry.size <= MAX_BATCH_BYTES
