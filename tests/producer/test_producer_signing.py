"""The lean transport signs its requests itself (hmac and hashlib, per-day signing key): exactly as botocore would.

Each request the transport would send is also signed by botocore's ``SigV4Auth`` on an ``AWSRequest``
with the same URL, headers, body, credentials and time: every header must be the same, byte for byte.
moto then checks real signatures end to end (IAM enforced): temporary credentials with a session
token and a body of non-ASCII text.
"""

from __future__ import annotations

import calendar
import datetime
import json
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from analytics_producer import AnalyticsLogger
from analytics_producer.batching import to_entry
from analytics_producer.sigv4 import SigV4Signer, canonical_uri
from analytics_producer.transport import SQSTransport
from tests.producer.test_producer_sending import enforce_iam

REGION = "eu-west-1"
KEY = ReadOnlyCredentials("AKIDSIGNTEST", "secret/with+chars", None, None)
TOKEN_KEY = ReadOnlyCredentials("ASIASIGNTEST", "another-secret", "IQoJb3JpZ2luX2VjEOr//////////token==", None)
NON_ASCII_KEY = ReadOnlyCredentials("AKIDSIGNTEST", "sécret-ключ", "a  token  with   runs of spaces", None)

ENDPOINTS = [
    "https://sqs.eu-west-1.amazonaws.com",  # default port: Host without it
    "http://127.0.0.1:4566",  # a port: Host with it
    "https://sqs.eu-west-1.amazonaws.com:8443",
    "http://[::1]:9324",  # an IPv6 host, in brackets
    "https://vpce-0123-abcd.sqs.eu-west-1.vpce.amazonaws.com/prefix/",  # a path prefix
    "http://localhost:4566/a/./b/../queue%20path~x",  # dot segments and an encoded space
]
BODIES = [
    b"",
    b'{"QueueUrl":"https://sqs.eu-west-1.amazonaws.com/123456789012/q.fifo","Entries":[]}',
    json.dumps({"query": "¿Tiene experiencia con Python? 日本語 🎉"}, ensure_ascii=False).encode(),
    ("x" * 5000 + "é").encode(),  # above hashlib's GIL-release size
]
TIMES = [
    datetime.datetime(2026, 12, 5, 12, 34, 56),
    datetime.datetime(2026, 12, 31, 23, 59, 59),  # the last second of a day, then the first of the next:
    datetime.datetime(2027, 1, 1, 0, 0, 0),  # the cached signing key must follow the date
    datetime.datetime(2027, 1, 1, 0, 0, 0, 999_999),  # a fraction of a second is cut, as botocore's strftime does
]


def transport_for(endpoint_url: str, credentials: ReadOnlyCredentials | None = KEY) -> SQSTransport:
    static = None if credentials is None else Credentials(credentials.access_key, credentials.secret_key, credentials.token)
    return SQSTransport(endpoint_url=endpoint_url, region_name=REGION, credentials=static, connect_timeout_s=1, read_timeout_s=1)


def botocore_headers(transport: SQSTransport, credentials: ReadOnlyCredentials, body: bytes, at: datetime.datetime) -> dict[str, str]:
    """The headers botocore's SigV4Auth gives the transport's request at ``at`` (UTC)."""
    request = AWSRequest(
        method="POST",
        url=transport._url,
        data=body,
        headers={
            "Host": transport._host_header,
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "AmazonSQS.SendMessageBatch",
            "x-amzn-query-mode": "true",
        },
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=at):
        SigV4Auth(credentials, "sqs", REGION).add_auth(request)
    return dict(request.headers.items())


def epoch(at: datetime.datetime) -> float:
    return calendar.timegm(at.timetuple()) + at.microsecond / 1e6


@pytest.mark.parametrize("endpoint_url", ENDPOINTS)
@pytest.mark.parametrize("credentials", [KEY, TOKEN_KEY, NON_ASCII_KEY], ids=["no-token", "token", "non-ascii-secret"])
def test_the_signature_is_botocores_for_the_same_request_and_time(endpoint_url: str, credentials: ReadOnlyCredentials) -> None:
    transport = transport_for(endpoint_url, credentials)
    for body in BODIES:
        for at in TIMES:  # one transport through every time: its cached date, day and key are renewed when they change
            ours = transport.signed_headers(body, now=epoch(at))
            assert ours.pop("User-Agent").startswith("analytics-producer/"), "sent, never signed"
            assert ours == botocore_headers(transport, credentials, body, at), (endpoint_url, body[:40], at)


