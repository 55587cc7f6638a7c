"""The processor's own DynamoDB and Firehose client (``transport.py``): what it sends is what botocore sends,
what it raises is what botocore raises, and botocore's retry handler decides its retries.

Requests go to servers on 127.0.0.1 (a scripted HTTP server) or to botocore's ``before-send`` event;
the signature is compared with botocore's own ``SigV4Auth`` for the same instant (moto's server checks
it against the keys in the local stack: tests/local).
"""

from __future__ import annotations

import datetime
import http.client
import io
import json
import socket
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError, NoCredentialsError, ReadTimeoutError

from testkit.faults import read_request
from tests.processor.conftest import REGION, Processor

UPDATE = {
    "TableName": "events",
    "Key": {"requestId": {"S": "r-1"}},
    "ReturnValues": "ALL_OLD",
    "UpdateExpression": "SET #query = :query, #day = if_not_exists(#day, :day)",
    "ExpressionAttributeNames": {"#query": "query", "#day": "day"},
    "ExpressionAttributeValues": {":query": {"S": 'Straße "quoted" 🐍 \u2028'}, ":day": {"S": "2026-01-01"}},
}
AMZ_DATE = "20260101T000102Z"


def session(access_key: str = "AKIDEXAMPLE", token: str | None = None) -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=access_key, aws_secret_access_key="wJalrXUtnFEMI/K7MDENG", aws_session_token=token, region_name=REGION
    )


