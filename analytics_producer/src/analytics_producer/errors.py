"""Which SQS failures are worth retrying.

Throttling, server errors, timeouts and connection failures can succeed on a later attempt;
access denied, a missing queue or invalid parameters cannot, and retrying them would only delay
the report and hold the buffer.
"""

from __future__ import annotations

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
        "AWS.SimpleQueueService.ServiceUnavailable",
        "RequestTimeout",
    }
)


def error_code(error: BaseException) -> str:
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
