"""The lean transport reads its answers itself (``read_response``): what ``http.client`` reads, the same failures.

Each well-formed answer is read both ways, by ``read_response`` and by ``http.client.HTTPResponse``,
from the same bytes (a socket pair on this machine): same status, reason, headers, body and
keep-alive decision, whether the bytes come at once or one by one. Malformed or cut answers raise the
``http.client`` exception ``http.client`` raises, which the transport turns into botocore's
``ConnectionClosedError`` (retried), and a read that waits too long raises ``TimeoutError``.
"""

from __future__ import annotations

import http.client
import socket

import pytest

from analytics_producer.transport import MAX_HEAD_BYTES, Response, read_response

BODY = b'{"Successful":[{"Id":"0","MessageId":"m-0"}],"Failed":[]}'

WELL_FORMED = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: r-1\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    "chunked, extensions and trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\n" + BODY[:5] + b"\r\n" + b"%x\r\n" % (len(BODY) - 5) + BODY[5:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n",
    "bare LF line ends": b"HTTP/1.1 200 OK\nContent-Length: %d\n\n%s" % (len(BODY), BODY),
    "100 Continue first": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    "Connection: close": b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    "HTTP/1.0 keep-alive": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
    "no length: up to the end": b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\n\r\n<html>oops</html>",
    "204 without a body": b"HTTP/1.1 204 No Content\r\nx-amzn-RequestId: r-2\r\n\r\n",
    "no reason phrase": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",
}
# http.client keeps a value's trailing white space and a folded line's CRLF; read_response does what RFC 9112
# asks (the value without surrounding white space, a fold replaced by a space), so SQS's code is read clean.
FOLDED = b"HTTP/1.1 400 Bad Request\r\nx-amzn-query-error:  AWS.SimpleQueueService.X;Sender \r\nX-Long: first\r\n second\r\nContent-Length: 2\r\n\r\n{}"


class Pieces:
    """A socket stand-in whose ``recv`` hands out ``data`` in pieces of ``size`` bytes, then b"" (the peer closed)."""

    def __init__(self, data: bytes, size: int = 1, then: BaseException | None = None) -> None:
        self.data, self.size, self.then, self.calls = data, size, then, 0

    def recv(self, limit: int) -> bytes:
        self.calls += 1
        if not self.data and self.then is not None:
            raise self.then
        piece, self.data = self.data[: min(self.size, limit)], self.data[min(self.size, limit) :]
        return piece


def sent(data: bytes) -> tuple[socket.socket, socket.socket]:
    """A socket pair whose reading end holds ``data``, then the end of the stream (the answers fit its buffer)."""
    reader, writer = socket.socketpair()
    writer.sendall(data)
    writer.shutdown(socket.SHUT_WR)
    return reader, writer


def through_http_client(data: bytes) -> Response:
    """What http.client reads from ``data``."""
    reader, writer = sent(data)
    with reader, writer:
        response = http.client.HTTPResponse(reader, method="POST")
        response.begin()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Response(response.status, response.reason, headers, body, bool(response.will_close))


def through_read_response(data: bytes) -> Response:
    reader, writer = sent(data)
    with reader, writer:
        return read_response(reader)


@pytest.mark.parametrize("data", WELL_FORMED.values(), ids=WELL_FORMED.keys())
def test_an_answer_is_read_as_http_client_reads_it(data: bytes) -> None:
    expected = through_http_client(data)
    assert through_read_response(data) == expected
    assert read_response(Pieces(data, size=1)) == expected, "the same when every byte comes on its own"
    assert read_response(Pieces(data, size=7)) == expected


def test_what_the_transport_uses_of_an_answer() -> None:
    ok = read_response(Pieces(WELL_FORMED["content-length"], size=1 << 16))
    assert (ok.status, ok.body, ok.will_close, ok.headers["x-amzn-requestid"]) == (200, BODY, False, "r-1")
    assert read_response(Pieces(WELL_FORMED["chunked, extensions and trailers"])).body == BODY
    error = read_response(Pieces(FOLDED))
    assert error.headers["x-amzn-query-error"] == "AWS.SimpleQueueService.X;Sender"
    assert error.headers["x-long"] == "first second"


def test_bytes_after_the_answer_make_the_connection_unusable() -> None:
    data = WELL_FORMED["content-length"] + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    response = read_response(Pieces(data, size=1 << 16))
    assert (response.body, response.will_close) == (BODY, True), "never read into the next request's answer"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", http.client.RemoteDisconnected),  # closed before answering (a kept-alive connection the server dropped)
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", http.client.IncompleteRead),  # cut in the body
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", http.client.IncompleteRead),  # cut in a chunk
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.IncompleteRead),  # not a chunk size
        (b"HTTP/1.1 abc OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 42 Low\r\n\r\n", http.client.BadStatusLine),
        (b"SSH-2.0-OpenSSH\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/2 200\r\n\r\n", http.client.UnknownProtocol),
    ],
)
def test_a_broken_answer_raises_what_http_client_raises(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        through_http_client(data)
    with pytest.raises(error):
        read_response(Pieces(data, size=3))


def test_an_answer_cut_in_its_head_is_incomplete() -> None:
    """http.client reads a head cut short as a 200 without a body; read_response refuses it (retried, nothing confirmed either way)."""
    data = b"HTTP/1.1 200 OK\r\nContent-Len"
    assert through_http_client(data).body == b""
    with pytest.raises(http.client.IncompleteRead):
        read_response(Pieces(data, size=3))


def test_a_junk_status_line_fails_at_once_not_at_the_read_timeout() -> None:
    """The first line is judged as soon as it is complete: the server is not waited on for the rest of a head."""
    pieces = Pieces(b"<html>not http</html>\r\n", size=1 << 16, then=AssertionError("read again after a junk status line"))
    with pytest.raises(http.client.BadStatusLine):
        read_response(pieces)


def test_a_head_larger_than_the_limit_is_refused() -> None:
    data = b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"x" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n"
    with pytest.raises(http.client.LineTooLong):
        read_response(Pieces(data, size=1 << 16))


def test_a_read_that_times_out_raises_timeout_error() -> None:
    """The socket's timeout bounds each read (the transport sets the read timeout on it): TimeoutError, as http.client's."""
    reader, writer = socket.socketpair()
    with reader, writer:
        reader.settimeout(0.05)
        writer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")  # 8 bytes short, connection left open
        with pytest.raises(TimeoutError):
            read_response(reader)
