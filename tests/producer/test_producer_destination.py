"""Where a logger sends, for every way of configuring it: the queue URL taken at its word (its host, the
region its host names), ``endpoint_url``, the environment, and a one-line error for what cannot work.

The constructor and ``from_env()`` resolve through one function (``destination.resolve_destination``), so
each case runs both ways, and where it sends is checked on both transports: the lean one and
``transport="botocore"`` (a boto3 client the logger builds). Every request goes to a scripted SQS on
127.0.0.1; an AWS host is only resolved, never contacted.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3
import pytest
from botocore.exceptions import NoRegionError

from analytics_producer import AnalyticsLogger, ConfigurationError
from analytics_producer.destination import parse_queue_url, region_from_queue_url
from analytics_producer.transport import SQSTransport
from testkit.faults import closed_port
from tests.producer.conftest import TRANSPORTS
from tests.producer.scripted_sqs import ScriptedSQS

KEY = {"aws_access_key_id": "AKIDDESTINATION", "aws_secret_access_key": "destination-secret"}
ENV_KEYS = {"ANALYTICS_ACCESS_KEY_ID": "AKIDDESTINATION", "ANALYTICS_SECRET_ACCESS_KEY": "destination-secret"}
WAYS = ("constructor", "from_env")
AWS_URL = "https://sqs.eu-west-2.amazonaws.com/123456789012/events.fifo"


@pytest.fixture
def env(clean_aws_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A process environment without AWS settings; tests set what they need with ``env.setenv``."""
    for name in ("ANALYTICS_REGION", "ANALYTICS_SQS_URL", "AWS_SQS_URL", "ANALYTICS_DISABLED"):
        clean_aws_env.delenv(name, raising=False)
    return clean_aws_env


def build(way: str, queue_url: str, transport: str = "lean", **kwargs: Any) -> AnalyticsLogger:
    """A logger for ``queue_url`` built the ``way`` given; either way the region variables come from the process environment."""
    if way == "constructor":
        return AnalyticsLogger(queue_url, session=boto3.Session(**KEY), transport=transport, **kwargs)
    return AnalyticsLogger.from_env({**os.environ, **ENV_KEYS, "ANALYTICS_SQS_URL": queue_url}, transport=transport, **kwargs)


def where(logger: AnalyticsLogger) -> tuple[str, str]:
    """(endpoint, signing region) of the logger's own sender, whichever transport it is."""
    sender = logger._client
    if isinstance(sender, SQSTransport):
        return sender.endpoint_url, sender.region_name
    assert type(sender).__name__ == "SQS"
    return sender.meta.endpoint_url, sender.meta.region_name


def resolved(way: str, queue_url: str, transport: str = "lean", **kwargs: Any) -> tuple[str, str]:
    logger = build(way, queue_url, transport, **kwargs)
    try:
        assert (logger.endpoint_url, logger.region_name) == where(logger), "the logger says where it sends"
        return where(logger)
    finally:
        logger.close(timeout=0.1)


def send_three(logger: AnalyticsLogger) -> None:
    with logger:
        for index in range(3):
            assert logger.log_query(f"where-{index}", "Rust?")
        assert logger.flush(timeout=10)
        assert logger.stats()["sent"] == 3


def signed_regions(server: ScriptedSQS) -> set[str]:
    """The region in each request's SigV4 credential scope (``Credential=AKID/date/<region>/sqs/aws4_request``)."""
    return {request["headers"]["authorization"].split("Credential=", 1)[1].split("/")[2] for request in server.requests}


# -- a queue URL on AWS: the region it names, the endpoint botocore resolves ----------------------------------


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_queue_url_on_aws_gives_the_region_and_the_regions_endpoint(env: pytest.MonkeyPatch, way: str, transport: str) -> None:
    env.setenv("AWS_REGION", "us-east-1")  # the application's region: the queue URL's wins over it
    assert resolved(way, AWS_URL, transport) == ("https://sqs.eu-west-2.amazonaws.com", "eu-west-2")


