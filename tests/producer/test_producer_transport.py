"""The lean transport (the default): SQS's JSON protocol, signed by botocore, on one kept-alive connection.

What it puts on the wire (checked by a scripted endpoint, and by moto verifying every signature),
how it maps HTTP and AWS errors onto the producer's retry rules (the same as through botocore),
credentials that change between requests, how it resolves the endpoint and region, and that a
caller's own boto3 client still goes through botocore.
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import time

import boto3
import pytest
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError

from analytics_producer import AnalyticsLogger
from analytics_producer.errors import error_code, error_details, is_retryable, parse_error_document
from analytics_producer.transport import SQSTransport, error_response, region_from_queue_url
from tests.producer.conftest import KEYS, REGION, Queue, sqs_client
from tests.producer.scripted_sqs import ScriptedSQS, aws_error
from tests.producer.test_producer_sending import enforce_iam


def lean(server: ScriptedSQS, **kwargs) -> AnalyticsLogger:
    logger = AnalyticsLogger(server.queue_url, endpoint_url=server.endpoint_url, session=boto3.Session(**KEYS), **kwargs)
    assert isinstance(logger._client, SQSTransport)
    return logger


def log_queries(logger: AnalyticsLogger, count: int, prefix: str) -> None:
    for index in range(count):
        assert logger.log_query(f"{prefix}-{index}", "Does the candidate know Go?")


# -- the request ------------------------------------------------------------------------------------


def test_a_batch_is_one_signed_sqs_json_request_on_one_kept_alive_connection() -> None:
    with ScriptedSQS() as server:
        with lean(server) as logger:
            log_queries(logger, 25, "wire")
            assert logger.flush(timeout=10)
            stats = logger.stats()
        assert (stats["sent"], stats["failed"], stats["requests"]) == (25, 0, 3)
        assert server.connections == 1, "keep-alive: one connection for every request"
        request = server.requests[0]
        headers, body = request["headers"], request["body"]
    assert headers["x-amz-target"] == "AmazonSQS.SendMessageBatch"
    assert headers["content-type"] == "application/x-amz-json-1.0"
    today = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential=AKIDPRODUCERTEST/{today}/{REGION}/sqs/aws4_request, ")
    assert "x-amz-date" in headers and "analytics-producer/" in headers["user-agent"]
    assert body["QueueUrl"] == server.queue_url
    assert [entry["Id"] for entry in body["Entries"]] == [str(i) for i in range(10)]
    assert body["Entries"][3]["MessageGroupId"] == "wire-3"
    assert body["Entries"][3]["MessageDeduplicationId"] == "wire-3:query"
    assert json.loads(body["Entries"][3]["MessageBody"])["requestId"] == "wire-3"


def test_a_connection_the_server_closes_is_reopened() -> None:
    with ScriptedSQS(close_after_each=True) as server, lean(server) as logger:
        for round_ in range(3):
            log_queries(logger, 10, f"reopen{round_}")
            assert logger.flush(timeout=10)
            time.sleep(0.05)  # the server's close reaches the idle socket
        stats = logger.stats()
        assert (stats["sent"], stats["failed"], stats["retried"], stats["requests"]) == (30, 0, 0, 3)
        assert server.connections == 3


# -- errors: the same retry rules as through botocore ---------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        aws_error(400, "ThrottlingException"),
        aws_error(400, "RequestThrottled", query_code="AWS.SimpleQueueService.RequestThrottled"),
        aws_error(400, "KmsThrottled", query_code="KMS.ThrottlingException"),
        aws_error(500, "InternalError"),
        (503, {}, b""),
        (502, {}, b"<html><body>Bad gateway</body></html>"),
        (429, {}, b"slow down"),
    ],
    ids=["throttling", "request-throttled", "kms-throttled", "500", "503-empty", "502-html", "429"],
)
def test_throttling_and_server_errors_are_retried_then_delivered(answer) -> None:
    with ScriptedSQS(answer, answer) as server:
        with lean(server, backoff_base_s=0.01) as logger:
            log_queries(logger, 3, "retry")
            assert logger.flush(timeout=10)
            stats = logger.stats()
        ids = server.dedup_ids()
    assert (stats["sent"], stats["failed"], stats["retried"], stats["requests"]) == (3, 0, 6, 3)
    assert ids == [[f"retry-{i}:query" for i in range(3)]] * 3, "every retry sends the same ids"


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (
            aws_error(400, "QueueDoesNotExist", query_code="AWS.SimpleQueueService.NonExistentQueue"),
            "AWS.SimpleQueueService.NonExistentQueue",
        ),
        (aws_error(400, "AccessDeniedException", query_code="AccessDenied"), "AccessDenied"),
        (aws_error(403, "InvalidSecurity", query_code="InvalidSecurity"), "InvalidSecurity"),
        (aws_error(400, "InvalidParameterValue"), "InvalidParameterValue"),
        (aws_error(403, "SignatureDoesNotMatch"), "SignatureDoesNotMatch"),
        ((403, {}, b"<?xml version='1.0'?><ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>"), "AccessDenied"),
    ],
    ids=["no-such-queue", "access-denied", "invalid-security", "invalid-parameter", "bad-signature", "xml-403"],
)
def test_errors_that_cannot_succeed_fail_at_once_and_are_reported(answer, code: str) -> None:
    reports: list[BaseException] = []
    with ScriptedSQS(answer) as server, lean(server, on_error=lambda error, events: reports.append(error)) as logger:
        log_queries(logger, 4, "denied")
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert (stats["sent"], stats["failed"], stats["retried"], stats["requests"]) == (0, 4, 0, 1)
    [error] = reports
    assert isinstance(error, ClientError), "the same exception type botocore raises"
    assert error_code(error) == code and not is_retryable(error)


XML_DENIED = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n<ErrorResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">\n"
    b"  <Error>\n    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n"
    b"    <Message>User: arn:aws:iam::123456789012:user/producer is not authorized to perform: sqs:SendMessage &amp; more</Message>\n"
    b"  </Error>\n  <RequestId>req-xml</RequestId>\n</ErrorResponse>"
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            (403, {}, XML_DENIED),
            "AccessDenied: User: arn:aws:iam::123456789012:user/producer is not authorized to perform: sqs:SendMessage & more",
        ),
        (
            aws_error(
                400, "QueueDoesNotExist", "The specified queue does not exist.", query_code="AWS.SimpleQueueService.NonExistentQueue"
            ),
            "AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist.",
        ),
        (
            aws_error(400, "InvalidParameterValue", "Value for parameter MessageGroupId is invalid."),
            "InvalidParameterValue: Value for parameter",
        ),
        (
            (403, {}, b"<html><body><h1>403 Forbidden</h1>Request blocked by the proxy.</body></html>"),
            "403: HTTP 403 Forbidden: a 77-byte body that is not an SQS error",
        ),
    ],
    ids=["query-xml", "json-query-compatible", "json", "html-page"],
)
@pytest.mark.parametrize("transport", ["lean", "botocore"])
def test_the_warning_carries_sqs_error_code_and_message_not_its_body(
    caplog: pytest.LogCaptureFixture, answer, expected: str, transport: str
) -> None:
    """Both shapes SQS answers with: the query protocol's XML (<Error><Code>, also moto's answer to a denied
    JSON request, which botocore leaves as the raw body in its message) and the JSON protocol's __type/message."""
    caplog.set_level(logging.WARNING, logger="analytics_producer")
    with ScriptedSQS(answer) as server:
        logger = AnalyticsLogger(
            server.queue_url, endpoint_url=server.endpoint_url, session=boto3.Session(**KEYS), transport=transport, max_retries=0
        )
        with logger:
            log_queries(logger, 2, "shape")
            assert logger.flush(timeout=10)
            assert logger.stats()["failed"] == 2
    [line] = [record.getMessage() for record in caplog.records if record.name == "analytics_producer"]
    assert line.startswith(f"analytics: 2 events not delivered to scripted.fifo: {expected}"), line
    assert "<" not in line and "__type" not in line and "\n" not in line


