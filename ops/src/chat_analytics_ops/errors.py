"""One place that turns every expected failure into one line on stderr and an exit code.

An operator runs these commands during an incident; a traceback there hides the one fact they
need (which stack, which permission, which date), so each failure the tool can foresee becomes an
``OpsError`` with a sentence, and AWS SDK errors are translated here rather than in every command.
"""

from __future__ import annotations

import re

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as SdkConnectionError

from chat_analytics_ops.timeouts import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, TOTAL_MAX_ATTEMPTS

MAX_MESSAGE_CHARS = 300
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_EMPTY = 3  # nothing to do (an empty DLQ): distinct so scripts can tell it from a failure

ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthorizationError",
        "AWS.SimpleQueueService.AccessDenied",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NonExistentQueue",
    }
)
# The endpoint did not answer at all (refused, silent, cut off): a further call to it would only wait again.
UNREACHABLE_ERRORS = (SdkConnectionError, ReadTimeoutError, ConnectionClosedError)


class OpsError(Exception):
    """An expected failure: ``str(error)`` is the one line shown, ``exit_code`` the process status."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class EmptyQueueError(OpsError):
    """The queue has nothing to show or move: not a fault, but the caller asked for something that is not there."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_EMPTY)


def error_code(error: ClientError) -> str:
    """The service's error code (``AccessDenied``, ``ValidationError`` ...)."""
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def operation_of(error: ClientError) -> str:
    """The API call that failed, e.g. ``DescribeStacks``."""
    return str(getattr(error, "operation_name", "") or "the request")


def _error_text(error: ClientError) -> tuple[str, str]:
    """Code and message, on one line. Some endpoints (moto's SQS among them) answer a JSON-protocol
    client with an XML error body, which botocore hands over as the message: the real code and
    message are picked out of it."""
    code = error_code(error)
    message = str(error.response.get("Error", {}).get("Message", "")).strip()
    if message.startswith("<"):
        found_code = re.search(r"<Code>(.*?)</Code>", message, re.S)
        found_message = re.search(r"<Message>(.*?)</Message>", message, re.S)
        code = found_code.group(1).strip() if found_code else code
        message = found_message.group(1).strip() if found_message else ""
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return code, message or code


def describe_client_error(error: ClientError) -> str:
    """One line for a service error: permission problems and missing resources get their own wording."""
    code, message = _error_text(error)
    operation = operation_of(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ACCESS_DENIED_CODES or status == 403 or "not authorized" in message.lower():
        return f"permission denied: {operation} was refused ({code}): {message}"
    if code in NOT_FOUND_CODES:
        return f"not found: {operation}: {message}"
    return f"{operation} failed ({code}): {message}"


def describe(error: BaseException) -> str:
    """One line for any error the AWS SDK can raise; other exceptions are not expected here."""
    if isinstance(error, ClientError):
        return describe_client_error(error)
    if isinstance(error, ReadTimeoutError):
        return (
            f"no answer from the endpoint {_endpoint(error)} within the {READ_TIMEOUT_S} s read timeout"
            f" ({TOTAL_MAX_ATTEMPTS} attempts): is it up and answering?"
        )
    if isinstance(error, ConnectTimeoutError):
        return (
            f"cannot connect to the endpoint {_endpoint(error)} within the {CONNECT_TIMEOUT_S} s connect timeout"
            f" ({TOTAL_MAX_ATTEMPTS} attempts): is it up and reachable?"
        )
    if isinstance(error, ConnectionClosedError):
        return f"the endpoint {_endpoint(error)} closed the connection without answering ({TOTAL_MAX_ATTEMPTS} attempts)"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach the endpoint {_endpoint(error)}: is the stack (or the local moto server) up?"
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (the local stack prints its own)"
    if isinstance(error, ProfileNotFound):
        profile = getattr(error, "kwargs", {}).get("profile", "")
        return (
            f"no AWS profile named {profile!r} in the config files (~/.aws/config, ~/.aws/credentials or AWS_CONFIG_FILE): check --profile"
        )
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(error, BotoCoreError):
        return f"AWS SDK error: {error}"
    return f"{type(error).__name__}: {error}"


def _endpoint(error: BotoCoreError) -> str:
    return str(getattr(error, "kwargs", {}).get("endpoint_url", "") or "(unknown)")
