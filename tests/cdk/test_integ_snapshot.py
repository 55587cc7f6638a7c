"""The real-account integration test (integ/): its snapshot is current, the check catches a change, the throwaway
stage is what docs/integ.md says, and the probe Lambda does what the assertions rely on.

The snapshot check runs the integ app as ``python -m integ.run check`` does (a synth, no AWS call) and
compares it with the committed ``integ/integ_pipeline.py.snapshot/``. A change to the stack fails it on
purpose: deploy it with ``make integ`` (the snapshot is refreshed when the assertions pass) or, without an
account, ``python -m integ.run update`` and say so in the commit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from integ import run
from integ.probe import probe
from tests.cdk.conftest import only_resource, resources_of

STACK_TEMPLATE = "ChatAnalytics-integ.template.json"


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run.synth(tmp_path_factory.mktemp("integ-synth"))


@pytest.fixture(scope="module")
def stack(assembly: Path) -> dict[str, Any]:
    return json.loads((assembly / STACK_TEMPLATE).read_text())


def copy_of(assembly: Path, tmp_path: Path) -> Path:
    target = tmp_path / "assembly"
    shutil.copytree(assembly, target, ignore=shutil.ignore_patterns("asset.*"))
    return target


def edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# --- the snapshot -----------------------------------------------------------------------------------


def test_the_snapshot_matches_the_integ_app(assembly: Path) -> None:
    lines = run.compare(run.SNAPSHOT, assembly)
    assert lines == [], "\n".join([*lines[:25], "the integ stack changed: `make integ`, or `python -m integ.run update` without AWS"])


def test_a_changed_property_is_reported_with_its_path(assembly: Path, tmp_path: Path) -> None:
    changed = copy_of(assembly, tmp_path)
    raw = json.loads((assembly / STACK_TEMPLATE).read_text())
    queue_id, _ = only_resource(raw, "AWS::SQS::Queue", QueueName="ChatAnalytics-integ-events.fifo")

    def more_receives(data: dict[str, Any]) -> None:
        data["Resources"][queue_id]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = 4

    edit(changed / STACK_TEMPLATE, more_receives)
    assert run.compare(assembly, changed) == [
        f"{STACK_TEMPLATE}: [~] Resources.{queue_id}.Properties.RedrivePolicy.maxReceiveCount: 3 -> 4"
    ]


def test_added_and_removed_resources_and_stacks_are_reported(assembly: Path, tmp_path: Path) -> None:
    changed = copy_of(assembly, tmp_path)
    edit(changed / STACK_TEMPLATE, lambda data: data["Resources"].update({"Extra": {"Type": "AWS::SNS::Topic"}}))
    (changed / "Other.template.json").write_text("{}")
    assert run.compare(assembly, changed) == [
        "[+] Other.template.json (synthesized, not in the snapshot)",
        f"{STACK_TEMPLATE}: [+] Resources.Extra",
    ]
    assert run.compare(changed, assembly) == [
        "[-] Other.template.json (in the snapshot, not synthesized)",
        f"{STACK_TEMPLATE}: [-] Resources.Extra",
    ]


def test_asset_hashes_and_assertion_salts_are_not_compared(assembly: Path, tmp_path: Path) -> None:
    """integ-runner's default (``diffAssets: false``): the code inside an asset is the unit tests' business;
    integ-tests gives every assertion a ``salt`` (the synth time) so that each deploy runs it again."""
    changed = copy_of(assembly, tmp_path)
    text = (changed / STACK_TEMPLATE).read_text()
    hashes = set(run.ASSET_HASH.findall(text))
    assert hashes, "the integ stack has assets (the processor, the probe)"
    for old in hashes:
        text = text.replace(old, "f" * 64)
    (changed / STACK_TEMPLATE).write_text(text)
    assertion_template = next(name for name in run.compared_files(changed) if "DeployAssert" in name)
    salted = (changed / assertion_template).read_text()
    assert '"salt"' in salted
    (changed / assertion_template).write_text(salted.replace('"salt": "1', '"salt": "2'))
    assert run.compare(assembly, changed) == []


def test_a_missing_snapshot_says_how_to_make_one(assembly: Path, tmp_path: Path) -> None:
    assert run.compare(tmp_path / "none", assembly) == [
        f"no snapshot at {tmp_path / 'none'}: run `python -m integ.run deploy` (or `update`, without AWS)"
    ]


def test_check_exits_1_listing_the_differences_and_0_when_equal(
    assembly: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = copy_of(assembly, tmp_path)
    monkeypatch.setattr(run, "synth", lambda outdir: assembly)
    monkeypatch.setattr(run, "SNAPSHOT", snapshot)
    monkeypatch.setattr(run, "REPO", tmp_path)
    assert run.main(["check"]) == 0
    assert "no change" in capsys.readouterr().out
    edit(snapshot / STACK_TEMPLATE, lambda data: data["Resources"].popitem())
    assert run.main(["check"]) == 1
    err = capsys.readouterr().err
    assert "1 difference(s)" in err and "[+] Resources." in err and "make integ" in err


def test_a_failed_synth_is_one_line_naming_the_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(run.IntegError, match=r"^synthesizing integ/integ_pipeline.py failed \(exit 1\): .*boom"):
        run.synth(tmp_path, python=str(_failing_python(tmp_path)))


def _failing_python(tmp_path: Path) -> Path:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho boom >&2\nexit 1\n")
    script.chmod(0o755)
    return script


def test_the_snapshot_has_no_assets_and_no_machine_paths() -> None:
    """The committed snapshot is templates and manifests only (integ-runner's layout), the same from any clone."""
    names = [path.name for path in run.SNAPSHOT.iterdir()]
    assert not [name for name in names if name.startswith("asset.")]
    for path in run.SNAPSHOT.iterdir():
        text = path.read_text()
        assert str(run.REPO) not in text and "/tmp/" not in text, path.name


def test_the_probe_asset_hash_does_not_depend_on_where_it_was_staged() -> None:
    import aws_cdk as cdk

    from integ.harness import stage_probe_asset

    first, second = stage_probe_asset(), stage_probe_asset()
    assert first != second
    assert cdk.FileSystem.fingerprint(first) == cdk.FileSystem.fingerprint(second)
    assert sorted(str(path.relative_to(first)) for path in Path(first).rglob("*") if path.is_file()) == [
        "chat_analytics_ops/__init__.py",
        "chat_analytics_ops/contract.py",
        "chat_analytics_ops/errors.py",
        "chat_analytics_ops/lake-columns.json",
        "chat_analytics_ops/lake.py",
        "chat_analytics_ops/rejected-columns.json",
        "chat_analytics_ops/render.py",
        "chat_analytics_ops/report_model.py",
        "chat_analytics_ops/sql/compacted_days.sql",
        "chat_analytics_ops/sql/rejected.sql",
        "chat_analytics_ops/sql/report.sql",
        "chat_analytics_ops/table_engine.py",
        "chat_analytics_ops/timeouts.py",
        "probe.py",
    ]


def test_the_probe_asset_runs_with_only_what_lambda_provides() -> None:
    """The staged files import on their own with boto3 (the Lambda runtime's) and nothing else of the repository:
    a new import in ``chat_analytics_ops``'s report code that is not staged fails here, not in the account."""
    import subprocess
    import sys

    from integ.harness import stage_probe_asset

    staged = stage_probe_asset()
    code = (
        "import sys\n"
        "for name in ('duckdb', 'jsonschema', 'matplotlib', 'pydantic', 'analytics_producer', 'stacks', 'integ'):\n"
        "    sys.modules[name] = None\n"
        f"sys.path.insert(0, {staged!r})\n"
        "import probe, chat_analytics_ops\n"
        "from chat_analytics_ops import lake\n"
        "assert chat_analytics_ops.__file__.startswith(sys.path[0]), chat_analytics_ops.__file__\n"
        "assert 'GROUPING SETS' in lake.report_sql().upper()\n"
        "print(len(probe.report_days()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=staged, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


# --- the throwaway stage ----------------------------------------------------------------------------


def test_the_integ_stage_has_names_of_its_own(assembly: Path, stack: dict[str, Any]) -> None:
    integ = json.loads((assembly / "integ.json").read_text())
    assert integ["testCases"]["ChatAnalyticsInteg/DefaultTest"]["stacks"] == ["ChatAnalytics-integ"]
    assert integ["testCases"]["ChatAnalyticsInteg/DefaultTest"]["stackUpdateWorkflow"] is False
    only_resource(stack, "AWS::SQS::Queue", QueueName="ChatAnalytics-integ-dlq.fifo")
    only_resource(stack, "AWS::KinesisFirehose::DeliveryStream", DeliveryStreamName="ChatAnalytics-integ-requests")
    only_resource(stack, "AWS::Athena::WorkGroup", Name="ChatAnalytics-integ")


def test_everything_stateful_is_deleted_with_the_stack(stack: dict[str, Any]) -> None:
    kept = {
        name: res["Type"]
        for name, res in stack["Resources"].items()
        if res.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate", "Snapshot")
    }
    assert kept == {}
    for resource_type in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::KMS::Key"):
        for name, res in resources_of(stack, resource_type).items():
            assert res.get("DeletionPolicy") == "Delete", name
    (table_id, table) = next(iter(resources_of(stack, "AWS::DynamoDB::Table").items()))
    assert table["Properties"].get("DeletionProtectionEnabled") in (None, False), table_id


def test_the_lake_buffers_60_seconds_and_is_emptied_before_its_bucket_is_deleted(stack: dict[str, Any]) -> None:
    stream_id, stream = next(iter(resources_of(stack, "AWS::KinesisFirehose::DeliveryStream").items()))
    assert stream["Properties"]["ExtendedS3DestinationConfiguration"]["BufferingHints"]["IntervalInSeconds"] == 60
    (emptier_id, emptier) = next(iter(resources_of(stack, "Custom::EmptyLakeBucket").items()))
    (bucket_id, _) = next(iter(resources_of(stack, "AWS::S3::Bucket").items()))
    assert emptier["Properties"]["BucketName"] == {"Ref": bucket_id}
    # CloudFormation deletes in reverse dependency order: the stream, then the emptier, then the bucket.
    assert emptier_id in stream["DependsOn"], stream_id


def test_the_alarm_topic_has_the_test_subscriber(stack: dict[str, Any]) -> None:
    subscriptions = resources_of(stack, "AWS::SNS::Subscription")
    assert [sub["Properties"]["Protocol"] for sub in subscriptions.values()] == ["sqs"]
    assert next(iter(subscriptions.values()))["Properties"]["RawMessageDelivery"] is True


# --- the probe --------------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield


def test_send_signs_with_the_producer_key_from_the_secret(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    iam = boto3.client("iam")
    iam.create_user(UserName="producer")
    key = iam.create_access_key(UserName="producer")["AccessKey"]
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="events.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    secret = {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_SQS_URL": url,
        "AWS_REGION": "us-east-1",
    }
    boto3.client("secretsmanager").create_secret(Name="integ/producer", SecretString=json.dumps(secret))
    monkeypatch.setenv("PRODUCER_SECRET_NAME", "integ/producer")
    used: list[str] = []
    real_client = boto3.client

    def client(service: str, **kwargs: Any) -> Any:
        if service == "sqs":
            used.append(kwargs.get("aws_access_key_id", "<the function's role>"))
        return real_client(service, **kwargs)

    monkeypatch.setattr(probe.boto3, "client", client)
    assert probe.handler({"action": "send"}, None) == {"sent": 4, "failed": []}
    assert used == [key["AccessKeyId"]]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    bodies = [json.loads(message["Body"]) for message in messages]
    assert [(body["requestId"], body["eventType"]) for body in bodies] == [
        ("integ-full", "query"),
        ("integ-full", "response"),
        ("integ-none", "query"),
        ("integ-none", "response"),
    ]
    assert {message["Attributes"]["MessageGroupId"] for message in messages} == {"integ-full", "integ-none"}
    assert probe.handler({"action": "poison"}, None) == {"sent": 1}
    (poison,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert "query" not in json.loads(poison["Body"])


def test_the_events_the_probe_sends_are_valid_and_the_poison_is_not() -> None:
    """Judged by the contract's JSON Schema (schema/analytics-event.schema.json), which every validator agrees with."""
    import jsonschema

    schema = json.loads((run.REPO / "schema" / "analytics-event.schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    for event in probe.events(1_767_225_600_000):
        assert list(validator.iter_errors(event)) == [], event
    poison = {"schemaVersion": 1, "eventType": "query", "requestId": probe.POISON_REQUEST_ID, "timestamp": 1_767_225_600_000}
    assert [error.message for error in validator.iter_errors(poison)] != []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            json.dumps({"AlarmName": "ChatAnalytics-integ-ProcessorThrottles", "NewStateValue": "ALARM", "OldStateValue": "OK"}),
            ("ChatAnalytics-integ-ProcessorThrottles", "ALARM"),
        ),
        (json.dumps({"AlarmName": "x", "NewStateValue": "OK"}), None),
        (
            "OK: ChatAnalytics-integ-ProcessorThrottles recovered at 2026-12-05T12:00:00Z (Threshold Crossed)",
            ("ChatAnalytics-integ-ProcessorThrottles", "RECOVERED"),
        ),
        ("something else entirely", None),
        ("[1, 2]", None),
    ],
)
def test_notifications_are_told_apart(body: str, expected: tuple[str, str] | None) -> None:
    assert probe.classify(body) == expected


def test_notifications_see_every_message_without_consuming_it(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
    monkeypatch.setenv("NOTIFICATION_QUEUE_URL", url)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"AlarmName": "A", "NewStateValue": "ALARM"}))
    sqs.send_message(QueueUrl=url, MessageBody="OK: A recovered at now (reason)")
    first = probe.handler({"action": "notifications"}, None)
    assert first == {"alarm": ["A"], "recovered": ["A"], "messages": 2}
    assert probe.handler({"action": "notifications"}, None) == first


