"""The event lake's rows: each stored request's state, sent to Kinesis Data Firehose after its write.

Firehose turns the JSON lines into Parquet through the Glue table ``requests`` (whose columns are
``LAKE_COLUMNS``, in this order) and writes them under ``requests/dt=YYYY-MM-DD/`` (the day Firehose
received them), where Athena in AWS, and DuckDB locally, read them with the same SQL.

One row per successful ``UpdateItem`` run, holding the item as it is after the write, so the lake
has the table's own merge (``day``, ``responseLatencyMs`` and the first delivery's ``*IngestedAt``
included) and a query can never disagree with the table about it. A request can have more than one
row (its query and its response stored apart, a replay, a Firehose retry); the rows of a request are
successive states of one item, and a ``complete`` one holds everything the others hold, so the SQL
keeps, per ``request_key``, the row with the most state (``max_by(column, complete)``), and every
complete row of one request is the same.

Some columns are computed here so that a report reads few bytes and no engine needs rules of its own
(Athena bills the bytes of the columns it reads; docs/benchmarks/lake.md): ``request_key`` is a 64-bit
hash of ``requestId`` (8 bytes a row to group by, not 36); ``question_key`` is the question as the
report groups it (``normalize_question``), set only when the answer is ``none`` (the report lists
unmatched questions; ``query`` holds every question); the two ``*_ingest_lag_ms`` are the ingest lags
(small numbers, where the four timestamps they come from are not).

Delivery is at least once: a row Firehose refuses (after ``MAX_PUT_ATTEMPTS``), or one whose
``PutRecordBatch`` could not end before the invocation's deadline (``clients.CallGuard``: not started,
or not retried), fails its records, so SQS delivers them again, the table write (idempotent) is
repeated and the row is sent again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .clients import FIREHOSE_CONFIG, CallGuard, NoTimeLeft, error_code, service_client
from .contract import normalize_question
from .transport import JsonClient

# (column, Glue type), in the Glue table's order, which is the order Firehose writes each Parquet file's
# column chunks in; the CDK app's Glue table is tested against this. Nothing reads by position (Athena
# reads Parquet by name, DuckDB's view unions by name), but the order sets what Athena scans: its reader
# (Trino's) fetches the chunks it needs in one read when they are less than 1 MiB apart, the bytes between
# them included. So the columns report.sql reads come first, together, and the large text last
# (tests/processor/test_lake_columns_order.py; docs/benchmarks/lake.md).
LAKE_COLUMNS: tuple[tuple[str, str], ...] = (
    # what report.sql reads
    ("request_key", "bigint"),
    ("day", "string"),
    ("source", "string"),
    ("complete", "boolean"),
    ("match_type", "string"),
    ("match_score", "double"),
    ("question_key", "string"),
    ("latency_ms", "double"),
    ("response_latency_ms", "bigint"),
    ("query_ingest_lag_ms", "bigint"),
    ("response_ingest_lag_ms", "bigint"),
    # the rest: numbers, then text
    ("schema_version", "int"),
    ("query_timestamp", "bigint"),
    ("query_ingested_at", "bigint"),
    ("response_timestamp", "bigint"),
    ("response_ingested_at", "bigint"),
    ("written_at", "bigint"),
    ("request_id", "string"),
    ("session_id", "string"),
    ("query", "string"),
    ("reasoning", "string"),
    # added later, at the end (docs/contracts.md, "How the contract evolves"): Athena and the DuckDB view read
    # Parquet by column name, so files written before a column existed read it as NULL
    ("model", "string"),  # contract 1.1
)
# The columns of the Glue table ``rejected`` (Parquet under ``rejected/dt=YYYY-MM-DD/``), in order: one row per
# rejected record per receive (invalid.describe_rejection, rejected_row). What sql/rejected.sql reads comes first.
REJECTED_COLUMNS: tuple[tuple[str, str], ...] = (
    # what rejected.sql reads
    ("received_day", "string"),
    ("reason", "string"),
    ("message_id", "string"),
    # the rest: numbers, then text
    ("receive_count", "int"),
    ("error_count", "int"),
    ("schema_version", "int"),
    ("received_at", "bigint"),
    ("event_timestamp", "bigint"),
    ("body_length", "bigint"),
    ("field_path", "string"),
    ("event_type", "string"),
    ("request_id", "string"),
    ("excerpt", "string"),
)
# The table item's attribute for each column that comes straight from it.
ITEM_ATTRIBUTES = {
    "request_id": "requestId",
    "day": "day",
    "schema_version": "schemaVersion",
    "source": "source",
    "session_id": "sessionId",
    "query": "query",
    "query_timestamp": "queryTimestamp",
    "query_ingested_at": "queryIngestedAt",
    "match_type": "matchType",
    "match_score": "matchScore",
    "reasoning": "reasoning",
    "latency_ms": "latencyMs",
    "response_timestamp": "responseTimestamp",
    "response_ingested_at": "responseIngestedAt",
    "response_latency_ms": "responseLatencyMs",
    "model": "model",
}
_ROW_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)  # built once, not per row
_COLUMN_NAMES = tuple(name for name, _ in LAKE_COLUMNS)
_REJECTED_NAMES = tuple(name for name, _ in REJECTED_COLUMNS)
_DOUBLE_COLUMNS = frozenset(name for name, kind in LAKE_COLUMNS if kind == "double")
# PutRecordBatch takes at most 500 records; a batch of 10 SQS records makes at most 10 rows.
MAX_RECORDS_PER_PUT = 500
# Attempts at the entries Firehose refused (FailedPutCount); the client's own retries cover whole-call errors.
# Each PutRecordBatch is bounded by the invocation's deadline (``clients.CallGuard``, ``clients.FIREHOSE_CONFIG``).
MAX_PUT_ATTEMPTS = 3


def request_key(request_id: str) -> int:
    """A signed 64-bit key for ``request_id`` (the first 8 bytes of its SHA-256): what the lake's SQL groups by."""
    return int.from_bytes(hashlib.sha256(request_id.encode("utf-8")).digest()[:8], "big", signed=True)


