"""The DLQ view's pieces: schema findings that never quote the body, excerpts that cut questions, chart edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chat_analytics_ops import validation
from chat_analytics_ops.chart import write_chart
from chat_analytics_ops.dlq import excerpt
from chat_analytics_ops.errors import OpsError
from chat_analytics_ops.report_model import day_range, parse_day
from chat_analytics_ops.table_engine import Item, build_report

SECRET_QUESTION = "my private question about salary expectations " * 100


def test_the_schema_ships_in_the_package_as_the_contract() -> None:
    """A non-editable install judges bodies by the same contract: the packaged copy equals schema/'s."""
    repo_schema = Path(__file__).resolve().parents[2] / "schema" / "analytics-event.schema.json"
    assert validation.schema_path() is None
    assert validation.load_schema() == json.loads(repo_schema.read_text(encoding="utf-8"))


def test_the_wheel_carries_the_schema(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys
    import zipfile

    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "ops"
    shutil.copytree(Path(__file__).resolve().parents[2] / "ops", source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    [wheel] = tmp_path.glob("chat_analytics_ops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "chat_analytics_ops/analytics-event.schema.json" in names
    assert {"chat_analytics_ops/lake-columns.json", "chat_analytics_ops/sql/report.sql"} <= set(names), "the lake engines' files ship"
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: jsonschema" in metadata and 'Requires-Dist: matplotlib>=3.8; extra == "chart"' in metadata
    assert 'Requires-Dist: duckdb>=1.1; extra == "lake"' in metadata


def test_findings_name_field_and_rule_but_never_the_value() -> None:
    body = json.dumps({"eventType": "query", "requestId": "has space", "timestamp": -1, "query": SECRET_QUESTION})
    finding = validation.validate_body(body)
    assert finding is not None
    assert "query: longer than 4096 characters" in finding
    assert "requestId: does not match" in finding
    assert "timestamp: below the minimum 0" in finding
    assert "salary" not in finding


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[1, 2]", "not a JSON object (a list)"),
        ('{"eventType": "click"}', "eventType: missing or not one of query, response"),
        ('{"eventType": "response", "requestId": "r", "timestamp": 1}', "matchScore is a required property"),
        ('{"eventType": "query", "requestId": "r", "timestamp": 1, "query": "q", "source": "' + "s" * 65 + '"}', "source: longer than 64"),
    ],
)
def test_findings(body: str, expected: str) -> None:
    assert expected in (validation.validate_body(body) or "")


def test_valid_events_and_unknown_fields_pass() -> None:
    body = {
        "eventType": "response",
        "requestId": "r-1",
        "timestamp": 1,
        "matchType": "full",
        "matchScore": 99.5,
        "reasoning": "",
        "extra": 1,
    }
    assert validation.validate_body(json.dumps(body)) is None


def test_a_schema_override_is_used_and_a_missing_one_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No silent downgrade to JSON-only checks: the contract is always applied, or the command says why not."""
    strict = json.loads(json.dumps(validation.load_schema()))
    strict["$defs"]["ResponseEvent"]["properties"]["matchScore"]["maximum"] = 50
    override = tmp_path / "schema.json"
    override.write_text(json.dumps(strict))
    monkeypatch.setenv(validation.SCHEMA_ENV, str(override))
    body = {"eventType": "response", "requestId": "r", "timestamp": 1, "matchType": "full", "matchScore": 60, "reasoning": ""}
    finding = validation.validate_body(json.dumps(body))
    assert finding is not None and "matchScore: above the maximum 50" in finding
    monkeypatch.setenv(validation.SCHEMA_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(OpsError, match=r"cannot read the event schema from .*missing\.json"):
        validation.validate_body(json.dumps(body))


def test_excerpt_shows_a_question_as_its_length_unless_asked() -> None:
    """The privacy rule (docs/architecture.md): the user's question is shown only where it is the product
    (the report's unanswered questions), or on an operator's explicit ``--show-text``."""
    body = json.dumps({"schemaVersion": 1, "requestId": "r", "eventType": "query", "query": SECRET_QUESTION})
    text = excerpt(body)
    assert len(text) <= 100 and "salary" not in text
    assert text.startswith(f'{{"eventType":"query","query":"<question, {len(SECRET_QUESTION)} characters>"')
    shown = excerpt(body, show_text=True)
    assert len(shown) <= 100 and shown.startswith('{"eventType":"query","query":"my private question')
    assert shown.count("salary") <= 1
    assert excerpt(SECRET_QUESTION) == f"<not JSON, {len(SECRET_QUESTION)} characters>", "a bare body may be the question"
    assert "salary" not in excerpt(body[:80]), "a truncated body has its question masked too"
    assert excerpt("plain\ntext   body", show_text=True) == "plain text body"
    assert len(excerpt("x" * 500, show_text=True)) == 100


def test_a_long_range_still_draws_a_readable_chart(tmp_path: Path) -> None:
    days = day_range(parse_day("2025-12-01", "--from"), parse_day("2026-03-31", "--to"))
    items = [
        Item(f"r{i}", days[i % len(days)], query="q", match_type=("full", "partial", "none")[i % 3], match_score=float(i % 101))
        for i in range(600)
    ]
    path = write_chart(build_report(items, days, top=5), tmp_path / "long.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = write_chart(build_report([], days[:3], top=5), tmp_path / "empty.png")
    assert empty.stat().st_size > 10_000


def test_a_chart_without_matplotlib_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """matplotlib is the optional ``chart`` extra: without it ``--chart`` says how to get it, before any AWS call."""
    import importlib.util

    from chat_analytics_ops import chart

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a))
    with pytest.raises(OpsError, match=r"--chart needs matplotlib: pip install 'chat-analytics-ops\[chart\]'"):
        chart.check_chart_path(tmp_path / "report.png")
