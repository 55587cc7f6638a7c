"""Where a logger sends: its queue URL checked, its region and endpoint resolved once, the same way for every way of configuring it.

The constructor and ``from_env()`` both go through :func:`resolve_destination`; nothing here runs after
construction (``log()`` never looks at any of it).

- The queue URL must be a FIFO queue's (``.../<queue name>.fifo``), ``http(s)://`` with a host, and
  nothing after the path. An AWS host (one that names a region, below) must be followed by
  ``/<12-digit account id>/<queue name>``.
- The region: ``region_name=``, else the one the queue URL's host names, else ``ANALYTICS_REGION``,
  ``AWS_REGION``, ``AWS_DEFAULT_REGION``, else the session's (its ``region_name`` or its profile's),
  else :class:`ConfigurationError`. ``region_name=`` or ``ANALYTICS_REGION`` naming another region
  than the queue URL's host is refused; ``AWS_REGION`` and ``AWS_DEFAULT_REGION`` are the
  application's region, so the queue URL's wins over them.
- The endpoint: ``endpoint_url=``, else an endpoint configured for botocore (``AWS_ENDPOINT_URL_SQS``,
  ``AWS_ENDPOINT_URL``, the config file's ``endpoint_url``), else, for a queue URL on AWS's public
  regional host (``sqs.<region>.amazonaws.com``, ``<region>.queue.amazonaws.com``), the endpoint
  botocore resolves for the region (FIPS and dual-stack settings included), and for any other host
  (a local stack, LocalStack, a VPC endpoint, a FIPS or dual-stack host) the queue URL's own
  ``scheme://host:port``. An endpoint whose host names another region than the signing one is refused.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from analytics_producer.errors import ConfigurationError

REGION_VARIABLES = ("ANALYTICS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")

_REGION = r"[a-z]{2,4}(?:-[a-z]+)+-\d+"
# AWS's public regional SQS hosts: where botocore sends by default, so its own resolution applies.
_STANDARD_HOSTS = (
    re.compile(rf"sqs\.({_REGION})\.amazonaws\.com(?:\.cn)?"),
    re.compile(rf"({_REGION})\.queue\.amazonaws\.com(?:\.cn)?"),
)
# Other AWS hosts that name their region: FIPS, dual-stack (api.aws) and VPC endpoint hosts
# (vpce-0123-abcd.sqs.us-east-1.vpce.amazonaws.com). A queue URL on one of them is sent there.
_OTHER_AWS_HOSTS = (
    re.compile(rf"sqs-fips\.({_REGION})\.amazonaws\.com"),
    re.compile(rf"sqs(?:-fips)?\.({_REGION})\.api\.aws"),
    re.compile(rf"(?:[a-z0-9-]+\.)+sqs(?:-fips)?\.({_REGION})\.vpce\.amazonaws\.com(?:\.cn)?"),
)
_LEGACY_US_EAST_1 = "queue.amazonaws.com"
# A queue name: 1 to 80 characters, letters, digits, - and _; a FIFO queue's ends in .fifo, which counts.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_FIFO_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}\.fifo")
_ACCOUNT = re.compile(r"\d{12}")
# botocore's rule for a region name, lower case only (no AWS region has a capital letter).
_REGION_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def aws_host(host: str) -> tuple[str | None, bool]:
    """(the region an AWS SQS host names, whether it is AWS's public regional host); (None, False) for any other host."""
    host = host.lower()
    if host == _LEGACY_US_EAST_1:
        return "us-east-1", True
    for pattern in _STANDARD_HOSTS:
        match = pattern.fullmatch(host)
        if match:
            return match.group(1), True
    for pattern in _OTHER_AWS_HOSTS:
        match = pattern.fullmatch(host)
        if match:
            return match.group(1), False
    return None, False


def region_from_queue_url(queue_url: str) -> str | None:
    """The region an AWS queue URL's host names (``https://sqs.eu-west-1.amazonaws.com/...`` -> ``eu-west-1``), else None."""
    try:
        host = urlsplit(queue_url).hostname or ""
    except ValueError:
        return None
    return aws_host(host)[0]


@dataclass(frozen=True)
class QueueUrl:
    """A checked FIFO queue URL: ``origin`` is its ``scheme://host[:port]``; ``region`` the one its AWS host names."""

    url: str
    origin: str
    host: str
    region: str | None
    standard: bool  # AWS's public regional host: botocore resolves the endpoint (AWS_ENDPOINT_URL_SQS, FIPS, ...)


def _shown(url: str) -> str:
    """``url``, quoted, for an error message; a password in it replaced."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        pass
    return f"{url!r}"


def parse_queue_url(queue_url: Any, *, name: str = "queue URL") -> QueueUrl:
    """Check ``queue_url`` and read its parts; :class:`ConfigurationError` (one line naming the URL) when it is not a FIFO queue's URL.

    ``name`` is what the message calls the value (``ANALYTICS_SQS_URL`` when it came from there).
    """
    if not isinstance(queue_url, str) or not queue_url:
        raise ConfigurationError(
            f"{name} is empty: give the FIFO queue's URL, e.g. https://sqs.<region>.amazonaws.com/<account id>/<name>.fifo"
        )
    shown = _shown(queue_url)
    if queue_url != queue_url.strip() or any(char.isspace() or ord(char) < 32 for char in queue_url):
        raise ConfigurationError(f"{name} {shown} contains whitespace or a control character")
    try:
        parts = urlsplit(queue_url)
        port = parts.port
    except ValueError as error:
        raise ConfigurationError(f"{name} {shown} is not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{name} {shown} is not an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(f"{name} {shown} carries a user name or password: a queue URL has none")
    if parts.query or parts.fragment or queue_url.endswith(("?", "#")):
        raise ConfigurationError(f"{name} {shown} has a query or fragment: a queue URL ends with the queue's name")
    region, standard = aws_host(parts.hostname)
    segments = parts.path.split("/")[1:]
    queue_name = segments[-1] if segments else ""
    if region is not None and (len(segments) != 2 or not _ACCOUNT.fullmatch(segments[0])):
        raise ConfigurationError(f"{name} {shown} does not end in /<12-digit account id>/<queue name> after its AWS host")
    if not queue_name or any(not segment for segment in segments):
        raise ConfigurationError(f"{name} {shown} does not end in /<queue name>.fifo")
    if not _FIFO_NAME.fullmatch(queue_name):
        if _QUEUE_NAME.fullmatch(queue_name):
            raise ConfigurationError(
                f"{name} {shown} is not a FIFO queue's: its name must end in .fifo (events carry a MessageGroupId, which only FIFO queues take)"
            )
        raise ConfigurationError(f"{name} {shown}: the queue name {queue_name!r} is not 1 to 80 letters, digits, - or _ ending in .fifo")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    origin = f"{parts.scheme}://{host}" + ("" if port is None else f":{port}")
    return QueueUrl(url=queue_url, origin=origin, host=parts.hostname, region=region, standard=standard)


def _check_region(region: str, source: str) -> str:
    if not _REGION_NAME.fullmatch(region):
        raise ConfigurationError(f"{source}={region!r} is not a region name (e.g. eu-west-2)")
    return region


def resolve_region(queue: QueueUrl, *, region_name: str | None, environ: Mapping[str, str], session_region: str | None) -> str:
    """The signing region (see the module's docstring for the order); :class:`ConfigurationError` when there is none or two disagree."""
    if region_name:
        _check_region(region_name, "region_name")
        if queue.region is not None and region_name != queue.region:
            raise ConfigurationError(
                f"region_name={region_name!r} contradicts the queue URL's region {queue.region} ({queue.url}): drop region_name or fix the URL"
            )
        return region_name
    own = environ.get("ANALYTICS_REGION") or ""
    if queue.region is not None:
        if own and own != queue.region:
            raise ConfigurationError(
                f"ANALYTICS_REGION={own!r} contradicts the queue URL's region {queue.region} ({queue.url}): unset it or fix the URL"
            )
        return queue.region
    for variable in REGION_VARIABLES:
        value = environ.get(variable) or ""
        if value:
            return _check_region(value, variable)
    if session_region:
        return _check_region(session_region, "the session's region")
    raise ConfigurationError(f"no region for {queue.url!r}: its host names none; pass region_name= or set ANALYTICS_REGION (or AWS_REGION)")


def check_endpoint_url(endpoint_url: str, *, name: str = "endpoint_url") -> str:
    """``endpoint_url`` when it is ``http(s)://host[:port][/path]``, else :class:`ConfigurationError`."""
    try:
        parts = urlsplit(endpoint_url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not one)
    except (ValueError, AttributeError, TypeError):
        raise ConfigurationError(f"{name} {endpoint_url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError(f"{name} {endpoint_url!r} is not an http:// or https:// URL with a host (and no query)")
    return endpoint_url


def check_endpoint_region(endpoint_url: str, region: str, *, source: str) -> None:
    """Refuse an AWS endpoint that names another region than the signing one (every request would be refused)."""
    try:
        host = urlsplit(endpoint_url).hostname or ""
    except ValueError:
        return
    named = aws_host(host)[0]
    if named is not None and named != region:
        raise ConfigurationError(f"the endpoint {endpoint_url} ({source}) is in {named}, but the region is {region}")


@dataclass(frozen=True)
class Destination:
    """Where a logger sends: the queue, the signing region, the endpoint, and where the endpoint came from."""

    queue_url: str
    region_name: str
    endpoint_url: str
    endpoint_source: str  # "endpoint_url", "the queue URL", or which botocore setting


def _botocore_endpoint(session: Any, region: str, config: Any, *, ignore_configured: bool = False) -> str:
    """The endpoint botocore resolves for an SQS client in ``region`` (a configured one unless ``ignore_configured``)."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    if ignore_configured:
        with contextlib.suppress(TypeError):  # a botocore without configured endpoints: nothing to ignore
            config = config.merge(Config(ignore_configured_endpoint_urls=True))
    try:
        return str(session.client("sqs", region_name=region, config=config).meta.endpoint_url)
    except (BotoCoreError, ValueError) as error:  # e.g. AWS_ENDPOINT_URL_SQS that is not a URL, a missing profile
        raise ConfigurationError(f"cannot resolve the SQS endpoint for {region}: {' '.join(str(error).split())}") from None


def resolve_destination(
    queue_url: str,
    *,
    region_name: str | None,
    endpoint_url: str | None,
    session: Any,
    environ: Mapping[str, str],
    config: Any,
) -> Destination:
    """Where a logger built with these arguments sends (the module's docstring gives the rules).

    ``session`` is the ``boto3.Session`` whose settings apply (its region as the last fallback, its
    configured endpoints); ``environ`` is where ``ANALYTICS_REGION``, ``AWS_REGION`` and
    ``AWS_DEFAULT_REGION`` are read. Raises :class:`ConfigurationError`, one line, for a queue URL that
    is not a FIFO queue's, no region, a region or endpoint that contradicts the queue URL.
    """
    queue = parse_queue_url(queue_url)
    region = resolve_region(queue, region_name=region_name, environ=environ, session_region=getattr(session, "region_name", None))
    if endpoint_url:
        endpoint, source = check_endpoint_url(endpoint_url), "endpoint_url"
    else:
        resolved = _botocore_endpoint(session, region, config)
        if queue.standard:
            endpoint, source = resolved, "botocore's: AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL, the config file, else the region's"
        elif resolved != _botocore_endpoint(session, region, config, ignore_configured=True):
            endpoint, source = resolved, "AWS_ENDPOINT_URL_SQS/AWS_ENDPOINT_URL/config"
        else:
            endpoint, source = queue.origin, "the queue URL"
    check_endpoint_region(endpoint, region, source=source)
    return Destination(queue_url=queue_url, region_name=region, endpoint_url=endpoint, endpoint_source=source)