def test_failed_entries_are_retried_on_their_own_and_sender_faults_are_not() -> None:
    def partly(entries):
        body = {
            "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}],
            "Failed": [
                {"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "try again"},
                {"Id": "2", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "no"},
            ],
        }
        return 200, {}, json.dumps(body).encode()

    reports: list[tuple[str, list[str]]] = []
    with ScriptedSQS(partly) as server:
        with lean(
            server, backoff_base_s=0.01, on_error=lambda e, events: reports.append((error_code(e), [ev["requestId"] for ev in events]))
        ) as logger:
            log_queries(logger, 3, "entry")
            assert logger.flush(timeout=10)
            stats = logger.stats()
        ids = server.dedup_ids()
    assert ids == [["entry-0:query", "entry-1:query", "entry-2:query"], ["entry-1:query"]], "the retry reuses its id"
    assert (stats["sent"], stats["failed"], stats["retried"]) == (2, 1, 1)
    assert reports == [("InvalidParameterValue", ["entry-2"])]


def test_an_answer_that_is_not_json_confirms_nothing_and_is_sent_again() -> None:
    with ScriptedSQS((200, {}, b"<html>captive portal</html>")) as server, lean(server, backoff_base_s=0.01) as logger:
        log_queries(logger, 2, "garbled")
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert (stats["sent"], stats["failed"], stats["retried"], stats["requests"]) == (2, 0, 2, 2)


@pytest.mark.parametrize(
    ("status", "headers", "body", "code"),
    [
        (
            400,
            {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"},
            b'{"__type":"com.amazonaws.sqs#QueueDoesNotExist"}',
            "AWS.SimpleQueueService.NonExistentQueue",
        ),
        (400, {}, b'{"__type":"com.amazonaws.sqs#InvalidAddress:http://x","message":"m"}', "InvalidAddress"),
        (400, {"x-amzn-query-error": ";Sender"}, b'{"__type":"Throttling"}', "Throttling"),
        (500, {}, b"", "500"),
        (503, {}, b"  <html>down</html>", "503"),
        (403, {}, b"not json", "403"),
    ],
)
def test_error_codes_are_parsed_as_botocore_parses_them(status, headers, body, code) -> None:
    parsed = error_response(status, "Reason", headers, body)
    assert parsed["Error"]["Code"] == code
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, XML_DENIED, {"Code": "AccessDenied", "Type": "Sender"}),
        (
            400,
            b'{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}',
            {"Code": "QueueDoesNotExist", "Message": "The specified queue does not exist."},
        ),
        (400, b'{"message":"no type"}', {"Code": "400", "Message": "no type"}),
        (503, b"<html>down</html>", {"Code": "503", "Message": "HTTP 503 Service Unavailable: a 17-byte body that is not an SQS error"}),
        (500, b"", {"Code": "500", "Message": "Internal Server Error"}),
        (502, b"bad\n  gateway", {"Code": "502", "Message": "bad gateway"}),
    ],
    ids=["query-xml", "json", "json-without-type", "html", "empty", "text"],
)
def test_an_error_body_becomes_code_and_message_never_the_raw_body(status: int, body: bytes, expected: dict[str, str]) -> None:
    error = error_response(status, "Reason", {}, body)["Error"]
    assert {key: error[key] for key in expected} == expected
    assert "<" not in error["Message"] and "\n" not in error["Message"]