def answer(status: int, body: bytes | str, headers: dict[str, str] | None = None, *, crc: bool = True) -> bytes:
    data = body.encode() if isinstance(body, str) else body
    fields = {"Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(data)), "x-amzn-RequestId": "req-1"}
    if crc:
        fields["x-amz-crc32"] = str(zlib.crc32(data) & 0xFFFFFFFF)
    fields.update(headers or {})
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
    reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Status")
    return f"HTTP/1.1 {status} {reason}\r\n{head}\r\n".encode() + data


class Scripted:
    """An HTTP server on 127.0.0.1 answering each request with the next scripted raw bytes; ``CLOSE``
    closes the connection instead. Records each request's headers (lowercased) and body, and the connections."""

    CLOSE = b""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Scripted:
        return self

    def __exit__(self, *_: object) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while True:
                request = read_request(connection, buffer)
                if request is None:
                    return
                headers, body, buffer = request
                reply = self._reply(headers, body)
                if reply == self.CLOSE:
                    return
                connection.sendall(reply)

    def _reply(self, headers: dict[str, str], body: bytes) -> bytes:
        with self._lock:
            self.requests.append((headers, body))
            return self.answers.pop(0) if self.answers else self.CLOSE


@pytest.fixture
def no_sleep(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's backoff delays, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(processor.transport.time, "sleep", slept.append)
    return slept


def client_at(processor: Processor, url: str, service: str = "dynamodb", **session_args: Any) -> Any:
    config = processor.clients.DYNAMODB_CONFIG if service == "dynamodb" else processor.clients.FIREHOSE_CONFIG
    origin = session(**session_args)
    return processor.transport.JsonClient(origin.client(service, endpoint_url=url, config=config), origin.get_credentials())


@pytest.fixture
def fixed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's signer and ours at the same instant."""
    instant = datetime.datetime(2026, 1, 1, 0, 1, 2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: instant)


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEJr//////////wEaDFeT+token/with=chars"])
@pytest.mark.parametrize("url", ["https://dynamodb.us-east-1.amazonaws.com", "http://127.0.0.1:4566", "http://localhost:5000/prefix"])
def test_the_signature_is_botocores(processor: Processor, fixed_time: None, token: str | None, url: str) -> None:
    """SigV4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) as botocore's
    ``SigV4Auth`` computes it for the same request and instant: same headers, same Authorization."""
    endpoint = processor.transport.HttpEndpoint(url, connect_timeout_s=1, read_timeout_s=1, max_idle=1)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token)
    signer = processor.transport.SigV4Signer(credentials, "dynamodb", REGION, endpoint.host, endpoint.path)
    body = json.dumps(UPDATE, separators=(",", ":")).encode()
    ours = signer.headers("DynamoDB_20120810.UpdateItem", "application/x-amz-json-1.0", body, amz_date=AMZ_DATE)
    request = AWSRequest(
        method="POST",
        url=endpoint.url,
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.UpdateItem"},
    )
    botocore.auth.SigV4Auth(credentials.get_frozen_credentials(), "dynamodb", REGION).add_auth(request)
    theirs = dict(request.headers.items())
    assert ours.pop("Host") == botocore.auth._host_from_url(endpoint.url)
    assert ours == theirs
    again = signer.headers("DynamoDB_20120810.UpdateItem", "application/x-amz-json-1.0", body, amz_date="20260102T000000Z")
    assert again["Authorization"] != ours["Authorization"] and "/20260102/" in again["Authorization"], "a new day, a new key"


def captured(client: Any) -> list[Any]:
    """Requests the client hands to ``before-send``, each answered with a canned 200."""
    seen: list[Any] = []

    def respond(request: Any, **_: Any) -> AWSResponse:
        seen.append(request)
        body = b'{"FailedPutCount":0,"RequestResponses":[{"RecordId":"1"},{"RecordId":"2"}]}' if b"Records" in request.body else b"{}"
        return AWSResponse(request.url, 200, {"x-amzn-RequestId": "r"}, _Raw(body))

    client.meta.events.register("before-send", respond)
    return seen


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


@pytest.mark.parametrize(
    ("service", "method", "arguments"),
    [
        ("dynamodb", "update_item", UPDATE),
        ("firehose", "put_record_batch", {"DeliveryStreamName": "s", "Records": [{"Data": b'{"a":"\xc3\x9f"}\n'}, {"Data": b"\x00\xff"}]}),
    ],
)
def test_the_request_is_the_one_botocore_sends(
    processor: Processor, fixed_time: None, monkeypatch: pytest.MonkeyPatch, service: str, method: str, arguments: dict
) -> None:
    """Same URL, target, content type, body (byte for byte) and signature as botocore's client for the same call."""
    monkeypatch.setattr(processor.transport.time, "time", lambda: 1_767_225_662.5)  # 2026-01-01T00:01:02Z
    config = processor.clients.DYNAMODB_CONFIG if service == "dynamodb" else processor.clients.FIREHOSE_CONFIG
    reference = session().client(service, config=config)
    theirs = captured(reference)
    getattr(reference, method)(**arguments)
    ours_client = processor.clients.json_client(session(), service, config)
    ours = captured(ours_client)
    result = getattr(ours_client, method)(**arguments)
    (expected,), (sent,) = theirs, ours
    assert (sent.method, sent.url, sent.body) == (expected.method, expected.url, expected.body)
    for name in ("Content-Type", "X-Amz-Target", "X-Amz-Date", "Authorization"):
        value = expected.headers[name]  # botocore's prepared headers are bytes
        assert sent.headers[name] == (value.decode() if isinstance(value, bytes) else value), name
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200 and result["ResponseMetadata"]["RetryAttempts"] == 0


def test_the_endpoint_is_botocores_from_the_environment(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> None:
    """``AWS_ENDPOINT_URL`` for every service, ``AWS_ENDPOINT_URL_<SERVICE>`` for one
    (https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html), resolved by botocore."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:8000")
    dynamodb = processor.clients.json_client(boto3.session.Session(), "dynamodb", processor.clients.DYNAMODB_CONFIG)
    firehose = processor.clients.json_client(boto3.session.Session(), "firehose", processor.clients.FIREHOSE_CONFIG)
    assert (dynamodb.endpoint.url, dynamodb.signer.host, dynamodb.signer.region) == ("http://localhost:8000/", "localhost:8000", REGION)
    assert (firehose.endpoint.url, firehose.signer.host, firehose.signer.service) == (
        "http://127.0.0.1:4566/",
        "127.0.0.1:4566",
        "firehose",
    )
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    default = processor.clients.json_client(boto3.session.Session(), "dynamodb", processor.clients.DYNAMODB_CONFIG)
    assert default.endpoint.url == f"https://dynamodb.{REGION}.amazonaws.com/"
    assert (default.endpoint.connect_timeout_s, default.endpoint.read_timeout_s, default.endpoint.max_idle) == (2, 4, 10)


def test_an_error_answer_is_the_clients_modeled_error_with_its_fields(processor: Processor, no_sleep: list[float]) -> None:
    """A failed condition: botocore's ``ConditionalCheckFailedException`` with the item it returned
    (``ReturnValuesOnConditionCheckFailure``), which the store reads; not retried."""
    item = {"requestId": {"S": "r-1"}, "queryTimestamp": {"N": "5"}}
    body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "message": "failed", "Item": item})
    with Scripted([answer(400, body)]) as server:
        client = client_at(processor, server.url)
        with pytest.raises(client.exceptions.ConditionalCheckFailedException) as caught:
            client.update_item(**UPDATE)
    error = caught.value
    assert isinstance(error, ClientError) and processor.clients.error_code(error) == "ConditionalCheckFailedException"
    assert error.response["Item"] == item and error.response["Error"]["Message"] == "failed"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400 and error.response["ResponseMetadata"]["RequestId"] == "req-1"
    assert len(server.requests) == 1 and no_sleep == []


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (answer(400, '{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}'), "ValidationException"),
        (answer(400, b"<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>"), "400"),
        (answer(403, '{"__type":"AccessDeniedException","Message":"no"}'), "AccessDeniedException"),
    ],
)
def test_errors_that_are_not_retried(processor: Processor, no_sleep: list[float], reply: bytes, code: str) -> None:
    """Parsed by botocore's JSON parser (a body that is not JSON keeps the status as its code), raised once."""
    with Scripted([reply]) as server:
        client = client_at(processor, server.url)
        with pytest.raises(ClientError) as caught:
            client.update_item(**UPDATE)
    assert processor.clients.error_code(caught.value) == code and len(server.requests) == 1 and no_sleep == []


def test_throttling_and_5xx_are_retried_by_botocores_standard_handler(processor: Processor, no_sleep: list[float]) -> None:
    """``total_max_attempts`` = 3: a throttled attempt and a 500 are retried, after botocore's backoff
    (at most ``CallLimits.backoff_s`` each); the third answer is the call's."""
    throttled = answer(400, '{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow"}')
    with Scripted([throttled, answer(500, b""), answer(200, '{"Attributes":{"a":{"S":"b"}}}')]) as server:
        client = client_at(processor, server.url)
        result = client.update_item(**UPDATE)
    assert result["Attributes"] == {"a": {"S": "b"}} and result["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(server.requests) == 3 and len(no_sleep) == 2
    assert all(0 <= delay <= processor.clients.CallLimits.backoff_s(n) for n, delay in enumerate(no_sleep, start=1))
    signatures = {headers["authorization"] for headers, _ in server.requests}
    assert all(headers["x-amz-target"] == "DynamoDB_20120810.UpdateItem" for headers, _ in server.requests)
    assert len({body for _, body in server.requests}) == 1 and signatures, "the same body each attempt, signed again"


def test_the_last_attempts_error_is_raised(processor: Processor, no_sleep: list[float]) -> None:
    unavailable = answer(503, '{"__type":"ServiceUnavailableException","message":"down"}')
    with Scripted([unavailable] * 5) as server:
        client = client_at(processor, server.url, "firehose")
        with pytest.raises(ClientError) as caught:
            client.put_record_batch(DeliveryStreamName="s", Records=[{"Data": b"a\n"}])
    assert processor.clients.error_code(caught.value) == "ServiceUnavailableException" and processor.clients.is_transient(caught.value)
    assert len(server.requests) == 3 and len(no_sleep) == 2
    assert server.requests[0][0]["x-amz-target"] == "Firehose_20150804.PutRecordBatch"
    assert server.requests[0][0]["content-type"] == "application/x-amz-json-1.1"


def test_a_dynamodb_answer_whose_checksum_is_wrong_is_retried(processor: Processor, no_sleep: list[float]) -> None:
    """botocore's standard mode retries a DynamoDB body whose CRC32 is not its ``x-amz-crc32``
    (``RetryDDBChecksumError``): the answer was damaged on the way."""
    damaged = answer(200, '{"Attributes":{}}', {"x-amz-crc32": "12345"}, crc=False)
    with Scripted([damaged, answer(200, "{}")]) as server:
        result = client_at(processor, server.url).update_item(**UPDATE)
    assert len(server.requests) == 2 and result["ResponseMetadata"]["RetryAttempts"] == 1


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n" + answer(200, "{}"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-amzn-RequestId: c\r\n\r\n1\r\n{\r\n1;ext=1\r\n}\r\n0\r\nTrailer: x\r\n\r\n",
    ],
)
def test_interim_answers_and_chunked_bodies_are_read(processor: Processor, reply: bytes) -> None:
    with Scripted([reply, answer(200, "{}")]) as server:
        client = client_at(processor, server.url)
        assert client.update_item(**UPDATE)["ResponseMetadata"]["HTTPStatusCode"] == 200
        client.update_item(**UPDATE)
    assert server.connections == 1, "the connection was kept"


def test_one_connection_is_kept_alive_and_a_dropped_one_replaced(processor: Processor, no_sleep: list[float]) -> None:
    """Calls reuse the idle connection; when the server has closed it in between, the next call opens a new one."""
    closing = answer(200, "{}", {"Connection": "close"})
    with Scripted([answer(200, "{}"), answer(200, "{}"), closing, answer(200, "{}")]) as server:
        client = client_at(processor, server.url)
        for _ in range(4):
            client.update_item(**UPDATE)
    assert (len(server.requests), server.connections) == (4, 2) and no_sleep == []


def test_a_connection_closed_before_the_answer_is_a_retried_connection_error(processor: Processor, no_sleep: list[float]) -> None:
    with Scripted([Scripted.CLOSE, Scripted.CLOSE, Scripted.CLOSE]) as server:
        client = client_at(processor, server.url)
        with pytest.raises(ConnectionClosedError) as caught:
            client.update_item(**UPDATE)
    assert len(server.requests) == 3 and processor.clients.is_transient(caught.value)


def test_a_read_timeout_is_botocores(processor: Processor, no_sleep: list[float]) -> None:
    from testkit.faults import SilentEndpoint

    with SilentEndpoint() as server:
        client = client_at(processor, server.url)
        client.endpoint.read_timeout_s = 0.2
        with pytest.raises(ReadTimeoutError):
            client.update_item(**UPDATE)
        assert server.actions == ["UpdateItem"] * 3


def test_without_credentials_nothing_is_sent(processor: Processor) -> None:
    with Scripted([answer(200, "{}")]) as server:
        botocore_client = session().client("dynamodb", endpoint_url=server.url, config=processor.clients.DYNAMODB_CONFIG)
        client = processor.transport.JsonClient(botocore_client, None)
        with pytest.raises(NoCredentialsError):
            client.update_item(**UPDATE)
    assert server.requests == []


def test_the_handlers_clients_are_this_transport(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store and the lake the handler builds from the environment send through ``transport.JsonClient``."""
    monkeypatch.setenv("LAKE_STREAM_NAME", "s")
    processor.reset()
    try:
        assert isinstance(processor.built_store.client, processor.transport.JsonClient)
        assert isinstance(processor.built_lake.client, processor.transport.JsonClient)
    finally:
        processor.reset()


def test_with_a_proxy_the_botocore_client_is_used(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> None:
    """This transport connects directly; where botocore would go through a proxy (``HTTPS_PROXY``, or a
    ``Config``'s proxies) the store gets botocore's client, so no request bypasses the proxy."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = processor.clients.json_client(boto3.session.Session(), "dynamodb", processor.clients.DYNAMODB_CONFIG)
    assert not isinstance(proxied, processor.transport.JsonClient) and hasattr(proxied, "update_item")
    monkeypatch.setenv("NO_PROXY", f"dynamodb.{REGION}.amazonaws.com")
    direct = processor.clients.json_client(boto3.session.Session(), "dynamodb", processor.clients.DYNAMODB_CONFIG)
    assert isinstance(direct, processor.transport.JsonClient)
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("NO_PROXY")
    configured = processor.clients.DYNAMODB_CONFIG.merge(Config(proxies={"https": "http://127.0.0.1:3128"}))
    assert not isinstance(processor.clients.json_client(boto3.session.Session(), "dynamodb", configured), processor.transport.JsonClient)


class _Trickle(io.RawIOBase):
    """A connection that hands over ``step`` bytes a read: an answer whose head comes in several segments."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece, self.data = self.data[: self.step], self.data[self.step :]
        buffer[: len(piece)] = piece
        return len(piece)


@pytest.mark.parametrize(
    "reply",
    [
        answer(200, '{"Attributes":{}}', {"X-Twice": "a", "x-twice": "b", "X-Spaced": "  v  "}),
        b"HTTP/1.1 100 Continue\r\n\r\n" + answer(400, "{}"),
        b"HTTP/1.0 200 OK\nContent-Length: 2\n\n{}",  # bare LF line ends: read line by line
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ],
)
def test_an_answer_reads_the_same_whole_or_in_pieces(processor: Processor, reply: bytes) -> None:
    """The reader splits a head it holds whole at once, and reads one that comes in pieces line by line: same answer."""
    read_response = processor.transport.read_response
    whole = read_response(io.BufferedReader(_Trickle(reply, len(reply))))
    assert whole == read_response(io.BufferedReader(_Trickle(reply, 1)))
    assert whole == read_response(io.BufferedReader(_Trickle(reply, 7)))
    assert whole[0] in (200, 400, 204) and whole[2].get("x-twice", "a, b") == "a, b"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "BadStatusLine"),
        (b"SPDY/9 200 OK\r\n\r\n", "BadStatusLine"),
        (b"", "RemoteDisconnected"),
        (b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * 101 + b"\r\n", "HTTPException"),
    ],
)
def test_a_broken_answer_is_an_http_error_whole_or_in_pieces(processor: Processor, reply: bytes, error: str) -> None:
    for step in (max(1, len(reply)), 3):
        with pytest.raises(http.client.HTTPException) as caught:
            processor.transport.read_response(io.BufferedReader(_Trickle(reply, step)))
        assert type(caught.value).__name__ == error


class ByRequest(Scripted):
    """A ``Scripted`` server whose answers are chosen by the request's ``Key.requestId`` (each its own list, in
    order), so calls in flight together on several connections get their own answers whatever order they come in."""

    def __init__(self, answers: dict[str, list[bytes]]) -> None:
        super().__init__([])
        self.by_request = {request_id: list(replies) for request_id, replies in answers.items()}
        self.seen: list[str] = []

    def _reply(self, headers: dict[str, str], body: bytes) -> bytes:
        request_id = json.loads(body)["Key"]["requestId"]["S"]
        with self._lock:
            self.seen.append(request_id)
            return self.by_request[request_id].pop(0)


def test_calls_in_flight_together_are_each_settled_and_retried_as_alone(processor: Processor, no_sleep: list[float]) -> None:
    """Three ``UpdateItem`` sent before any answer is read (``start_update_item``), then read together
    (``transport.complete``): each gets botocore's retries as a call made alone would (a throttled one and one
    whose connection closed are sent again, each on a connection of its own), and its own answer or error."""
    throttled = answer(400, '{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow"}')
    denied = answer(400, '{"__type":"AccessDeniedException","Message":"no"}')
    server = ByRequest(
        {
            "r-1": [throttled, answer(200, '{"Attributes":{"a":{"S":"1"}}}')],
            "r-2": [answer(200, '{"Attributes":{"a":{"S":"2"}}}')],
            "r-3": [Scripted.CLOSE, denied],
        }
    )
    with server:
        client = client_at(processor, server.url)
        calls = [client.start_update_item({}, **{**UPDATE, "Key": {"requestId": {"S": f"r-{n}"}}}) for n in (1, 2, 3)]
        processor.transport.complete(calls)
        assert all(call.settled for call in calls)
        first, second = calls[0].result(), calls[1].result()
        with pytest.raises(ClientError) as caught:
            calls[2].result()
    assert (first["Attributes"], first["ResponseMetadata"]["RetryAttempts"]) == ({"a": {"S": "1"}}, 1)
    assert (second["Attributes"], second["ResponseMetadata"]["RetryAttempts"]) == ({"a": {"S": "2"}}, 0)
    assert processor.clients.error_code(caught.value) == "AccessDeniedException"
    assert sorted(server.seen) == ["r-1", "r-1", "r-2", "r-3", "r-3"] and len(no_sleep) == 2
    assert server.connections >= 3, "each call in flight on a connection of its own"


class _RecordingSocket:
    """A connection whose answer is already there; records the timeouts the reader sets."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []
        self.stream = io.BytesIO(answer(200, "{}"))

    def settimeout(self, timeout: float) -> None:
        self.timeouts.append(timeout)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self.stream)

    def sendall(self, request: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_read_timeout_counts_from_the_send(processor: Processor, monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer read while others were read first waits for its first byte only what is left of the read
    timeout since its request was sent (``due``), then the whole timeout for each later read, as botocore's
    urllib3 reads an answer right after its send; an answer whose time is up takes what has arrived."""
    endpoint = processor.transport.HttpEndpoint("http://127.0.0.1:9", connect_timeout_s=2, read_timeout_s=4, max_idle=0)
    opened: list[_RecordingSocket] = []

    def open_socket() -> _RecordingSocket:  # max_idle=0: a new connection for each send
        opened.append(_RecordingSocket())
        return opened[-1]

    endpoint.open_socket = open_socket
    monkeypatch.setattr(processor.transport.time, "monotonic", lambda: 101.5)
    assert endpoint.receive(endpoint.send({"Host": "127.0.0.1:9"}, b"{}"), due=104.0).status_code == 200
    assert endpoint.receive(endpoint.send({"Host": "127.0.0.1:9"}, b"{}"), due=100.0).status_code == 200
    assert opened[0].timeouts == [2.5, 4.0]
    assert opened[1].timeouts[1] == 4.0 and 0 < opened[1].timeouts[0] <= 1e-3
