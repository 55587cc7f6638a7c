"""``make local``'s stack, then ``chat-analytics check`` exactly as it prints it: intact, then with one part broken at a time.

The stack is started by ``python -m local.serve`` (the command ``make local`` runs, after its port check and
synth) in its own process; the test reads the lines it prints for the user to paste (the environment, then
``check``), and runs them as a shell would: ``chat-analytics`` as a separate process. Each fault is made with
the local administrator's key through the same endpoint, the way an operator's mistake would reach a real
stack, and undone after its check.

What this leans on moto for: SQS's redrive (moto moves a message to the DLQ on the receive after
``maxReceiveCount``, as SQS does), IAM enforcement of the processor's role (moto evaluates the role's current
policies at each request), and Lambda's event source mapping API (the local emulator consumes the queue;
the mapping's state is what ``check`` reads, as on AWS).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from testkit.faults import free_port
from tests.conftest import REPO

CHAT_ANALYTICS = Path(sys.executable).with_name("chat-analytics")
START_TIMEOUT_S = 240  # a bound for a hang, not a budget: deploying takes 2 to 30 s depending on the machine's load


@dataclass
class Served:
    process: subprocess.Popen[str]
    lines: list[str]
    endpoint_url: str
    env: dict[str, str]
    commands: list[str]

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def output(self, name: str) -> str:
        [value] = [line.split(": ", 1)[1] for line in self.lines if line.strip().startswith(f"{name}: ")]
        return value

    def run(self, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """A printed ``chat-analytics ...`` line, run as the user's shell would after pasting the environment."""
        argv = shlex.split(command)
        assert argv[0] == "chat-analytics"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | self.env
        return subprocess.run([str(CHAT_ANALYTICS), *argv[1:], *extra], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


def start_serve(template: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], list[str]]:
    port, chatbot_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "local.serve",
        "--template",
        str(template),
        "--port",
        str(port),
        "--chatbot-port",
        str(chatbot_port),
        "--dev-vars",
        str(tmp_path / ".dev.vars"),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"local.serve ended before it was ready:\n{''.join(lines)}")
        lines.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C to stop."):
            return process, lines
    process.kill()
    raise AssertionError("local.serve did not become ready")


