"""AWS Signature Version 4 for the lean transport's one request shape, computed directly with hmac and hashlib.

The lean transport sends one kind of request: ``POST <path>`` to one host with the same four headers
(``Content-Type``, ``Host``, ``X-Amz-Target``, ``x-amzn-query-mode``) and a JSON body. Everything but
the body's hash and the time is the same from one request to the next, so what botocore's
``SigV4Auth`` recomputes for every request (an ``AWSRequest``, its ``HTTPHeaders``, the canonical
headers sorted and trimmed, the signing key's four HMACs) is computed here once:

- per credentials (access key, secret key, session token: compared on every request, since a
  refreshable provider can hand out new ones at any time): the canonical request around the date
  and the payload hash, the signed header list, the ``Authorization`` prefix;
- per day (UTC) and credentials: the signing key (``kSigning``);
- per second: the ``X-Amz-Date`` value.

A request then costs two SHA-256 (the body, the canonical request) and one HMAC-SHA256 (the
string to sign). The algorithm is botocore's ``SigV4Auth.add_auth`` for this request, step by step
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html);
``tests/producer/test_producer_signing.py`` checks that both produce the same headers for the same
request and time (session token or not, non-ASCII bodies, path prefixes, ports, IPv6 hosts).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, NamedTuple
from urllib.parse import quote

from botocore.utils import normalize_url_path

ALGORITHM = "AWS4-HMAC-SHA256"
_DATE_MARK = "\x00"  # where the date goes in the canonical request template (never in a header value)


def canonical_uri(path: str) -> str:
    """The path as SigV4 canonicalizes it: dot segments removed, then URI-encoded (``/`` and ``~`` kept), as botocore does."""
    return quote(normalize_url_path(path), safe="/~")


def _trimall(value: str) -> str:
    """SigV4's header value: surrounding white space removed, runs of spaces collapsed to one."""
    return " ".join(value.split())


class _Keyed(NamedTuple):
    """What is computed once per set of credentials."""

    credentials: Any  # the ReadOnlyCredentials these were computed from
    secret: bytes  # b"AWS4" + secret key
    canonical_head: str  # the canonical request up to the date
    canonical_tail: str  # from after the date to the payload hash
    token_line: str  # the X-Amz-Security-Token header line, or ""
    authorization_head: str  # "AWS4-HMAC-SHA256 Credential=<access key>/"
    authorization_tail: str  # ", SignedHeaders=...; Signature="


class SigV4Signer:
    """Signs one endpoint's requests: a constant method, path and header set, a body that changes.

    Args:
        method, path: the request line's (``path`` as sent; its canonical form is computed once).
        headers: the constant headers to sign (``Host`` among them), by name as sent.
        region_name, service_name: the credential scope's.

    Not thread-safe (its caches are plain attributes): one signer per sender thread.
    """

    def __init__(self, *, method: str, path: str, headers: dict[str, str], region_name: str, service_name: str) -> None:
        self.method = method.upper()
        self.region_name = region_name
        self.service_name = service_name
        self.canonical_path = canonical_uri(path)
        self._headers = {name.lower(): _trimall(value) for name, value in headers.items()}
        if "x-amz-date" in self._headers or "x-amz-security-token" in self._headers or "authorization" in self._headers:
            raise ValueError("the signer sets X-Amz-Date, X-Amz-Security-Token and Authorization itself")
        self._keyed: _Keyed | None = None
        self._day = ""
        self._signing_key = b""
        self._second = -1
        self._amz_date = ""

    def amz_date(self, now: float | None = None) -> str:
        """``X-Amz-Date`` for ``now`` (seconds since the epoch, default: the clock), formatted once per second."""
        second = int(time.time() if now is None else now)
        if second != self._second:
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._second = second
        return self._amz_date

    def _keyed_for(self, credentials: Any) -> _Keyed:
        keyed = self._keyed
        if keyed is not None and keyed.credentials == credentials:
            return keyed
        headers = dict(self._headers)
        headers["x-amz-date"] = _DATE_MARK
        token = credentials.token
        if token:
            headers["x-amz-security-token"] = _trimall(token)
        names = sorted(headers)
        signed = ";".join(names)
        canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in names)
        head, tail = canonical_headers.split(_DATE_MARK)
        keyed = _Keyed(
            credentials=credentials,
            secret=f"AWS4{credentials.secret_key}".encode(),
            canonical_head=f"{self.method}\n{self.canonical_path}\n\n{head}",  # no query string
            canonical_tail=f"{tail}\n{signed}\n",
            token_line=f"X-Amz-Security-Token: {token}\r\n" if token else "",
            authorization_head=f"{ALGORITHM} Credential={credentials.access_key}/",
            authorization_tail=f", SignedHeaders={signed}, Signature=",
        )
        self._keyed = keyed
        self._day = ""  # the signing key is the secret's
        return keyed

    def header_lines(self, credentials: Any, body: bytes, amz_date: str) -> str:
        """The signature's header lines (``X-Amz-Date``, ``X-Amz-Security-Token`` when there is one, ``Authorization``).

        ``credentials`` is a frozen set (``get_frozen_credentials()``: ``access_key``, ``secret_key``,
        ``token``); ``amz_date`` is :meth:`amz_date`'s. Each line ends with CRLF, ready for the request head.
        """
        keyed = self._keyed_for(credentials)
        day = amz_date[:8]
        scope = f"{day}/{self.region_name}/{self.service_name}/aws4_request"
        if day != self._day:
            key = hmac.digest(keyed.secret, day.encode(), "sha256")
            for part in (self.region_name, self.service_name, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._signing_key, self._day = key, day
        canonical = f"{keyed.canonical_head}{amz_date}{keyed.canonical_tail}{hashlib.sha256(body).hexdigest()}"
        string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.digest(self._signing_key, string_to_sign.encode(), "sha256").hex()
        return (
            f"X-Amz-Date: {amz_date}\r\n{keyed.token_line}"
            f"Authorization: {keyed.authorization_head}{scope}{keyed.authorization_tail}{signature}\r\n"
        )

    def headers(self, credentials: Any, body: bytes, amz_date: str) -> dict[str, str]:
        """:meth:`header_lines` as a mapping (for tests and debugging)."""
        lines = self.header_lines(credentials, body, amz_date).split("\r\n")
        return dict(line.split(": ", 1) for line in lines if line)
