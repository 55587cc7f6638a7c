"""The default transport: one ``SendMessageBatch`` as one signed HTTP request on a kept-alive connection.

botocore's request pipeline (parameter validation, the user agent, its event hooks, urllib3) costs
the sender thread about 1 ms of CPU per batch; the wire needs a fraction of that. This transport
builds the SQS JSON-protocol request itself (``POST /`` with ``X-Amz-Target:
AmazonSQS.SendMessageBatch``): the body from each entry's JSON, written once per entry
(:meth:`SQSTransport.batch_body`, byte for byte what ``json.dumps`` writes for the request), signed
with SigV4 computed directly (:class:`analytics_producer.sigv4.SigV4Signer`: the same headers as
botocore's ``SigV4Auth``, its signing key kept per day) with credentials from botocore's chain,
frozen afresh for every request (a refreshable role or profile is refreshed by botocore when near
expiry), and sends it over one persistent socket, read with ``http.client``, with the same connect
and read timeouts as the botocore client.

Failures are raised as the exceptions botocore would raise for the same answer (a ``ClientError``
whose code is parsed as botocore's JSON parser does, ``EndpointConnectionError``,
``ConnectTimeoutError``, ``ReadTimeoutError``, ``ConnectionClosedError``, ``NoCredentialsError``),
so the sender's retry classification and ``on_error`` see the same thing whichever transport sent.
One difference: a query-protocol XML error (moto's answer to a denied request) gives its ``Code`` and
``Message``, where botocore keeps the HTTP status as the code and the raw body as the message (the
sender's warnings read both the same way, see :func:`analytics_producer.errors.error_details`).

Only the sender thread uses a transport: it is not thread-safe and needs no lock.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import platform
import re
import select
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import botocore
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from analytics_producer.batching import Entry, json_str
from analytics_producer.destination import region_from_queue_url
from analytics_producer.errors import one_line, parse_error_document, unreadable_body
from analytics_producer.sigv4 import SigV4Signer

__all__ = ["Response", "SQSTransport", "error_response", "read_response", "region_from_queue_url"]

OPERATION = "SendMessageBatch"
TARGET = "AmazonSQS.SendMessageBatch"
CONTENT_TYPE = "application/x-amz-json-1.0"
SERVICE = "sqs"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_json_str = json_str
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _is_dropped(sock: socket.socket) -> bool:
    """Whether an idle kept-alive socket was closed by the server (readable while no response is due: EOF or junk)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def error_response(status: int, reason: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The error dict of this answer (``ClientError.response``): SQS's code and message, never its raw body.

    A JSON-protocol error gives the code of ``__type`` without its namespace
    (``com.amazonaws.sqs#QueueDoesNotExist``), as botocore's JSON parser does, replaced by the
    query-compatible code of an ``x-amzn-query-error`` header
    (``AWS.SimpleQueueService.NonExistentQueue;Sender``). A query-protocol XML error (``<Error><Code>``,
    what moto answers a denied JSON request with) gives its ``Code``, ``Message`` and ``Type``. Any other
    body (a proxy's page, an empty or HTML 5xx) gives the HTTP status as the code and a message that
    names the body without quoting it (plain text is kept, on one line).
    """
    error: dict[str, Any]
    stripped = body.strip()
    document = parse_error_document(stripped) if stripped else None
    if document is not None:
        error = dict(document)
    else:
        parsed: Any = None
        if stripped.startswith(b"{"):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
        phrase = http.client.responses.get(status, reason)
        if isinstance(parsed, dict):
            message = parsed.get("message", parsed.get("Message", ""))
            error = {"Message": "" if message is None else str(message), "Code": str(status)}
        elif not stripped:
            error = {"Message": phrase, "Code": str(status)}
        elif stripped.startswith((b"<", b"{")):
            error = {"Message": unreadable_body(status, len(body)), "Code": str(status)}
        else:
            error = {"Message": one_line(stripped.decode("utf-8", "replace")), "Code": str(status)}
    query_error = headers.get("x-amzn-query-error")
    if query_error:
        parts = query_error.split(";")
        if len(parts) == 2 and parts[0]:
            error.update(QueryErrorCode=error["Code"], Type=parts[1], Code=parts[0])
    metadata: dict[str, Any] = {"HTTPStatusCode": status, "HTTPHeaders": dict(headers)}
    if "x-amzn-requestid" in headers:
        metadata["RequestId"] = headers["x-amzn-requestid"]
    return {"Error": error, "ResponseMetadata": metadata}


class Response(NamedTuple):
    """One HTTP answer, read whole."""

    status: int
    reason: str
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    will_close: bool  # the server closes the connection after it (or it cannot be reused)


class Readable(Protocol):
    """What :func:`read_response` reads from: a connected socket (plain or TLS)."""

    def recv(self, bufsize: int, /) -> bytes: ...


_RECV_BYTES = 65536
MAX_HEAD_BYTES = 65536  # status line and headers (http.client allows 100 lines of up to 64 KiB)
_HEAD_END = re.compile(rb"\n\r?\n")  # CRLF CRLF, or bare LFs as http.client accepts
_NO_BODY = (204, 304)


def read_response(sock: Readable) -> Response:
    """Read one HTTP/1.x answer from ``sock``: the status line, the headers and the whole body.

    What ``http.client.HTTPResponse`` does for this one use, without its per-response file object
    and its ``email`` header parser (about 55 µs of CPU per answer, where the wire's own ``send``
    and ``recv`` take about 15): the body by ``Content-Length``, chunked, or up to the end of the
    connection; interim ``1xx`` answers skipped; bare LF line ends accepted. Raises what
    ``http.client`` raises for the same failure (``RemoteDisconnected``, ``BadStatusLine``,
    ``IncompleteRead``, ``LineTooLong``, ``UnknownProtocol``), and ``TimeoutError`` when a read
    waits longer than the socket's timeout. Bytes after the answer make the connection unusable
    (``will_close``): nothing is ever read into the next request's answer.
    """
    buffer = bytearray()
    recv = sock.recv
    start = 0  # where the current answer begins in buffer (after skipped 1xx answers)

    def more() -> None:
        chunk = recv(_RECV_BYTES)
        if not chunk:
            if not buffer:
                raise http.client.RemoteDisconnected("Remote end closed connection without response")
            raise http.client.IncompleteRead(bytes(buffer[start:]))
        buffer.extend(chunk)

    while True:
        status_checked = False
        while True:
            end = _HEAD_END.search(buffer, start)
            if end is not None and end.start() - start <= MAX_HEAD_BYTES:
                break
            if not status_checked and buffer.find(b"\n", start) >= 0:
                _status_line(buffer, start)  # a junk answer fails now, not at the read timeout
                status_checked = True
            if len(buffer) - start > MAX_HEAD_BYTES:
                raise http.client.LineTooLong("response head")
            more()
        lines = bytes(buffer[start : end.start()]).decode("iso-8859-1").split("\n")
        version, status, reason = _status_line(buffer, start)
        start = end.end()
        if 100 <= status < 200:  # interim (100 Continue, 103 Early Hints): the answer follows
            continue
        break
    headers: dict[str, str] = {}
    name = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and name:  # an obsolete folded continuation line
            headers[name] = f"{headers[name]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        if not colon:
            name = ""
            continue  # not a header line: ignored, as http.client's parser does
        name = name.strip().lower()
        headers[name] = value.strip()
    connection = headers.get("connection", "").lower()
    if version in ("HTTP/1.0", "HTTP/0.9"):
        will_close = "keep-alive" not in connection and "keep-alive" not in headers
    elif version.startswith("HTTP/1."):
        will_close = "close" in connection
    else:
        raise http.client.UnknownProtocol(version)

    if status in _NO_BODY:
        body_end = start
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, body_end = _read_chunked(buffer, start, more)
    else:
        length: int | None
        try:
            length = int(headers["content-length"])
        except (KeyError, ValueError):
            length = None
        if length is None or length < 0:  # up to the end of the connection
            while True:
                chunk = recv(_RECV_BYTES)
                if not chunk:
                    break
                buffer.extend(chunk)
            return Response(status, reason, headers, bytes(buffer[start:]), True)
        body_end = start + length
        while len(buffer) < body_end:
            chunk = recv(min(_RECV_BYTES, body_end - len(buffer)))
            if not chunk:
                raise http.client.IncompleteRead(bytes(buffer[start:]), body_end - len(buffer))
            buffer.extend(chunk)
        body = bytes(buffer[start:body_end])
    if len(buffer) > body_end:  # more than one answer to one request: never trusted again
        will_close = True
    return Response(status, reason, headers, body, will_close)


def _status_line(buffer: bytearray, start: int) -> tuple[str, int, str]:
    """``(version, status, reason)`` of the answer starting at ``start``, as http.client reads it (else ``BadStatusLine``)."""
    end = buffer.find(b"\n", start)
    line = bytes(buffer[start:end]).decode("iso-8859-1").rstrip("\r")
    parts = line.split(None, 2)
    version = parts[0] if parts else ""
    if len(parts) < 2 or not version.startswith("HTTP/"):
        raise http.client.BadStatusLine(line)
    try:
        status = int(parts[1])
    except ValueError:
        raise http.client.BadStatusLine(line) from None
    if not 100 <= status <= 999:
        raise http.client.BadStatusLine(line)
    return version, status, parts[2] if len(parts) > 2 else ""


def _read_chunked(buffer: bytearray, start: int, more: Callable[[], None]) -> tuple[bytes, int]:
    """The body of a chunked answer starting at ``start`` (chunk extensions and trailers skipped), and where it ends."""

    def line_at(position: int) -> tuple[bytes, int]:
        while True:
            end = buffer.find(b"\n", position)
            if end >= 0:
                return bytes(buffer[position:end]).rstrip(b"\r"), end + 1
            if len(buffer) - position > MAX_HEAD_BYTES:
                raise http.client.LineTooLong("chunk size")
            more()

    parts: list[bytes] = []
    position = start
    while True:
        size_line, position = line_at(position)
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None
        if size < 0:
            raise http.client.IncompleteRead(b"".join(parts))
        if size == 0:
            while True:  # trailers, up to an empty line
                trailer, position = line_at(position)
                if not trailer:
                    return b"".join(parts), position
        while len(buffer) < position + size:
            more()
        parts.append(bytes(buffer[position : position + size]))
        _, position = line_at(position + size)  # the CRLF after the chunk's data


class SQSTransport:
    """``send_message_batch(QueueUrl=..., Entries=[...])`` over one kept-alive connection, signed with SigV4.

    Takes and returns what boto3's ``send_message_batch`` does (the parsed JSON answer, with
    ``Successful`` and ``Failed``), so the sender uses either interchangeably.

    Args:
        endpoint_url: the SQS endpoint, as botocore resolved it (``https://sqs.<region>.amazonaws.com``).
        region_name: the signing region.
        credentials: a botocore ``Credentials`` (from ``Session.get_credentials()``), or None
            (every request then fails with ``NoCredentialsError``, as botocore's would).
        connect_timeout_s, read_timeout_s: bound one attempt, as the botocore client's config does.
        ca_bundle: a CA bundle for HTTPS (botocore's ``ca_bundle`` setting), else botocore's default.
        verify: False only to skip certificate verification (as botocore's ``verify=False``).
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        region_name: str,
        credentials: Any,
        connect_timeout_s: float,
        read_timeout_s: float,
        ca_bundle: str | None = None,
        verify: bool = True,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"endpoint_url must be http:// or https:// with a host, not {endpoint_url!r}")
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self.credentials = credentials
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.ca_bundle = ca_bundle
        self.verify = verify
        self._scheme = parts.scheme
        self._hostname = parts.hostname
        self._port = parts.port or _DEFAULT_PORTS[parts.scheme]
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._host_header = host if self._port == _DEFAULT_PORTS[parts.scheme] else f"{host}:{self._port}"
        self._path = parts.path.rstrip("/") + "/"  # botocore joins a path prefix and "/" the same way
        self._url = f"{parts.scheme}://{self._host_header}{self._path}"
        self._ssl_context: ssl.SSLContext | None = None
        self._socket: socket.socket | None = None
        from analytics_producer import __version__

        self._user_agent = f"analytics-producer/{__version__} botocore/{botocore.__version__} Python/{platform.python_version()}"
        signed = {
            "Host": self._host_header,
            "Content-Type": CONTENT_TYPE,
            "X-Amz-Target": TARGET,
            "x-amzn-query-mode": "true",  # as botocore sends for SQS: legacy error codes in x-amzn-query-error
        }
        self._signer = SigV4Signer(method="POST", path=self._path, headers=signed, region_name=region_name, service_name=SERVICE)
        # The request line and the headers that never change; User-Agent is never signed (SigV4 leaves it out).
        constant = "".join(f"{name}: {value}\r\n" for name, value in signed.items())
        self._head_start = f"POST {self._path} HTTP/1.1\r\n{constant}User-Agent: {self._user_agent}\r\n"
        self._body_starts: dict[str, bytes] = {}

    def fresh(self) -> SQSTransport:
        """A transport with the same endpoint, region, credentials and timeouts, and no connection (a forked child's)."""
        return SQSTransport(
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            credentials=self.credentials,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            ca_bundle=self.ca_bundle,
            verify=self.verify,
        )

    # -- the request ----------------------------------------------------------------------------

    def _credentials(self) -> Any:
        """The credentials as they are now: frozen for each request (botocore refreshes a refreshable set when near expiry)."""
        if self.credentials is None:
            raise NoCredentialsError()
        frozen = self.credentials.get_frozen_credentials()
        if frozen.access_key is None or frozen.secret_key is None:
            raise NoCredentialsError()
        return frozen

    def _head(self, body: bytes, now: float | None = None) -> bytes:
        """The request line and headers for ``body``, signed with the credentials as they are now (at ``now``, default the clock)."""
        signer = self._signer
        signature = signer.header_lines(self._credentials(), body, signer.amz_date(now))
        return f"{self._head_start}{signature}Content-Length: {len(body)}\r\n\r\n".encode("latin-1")

    def signed_headers(self, body: bytes, now: float | None = None) -> dict[str, str]:
        """The headers a request with ``body`` is sent with (Content-Length aside), signed at ``now`` (for tests and debugging)."""
        head = self._head(body, now).decode("latin-1").split("\r\n")[1:]
        return dict(line.split(": ", 1) for line in head if line and not line.startswith("Content-Length:"))

    def batch_body(self, queue_url: str, entries: Sequence[Entry]) -> bytes:
        """The ``SendMessageBatch`` JSON of ``entries`` (each with its ``entry_id``), byte for byte ``json.dumps``'s.

        Each entry's JSON after its ``Id`` is built once (:meth:`Entry.request_json`) and reused by its retries.
        """
        start = self._body_starts.get(queue_url)
        if start is None:
            if len(self._body_starts) > 16:  # one queue URL per logger; a transport shared by many stays bounded
                self._body_starts.clear()
            start = self._body_starts[queue_url] = f'{{"QueueUrl":{_json_str(queue_url)},"Entries":['.encode()
        items = [f'{{"Id":{_json_str(entry.entry_id)},'.encode() + entry.request_json() for entry in entries]
        return b"".join((start, b",".join(items), b"]}"))

    def send_entries(self, queue_url: str, entries: Sequence[Entry]) -> dict[str, Any]:
        """``send_message_batch`` of the sender's entries, without building the request's dicts first (the sender's path)."""
        return self._post(self.batch_body(queue_url, entries))

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        """One attempt, one request on the wire; raises what botocore would for the same failure."""
        return self._post(_dumps({"QueueUrl": QueueUrl, "Entries": Entries}).encode())

    def _post(self, body: bytes) -> dict[str, Any]:
        response = self._exchange(body, self._head(body))
        status, data = response.status, response.body
        if status >= 300:
            raise ClientError(error_response(status, response.reason, response.headers, data), OPERATION)
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {}  # as botocore: nothing confirmed, so every entry is sent again (same ids)
        if not isinstance(parsed, dict):
            parsed = {}
        metadata: dict[str, Any] = {"HTTPStatusCode": status}
        request_id = response.headers.get("x-amzn-requestid")
        if request_id is not None:
            metadata["RequestId"] = request_id
        parsed["ResponseMetadata"] = metadata
        return parsed

    # -- the connection -------------------------------------------------------------------------

    def _connect(self) -> socket.socket:
        """The kept-alive socket, opened (connect timeout) when there is none or the server closed it."""
        sock = self._socket
        if sock is not None and not _is_dropped(sock):
            return sock
        self.close()
        try:
            sock = socket.create_connection((self._hostname, self._port), timeout=self.connect_timeout_s)
        except TimeoutError as error:
            raise ConnectTimeoutError(endpoint_url=self.endpoint_url, error=error) from error
        except OSError as error:
            raise EndpointConnectionError(endpoint_url=self.endpoint_url, error=error) from error
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one request is one write: nothing to coalesce
            if self._scheme == "https":
                if self._ssl_context is None:
                    self._ssl_context = self._new_ssl_context()
                sock = self._ssl_context.wrap_socket(sock, server_hostname=self._hostname)  # handshake within the connect timeout
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
        self._socket = sock
        return sock

    def _new_ssl_context(self) -> ssl.SSLContext:
        if not self.verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        from botocore.httpsession import get_cert_path

        return ssl.create_default_context(cafile=self.ca_bundle or get_cert_path(True))

    def _exchange(self, body: bytes, head: bytes) -> Response:
        """Write the request in one piece, read the whole answer; on any failure the connection is closed, never reused."""
        sock = self._connect()
        try:
            sock.sendall(head + body)
            response = read_response(sock)
        except TimeoutError as error:
            self.close()
            raise ReadTimeoutError(endpoint_url=self.endpoint_url, error=error) from error
        except ssl.SSLError as error:
            self.close()
            raise SSLError(endpoint_url=self.endpoint_url, error=error) from error
        except (OSError, http.client.HTTPException) as error:  # reset, broken pipe, closed before a valid answer
            self.close()
            raise ConnectionClosedError(endpoint_url=self.endpoint_url, error=error) from error
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(Exception):
                sock.close()

    def __repr__(self) -> str:
        return f"SQSTransport({self.endpoint_url!r}, region={self.region_name!r})"