def test_new_credentials_are_signed_with_at_once() -> None:
    """Refreshed credentials (another key, a token added or gone) sign the very next request; the cache never lags."""
    transport = transport_for("https://sqs.eu-west-1.amazonaws.com")
    signer, body, at = transport._signer, BODIES[1], TIMES[0]
    amz_date = signer.amz_date(epoch(at))
    for credentials in (KEY, TOKEN_KEY, KEY, NON_ASCII_KEY, ReadOnlyCredentials("AKIDSIGNTEST", "rotated", None, None)):
        expected = botocore_headers(transport, credentials, body, at)
        signature = {name: expected[name] for name in ("X-Amz-Date", "X-Amz-Security-Token", "Authorization") if name in expected}
        assert signer.headers(credentials, body, amz_date) == signature
        assert ("X-Amz-Security-Token" in signature) == bool(credentials.token)


def test_the_signer_refuses_to_be_given_the_headers_it_sets() -> None:
    for name in ("X-Amz-Date", "x-amz-security-token", "Authorization"):
        with pytest.raises(ValueError, match="sets X-Amz-Date"):
            SigV4Signer(method="POST", path="/", headers={"Host": "h", name: "v"}, region_name=REGION, service_name="sqs")


def test_the_canonical_path_is_botocores() -> None:
    assert canonical_uri("/") == "/"
    assert canonical_uri("") == "/"
    assert canonical_uri("/a/./b/../c/") == "/a/c/"
    assert canonical_uri("/with space/é~") == "/with%20space/%C3%A9~"


def test_the_request_body_is_json_dumps_of_the_request_byte_for_byte() -> None:
    """The lean transport writes each entry's JSON once; the body is still what json.dumps writes for the request."""
    transport = transport_for("http://127.0.0.1:4566")
    queue_url = 'http://127.0.0.1:4566/123456789012/q"\\.fifo'
    events = [
        {"eventType": "query", "requestId": f'r-{index}-"quoted"\\', "timestamp": 1, "query": text}
        for index, text in enumerate(["plain", "é 日本語 🎉", 'with "quotes" and \\ and \t tab', "\u2028 line separator"])
    ]
    entries = []
    for index, event in enumerate(events):
        entry = to_entry(event, None)
        entry.entry_id = str(index)
        entries.append(entry)
    expected = json.dumps(
        {"QueueUrl": queue_url, "Entries": [entry.as_request(entry.entry_id) for entry in entries]},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    assert transport.batch_body(queue_url, entries) == expected
    assert (
        transport.batch_body(queue_url, entries[1:3])
        == json.dumps(
            {"QueueUrl": queue_url, "Entries": [entry.as_request(entry.entry_id) for entry in entries[1:3]]},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
    ), "a retry of some entries keeps their ids"
    assert json.loads(transport.batch_body(queue_url, [])) == {"QueueUrl": queue_url, "Entries": []}


def test_moto_accepts_temporary_credentials_with_a_session_token_and_non_ascii_bodies(moto_with_iam: str) -> None:
    """moto checks the signature (the session token signed among the headers) and the token against the assumed role."""
    endpoint = moto_with_iam
    setup = boto3.Session(aws_access_key_id="AKIDSETUP", aws_secret_access_key="setup", region_name="us-east-1")
    iam, sqs = setup.client("iam", endpoint_url=endpoint), setup.client("sqs", endpoint_url=endpoint)
    queue_url = sqs.create_queue(QueueName="token.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="producer", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    # moto authorizes the batch call as sqs:SendMessageBatch, AWS as sqs:SendMessage; ReceiveMessage to read them back.
    actions = ["sqs:SendMessage", "sqs:SendMessageBatch", "sqs:ReceiveMessage"]
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_role_policy(RoleName="producer", PolicyName="send", PolicyDocument=json.dumps(allow))
    assumed = setup.client("sts", endpoint_url=endpoint).assume_role(RoleArn=role["Arn"], RoleSessionName="producer-session")["Credentials"]
    enforce_iam(endpoint)

    session = boto3.Session(
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
        region_name="us-east-1",
    )
    texts = ["¿Tiene experiencia con Python?", "日本語の質問", 'emoji 🎉 and "quotes" \\ too']
    with AnalyticsLogger(queue_url, endpoint_url=endpoint, session=session) as logger:
        assert isinstance(logger._client, SQSTransport)
        for index in range(12):
            assert logger.log_query(f"token-{index}", texts[index % 3])
        assert logger.flush(timeout=10)
        stats = logger.stats()
    assert (stats["sent"], stats["failed"], stats["requests"]) == (12, 0, 2), "moto accepted both signed requests"
    reader = session.client("sqs", endpoint_url=endpoint)
    received: dict[str, str] = {}
    for _ in range(10):
        for message in reader.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            event = json.loads(message["Body"])
            received[event["requestId"]] = event["query"]
        if len(received) == 12:
            break
    assert received == {f"token-{index}": texts[index % 3] for index in range(12)}