def test_a_botocore_client_error_holding_an_error_document_is_read_for_its_code_and_message() -> None:
    """botocore's JSON parser keeps a body it cannot read as JSON (moto's XML 403) as the message, with the
    HTTP status as the code: the warning and the rate-limit key use the document's code and message."""
    raw = ClientError(
        {"Error": {"Code": "403", "Message": XML_DENIED.decode()}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "SendMessageBatch"
    )
    assert error_details(raw) == (
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/producer is not authorized to perform: sqs:SendMessage & more",
    )
    assert error_code(raw) == "AccessDenied" and not is_retryable(raw)
    throttled = ClientError(
        {
            "Error": {"Code": "400", "Message": "<ErrorResponse><Error><Code>RequestThrottled</Code></Error></ErrorResponse>"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "SendMessageBatch",
    )
    assert error_code(throttled) == "RequestThrottled" and is_retryable(throttled), "a throttling code in XML is retried"
    named = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": '{"__type":"x#Other","message":"m"}'}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "SendMessageBatch",
    )
    assert error_details(named) == ("AccessDenied", "m"), "a code of its own is kept"
    page = ClientError(
        {"Error": {"Code": "403", "Message": "<html>" + "x" * 5000 + "</html>"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "SendMessageBatch",
    )
    assert error_details(page) == ("403", "HTTP 403 Forbidden: a 5013-byte body that is not an SQS error")
    assert parse_error_document("plain words") is None and parse_error_document(b"<a>no code</a>") is None


# -- credentials -----------------------------------------------------------------------------------------


def refreshing_credentials(keys: list[tuple[str, str]]) -> RefreshableCredentials:
    """Credentials that expire within botocore's mandatory refresh window: every use refreshes, to the next key."""
    supply = itertools.chain(keys, itertools.repeat(keys[-1]))

    def refresh() -> dict:
        access, secret = next(supply)
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {"access_key": access, "secret_key": secret, "token": None, "expiry_time": expiry.isoformat()}

    return RefreshableCredentials.create_from_metadata(refresh(), refresh, "test-refresh")


def test_credentials_refreshed_between_requests_are_used_for_the_next_one() -> None:
    with ScriptedSQS() as server:
        transport = SQSTransport(
            endpoint_url=server.endpoint_url,
            region_name=REGION,
            credentials=refreshing_credentials([("AKIDFIRST", "s1"), ("AKIDSECOND", "s2"), ("AKIDTHIRD", "s3")]),
            connect_timeout_s=1,
            read_timeout_s=3,
        )
        with AnalyticsLogger(server.queue_url, client=transport) as logger:  # a transport passed as client= is used as is
            for round_ in range(3):
                log_queries(logger, 10, f"refresh{round_}")
                assert logger.flush(timeout=10)
        keys = server.access_keys()
    assert keys == ["AKIDSECOND", "AKIDTHIRD", "AKIDTHIRD"], "frozen afresh for each request"


def test_no_credentials_fail_at_once_as_through_botocore() -> None:
    reports: list[str] = []
    with ScriptedSQS() as server:
        transport = SQSTransport(
            endpoint_url=server.endpoint_url, region_name=REGION, credentials=None, connect_timeout_s=1, read_timeout_s=3
        )
        with AnalyticsLogger(server.queue_url, client=transport, on_error=lambda e, events: reports.append(error_code(e))) as logger:
            log_queries(logger, 2, "nocreds")
            assert logger.flush(timeout=10)
            assert (logger.stats()["failed"], logger.stats()["retried"]) == (2, 0)
        assert server.requests == []
    assert reports == ["NoCredentialsError"]


def test_moto_verifies_the_signature_of_refreshed_credentials(moto_with_iam: str) -> None:
    """A new key after a refresh signs the next request: moto accepts it even once the old key is deleted."""
    endpoint = moto_with_iam
    setup = boto3.Session(aws_access_key_id="AKIDSETUP", aws_secret_access_key="setup", region_name=REGION)
    iam, sqs = setup.client("iam", endpoint_url=endpoint), setup.client("sqs", endpoint_url=endpoint)
    queue_url = sqs.create_queue(QueueName="refresh.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    keys = []
    for user in ("first", "second"):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(allow))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys.append((key["AccessKeyId"], key["SecretAccessKey"]))
    enforce_iam(endpoint)

    current = [keys[0]]

    def refresh() -> dict:
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {"access_key": current[0][0], "secret_key": current[0][1], "token": None, "expiry_time": expiry.isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test-refresh")
    transport = SQSTransport(endpoint_url=endpoint, region_name=REGION, credentials=credentials, connect_timeout_s=1, read_timeout_s=3)
    with AnalyticsLogger(queue_url, client=transport) as logger:
        log_queries(logger, 10, "first")
        assert logger.flush(timeout=10) and logger.stats()["sent"] == 10
        current[0] = keys[1]
        admin = boto3.Session(aws_access_key_id=keys[1][0], aws_secret_access_key=keys[1][1], region_name=REGION)
        admin.client("iam", endpoint_url=endpoint).delete_access_key(UserName="first", AccessKeyId=keys[0][0])
        log_queries(logger, 10, "second")
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert (stats["sent"], stats["failed"]) == (20, 0), "the refreshed key signed the second batch"


# -- a caller's own client and transport="botocore" still go through botocore ----------------------------


def test_a_callers_client_is_used_through_botocore(queue: Queue) -> None:
    client = sqs_client(queue.endpoint_url)
    sent: list[int] = []
    client.meta.events.register("before-send.sqs.SendMessageBatch", lambda request, **_: sent.append(1))
    with AnalyticsLogger(queue.url, client=client) as logger:
        assert logger._client is client and logger.transport == "client"
        log_queries(logger, 20, "own")
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert stats["sent"] == 20 and len(sent) == stats["requests"] == 2
    assert len(queue.drain(expected=20)) == 20


def test_transport_botocore_builds_a_boto3_client(queue: Queue) -> None:
    with AnalyticsLogger(queue.url, endpoint_url=queue.endpoint_url, session=boto3.Session(**KEYS), transport="botocore") as logger:
        assert type(logger._client).__name__ == "SQS" and logger._client.meta.endpoint_url == queue.endpoint_url
        log_queries(logger, 5, "boto")
        assert logger.flush(timeout=10)
    assert len(queue.drain(expected=5)) == 5
    with pytest.raises(ValueError, match="transport"):
        AnalyticsLogger(queue.url, transport="requests")


# -- where it sends -------------------------------------------------------------------------------------


@pytest.fixture
def aws_env_with_keys(clean_aws_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    clean_aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDRESOLVE")
    clean_aws_env.setenv("AWS_SECRET_ACCESS_KEY", "resolve-secret")
    return clean_aws_env


def test_the_region_and_endpoint_come_from_an_aws_queue_url(aws_env_with_keys: pytest.MonkeyPatch) -> None:
    logger = AnalyticsLogger("https://sqs.eu-west-2.amazonaws.com/123456789012/events.fifo")
    try:
        transport = logger._client
        assert isinstance(transport, SQSTransport)
        assert (transport.region_name, transport.endpoint_url) == ("eu-west-2", "https://sqs.eu-west-2.amazonaws.com")
        assert transport.credentials.get_frozen_credentials().access_key == "AKIDRESOLVE", "botocore's chain: the environment"
    finally:
        logger.close(timeout=0.1)
    assert region_from_queue_url("https://sqs-fips.us-gov-west-1.amazonaws.com/1/q.fifo") == "us-gov-west-1"
    assert region_from_queue_url("https://eu-central-1.queue.amazonaws.com/1/q.fifo") == "eu-central-1"
    assert region_from_queue_url("https://sqs.cn-north-1.amazonaws.com.cn/1/q.fifo") == "cn-north-1"
    assert region_from_queue_url("http://127.0.0.1:5000/1/q.fifo") is None


def test_the_endpoint_follows_aws_endpoint_url_sqs_and_a_proxy_falls_back_to_botocore(aws_env_with_keys: pytest.MonkeyPatch) -> None:
    aws_env_with_keys.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:4566")
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/events.fifo"
    logger = AnalyticsLogger(queue_url)
    try:
        assert isinstance(logger._client, SQSTransport) and logger._client.endpoint_url == "http://127.0.0.1:4566"
    finally:
        logger.close(timeout=0.1)
    aws_env_with_keys.delenv("AWS_ENDPOINT_URL_SQS")
    aws_env_with_keys.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    aws_env_with_keys.setenv("NO_PROXY", "")
    logger = AnalyticsLogger(queue_url)
    try:
        assert type(logger._client).__name__ == "SQS", "only botocore knows how to go through a proxy"
    finally:
        logger.close(timeout=0.1)