def _plain(value: dict[str, str], *, double: bool) -> Any:
    if "S" in value:
        return value["S"]
    text = value["N"]
    if double:
        return float(text)  # correctly rounded from the decimal text, as float(Decimal(text)) is
    if text.isascii() and text.isdigit():  # the usual integer (timestamps, versions): no Decimal needed
        return int(text)
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)


# (column, attribute, whether a double): what ``lake_row`` reads, decided once rather than once a row.
_COLUMN_ATTRIBUTES = tuple((column, attribute, column in _DOUBLE_COLUMNS) for column, attribute in ITEM_ATTRIBUTES.items())


def lake_row(item: dict[str, dict[str, str]], written_at: int) -> dict[str, Any]:
    """The lake's row for a table item (DynamoDB's ``{"attr": {"S"|"N": ...}}`` form): every column, nulls included."""
    row: dict[str, Any] = dict.fromkeys(_COLUMN_NAMES)
    for column, attribute, double in _COLUMN_ATTRIBUTES:
        value = item.get(attribute)
        if value is None:
            continue
        text = value.get("S")  # a text is itself; a number, ``_plain``'s
        row[column] = text if text is not None else _plain(value, double=double)
    row["request_key"] = request_key(row["request_id"])
    if row["query"] is not None and row["match_type"] == "none":  # what the report lists: unmatched questions
        row["question_key"] = normalize_question(row["query"])
    row["query_ingest_lag_ms"] = _lag(row["query_ingested_at"], row["query_timestamp"])
    row["response_ingest_lag_ms"] = _lag(row["response_ingested_at"], row["response_timestamp"])
    row["complete"] = row["query_timestamp"] is not None and row["response_timestamp"] is not None
    row["written_at"] = written_at
    return row


def _lag(ingested_at: int | None, timestamp: int | None) -> int | None:
    """Processing time minus the producer's timestamp, never negative (a producer's clock ahead counts as 0)."""
    return None if ingested_at is None or timestamp is None else max(ingested_at - timestamp, 0)


def rejected_row(description: dict[str, Any], record: dict[str, Any], received_at: int) -> dict[str, Any]:
    """The rejected table's row for an SQS record the processor rejected: ``description`` is
    ``invalid.describe_rejection``'s; the SQS message id, the receive count and the time come from here."""
    row: dict[str, Any] = dict.fromkeys(_REJECTED_NAMES)
    row.update({name: description[name] for name in _REJECTED_NAMES if name in description})
    try:
        receive_count: int | None = int(record.get("attributes", {}).get("ApproximateReceiveCount", ""))
    except ValueError:
        receive_count = None
    row["message_id"] = record["messageId"]
    row["receive_count"] = receive_count
    row["received_at"] = received_at
    row["received_day"] = datetime.fromtimestamp(received_at / 1000, UTC).date().isoformat()
    return row


def encode(row: dict[str, Any]) -> bytes:
    """One JSON line (Firehose concatenates records; the newline keeps them apart in the file)."""
    return _ROW_ENCODER.encode(row).encode("utf-8") + b"\n"


# Firehose bills each record rounded up to 5 KB (a ~600-byte row is billed as 5 KB), and its JSON-to-Parquet
# conversion reads several JSON documents from one record ("You can convert the format of your data even if you
# aggregate your records before sending them", https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html):
# the rows of one put go as few records as fit Firehose's record limit (1,000 KiB, before base64:
# https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html). docs/cost.md, "What each lever saves".
MAX_RECORD_BYTES = 1_000 * 1024