def test_lake_files_tell_parquet_from_anything_else(aws: None) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="requests/dt=2026-12-05/a.parquet", Body=b"PAR1" + b"\0" * 20 + b"PAR1")
    s3.put_object(Bucket="lake", Key="requests/dt=2026-12-05/b", Body=b'{"request_id": "x"}\n')
    s3.put_object(Bucket="lake", Key="athena-results/q.csv", Body=b"not a lake file")
    assert probe.lake_files(s3, "lake") == (1, 1)


def test_the_bucket_is_emptied_on_delete_and_cloudformation_is_answered(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lake")
    for index in range(3):
        s3.put_object(Bucket="lake", Key=f"requests/dt=2026-12-05/{index}", Body=b"x")
    answers: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(probe, "respond", lambda event, status, reason: answers.append((status, {"reason": reason})))
    event = {"RequestType": "Delete", "ResourceProperties": {"BucketName": "lake"}}
    assert probe.handler(event, None) is None
    assert answers == [("SUCCESS", {"reason": "deleted 3 objects"})]
    assert s3.list_objects_v2(Bucket="lake")["KeyCount"] == 0
    probe.handler({**event, "RequestType": "Create"}, None)
    probe.handler({**event, "ResourceProperties": {"BucketName": "no-such-bucket"}}, None)
    assert answers[1] == ("SUCCESS", {"reason": "nothing to do"})
    assert answers[2][0] == "FAILED" and "NoSuchBucket" in answers[2][1]["reason"]


def test_an_unknown_action_or_a_failure_is_an_answer_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    assert probe.handler({"action": "dance"}, None) == {
        "error": "unknown action 'dance' (known: send, poison, reports, notifications, receives)"
    }
    monkeypatch.delenv("STACK_NAME", raising=False)
    assert probe.handler({"action": "reports"}, None) == {"error": "RuntimeError: environment variable STACK_NAME is not set"}
