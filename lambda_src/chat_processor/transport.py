"""DynamoDB's ``UpdateItem`` and Firehose's ``PutRecordBatch`` as signed HTTP requests on kept-alive connections.

botocore's request pipeline (parameter validation, a dozen event hooks, the user agent, a uuid4 per
call, SigV4 as a generic signer, urllib3) cost the processor about 1 ms of CPU per ``UpdateItem``;
the wire needs a small part of that (docs/benchmarks/processor.md). ``JsonClient`` sends the service's
JSON protocol itself: ``POST /`` with ``X-Amz-Target: <targetPrefix>.<Operation>`` and
``Content-Type: application/x-amz-json-<jsonVersion>``, both read from botocore's service model, the
body serialized as botocore serializes it (``json.dumps``, blobs in base64: the same bytes),
signed with SigV4 (``SigV4Signer``: the canonical request botocore's ``SigV4Auth`` builds for such a
request, the signing key kept for the day; a test holds the two byte-identical) using credentials from
botocore's chain, frozen per request (botocore refreshes a refreshable role when near expiry).

Everything else stays botocore's, so a call behaves as the botocore client it is built from:

* the endpoint, region and signing name are the client's (``AWS_ENDPOINT_URL``,
  ``AWS_ENDPOINT_URL_DYNAMODB`` / ``_FIREHOSE`` and the config file resolved by botocore);
* connect and read timeouts, and at most ``max_pool_connections`` idle connections, from the client's ``Config``;
* retries: after every attempt the client's ``needs-retry`` event is emitted with what botocore's
  endpoint passes, so botocore's own ``standard`` retry handler (``total_max_attempts``, its retry
  quota, its backoff, DynamoDB's CRC32 check) and any handler registered before it (the processor's
  ``clients.CallGuard``) decide; ``after-call`` and ``after-call-error`` are emitted as the client does
  (the retry quota is given back on success);
* a ``before-send`` handler may answer in place of the network, as with botocore (moto's in-process
  mock, the benchmark's canned answers);
* failures are botocore's exceptions: an error answer is parsed by botocore's own JSON parser (modeled
  fields included, e.g. the ``Item`` of a ``ConditionalCheckFailedException``) and raised as the
  client's modeled ``ClientError`` subclass; the network's errors as ``EndpointConnectionError``,
  ``ConnectTimeoutError``, ``ReadTimeoutError``, ``ConnectionClosedError``, ``SSLError``;
  missing credentials as ``NoCredentialsError``.

Not carried over: proxies (``HTTPS_PROXY``, ``Config.proxies``) and client certificates: with either,
``clients.json_client`` returns the botocore client itself (Lambda has neither by default). A success
answer is read with ``json.loads``: the same dict as botocore's parse for what the processor reads
(strings, numbers, booleans; a binary attribute would stay base64 text, and the processor writes none).

A call goes in two steps, so one thread can have a batch's writes in flight at once: ``start_update_item``
(and ``start_put_record_batch``) signs and sends the first attempt on a connection of its own (an idle one, or
a new one), and ``InFlight.result`` or ``complete`` (several calls together) reads the answers, in order, and
makes the retries botocore's handlers want, each at its time. ``update_item`` and ``put_record_batch`` do both.
Whole calls may come from several threads (each takes its own connection); the calls ``complete`` settles
must come from one thread.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import platform
import select
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import botocore
from botocore.awsrequest import AWSPreparedRequest
from botocore.compat import HTTPHeaders
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.hooks import first_non_none_response
from botocore.parsers import create_parser
from botocore.utils import normalize_url_path

_DEFAULT_PORTS = {"http": 80, "https": 443}
_USER_AGENT = f"chat-analytics-processor botocore/{botocore.__version__} Python/{platform.python_version()}"
_JSON = json.JSONEncoder()  # what botocore's JSON serializer uses: json.dumps(body), default separators, ASCII


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.digest(key, text.encode("utf-8"), "sha256")


class SigV4Signer:
    """SigV4 for ``POST <path>`` without a query string, as botocore's ``SigV4Auth`` signs it.

    Signed headers: ``content-type``, ``host``, ``x-amz-date``, ``x-amz-security-token`` (with a
    session token) and ``x-amz-target``; the payload's SHA-256 is always signed (botocore signs it for
    these services over HTTPS and HTTP alike). The signing key depends only on the secret key and the
    day, so it is derived once a day (and again when the credentials change), not for every request.
    """

    def __init__(self, credentials: Any, service: str, region: str, host: str, path: str) -> None:
        self.credentials = credentials
        self.service = service
        self.region = region
        self.host = host
        self.canonical_path = quote(normalize_url_path(path), safe="/~")  # as SigV4Auth._normalize_url_path
        self._key: tuple[str, str, bytes] | None = None  # (secret key, day, signing key)
        self._date: tuple[int, str] = (-1, "")  # (epoch second, its x-amz-date)
        self._token_line: tuple[str, str] = ("", "")  # (session token, its canonical header line)

    def _now(self) -> str:
        """``YYYYMMDDTHHMMSSZ`` (UTC), formatted once a second."""
        second = int(time.time())
        cached = self._date
        if cached[0] != second:
            cached = self._date = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
        return cached[1]

    def _signing_key(self, secret_key: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret_key and cached[1] == day:
            return cached[2]
        key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), self.region), self.service), "aws4_request")
        self._key = (secret_key, day, key)  # one tuple: threads see the old key or the new one, never a mix
        return key

    def headers(self, target: str, content_type: str, body: bytes, amz_date: str | None = None) -> dict[str, str]:
        """The request's headers, ``Authorization`` included (``amz_date``: ``YYYYMMDDTHHMMSSZ``, now by default)."""
        credentials = self.credentials
        if credentials is None:
            raise NoCredentialsError()
        frozen = credentials.get_frozen_credentials()
        if frozen.access_key is None or frozen.secret_key is None:
            raise NoCredentialsError()
        if amz_date is None:
            amz_date = self._now()
        day = amz_date[:8]
        token = frozen.token
        if token:
            cached_token = self._token_line
            if cached_token[0] != token:  # a session token is ~1 KB in Lambda: its canonical line is made once per token
                cached_token = self._token_line = (token, "x-amz-security-token:" + " ".join(token.split()) + "\n")
            token_line = cached_token[1]
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        else:
            token_line = ""
            signed = "content-type;host;x-amz-date;x-amz-target"
        canonical = (
            f"POST\n{self.canonical_path}\n\ncontent-type:{content_type}\nhost:{self.host}\nx-amz-date:{amz_date}\n"
            f"{token_line}x-amz-target:{target}\n\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        string_to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
        signature = hmac.digest(self._signing_key(frozen.secret_key, day), string_to_sign.encode("utf-8"), "sha256").hex()
        headers = {
            "Host": self.host,
            "Content-Type": content_type,
            "X-Amz-Target": target,
            "X-Amz-Date": amz_date,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, SignedHeaders={signed}, Signature={signature}",
        }
        if token:
            headers["X-Amz-Security-Token"] = token
        return headers


class HttpResponse:
    """One answer, with the attributes botocore's handlers read from its ``AWSResponse``."""

    __slots__ = ("content", "headers", "reason", "status_code", "url")

    def __init__(self, url: str, status_code: int, reason: str, headers: Any, content: bytes) -> None:
        self.url, self.status_code, self.reason, self.headers, self.content = url, status_code, reason, headers, content

    @property
    def raw(self) -> None:
        return None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _is_dropped(sock: socket.socket) -> bool:
    """Whether an idle kept-alive socket was closed by the server (readable while no answer is due: EOF or junk)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


_MAX_LINE = 65536
_MAX_HEADERS = 100


def _line(reader: Any) -> bytes:
    line: bytes = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise http.client.LineTooLong("header line")
    return line


def _head(reader: Any) -> tuple[bytes, list[str]]:
    """An answer's status line and its header lines (decoded, without their line ends), read up to the empty line.

    When the whole head is in the reader's buffer already (an answer of one segment: nearly always), it is
    split at once; otherwise, or when a line ends with a bare LF, read line by line: the same lines either way.
    """
    buffered = reader.peek(1)  # what the buffer holds (one read of the socket when it is empty)
    end = buffered.find(b"\r\n\r\n")
    if 0 <= end <= _MAX_LINE:
        head = buffered[:end]
        lines = head.decode("latin-1").split("\r\n")
        if head.count(b"\n") == len(lines) - 1 and len(lines) <= _MAX_HEADERS + 1:  # CRLF line ends only
            reader.read(end + 4)
            return lines[0].encode("latin-1"), lines[1:]
    status_line = _line(reader)
    if not status_line:
        raise http.client.RemoteDisconnected("the server closed the connection without an answer")
    lines = []
    readline = reader.readline  # the loop below is _line inlined: a call fewer per header line
    for _ in range(_MAX_HEADERS + 1):
        line = readline(_MAX_LINE + 1)
        if len(line) < 3:  # b"\r\n", b"\n", b"" (a header line has a name and a colon)
            if line in (b"\r\n", b"\n", b""):
                return status_line, lines
        elif len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line.decode("latin-1").rstrip("\r\n"))
    raise http.client.HTTPException(f"more than {_MAX_HEADERS} headers")


def read_response(reader: Any) -> tuple[int, str, dict[str, str], bytes, bool]:
    """One HTTP/1.1 answer from a buffered reader: (status, reason, headers, body, whether the server closes).

    Header names are lowercased (botocore's handlers read them so); a repeated header's values are
    joined with ``, ``. The body is read by ``Content-Length``, chunks, or up to the connection's end.
    Raises ``http.client.HTTPException`` for anything that is not a whole answer (``IncompleteRead``,
    ``BadStatusLine``, ``RemoteDisconnected``) and the socket's own errors (``TimeoutError``, ``OSError``).
    """
    while True:
        status_line, lines = _head(reader)
        parts = status_line.split(None, 2)
        try:
            version, status = parts[0], int(parts[1])
        except (IndexError, ValueError):
            raise http.client.BadStatusLine(status_line.decode("latin-1", "replace").strip()) from None
        if not version.startswith(b"HTTP/") or not 100 <= status <= 999:
            raise http.client.BadStatusLine(status_line.decode("latin-1", "replace").strip())
        reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        for line in lines:
            name, separator, value = line.partition(":")
            if not separator:
                raise http.client.BadStatusLine(f"a header line without a colon: {line.encode('latin-1')[:64]!r}")
            key = name.strip().lower()
            if key in headers:
                headers[key] = f"{headers[key]}, {value.strip()}"
            else:
                headers[key] = value.strip()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            continue
        break
    connection = headers.get("connection", "").lower()
    will_close = "close" in connection or (version == b"HTTP/1.0" and "keep-alive" not in connection)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(reader)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise http.client.HTTPException(f"Content-Length is not a number: {headers['content-length']!r}") from None
        body = reader.read(length) if length > 0 else b""
        if len(body) < length:
            raise http.client.IncompleteRead(body, length - len(body))
    elif status in (204, 304):
        body = b""
    else:  # neither a length nor chunks: the body ends with the connection
        body, will_close = reader.read(), True
    return status, reason, headers, body, will_close


def _read_chunked(reader: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = _line(reader)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(chunks)) from None
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        chunk = reader.read(size)
        if len(chunk) < size:
            raise http.client.IncompleteRead(b"".join(chunks) + chunk, size - len(chunk))
        chunks.append(chunk)
        _line(reader)  # the CRLF after the chunk


_LEAST_WAIT_S = 1e-6  # a read whose time is up still takes what has arrived (a zero timeout would not block at all)


def _exchange_error(error: BaseException, endpoint_url: str) -> Exception | None:
    """botocore's exception for a failed send or read (urllib3's, as botocore maps them); None for any other error."""
    if isinstance(error, TimeoutError):
        return ReadTimeoutError(endpoint_url=endpoint_url, error=error)
    if isinstance(error, ssl.SSLError):
        return SSLError(endpoint_url=endpoint_url, error=error)
    if isinstance(error, OSError | http.client.HTTPException):  # reset, broken pipe, closed before a whole answer
        return ConnectionClosedError(endpoint_url=endpoint_url, error=error)
    return None


class _Connection:
    """A socket and its buffered reader, kept together between requests."""

    __slots__ = ("reader", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.close()
        with contextlib.suppress(Exception):
            self.sock.close()


class HttpEndpoint:
    """Kept-alive HTTP/1.1 connections to one endpoint: each exchange takes an idle one or opens one.

    At most ``max_idle`` connections are kept between requests (urllib3's non-blocking pool of
    ``max_pool_connections`` does the same: more concurrent requests open more connections, and
    those the pool has no room for are closed). A connection that failed is closed, never reused.
    """

    def __init__(self, endpoint_url: str, *, connect_timeout_s: float, read_timeout_s: float, max_idle: int, verify: Any = True) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"the endpoint must be http:// or https:// with a host, not {endpoint_url!r}")
        self.endpoint_url = endpoint_url
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_idle = max_idle
        self.verify = verify  # True (botocore's CA bundle), False (no verification) or a CA bundle's path
        self.scheme = parts.scheme
        self.hostname = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.host = host if self.port == _DEFAULT_PORTS[parts.scheme] else f"{host}:{self.port}"  # botocore's _host_from_url
        self.path = parts.path if parts.path.endswith("/") else parts.path + "/"  # botocore joins "/" to a path
        self.url = f"{parts.scheme}://{self.host}{self.path}"
        self._idle: deque[_Connection] = deque()
        self._ssl_context: ssl.SSLContext | None = None
        self.open_socket: Callable[[], Any] = self._open  # replaced by the benchmark (canned answers)
        self.is_dropped: Callable[[Any], bool] = _is_dropped

    def _open(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.hostname, self.port), timeout=self.connect_timeout_s)
        except TimeoutError as error:
            raise ConnectTimeoutError(endpoint_url=self.endpoint_url, error=error) from error
        except OSError as error:
            raise EndpointConnectionError(endpoint_url=self.endpoint_url, error=error) from error
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one request is one write
            if self.scheme == "https":
                if self._ssl_context is None:
                    self._ssl_context = self._new_ssl_context()
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self.hostname)  # within the connect timeout
        except TimeoutError as error:
            sock.close()
            raise ConnectTimeoutError(endpoint_url=self.endpoint_url, error=error) from error
        except ssl.SSLError as error:
            sock.close()
            raise SSLError(endpoint_url=self.endpoint_url, error=error) from error
        except OSError as error:
            sock.close()
            raise EndpointConnectionError(endpoint_url=self.endpoint_url, error=error) from error
        sock.settimeout(self.read_timeout_s)  # from here on every write and read waits at most this
        return sock

    def _new_ssl_context(self) -> ssl.SSLContext:
        if self.verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        from botocore.httpsession import get_cert_path

        return ssl.create_default_context(cafile=get_cert_path(self.verify))

    def _connection(self) -> _Connection:
        while True:
            try:
                connection = self._idle.pop()  # the most recently used: the likeliest to be alive
            except IndexError:
                return _Connection(self.open_socket())
            if not self.is_dropped(connection.sock):
                return connection
            connection.close()

    def send(self, headers: dict[str, str], body: bytes) -> _Connection:
        """``POST`` the body on a connection of its own (idle or new), checked out until ``receive`` reads its
        answer; raises botocore's exception for a failed connection or send."""
        connection = self._connection()
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = f"POST {self.path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body
        try:
            connection.sock.sendall(request)
        except BaseException as error:
            connection.close()
            failure = _exchange_error(error, self.endpoint_url)
            if failure is None:
                raise
            raise failure from error
        return connection

    def receive(self, connection: _Connection, due: float) -> HttpResponse:
        """The whole answer to the request ``send`` sent on ``connection``; the connection goes back to the idle ones
        (or is closed). The answer's first byte must come by ``due`` (``time.monotonic()``: when the request was sent
        plus the read timeout, however long other answers were read in between), each later read within the read
        timeout, as botocore's urllib3 reads it. Raises botocore's exception for a failed exchange."""
        sock, reader = connection.sock, connection.reader
        try:
            # A read timeout counts from the send: what is left of it for the first byte, then the whole timeout.
            sock.settimeout(max(due - time.monotonic(), _LEAST_WAIT_S))
            reader.peek(1)
            sock.settimeout(self.read_timeout_s)
            status, reason, response_headers, data, will_close = read_response(reader)
        except BaseException as error:
            connection.close()
            failure = _exchange_error(error, self.endpoint_url)
            if failure is None:
                raise
            raise failure from error
        if will_close or len(self._idle) >= self.max_idle:
            connection.close()
        else:
            self._idle.append(connection)
        return HttpResponse(self.url, status, reason, response_headers, data)

    def exchange(self, headers: dict[str, str], body: bytes) -> HttpResponse:
        """``POST`` the body, read the whole answer; raises botocore's exception for a failed exchange."""
        connection = self.send(headers, body)
        return self.receive(connection, time.monotonic() + self.read_timeout_s)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class _Request(AWSPreparedRequest):
    """The request as ``before-send`` handlers see it, its headers made botocore's ``HTTPHeaders`` only when read."""

    def __init__(self, url: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.url, self.body, self.stream_output = "POST", url, body, False
        self._plain_headers = headers
        self._headers: HTTPHeaders | None = None

    @property
    def headers(self) -> HTTPHeaders:
        if self._headers is None:
            self._headers = HTTPHeaders.from_dict(self._plain_headers)
        return self._headers

    @headers.setter
    def headers(self, value: HTTPHeaders) -> None:
        self._headers = value


def _retry_free(http_response: Any, parsed: dict[str, Any] | None) -> bool:
    """Whether botocore's ``standard`` retry handler certainly lets this answer be: a 2xx without an error
    code whose ``x-amz-crc32`` (DynamoDB's checksum of the body), if any, matches the body.

    Its checkers (``botocore/retries/standard.py``) retry a 5xx, a throttling, transient or modeled
    retryable error code, a connection error, and, of a success, only a DynamoDB body whose CRC32 is not
    the header's (``RetryDDBChecksumError``). Such a success skips the ``needs-retry`` event, which the
    handler answers with None (7 µs a call); every other answer is given to it.
    """
    if parsed is None or not 200 <= http_response.status_code < 300 or "Error" in parsed:
        return False
    checksum = http_response.headers.get("x-amz-crc32")
    if checksum is None:
        return True
    try:
        return int(checksum) == zlib.crc32(http_response.content) & 0xFFFFFFFF
    except ValueError:
        return False


class JsonClient:
    """``update_item`` and ``put_record_batch`` (whichever the service has) of ``client``, sent by this module.

    Takes and returns what the botocore client's methods do; ``meta`` is the client's (its config,
    events, endpoint and service model), so ``clients.CallGuard`` bounds these calls as it bounds the client's.
    """

    def __init__(self, client: Any, credentials: Any, *, verify: Any = True) -> None:
        meta = client.meta
        service_model = meta.service_model
        if service_model.resolved_protocol != "json":
            raise ValueError(f"{service_model.service_name} does not speak the JSON protocol")
        self.meta = meta
        self.exceptions = client.exceptions
        self._events = meta.events
        self._service_id = service_model.service_id.hyphenize()
        self._target_prefix = service_model.metadata["targetPrefix"]
        self._content_type = f"application/x-amz-json-{service_model.metadata['jsonVersion']}"
        config = meta.config
        self.endpoint = HttpEndpoint(
            meta.endpoint_url,
            connect_timeout_s=float(config.connect_timeout),
            read_timeout_s=float(config.read_timeout),
            max_idle=config.max_pool_connections,
            verify=verify,
        )
        self.signer = SigV4Signer(
            credentials,
            service_model.signing_name or service_model.endpoint_prefix,
            meta.region_name,
            self.endpoint.host,
            self.endpoint.path,
        )
        self._parser = create_parser(service_model.resolved_protocol)
        self._models: dict[str, Any] = {}  # by operation name: botocore's operation model

    # -- the operations -------------------------------------------------------------------------

    def update_item(self, **arguments: Any) -> dict[str, Any]:
        """DynamoDB ``UpdateItem``: every argument is text or nested dicts of text, serialized as botocore does."""
        return self.start_update_item({}, **arguments).result()

    def start_update_item(self, context: dict[str, Any], **arguments: Any) -> InFlight:
        """``update_item`` sent, its answer not read yet (``InFlight.result``, ``complete``). ``context`` is the call's
        context as botocore's retry handlers see it (``clients.CallGuard`` keeps the call's deadline there)."""
        return self.start("UpdateItem", _JSON.encode(arguments).encode("utf-8"), context)

    def put_record_batch(self, DeliveryStreamName: str, Records: Sequence[dict[str, bytes]]) -> dict[str, Any]:
        """Firehose ``PutRecordBatch``: each record's ``Data`` in base64, as botocore serializes a blob."""
        return self.start_put_record_batch({}, DeliveryStreamName, Records).result()

    def start_put_record_batch(self, context: dict[str, Any], DeliveryStreamName: str, Records: Sequence[dict[str, bytes]]) -> InFlight:
        """``put_record_batch`` sent, its answer not read yet (as ``start_update_item``)."""
        # json.dumps's text, written directly: base64's alphabet needs no escaping, and json.dumps would scan every byte.
        records = ", ".join(f'{{"Data": "{base64.b64encode(record["Data"]).decode("ascii")}"}}' for record in Records)
        body = f'{{"DeliveryStreamName": {_JSON.encode(DeliveryStreamName)}, "Records": [{records}]}}'
        return self.start("PutRecordBatch", body.encode("ascii"), context)

    # -- one call: attempts, retries, errors ----------------------------------------------------

    def call(self, operation: str, body: bytes) -> dict[str, Any]:
        """Send ``body`` until an answer needs no retry (botocore's ``Endpoint._send_request`` loop); the parsed answer."""
        return self.start(operation, body, {}).result()

    def start(self, operation: str, body: bytes, context: dict[str, Any]) -> InFlight:
        """The call's first attempt sent; ``complete`` (or the call's ``result``) reads its answer and makes its retries."""
        model = self._models.get(operation)
        if model is None:
            model = self._models[operation] = self.meta.service_model.operation_model(operation)
        call = InFlight(self, model, body, context)
        self._send(call)
        return call

    def _send(self, call: InFlight) -> None:
        """One attempt's request, signed: sent on a connection of its own (``call.connection``), answered by a
        ``before-send`` handler (``call.response``) or failed (``call.exception``: botocore's endpoint hands every
        failed exchange to its retry handlers; ``NoCredentialsError``, raised before any request, never is)."""
        model = call.model
        try:
            headers = self.signer.headers(f"{self._target_prefix}.{model.name}", self._content_type, call.body)
            headers["User-Agent"] = _USER_AGENT  # never signed (SigV4 leaves it out)
            http_response = first_non_none_response(
                self._events.emit(
                    f"before-send.{self._service_id}.{model.name}",
                    request=_Request(self.endpoint.url, headers, call.body),
                )
            )
            if http_response is None:
                call.connection = self.endpoint.send(headers, call.body)
                call.due = time.monotonic() + self.endpoint.read_timeout_s
            else:
                call.response = http_response
        except Exception as error:
            call.exception = error

    def _receive(self, call: InFlight) -> None:
        """The answer to the attempt ``_send`` sent (blocking until it comes, or the attempt's read timeout)."""
        connection, call.connection = call.connection, None
        assert connection is not None
        try:
            call.response = self.endpoint.receive(connection, call.due)
        except Exception as error:
            call.exception = error

    def _settle(self, call: InFlight) -> None:
        """What the attempt's answer means, as botocore's endpoint and client decide it: the call's result
        (``call.value`` or ``call.error``), or a retry (``call.resend_at``) after the delay the ``needs-retry``
        handlers give (botocore's ``standard`` retry handler; before it, ``clients.CallGuard``'s deadline)."""
        operation, events, exception = call.model.name, self._events, call.exception
        if isinstance(exception, NoCredentialsError):  # raised while signing, before any request: never retried
            events.emit(f"after-call-error.{self._service_id}.{operation}", exception=exception, context=call.context)
            call.error = exception
            return
        http_response = call.response
        parsed = None if http_response is None else self._parse(http_response, call.model)
        if exception is not None or not _retry_free(http_response, parsed):
            delay = first_non_none_response(
                events.emit(
                    f"needs-retry.{self._service_id}.{operation}",
                    response=None if exception is not None else (http_response, parsed),
                    endpoint=self,
                    operation=call.model,
                    attempts=call.attempts,
                    caught_exception=exception,
                    request_dict=call.request_dict,
                )
            )
            if delay is not None and delay is not False:
                call.resend_at = time.monotonic() + delay
                call.attempts += 1
                return
        if exception is not None:
            events.emit(f"after-call-error.{self._service_id}.{operation}", exception=exception, context=call.context)
            call.error = exception
            return
        assert http_response is not None and parsed is not None
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = call.attempts - 1
        events.emit(
            f"after-call.{self._service_id}.{operation}", http_response=http_response, parsed=parsed, model=call.model, context=call.context
        )
        if http_response.status_code >= 300:
            code = parsed.get("Error", {}).get("Code")
            call.error = self.exceptions.from_code(code)(parsed, operation)
        else:
            call.value = parsed

    def _parse(self, http_response: Any, model: Any) -> dict[str, Any]:
        status = http_response.status_code
        content = http_response.content
        if status < 301:
            try:
                parsed = json.loads(content) if content else {}
            except ValueError:
                parsed = {}
            if not isinstance(parsed, dict):
                parsed = {}
            headers = http_response.headers
            # This module's answers have lowercase names already; a before-send handler's may not.
            names = dict(headers) if type(http_response) is HttpResponse else {name.lower(): value for name, value in headers.items()}
            metadata: dict[str, Any] = {"HTTPStatusCode": status, "HTTPHeaders": names}
            request_id = headers.get("x-amzn-requestid")
            if request_id is not None:
                metadata["RequestId"] = request_id
            parsed["ResponseMetadata"] = metadata
            return parsed
        # An error: botocore's own parse, its second pass for the modeled error's fields included.
        response_dict = {
            "status_code": status,
            "headers": http_response.headers,
            "body": content,
            "context": {"operation_name": model.name},
        }
        parsed = self._parser.parse(response_dict, model.output_shape)
        code = parsed.get("Error", {}).get("Code")
        error_shape = model.service_model.shape_for_error_code(code) if code else None
        if error_shape is not None:
            parsed.update(self._parser.parse(response_dict, error_shape))
        return dict(parsed)

    def close(self) -> None:
        self.endpoint.close()


class InFlight:
    """One call of a ``JsonClient`` under way: its current attempt sent (or answered by a ``before-send`` handler,
    or failed), the answer not read yet. ``result`` reads it; ``complete`` reads several calls' answers together,
    so a batch's writes wait on the network at the same time in one thread."""

    __slots__ = (
        "attempts",
        "body",
        "client",
        "connection",
        "context",
        "due",
        "error",
        "exception",
        "model",
        "request_dict",
        "resend_at",
        "response",
        "value",
    )

    def __init__(self, client: JsonClient, model: Any, body: bytes, context: dict[str, Any]) -> None:
        self.client, self.model, self.body, self.context = client, model, body, context
        self.request_dict = {"context": context}  # what botocore's retry handlers read (the quota's capacity)
        self.attempts = 1
        self.connection: _Connection | None = None  # the connection the attempt's answer will come on
        self.due = 0.0  # when the answer's first byte must have come (``time.monotonic()``)
        self.response: Any = None  # the attempt's answer (an ``HttpResponse``, or a ``before-send`` handler's)
        self.exception: Exception | None = None  # the attempt's failure
        self.resend_at: float | None = None  # a retry's time (``time.monotonic()``), once the retry handler wants one
        self.value: dict[str, Any] | None = None  # the call's parsed answer
        self.error: Exception | None = None  # the call's error, raised by ``result``

    @property
    def settled(self) -> bool:
        return self.value is not None or self.error is not None

    def result(self) -> dict[str, Any]:
        """The parsed answer, once every attempt the retry handlers want is made; raises the call's error."""
        if not self.settled:
            complete((self,))
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class Finished:
    """A call already made whole (a botocore client's, which cannot be split into a send and a read): its answer or its error."""

    __slots__ = ("error", "value")

    def __init__(self, value: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.value, self.error = value, error

    def result(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


Pending = InFlight | Finished  # a call whose answer ``result`` gives


def complete(calls: Iterable[Pending]) -> None:
    """Settle every call (a ``Finished`` one is already): each waiting attempt's answer read, in order (the
    reads block, but the answers came meanwhile: the total wait is about the slowest one's, not the sum), then
    each answer settled as the call's result or a retry. The retries are sent each at its time (the sleeps in
    between are botocore's backoff, as its endpoint sleeps them), then their answers read, and so on.

    A call's read timeout counts from its request's send (``HttpEndpoint.receive``), and each retry is decided
    when its answer is settled, with the deadline guard's ``needs-retry`` handler first, so a call made here
    waits no longer than the same call made alone."""
    waiting = [call for call in calls if isinstance(call, InFlight) and not call.settled]
    while waiting:
        for call in waiting:
            if call.connection is not None:
                call.client._receive(call)
        retried: list[InFlight] = []
        for call in waiting:
            call.client._settle(call)
            if call.resend_at is not None:
                retried.append(call)
        retried.sort(key=lambda call: call.resend_at or 0.0)
        for call in retried:
            time.sleep(max(0.0, (call.resend_at or 0.0) - time.monotonic()))
            call.resend_at = call.response = call.exception = None
            call.client._send(call)
        waiting = retried
