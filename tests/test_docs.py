"""The repository documents itself: every relative link in its Markdown resolves to a file inside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted(REPO.glob("*/README.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=[str(doc.relative_to(REPO)) for doc in DOCS])
def test_relative_links_stay_inside_the_repository_and_resolve(doc: Path) -> None:
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        resolved = (doc.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(REPO), f"{doc.name} links outside the repository: {target}"
        assert resolved.exists(), f"{doc.name} links to a missing file: {target}"


# Every command the README shows, and where it runs exactly as shown (a test, `make demo`, or CI's `make ci`);
# the commands that need an AWS account say which test runs the same code path against moto.
README_COMMANDS = {
    "make demo": "tests/local/test_local_demo.py",
    "make test": ".ci/run",
    "make synth": ".ci/run",
    "source .venv/bin/activate": "tests/local/test_local_serve_check.py",
    "chat-analytics --help": "tests/ops/test_ops_entry_point.py",
    "make local": "tests/local/test_local_serve_lifecycle.py",
    "make local PORT=4567 CHATBOT_PORT=8788": "tests/local/test_local_serve_lifecycle.py",
    "export AWS_ACCESS_KEY_ID=...": "tests/local/test_local_serve_check.py",
    "export AWS_SECRET_ACCESS_KEY=...": "tests/local/test_local_serve_check.py",
    "export AWS_REGION=us-east-1": "tests/local/test_local_serve_check.py",
    "chat-analytics --stage dev --endpoint-url http://127.0.0.1:4566 check": "tests/local/test_local_serve_check.py",
    "chat-analytics --stage dev --endpoint-url http://127.0.0.1:4566 report": "tests/local/test_local_serve_check.py",
    "chat-analytics --stage dev --endpoint-url http://127.0.0.1:4566 report --engine duckdb": "tests/local/test_local_serve_check.py",
    "chat-analytics report": "tests/ops/test_ops_report.py",
    "chat-analytics report --engine duckdb --days 90": "tests/ops/test_ops_lake.py",
    "chat-analytics report --engine athena --days 90": "tests/ops/test_ops_lake.py",
    # Need an AWS account: run by `make integ` (docs/integ.md); the same CLI code paths run against moto in tests/ops.
    "aws sts get-caller-identity": "docs/integ.md",
    "npx cdk bootstrap aws://ACCOUNT/REGION": "docs/integ.md",
    "make deploy STAGE=dev": "docs/integ.md",
    "chat-analytics --stage dev check": "tests/ops/test_ops_check.py",
    "chat-analytics --stage dev check --notify-test": "tests/ops/test_ops_check.py",
    "chat-analytics credentials push-to-wrangler": "tests/ops/test_ops_credentials.py",
    "chat-analytics dlq inspect [--json] [--show-text]": "tests/ops/test_ops_dlq.py",
    "chat-analytics dlq redrive [--dry-run] [--max N]": "tests/ops/test_ops_dlq.py",
    "chat-analytics credentials worker-env [--show]": "tests/ops/test_ops_credentials.py",
    "chat-analytics erase --request-id ID [--yes]": "tests/ops/test_ops_erase.py",
    "chat-analytics compact --day YYYY-MM-DD": "tests/ops/test_ops_compaction.py",
}


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                commands.append(command)
    return commands


def test_every_readme_command_says_where_it_runs() -> None:
    commands = readme_commands()
    assert commands, "the README shows no command"
    unknown = [command for command in commands if command not in README_COMMANDS]
    assert not unknown, f"README commands with no test that runs them (add one, then list it here): {unknown}"
    for command, where in README_COMMANDS.items():
        assert command in commands, f"{command!r} is no longer in the README: drop it here"
        source = (REPO / where).read_text(encoding="utf-8")
        if command.startswith("export "):
            words = [command.split()[1].split("=")[0]]  # the variable the pasted line sets
        else:
            tokens = command.split()[1:]
            values = {i + 1 for i, token in enumerate(tokens) if token in ("--stage", "--endpoint-url")}
            words = [token for i, token in enumerate(tokens) if i not in values and re.fullmatch(r"[a-z][a-z-]*", token)]
        missing = [word for word in words[:3] if word not in source]
        assert not missing, f"{where} does not run {command!r} (no {missing})"
