"""The pure parts of ``check``'s report reader row (``reader_check.py``); the row itself runs against the local
stack in tests/local/test_local_serve_check.py (moto with IAM enforced)."""

from __future__ import annotations

from datetime import date

import pytest
from botocore.exceptions import ClientError

from chat_analytics_ops import lake, reader_check
from chat_analytics_ops.errors import OpsError
from chat_analytics_ops.outputs import AwsContext
from chat_analytics_ops.reader_check import ALLOWED, DENIED, FAIL, NOT_TRIED, OK, SKIP, Call


def client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetTable")


@pytest.mark.parametrize(
    ("error", "denied"),
    [
        (client_error("AccessDenied", "denied", 403), True),
        (client_error("AccessDeniedException", "User: x is not authorized to perform: glue:GetTable", 400), True),
        # moto's JSON services (Athena, Glue) answer 403 with an XML body: botocore reads the status as the code
        (client_error("403", "<Error><Code>AccessDenied</Code><Message>User: u is not authorized</Message></Error>", 403), True),
        (client_error("403", "<Error><Code>InvalidClientTokenId</Code></Error>", 403), False),
        (client_error("EntityNotFoundException", "no such table"), False),
        (client_error("InvalidRequestException", "workgroup is disabled"), False),
    ],
)
def test_access_denied_is_told_from_other_errors(error: ClientError, denied: bool) -> None:
    assert reader_check.is_access_denied(error) is denied


def test_report_query_is_the_reports_sql_for_one_day() -> None:
    sql, parameters = reader_check.report_query(date(2026, 3, 10))
    assert sql == lake.report_sql()
    # partitions from the day before (a clock ahead) to tomorrow (never past it), the day twice, the report's --top
    number = lake.day_number("2026-03-10")
    assert parameters == ["'2026-03-09'", "'2026-03-11'", str(number), str(number), "10"]
    assert sql.count("?") == len(parameters)


def test_account_of_a_policy_arn() -> None:
    assert reader_check.account_of("arn:aws:iam::123456789012:policy/Reader") == ("aws", "123456789012")
    assert reader_check.account_of("arn:aws-cn:iam::111122223333:policy/path/Reader") == ("aws-cn", "111122223333")
    with pytest.raises(OpsError, match="not an IAM policy ARN"):
        reader_check.account_of("Reader")


def test_every_call_allowed_is_ok_and_counts_them() -> None:
    calls = [
        Call("athena:GetWorkGroup", "arn:aws:athena:us-east-1:1:workgroup/w", ALLOWED),
        Call("s3:ListBucket", "arn:aws:s3:::b", ALLOWED),
        Call("s3:GetObject", "arn:aws:s3:::b/requests/*", NOT_TRIED, "no lake object yet"),
    ]
    status, detail = reader_check.judge_calls(calls, "Reader")
    assert status == OK
    assert detail.startswith("2 of 2 calls of `report --engine athena` allowed with only Reader attached")
    assert "s3:GetObject not tried: no lake object yet" in detail


def test_a_denied_call_fails_naming_the_action_and_the_resource() -> None:
    calls = [
        Call("s3:GetBucketLocation", "arn:aws:s3:::b", ALLOWED),
        Call("s3:ListBucket", "arn:aws:s3:::b", DENIED),
        Call("glue:GetTable", "arn:aws:glue:us-east-1:1:table/d/t", DENIED),
    ]
    status, detail = reader_check.judge_calls(calls, "Reader")
    assert status == FAIL
    assert detail == (
        "ReportReaderPolicyArn (Reader) lacks s3:ListBucket on arn:aws:s3:::b; glue:GetTable on arn:aws:glue:us-east-1:1:table/d/t"
        " (1 of 3 calls allowed)"
    )


def test_no_call_made_is_not_ok() -> None:
    assert reader_check.judge_calls([], "Reader")[0] == FAIL


