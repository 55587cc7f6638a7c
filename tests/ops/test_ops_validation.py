"""The DLQ view's pieces: schema findings that never quote the body, excerpts that cut questions, chart edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chat_analytics_ops import validation
from chat_analytics_ops.chart import write_chart
from chat_analytics_ops.dlq import excerpt
from chat_analytics_ops.report import Item, build_report, day_range, parse_day

SECRET_QUESTION = "my private question about salary expectations " * 100


def test_schema_is_found_in_the_repository() -> None:
    assert validation.schema_path() is not None
    assert validation.load_schema()["title"] == "AnalyticsEvent"


def test_findings_name_field_and_rule_but_never_the_value() -> None:
    body = json.dumps({"eventType": "query", "requestId": "has space", "timestamp": -1, "query": SECRET_QUESTION})
    finding = validation.validate_body(body)
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


def test_without_the_schema_only_json_checks_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(validation, "REPO_SCHEMA", tmp_path / "missing.json")
    monkeypatch.delenv(validation.SCHEMA_ENV, raising=False)
    assert validation.load_schema() is None
    assert validation.validate_body('{"eventType": "response", "matchScore": 500}') is None
    assert validation.validate_body("nope").startswith("not JSON")
    monkeypatch.setenv(
        validation.SCHEMA_ENV, str(validation.Path(__file__).resolve().parents[2] / "schema" / "analytics-event.schema.json")
    )
    assert validation.validate_body('{"eventType": "response", "matchScore": 500}') is not None


def test_excerpt_is_short_and_cuts_free_text_first() -> None:
    text = excerpt(json.dumps({"schemaVersion": 1, "requestId": "r", "eventType": "query", "query": SECRET_QUESTION}))
    assert len(text) <= 100
    assert text.startswith('{"eventType":"query","query":"my private question')
    assert text.count("salary") <= 1
    assert excerpt("plain\ntext   body") == "plain text body"
    assert len(excerpt("x" * 500)) == 100


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