@pytest.mark.parametrize(
    ("queue_url", "endpoint", "region"),
    [
        ("https://eu-central-1.queue.amazonaws.com/123456789012/q.fifo", "https://sqs.eu-central-1.amazonaws.com", "eu-central-1"),
        ("https://queue.amazonaws.com/123456789012/q.fifo", "https://sqs.us-east-1.amazonaws.com", "us-east-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q.fifo", "https://sqs.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        (
            "https://sqs-fips.us-gov-west-1.amazonaws.com/123456789012/q.fifo",
            "https://sqs-fips.us-gov-west-1.amazonaws.com",
            "us-gov-west-1",
        ),
        ("https://sqs.eu-west-1.api.aws/123456789012/q.fifo", "https://sqs.eu-west-1.api.aws", "eu-west-1"),
        (
            "https://vpce-0a1b2c3d4e5f-abcdefgh.sqs.us-east-1.vpce.amazonaws.com/123456789012/q.fifo",
            "https://vpce-0a1b2c3d4e5f-abcdefgh.sqs.us-east-1.vpce.amazonaws.com",
            "us-east-1",
        ),
    ],
    ids=["legacy-host", "legacy-us-east-1", "china", "fips", "dual-stack", "vpc-endpoint"],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_other_aws_hosts_name_the_region_and_a_fips_dual_stack_or_vpc_endpoint_host_is_where_it_sends(
    env: pytest.MonkeyPatch, queue_url: str, endpoint: str, region: str, transport: str
) -> None:
    """SQS's endpoints (regional, legacy ``<region>.queue.amazonaws.com``, FIPS ``sqs-fips``, dual-stack
    ``sqs.<region>.api.aws``) and interface VPC endpoint hosts, as AWS documents them:
    https://docs.aws.amazon.com/general/latest/gr/sqs-service.html and
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-internetwork-traffic-privacy.html"""
    assert region_from_queue_url(queue_url) == region
    assert resolved("constructor", queue_url, transport) == (endpoint, region)


# -- a queue URL on another host: that host is where it sends --------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["local-stack", "localstack-style"])
def test_a_queue_url_on_another_host_is_where_it_sends(env: pytest.MonkeyPatch, way: str, transport: str, host: str) -> None:
    """The issue's case: no endpoint_url, the region from the environment; before, it raised NoRegionError,
    or with a region sent to https://sqs.<region>.amazonaws.com and retried there."""
    env.setenv("AWS_REGION", "eu-west-1")
    with ScriptedSQS() as server:
        port = server.endpoint_url.rsplit(":", 1)[1]
        queue_url = f"http://{host}:{port}/000000000000/events.fifo"
        logger = build(way, queue_url, transport)
        assert where(logger) == (f"http://{host}:{port}", "eu-west-1")
        send_three(logger)
        assert server.requests and signed_regions(server) == {"eu-west-1"}
        assert {request["body"]["QueueUrl"] for request in server.requests} == {queue_url}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_issues_example_with_region_name_sends_to_the_urls_host(env: pytest.MonkeyPatch, transport: str) -> None:
    with ScriptedSQS() as server:
        logger = AnalyticsLogger(server.queue_url, region_name="us-east-1", session=boto3.Session(**KEY), transport=transport)
        assert where(logger) == (server.endpoint_url, "us-east-1")
        send_three(logger)
        assert signed_regions(server) == {"us-east-1"}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_endpoint_url_overrides_the_queue_urls_host(env: pytest.MonkeyPatch, way: str, transport: str) -> None:
    env.setenv("AWS_REGION", "eu-west-1")
    nowhere = f"http://127.0.0.1:{closed_port()}/123456789012/events.fifo"
    with ScriptedSQS() as server:
        send_three(build(way, nowhere, transport, endpoint_url=server.endpoint_url))
        assert len(server.requests) == 1 and signed_regions(server) == {"eu-west-1"}
    with ScriptedSQS() as server:  # an AWS queue URL sent elsewhere keeps its region
        send_three(build(way, AWS_URL, transport, endpoint_url=server.endpoint_url))
        assert signed_regions(server) == {"eu-west-2"}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_endpoint_configured_for_botocore_wins_over_the_queue_urls_host(env: pytest.MonkeyPatch, way: str, transport: str) -> None:
    """AWS_ENDPOINT_URL_SQS (or AWS_ENDPOINT_URL, or the config file) is botocore's endpoint_url: a container
    reaching a local stack by a name the queue URL does not carry keeps working."""
    env.setenv("AWS_REGION", "eu-west-1")
    with ScriptedSQS() as server:
        env.setenv("AWS_ENDPOINT_URL_SQS", server.endpoint_url)
        logger = build(way, f"http://127.0.0.1:{closed_port()}/000000000000/events.fifo", transport)
        assert where(logger) == (server.endpoint_url, "eu-west-1")
        send_three(logger)


# -- the region ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize(
    ("variables", "region"),
    [
        ({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1"),
        ({"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "eu-north-1"),
        ({"ANALYTICS_REGION": "ca-central-1", "AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "ap-south-1"}, "ca-central-1"),
        ({"ANALYTICS_REGION": "", "AWS_REGION": "eu-north-1"}, "eu-north-1"),
    ],
    ids=["AWS_DEFAULT_REGION", "AWS_REGION", "ANALYTICS_REGION", "empty-is-unset"],
)
def test_without_a_region_in_the_url_it_comes_from_the_environment(
    env: pytest.MonkeyPatch, way: str, variables: dict[str, str], region: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    assert resolved(way, "http://127.0.0.1:9/000000000000/q.fifo") == ("http://127.0.0.1:9", region)


@pytest.mark.parametrize("way", WAYS)
def test_the_region_in_the_url_wins_over_the_applications_and_must_agree_with_the_producers_own(env: pytest.MonkeyPatch, way: str) -> None:
    env.setenv("AWS_REGION", "us-east-1")
    env.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert resolved(way, AWS_URL)[1] == "eu-west-2"
    env.setenv("ANALYTICS_REGION", "eu-west-2")
    assert resolved(way, AWS_URL)[1] == "eu-west-2"
    env.setenv("ANALYTICS_REGION", "eu-central-1")
    with pytest.raises(ConfigurationError, match=r"^ANALYTICS_REGION='eu-central-1' contradicts the queue URL's region eu-west-2 "):
        build(way, AWS_URL)


@pytest.mark.parametrize("way", WAYS)
def test_region_name_wins_and_may_not_contradict_the_urls(env: pytest.MonkeyPatch, way: str) -> None:
    env.setenv("ANALYTICS_REGION", "eu-north-1")
    assert resolved(way, "http://127.0.0.1:9/000000000000/q.fifo", region_name="sa-east-1")[1] == "sa-east-1"
    assert resolved(way, AWS_URL, region_name="eu-west-2")[1] == "eu-west-2"
    env.delenv("ANALYTICS_REGION")
    with pytest.raises(ConfigurationError, match=r"^region_name='us-east-1' contradicts the queue URL's region eu-west-2 \("):
        build(way, AWS_URL, region_name="us-east-1")


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_region_anywhere_is_a_one_line_error_at_construction_not_botocores(env: pytest.MonkeyPatch, way: str, transport: str) -> None:
    queue_url = f"http://127.0.0.1:{closed_port()}/123456789012/x.fifo"
    with pytest.raises(ConfigurationError) as raised:
        build(way, queue_url, transport)
    message = str(raised.value)
    assert not isinstance(raised.value, NoRegionError) and isinstance(raised.value, ValueError)
    assert message == (f"no region for {queue_url!r}: its host names none; pass region_name= or set ANALYTICS_REGION (or AWS_REGION)")


def test_the_sessions_region_is_the_last_fallback(env: pytest.MonkeyPatch) -> None:
    """A session built with a region (or a profile's region) still works when nothing else names one."""
    session = boto3.Session(**KEY, region_name="ap-northeast-1")
    logger = AnalyticsLogger("http://127.0.0.1:9/000000000000/q.fifo", session=session)
    try:
        assert where(logger) == ("http://127.0.0.1:9", "ap-northeast-1")
    finally:
        logger.close(timeout=0.1)
    env.setenv("AWS_REGION", "eu-north-1")
    logger = AnalyticsLogger.from_env({**os.environ, "ANALYTICS_SQS_URL": "http://127.0.0.1:9/000000000000/q.fifo"}, session=session)
    try:
        assert where(logger)[1] == "eu-north-1", "the environment before the session"
    finally:
        logger.close(timeout=0.1)


@pytest.mark.parametrize(
    ("kwargs", "variables", "message"),
    [
        ({"region_name": "us east 1"}, {}, r"^region_name='us east 1' is not a region name"),
        ({}, {"AWS_REGION": "EU-WEST-1"}, r"^AWS_REGION='EU-WEST-1' is not a region name"),
        (
            {"endpoint_url": "https://sqs.us-west-2.amazonaws.com"},
            {},
            r"^the endpoint https://sqs.us-west-2.amazonaws.com \(endpoint_url\) is in us-west-2, but the region is eu-west-2$",
        ),
        ({}, {"AWS_ENDPOINT_URL_SQS": "https://sqs.us-west-2.amazonaws.com"}, r"is in us-west-2, but the region is eu-west-2$"),
        ({"endpoint_url": "localhost:4566"}, {}, r"^endpoint_url 'localhost:4566' is not an http:// or https:// URL with a host"),
    ],
    ids=["region_name", "AWS_REGION", "endpoint_url-region", "AWS_ENDPOINT_URL_SQS-region", "endpoint_url-scheme"],
)
@pytest.mark.parametrize("way", WAYS)
def test_a_region_or_endpoint_that_cannot_work_is_refused_in_one_line(
    env: pytest.MonkeyPatch, way: str, kwargs, variables, message: str
) -> None:
    for name, value in variables.items():
        env.setenv(name, value)
    queue_url = AWS_URL if "region_name" not in kwargs and "AWS_REGION" not in variables else "http://127.0.0.1:9/1/q.fifo"
    with pytest.raises(ConfigurationError, match=message) as raised:
        build(way, queue_url, **kwargs)
    assert "\n" not in str(raised.value)


# -- the queue URL itself -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("queue_url", ["http://127.0.0.1:9/123456789012/events", "https://sqs.eu-west-2.amazonaws.com/123456789012/events"])
def test_a_queue_url_that_is_not_a_fifo_queues_is_refused_naming_it(env: pytest.MonkeyPatch, way: str, queue_url: str) -> None:
    env.setenv("AWS_REGION", "eu-west-2")
    with pytest.raises(ConfigurationError) as raised:
        build(way, queue_url)
    name = "queue URL" if way == "constructor" else "ANALYTICS_SQS_URL"
    assert str(raised.value) == (
        f"{name} {queue_url!r} is not a FIFO queue's: its name must end in .fifo (events carry a MessageGroupId, which only FIFO queues take)"
    )


def test_from_env_names_the_variable_the_url_came_from(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"^AWS_SQS_URL 'http://127.0.0.1:9/1/q' is not a FIFO queue's"):
        AnalyticsLogger.from_env({"AWS_SQS_URL": "http://127.0.0.1:9/1/q", "AWS_REGION": "eu-west-1"})
    with pytest.raises(ConfigurationError, match=r"^ANALYTICS_SQS_URL \(or AWS_SQS_URL\) is not set$"):
        AnalyticsLogger.from_env({"AWS_REGION": "eu-west-1"})


@pytest.mark.parametrize(
    ("queue_url", "message"),
    [
        ("", "queue URL is empty"),
        ("sqs.eu-west-2.amazonaws.com/123456789012/q.fifo", "is not an http:// or https:// URL with a host"),
        ("ftp://127.0.0.1/1/q.fifo", "is not an http:// or https:// URL with a host"),
        ("http:///1/q.fifo", "is not an http:// or https:// URL with a host"),
        ("http://127.0.0.1:99999/1/q.fifo", "is not a URL: Port out of range"),
        ("https://sqs.eu-west-2.amazonaws.com/q.fifo", "does not end in /<12-digit account id>/<queue name> after its AWS host"),
        ("https://sqs.eu-west-2.amazonaws.com/12345/q.fifo", "does not end in /<12-digit account id>/<queue name> after its AWS host"),
        ("https://sqs.eu-west-2.amazonaws.com/123456789012/q.fifo/extra", "does not end in /<12-digit account id>/<queue name>"),
        ("http://127.0.0.1:9/", "does not end in /<queue name>.fifo"),
        ("http://127.0.0.1:9/1/q.fifo/", "does not end in /<queue name>.fifo"),
        ("http://127.0.0.1:9/1/q.fifo?Action=SendMessage", "has a query or fragment"),
        ("http://127.0.0.1:9/1/q.fifo#x", "has a query or fragment"),
        (" http://127.0.0.1:9/1/q.fifo", "contains whitespace or a control character"),
        ("http://127.0.0.1:9/1/q.fifo\n", "contains whitespace or a control character"),
        ("http://127.0.0.1:9/1/q!.fifo", "the queue name 'q!.fifo' is not 1 to 80 letters, digits, - or _ ending in .fifo"),
        (f"http://127.0.0.1:9/1/{'a' * 76}.fifo", "is not 1 to 80 letters, digits, - or _ ending in .fifo"),
    ],
)
def test_a_malformed_queue_url_is_refused_in_one_line_naming_it(queue_url: str, message: str) -> None:
    """Queue names are 1 to 80 characters, letters, digits, hyphens and underscores, and a FIFO queue's ends
    in .fifo (the suffix counts toward the 80): https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
    (moto does not enforce the length)."""
    for check in (lambda: parse_queue_url(queue_url), lambda: AnalyticsLogger(queue_url, region_name="eu-west-2")):
        with pytest.raises(ConfigurationError) as raised:
            check()
        text = str(raised.value)
        assert message in text and "\n" not in text
        if queue_url:
            assert repr(queue_url) in text, "the message names the URL"
    assert parse_queue_url(f"http://127.0.0.1:9/1/{'a' * 75}.fifo").origin == "http://127.0.0.1:9", "80 characters is the limit"


def test_a_password_in_a_queue_url_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        AnalyticsLogger("http://user:s3cret@127.0.0.1:9/1/q.fifo", region_name="eu-west-2")
    assert str(raised.value) == "queue URL 'http://user:***@127.0.0.1:9/1/q.fifo' carries a user name or password: a queue URL has none"


def test_a_disabled_logger_checks_no_queue_url(env: pytest.MonkeyPatch) -> None:
    """The off switch works whatever the URL holds: nothing is resolved or sent."""
    for queue_url in ("", "not a url", "http://127.0.0.1:9/1/standard-queue"):
        with AnalyticsLogger(queue_url, disabled=True) as logger:
            assert logger.log_query("r-1", "Go?") is True


# -- a client of the caller's: used as it is ------------------------------------------------------------------


def test_a_client_of_the_callers_takes_no_region_endpoint_or_session(env: pytest.MonkeyPatch) -> None:
    client = boto3.Session(**KEY, region_name="eu-west-2").client("sqs", endpoint_url="http://127.0.0.1:9")
    for extra in ({"region_name": "eu-west-2"}, {"endpoint_url": "http://127.0.0.1:9"}, {"session": boto3.Session(**KEY)}):
        with pytest.raises(ConfigurationError, match=r"^client= is used as it is: build it with the region, endpoint and credentials"):
            AnalyticsLogger("http://127.0.0.1:9/1/q.fifo", client=client, **extra)
    with pytest.raises(ConfigurationError, match="is not a FIFO queue's"):
        AnalyticsLogger("http://127.0.0.1:9/1/q", client=client)


def test_a_client_of_the_callers_that_cannot_reach_the_queue_is_named_in_a_warning(
    env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="analytics_producer")
    aws_client = boto3.Session(**KEY, region_name="us-east-1").client("sqs")
    with AnalyticsLogger("http://127.0.0.1:9/1/q.fifo", client=aws_client) as logger:
        assert (logger.region_name, logger.endpoint_url) == ("us-east-1", "https://sqs.us-east-1.amazonaws.com")
    with AnalyticsLogger(AWS_URL, client=aws_client):
        pass
    local_client = boto3.Session(**KEY, region_name="us-east-1").client("sqs", endpoint_url="http://127.0.0.1:9")
    with AnalyticsLogger("http://localhost:9/1/q.fifo", client=local_client):
        pass  # another name for a local stack: the caller's choice, no warning
    lines = [record.getMessage() for record in caplog.records if record.name == "analytics_producer"]
    assert lines == [
        "analytics: client= sends to https://sqs.us-east-1.amazonaws.com, not to the queue URL's host (http://127.0.0.1:9/1/q.fifo):"
        " build the client with endpoint_url='http://127.0.0.1:9'",
        f"analytics: client= signs for us-east-1, but the queue URL {AWS_URL} is in eu-west-2: build the client for that region",
    ]