def pack_rows(rows: Sequence[bytes], limit: int = MAX_RECORD_BYTES) -> list[tuple[int, ...]]:
    """The rows (each one newline-terminated JSON line) grouped into records: consecutive indexes whose bytes add
    up to at most ``limit`` (a row longer than ``limit`` alone; ``test_the_largest_rows_fit_firehose_limits``
    holds every row far below it)."""
    groups: list[tuple[int, ...]] = []
    current: list[int] = []
    size = 0
    for index, row in enumerate(rows):
        if current and size + len(row) > limit:
            groups.append(tuple(current))
            current, size = [], 0
        current.append(index)
        size += len(row)
    if current:
        groups.append(tuple(current))
    return groups


@dataclass(frozen=True)
class PutResult:
    """Which rows Firehose took (by index into the rows given) and the error code of each refused one."""

    delivered: int
    refused: dict[int, str]
    requests: int


class LakeSink:
    """Sends rows to one Firehose delivery stream with ``PutRecordBatch``, retrying refused entries.
    The client's retry mode must be ``standard`` with ``total_max_attempts`` (``CallGuard`` bounds its calls)."""

    def __init__(self, client: Any, stream_name: str) -> None:
        self.client = client
        self.stream_name = stream_name
        self.guard = CallGuard(client, FIREHOSE_CONFIG)

    def put(self, records: Sequence[bytes], *, deadline: float | None = None) -> PutResult:
        """Send ``records``; never raises for Firehose's or the network's errors (they are refusals).

        ``deadline`` (``time.monotonic()`` seconds; the invocation's end): no call starts, and no call
        retries, unless it can end before it; what is still pending is refused (``NoTimeLeft``, or the
        last attempt's error), so the invocation ends with its records failed rather than timing out
        with the whole batch.

        The rows go packed (``pack_rows``): each Firehose record holds several rows, and a record Firehose
        refuses refuses every row in it.
        """
        groups = pack_rows(records)
        sent = self._put_records([b"".join(records[index] for index in group) for group in groups], deadline)
        refused = {index: code for position, code in sent.refused.items() for index in groups[position]}
        return PutResult(len(records) - len(refused), refused, sent.requests)

    def close(self) -> None:
        """Close the transport's idle connections (a botocore client, which may be shared, is left as it is)."""
        if isinstance(self.client, JsonClient):
            self.client.close()

    def _put_records(self, records: Sequence[bytes], deadline: float | None) -> PutResult:
        """Send ``records``, one Firehose record each, retrying the refused ones (``put``'s rules)."""
        pending = list(range(len(records)))
        refused: dict[int, str] = {}
        requests = 0
        for _ in range(MAX_PUT_ATTEMPTS):
            if not pending:
                break
            retry: list[int] = []
            for start in range(0, len(pending), MAX_RECORDS_PER_PUT):
                chunk = pending[start : start + MAX_RECORDS_PER_PUT]
                try:
                    answer = self.guard.call(
                        self.client.put_record_batch,
                        deadline,
                        DeliveryStreamName=self.stream_name,
                        Records=[{"Data": records[index]} for index in chunk],
                    )
                except NoTimeLeft:  # not sent
                    refused.update(dict.fromkeys(chunk, "NoTimeLeft"))
                    continue
                except Exception as error:  # the client already retried (or had no time to): the whole chunk is refused
                    requests += 1
                    refused.update(dict.fromkeys(chunk, error_code(error)))
                    continue
                requests += 1
                responses = answer.get("RequestResponses", [])
                for position, index in enumerate(chunk):
                    entry = responses[position] if position < len(responses) else {"ErrorCode": "MissingResponse"}
                    if entry.get("ErrorCode"):
                        refused[index] = entry["ErrorCode"]
                        retry.append(index)
                    else:
                        refused.pop(index, None)
            pending = retry
        return PutResult(len(records) - len(refused), refused, requests)


def sink_from_environment(variable: str = "LAKE_STREAM_NAME") -> LakeSink | None:
    """The sink for the stream named by ``variable`` (``LAKE_STREAM_NAME``, or ``REJECTED_STREAM_NAME``), or None
    when the function has none (the variable is unset); it sends through ``clients.service_client`` (botocore
    resolves the endpoint, ``AWS_ENDPOINT_URL_FIREHOSE`` included)."""
    stream_name = os.environ.get(variable)
    if not stream_name:
        return None
    return LakeSink(service_client("firehose", FIREHOSE_CONFIG), stream_name)


def rejected_sink_from_environment() -> LakeSink | None:
    """The sink of the rejected rows' stream (``REJECTED_STREAM_NAME``), or None."""
    return sink_from_environment("REJECTED_STREAM_NAME")
