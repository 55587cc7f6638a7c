"""The lake's rows packed into Firehose records: Firehose bills each record rounded up to 5 KB, and its JSON-to-Parquet
conversion reads several JSON documents from one record, so one put's rows go as few records as Firehose's 1,000 KiB
record limit allows (https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html;
https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html). moto's Firehose checks neither the
record limit nor the conversion: the limit is asserted here on what the sink sends."""

from __future__ import annotations

import json
from typing import Any

from tests.processor.conftest import Processor

STREAM = "chat-analytics-test-requests"


class Firehose:
    """``put_record_batch`` answering from a script of per-call refusals (entry index -> error code)."""

    def __init__(self, script: list[dict[int, str]] | None = None) -> None:
        self.script = list(script or [])
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:
        self.calls.append([record["Data"] for record in Records])
        refusals = self.script.pop(0) if self.script else {}
        responses = [{"ErrorCode": refusals[i]} if i in refusals else {"RecordId": f"id-{i}"} for i in range(len(Records))]
        return {"FailedPutCount": len(refusals), "RequestResponses": responses}


def rows(*sizes: int) -> list[bytes]:
    """JSON lines of about ``size`` bytes each, told apart by their ``n``."""
    return [(json.dumps({"n": n, "pad": "x" * max(0, size - 20)}) + "\n").encode() for n, size in enumerate(sizes)]


def test_rows_are_grouped_in_order_up_to_the_limit(processor: Processor) -> None:
    pack = processor.lake.pack_rows
    assert pack([]) == []
    assert pack([b"a\n", b"b\n", b"c\n"]) == [(0, 1, 2)]
    assert pack([b"aaaa\n", b"bbbb\n", b"cc\n", b"dddddddd\n"], limit=10) == [(0, 1), (2,), (3,)]
    assert pack([b"x" * 30 + b"\n", b"y\n"], limit=10) == [(0,), (1,)], "a row over the limit goes alone"
    assert processor.lake.MAX_RECORD_BYTES == 1_000 * 1024


def test_one_put_of_small_rows_is_one_record_holding_every_row_in_order(processor: Processor) -> None:
    client = Firehose()
    batch = rows(600, 600, 600)
    result = processor.lake.LakeSink(client, STREAM).put(batch)
    assert (result.delivered, result.refused, result.requests) == (3, {}, 1)
    [[record]] = client.calls
    assert record == b"".join(batch)
    assert [json.loads(line)["n"] for line in record.decode().splitlines()] == [0, 1, 2], "newline-separated, as Firehose reads them"


def test_rows_past_the_record_limit_go_in_several_records_each_within_it(processor: Processor) -> None:
    client = Firehose()
    batch = rows(400_000, 400_000, 400_000)  # three rows of ~390 KiB: two fit a record, the third does not
    result = processor.lake.LakeSink(client, STREAM).put(batch)
    assert result.delivered == 3 and result.requests == 1
    [records] = client.calls
    assert records == [batch[0] + batch[1], batch[2]]
    assert all(len(record) <= processor.lake.MAX_RECORD_BYTES for record in records)


def test_a_refused_record_refuses_every_row_in_it_and_only_those(processor: Processor) -> None:
    code = "ServiceUnavailableException"
    client = Firehose([{1: code}] + [{0: code}] * (processor.lake.MAX_PUT_ATTEMPTS - 1))  # the second record, then its retries
    batch = rows(400_000, 400_000, 400_000, 400_000)  # records (0, 1) and (2, 3)
    result = processor.lake.LakeSink(client, STREAM).put(batch)
    assert result.refused == {2: code, 3: code}
    assert result.delivered == 2
    assert client.calls[1:] == [[batch[2] + batch[3]]] * (processor.lake.MAX_PUT_ATTEMPTS - 1), "only the refused record is sent again"


def test_a_record_refused_once_is_delivered_whole_on_its_retry(processor: Processor) -> None:
    client = Firehose([{0: "ServiceUnavailableException"}, {}])
    batch = rows(500, 500)
    result = processor.lake.LakeSink(client, STREAM).put(batch)
    assert (result.delivered, result.refused, result.requests) == (2, {}, 2)
    assert client.calls == [[b"".join(batch)], [b"".join(batch)]]


def test_a_failed_call_refuses_every_row_with_its_error(processor: Processor) -> None:
    class Broken(Firehose):
        def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> Any:
            raise ConnectionError("no route")

    result = processor.lake.LakeSink(Broken(), STREAM).put(rows(100, 100))
    assert (result.delivered, result.refused) == (0, {0: "ConnectionError", 1: "ConnectionError"})
