"""Which SQS failures are worth retrying.

Throttling, server errors, timeouts and connection failures can succeed on a later attempt;
access denied, a missing queue or invalid parameters cannot, and retrying them would only delay
the report and hold the buffer.
"""

from __future__ import annotations

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


class EntryError(Exception):
    """One entry of a ``SendMessageBatch`` that SQS refused (the request itself succeeded)."""

    def __init__(self, failure: Mapping[str, Any]) -> None:
        self.code = str(failure.get("Code") or "BatchEntryFailed")
        self.sender_fault = bool(failure.get("SenderFault"))
        super().__init__(f"{self.code}: {failure.get('Message', '')}")


class LoggerClosedError(Exception):
    """The logger was closed (or the process exited) before these events could be delivered."""

    code = "LoggerClosed"


def error_code(error: BaseException) -> str:
    """A short, stable name for an error: the AWS error code, else the exception class."""
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        return code
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code") or str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return code or "ClientError"
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
