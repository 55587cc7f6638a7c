"""The local stack as a daily tool: the stage it is asked for, stable ports, the Worker's .dev.vars written."""

from __future__ import annotations

import subprocess
from pathlib import Path

from local import serve
from local.emulator.stack import REPO, Credentials, StackInfo


def test_make_runs_the_stage_it_synthesized() -> None:
    """`make demo STAGE=prod` and `make local STAGE=prod` synthesize prod and then run prod, not dev."""
    for target, module in (("demo", "local.demo"), ("local", "local.serve")):
        plan = subprocess.run(["make", "-n", target, "STAGE=prod"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        assert "-c stage=prod" in plan and f"-m {module} --stage prod" in plan


def test_ports_are_stable_by_default_and_overridable() -> None:
    """The same ports after every restart, so edge/.dev.vars and bookmarks keep working."""
    defaults = serve.parse_args([])
    assert (defaults.port, defaults.chatbot_port, defaults.stage, defaults.dev_vars) == (4566, 8787, "dev", REPO / "edge" / ".dev.vars")
    chosen = serve.parse_args(["--port", "5000", "--chatbot-port", "5001", "--stage", "prod"])
    assert (chosen.port, chosen.chatbot_port, chosen.stage) == (5000, 5001, "prod")


def test_the_workers_dev_vars_send_to_the_local_stack(tmp_path: Path) -> None:
    info = StackInfo(
        endpoint_url="http://127.0.0.1:4566",
        region="us-east-1",
        stack_name="ChatAnalytics-dev",
        outputs={"EventsQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo"},
        admin=Credentials("AKIDADMIN", "admin-secret"),
        producer=Credentials("AKIDLOCAL", "local-secret"),
        processor=Credentials("AKIDPROCESSOR", "processor-secret"),
        event_source={},
        processor_environment={},
    )
    path = tmp_path / ".dev.vars"
    serve.write_dev_vars(path, serve.worker_dev_vars(info))
    lines = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert lines == {
        "AWS_ACCESS_KEY_ID": '"AKIDLOCAL"',
        "AWS_SECRET_ACCESS_KEY": '"local-secret"',
        "AWS_SQS_URL": '"http://127.0.0.1:4566/123456789012/ChatAnalytics-dev-events.fifo"',
        "AWS_REGION": '"us-east-1"',
        "ANALYTICS_LOCAL_ENDPOINT": '"http://127.0.0.1:4566"',
    }
