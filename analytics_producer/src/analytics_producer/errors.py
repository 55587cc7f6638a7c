"""Which SQS failures are worth retrying.

Throttling, server errors, timeouts and connection failures can succeed on a later attempt;
access denied, a missing queue or invalid parameters cannot, and retrying them would only delay
the report and hold the buffer.
"""

from __future__ import annotations

import html
import http.client
import json
import re
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "KmsThrottled",
        "KMS.ThrottlingException",  # KmsThrottled's query-compatible code (x-amzn-query-error)
        "AWS.SimpleQueueService.ServiceUnavailable",
        "AWS.SimpleQueueService.RequestThrottled",
        "SlowDown",
        "RequestTimeout",
    }
)


MAX_MESSAGE_CHARS = 300  # an error message in a warning: one line, at most this long


class ConfigurationError(ValueError):
    """A logger's configuration is wrong (queue URL, region, endpoint): raised at construction, one line naming what."""


class EntryError(Exception):
    """One entry of a ``SendMessageBatch`` that SQS refused (the request itself succeeded)."""

    def __init__(self, failure: Mapping[str, Any]) -> None:
        self.code = str(failure.get("Code") or "BatchEntryFailed")
        self.sender_fault = bool(failure.get("SenderFault"))
        super().__init__(f"{self.code}: {failure.get('Message', '')}")


class LoggerClosedError(Exception):
    """The logger was closed (or the process exited) before these events could be delivered."""

    code = "LoggerClosed"


_XML_CODE = re.compile(r"<Code>\s*([^<]*?)\s*</Code>")
_XML_MESSAGE = re.compile(r"<Message>\s*([^<]*?)\s*</Message>", re.DOTALL)
_XML_TYPE = re.compile(r"<Type>\s*([^<]*?)\s*</Type>")
_DOCUMENT_CHARS = 65536  # an error document is short; a larger body is only searched this far


def parse_error_document(body: str | bytes) -> dict[str, str] | None:
    """``{"Code", "Message"[, "Type"]}`` of an SQS error body, None when it is not one.

    Both shapes SQS answers with: the query protocol's XML (``<ErrorResponse><Error><Type>Sender</Type>
    <Code>AccessDenied</Code><Message>...</Message></Error>...``, also what moto returns for a denied
    JSON request) and the JSON protocol's ``{"__type": "com.amazonaws.sqs#QueueDoesNotExist",
    "message": "..."}`` (the code without its namespace). The XML is read with regular expressions,
    never by an XML parser: nothing in a response body is expanded.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text[:_DOCUMENT_CHARS].strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        if not isinstance(parsed, dict) or not parsed.get("__type"):
            return None
        code = str(parsed["__type"]).split(":", 1)[0].rsplit("#", 1)[-1]
        message = parsed.get("message", parsed.get("Message", ""))
        return {"Code": code, "Message": "" if message is None else str(message)}
    if text.startswith("<"):
        found = _XML_CODE.search(text)
        if found is None or not found.group(1):
            return None
        message = _XML_MESSAGE.search(text)
        document = {"Code": html.unescape(found.group(1)), "Message": html.unescape(message.group(1)) if message else ""}
        kind = _XML_TYPE.search(text)
        if kind is not None and kind.group(1):
            document["Type"] = html.unescape(kind.group(1))
        return document
    return None


def unreadable_body(status: int | str, size: int) -> str:
    """The message for an answer whose body is not an SQS error (a proxy's page): named by its status and size, never quoted."""
    try:
        phrase = http.client.responses.get(int(status), "")
    except ValueError:
        phrase = ""
    return f"HTTP {status}{' ' + phrase if phrase else ''}: a {size}-byte body that is not an SQS error"


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def error_details(error: BaseException) -> tuple[str, str]:
    """(code, message) of an error, for a warning: SQS's code and message, never a response body.

    A ``ClientError`` whose message is itself an error document (botocore puts a body it cannot read
    as JSON in the message: moto's XML 403, a query-protocol answer) gives that document's code and
    message; its code replaces one that is only the HTTP status. Another body (a proxy's HTML page)
    is named by its size, not quoted. Other errors: :func:`error_code` and ``str(error)``.
    """
    if isinstance(error, ClientError):
        found = error.response.get("Error", {}) or {}
        status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "") or "")
        code = str(found.get("Code") or status or "ClientError")
        message = str(found.get("Message") or "")
        document = parse_error_document(message) if message.lstrip().startswith(("<", "{")) else None
        if document is not None:
            if code in ("", status, "ClientError"):
                code = document["Code"]
            message = document["Message"]
        elif message.lstrip().startswith("<"):
            message = unreadable_body(status or "?", len(message.encode("utf-8", "replace")))
        return code, one_line(message)
    return error_code(error), one_line(str(error))


def error_code(error: BaseException) -> str:
    """A short, stable name for an error: the AWS error code, else the exception class.

    A ``ClientError`` whose code is only its HTTP status and whose message is an SQS error document
    (:func:`error_details`) is named by that document's code.
    """
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        return code
    if isinstance(error, ClientError):
        return error_details(error)[0]
    return type(error).__name__


def is_retryable(error: BaseException) -> bool:
    """True for throttling, 5xx, timeouts and connection errors; False for what cannot succeed."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        code = error_code(error)
        return code in RETRYABLE_CODES or status >= 500 or status == 429
    # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError, ...
    return isinstance(error, ConnectionError | HTTPClientError | BotoCoreError) and not _is_configuration_error(error)


def _is_configuration_error(error: BaseException) -> bool:
    from botocore.exceptions import NoCredentialsError, NoRegionError, ParamValidationError, PartialCredentialsError

    return isinstance(error, NoCredentialsError | PartialCredentialsError | NoRegionError | ParamValidationError)