def stop_serve(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


@pytest.fixture(scope="module")
def served(local_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    process, lines = start_serve(local_template, tmp_path_factory.mktemp("serve"))
    try:
        pasted = [line.strip() for line in lines[lines.index("In another terminal, from this folder, paste:") + 1 :]]
        exports = [re.fullmatch(r"export (\w+)=(\S+)", line) for line in pasted if line.startswith("export ")]
        assert all(exports), f"every export line is NAME=value: {pasted}"
        env = {match[1]: shlex.split(match[2])[0] for match in exports if match}
        commands = [line for line in pasted if line.startswith("chat-analytics ")]
        endpoints = [re.search(r"--endpoint-url (\S+)", command) for command in commands]
        assert all(endpoints), f"every command names its endpoint: {commands}"
        [endpoint] = {match[1] for match in endpoints if match}
        yield Served(process, lines, endpoint, env, commands)
    finally:
        stop_serve(process)


def check_command(served: Served) -> str:
    [command] = [command for command in served.commands if command.endswith(" check")]
    return command


def rows(result: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    found = {}
    for row in json.loads(result.stdout)["checks"]:
        found[row["name"]] = (row["status"], row["detail"])
    return found


def test_make_local_prints_the_lines_to_paste(served: Served) -> None:
    pasted = served.lines[served.lines.index("In another terminal, from this folder, paste:") + 1 :]
    assert pasted[0].strip() == "source .venv/bin/activate"
    assert set(served.env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
    assert [command.split(served.endpoint_url, 1)[1].strip() for command in served.commands] == [
        "check",
        "report",
        "report --engine duckdb",
    ]


def test_check_as_printed_passes_on_the_intact_local_stack(served: Served) -> None:
    result = served.run(check_command(served))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout
    names = (
        "producer secret",
        "canary sent",
        "canary stored",
        "redrive policy",
        "event source",
        "event lake",
        "lake compaction",
        "report reader",
    )
    for name in (*names, "recovery rule", "recovery grants", "recovery dead letters"):
        assert re.search(rf"^\s+{name}\s+OK\s", result.stdout, re.MULTILINE), (name, result.stdout)


def test_report_reader_row_calls_as_the_policy_and_leaves_no_user(served: Served) -> None:
    """The row counts the report's calls allowed with only ReportReaderPolicyArn attached, and the temporary
    user it made for them is gone afterwards (with its key and attachment)."""
    result = served.run(check_command(served), "--json")
    status, detail = rows(result)["report reader"]
    assert status == "OK", detail
    assert re.search(r"\b(\d+) of \1 calls of `report --engine athena` allowed", detail), detail
    iam = served.client("iam")
    users = [user["UserName"] for user in iam.list_users()["Users"]]
    assert not [name for name in users if name.startswith("chat-analytics-check-reader-")], users
    policy = served.output("ReportReaderPolicyArn")
    assert iam.list_entities_for_policy(PolicyArn=policy)["PolicyUsers"] == []


def test_report_commands_as_printed_run(served: Served) -> None:
    for command in served.commands[1:]:
        result = served.run(command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("max_receive_10", {"redrive policy": "maxReceiveCount is 10, not 3"}),
        ("other_dlq", {"redrive policy": "not the stack's ChatAnalytics-dev-dlq.fifo"}),
        ("no_redrive", {"redrive policy": "has no redrive policy"}),
        # A stopped consumer also leaves the canary unstored; its row says where the canary waits and why.
        (
            "mapping_disabled",
            {"event source": "the consumer is stopped", "canary stored": "wait unconsumed in the events queue: the consumer is stopped"},
        ),
        ("no_partial_failures", {"event source": "does not report batch item failures"}),
        ("secret_other_queue", {"producer secret": "not the stack's"}),
        ("recovery_target_without_dlq", {"recovery rule": "its target has no dead-letter queue"}),
        ("topic_without_events_grant", {"recovery grants": "no topic policy statement lets events.amazonaws.com"}),
        ("recovery_notice_dead_lettered", {"recovery dead letters": "1 recovery notice failed to reach the topic"}),
        ("reader_policy_without_list", {"report reader": "lacks s3:ListBucket on arn:aws:s3:::"}),
    ],
)
def test_check_fails_the_broken_part_and_names_it(served: Served, fault: str, expected: dict[str, str]) -> None:
    with broken(served, fault):
        result = served.run(check_command(served), "--json", "--timeout", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    found = rows(result)
    failed = {name: detail for name, (status, detail) in found.items() if status == "FAIL"}
    assert sorted(failed) == sorted(expected), found
    for name, words in expected.items():
        assert words in failed[name], (name, failed[name])
    # Undone: the same command passes again.
    assert served.run(check_command(served)).returncode == 0


def test_a_processor_that_cannot_write_the_table_fails_the_canary_and_points_at_the_dlq(served: Served) -> None:
    """The processor's role loses its table grant: its writes are refused, SQS dead-letters the canary after
    three receives, and the canary row says so instead of blaming the event source."""
    with broken(served, "processor_cannot_write"):
        result = served.run(check_command(served), "--json", "--timeout", "20")
    assert result.returncode == 1, result.stdout + result.stderr
    status, detail = rows(result)["canary stored"]
    assert status == "FAIL"
    assert "the DLQ grew by" in detail and "processor fails on the canary" in detail, detail
    assert "event source mapping enabled" not in detail


class broken:
    """One part of the local stack broken for the duration of a ``with``, as an operator's change would."""

    def __init__(self, served: Served, fault: str) -> None:
        self.served, self.fault = served, fault
        self.sqs, self.lam, self.iam = served.client("sqs"), served.client("lambda"), served.client("iam")
        self.events_url = local_url(served, served.output("EventsQueueUrl"))
        self.undo: list = []

    def __enter__(self) -> broken:
        getattr(self, self.fault)()
        return self

    def __exit__(self, *exc: object) -> None:
        for step in reversed(self.undo):
            step()

    def _set_redrive(self, policy: str) -> None:
        saved = self.sqs.get_queue_attributes(QueueUrl=self.events_url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
        self.sqs.set_queue_attributes(QueueUrl=self.events_url, Attributes={"RedrivePolicy": policy})
        self.undo.append(lambda: self.sqs.set_queue_attributes(QueueUrl=self.events_url, Attributes={"RedrivePolicy": saved}))
        return json.loads(saved)

    def max_receive_10(self) -> None:
        current = json.loads(
            self.sqs.get_queue_attributes(QueueUrl=self.events_url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
        )
        self._set_redrive(json.dumps({**current, "maxReceiveCount": 10}))

    def other_dlq(self) -> None:
        url = self.sqs.create_queue(QueueName="someone-elses-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._set_redrive(json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3}))

    def no_redrive(self) -> None:
        self._set_redrive("")

    def _mapping(self) -> dict:
        [mapping] = self.lam.list_event_source_mappings(FunctionName=self.served.output("ProcessorFunctionName"))["EventSourceMappings"]
        return mapping

    def mapping_disabled(self) -> None:
        uuid = self._mapping()["UUID"]
        self.lam.update_event_source_mapping(UUID=uuid, Enabled=False)
        self.undo.append(lambda: self.lam.update_event_source_mapping(UUID=uuid, Enabled=True))

    def no_partial_failures(self) -> None:
        mapping = self._mapping()
        self.lam.update_event_source_mapping(UUID=mapping["UUID"], FunctionResponseTypes=[])
        self.undo.append(
            lambda: self.lam.update_event_source_mapping(UUID=mapping["UUID"], FunctionResponseTypes=mapping["FunctionResponseTypes"])
        )

    def secret_other_queue(self) -> None:
        secrets = self.served.client("secretsmanager")
        name = self.served.output("ProducerSecretName")
        saved = secrets.get_secret_value(SecretId=name)["SecretString"]
        value = json.loads(saved)
        value["AWS_SQS_URL"] = value["AWS_SQS_URL"].replace("ChatAnalytics-dev-events.fifo", "someone-elses.fifo")
        secrets.put_secret_value(SecretId=name, SecretString=json.dumps(value))
        self.undo.append(lambda: secrets.put_secret_value(SecretId=name, SecretString=saved))

    def processor_cannot_write(self) -> None:
        """Every statement of the processor role's policies that allows a DynamoDB action removed (the template's,
        and the local bridge ``local.emulator.stack`` adds because moto authorizes DynamoDB against ``*``); its SQS and
        log grants stay, so the emulator still receives for it."""
        function = self.lam.get_function_configuration(FunctionName=self.served.output("ProcessorFunctionName"))
        role = function["Role"].rsplit("/", 1)[-1]
        for name in self.iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = self.iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            document = json.loads(document) if isinstance(document, str) else document
            statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
            kept = [statement for statement in statements if "dynamodb:" not in json.dumps(statement.get("Action", ""))]
            if len(kept) == len(statements):
                continue
            saved = json.dumps(document)
            if kept:
                self.iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps({**document, "Statement": kept}))
            else:
                self.iam.delete_role_policy(RoleName=role, PolicyName=name)
            self.undo.append(lambda name=name, saved=saved: self.iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=saved))
        assert self.undo, "no policy of the processor's role grants a DynamoDB action"

    def _recovery_target(self) -> tuple[str, dict]:
        events = self.served.client("events")
        name = self.served.output("RecoveryRuleName")
        [target] = events.list_targets_by_rule(Rule=name)["Targets"]
        return name, target

    def recovery_target_without_dlq(self) -> None:
        events = self.served.client("events")
        name, target = self._recovery_target()
        events.put_targets(Rule=name, Targets=[{key: value for key, value in target.items() if key != "DeadLetterConfig"}])
        self.undo.append(lambda: events.put_targets(Rule=name, Targets=[target]))

    def topic_without_events_grant(self) -> None:
        sns = self.served.client("sns")
        topic = self.served.output("AlarmTopicArn")
        saved = sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"]
        policy = json.loads(saved)
        policy["Statement"] = [s for s in policy["Statement"] if "events.amazonaws.com" not in json.dumps(s.get("Principal", {}))]
        sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy))
        self.undo.append(lambda: sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=saved))

    def reader_policy_without_list(self) -> None:
        """A new default version of the report reader policy without s3:ListBucket (its statement keeps s3:GetBucketLocation; an operator
        trimming the policy); undone by making the old version the default again and deleting the new one."""
        policy = self.served.output("ReportReaderPolicyArn")
        [current] = [v for v in self.iam.list_policy_versions(PolicyArn=policy)["Versions"] if v["IsDefaultVersion"]]
        document = self.iam.get_policy_version(PolicyArn=policy, VersionId=current["VersionId"])["PolicyVersion"]["Document"]
        document = json.loads(document) if isinstance(document, str) else document
        statements = []
        for statement in document["Statement"]:
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            if "s3:ListBucket" in actions:
                actions = [action for action in actions if action != "s3:ListBucket"]
                if not actions:
                    continue
                statement = {**statement, "Action": actions}
            statements.append(statement)
        assert statements != document["Statement"], "the report reader policy grants no s3:ListBucket"
        new = self.iam.create_policy_version(
            PolicyArn=policy, PolicyDocument=json.dumps({**document, "Statement": statements}), SetAsDefault=True
        )
        version = new["PolicyVersion"]["VersionId"]

        def undo() -> None:
            self.iam.set_default_policy_version(PolicyArn=policy, VersionId=current["VersionId"])
            self.iam.delete_policy_version(PolicyArn=policy, VersionId=version)

        self.undo.append(undo)

    def recovery_notice_dead_lettered(self) -> None:
        url = local_url(self.served, self.served.output("RecoveryDeadLetterQueueUrl"))
        self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"detail-type": "CloudWatch Alarm State Change"}))
        self.undo.append(lambda: self.sqs.purge_queue(QueueUrl=url))


def local_url(served: Served, url: str) -> str:
    return f"{served.endpoint_url}/{'/'.join(url.rsplit('/', 2)[-2:])}"