def test_on_aws_the_row_is_skipped_with_a_hint_and_makes_no_call() -> None:
    """No endpoint: check creates no IAM user in a real account. The context is never asked for a client or
    the stack's outputs (it would raise on any AWS call: no credentials, no stack)."""

    class NoCalls(AwsContext):
        def client(self, service: str) -> object:
            raise AssertionError(f"no {service} call expected")

        def stack_outputs(self) -> dict[str, str]:
            raise AssertionError("no DescribeStacks expected")

    status, detail = reader_check.judge_report_reader(NoCalls(stack_name="S"))
    assert status == SKIP
    assert "run `report --engine athena` as a principal holding ReportReaderPolicyArn" in detail


def test_a_local_stack_without_the_policy_output_is_skipped_naming_it() -> None:
    class Outputs(AwsContext):
        def client(self, service: str) -> object:
            raise AssertionError(f"no {service} call expected")

        def stack_outputs(self) -> dict[str, str]:
            return {"AthenaWorkGroupName": "w", "LakeDatabaseName": "d", "LakeTableName": "t", "LakeBucketName": "b"}

    status, detail = reader_check.judge_report_reader(Outputs(stack_name="S", endpoint_url="http://127.0.0.1:1"))
    assert status == SKIP
    assert "no ReportReaderPolicyArn output" in detail


class FakeIam:
    """Records the IAM calls; ``refuse`` names a removal that fails."""

    def __init__(self, refuse: str = "") -> None:
        self.calls: list[str] = []
        self.refuse = refuse

    def __getattr__(self, name: str):  # create_user, attach_user_policy, ... delete_user
        def call(**kwargs: str) -> dict:
            self.calls.append(name)
            if name == self.refuse:
                raise ClientError({"Error": {"Code": "ServiceFailure", "Message": "try again"}}, name)
            return {"AccessKey": {"AccessKeyId": "AKIDREADER", "SecretAccessKey": "s"}} if name == "create_access_key" else {}

        return call


class LocalContext(AwsContext):
    def __init__(self, iam: FakeIam) -> None:
        super().__init__(stack_name="S", endpoint_url="http://127.0.0.1:1", region="us-east-1")
        self.iam = iam

    def client(self, service: str) -> object:
        assert service == "iam"
        return self.iam

    def stack_outputs(self) -> dict[str, str]:
        return {
            "ReportReaderPolicyArn": "arn:aws:iam::123456789012:policy/Reader",
            "AthenaWorkGroupName": "w",
            "LakeDatabaseName": "d",
            "LakeTableName": "t",
            "LakeBucketName": "b",
        }


REMOVALS = ["delete_access_key", "detach_user_policy", "delete_user"]


def test_the_temporary_user_is_removed_after_the_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    def calls(reader, outputs, partition, account, region) -> None:
        reader.calls.append(Call("s3:ListBucket", "arn:aws:s3:::b", ALLOWED))

    monkeypatch.setattr(reader_check, "_report_calls", calls)
    iam = FakeIam()
    status, detail = reader_check.judge_report_reader(LocalContext(iam))
    assert (status, detail) == (OK, "1 of 1 call of `report --engine athena` allowed with only Reader attached")
    assert iam.calls == ["create_user", "attach_user_policy", "create_access_key", *REMOVALS]


def test_the_user_is_removed_when_a_call_fails_and_a_failed_removal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def calls(reader, outputs, partition, account, region) -> None:
        raise ClientError({"Error": {"Code": "InternalFailure", "Message": "boom"}}, "GetWorkGroup")

    monkeypatch.setattr(reader_check, "_report_calls", calls)
    iam = FakeIam()
    with pytest.raises(ClientError):
        reader_check.judge_report_reader(LocalContext(iam))
    assert iam.calls[-3:] == REMOVALS

    iam = FakeIam(refuse="delete_user")
    with pytest.raises(OpsError, match=r"the temporary IAM user chat-analytics-check-reader-\w+ was not entirely removed: the user:"):
        reader_check.judge_report_reader(LocalContext(iam))
    assert iam.calls[-3:] == REMOVALS
