"""``question_key``: one description (docs/contracts.md, the lake's columns), one behaviour.

The report lists unmatched questions, grouped by their normalization; ``query`` holds every question. So the
processor sets ``question_key`` only on a row whose answer matched nothing (``match_type`` ``none``), and leaves
it null otherwise: the normalized text is not stored twice for the answered requests, which are most of them.
"""

from __future__ import annotations

import pytest
from chat_processor import lake

QUESTION = "  Does THE candidate know Python?? "


def item(match_type: str | None) -> dict[str, dict[str, str]]:
    item = {"requestId": {"S": "r-1"}, "day": {"S": "2026-01-01"}, "query": {"S": QUESTION}, "queryTimestamp": {"N": "1"}}
    if match_type is not None:
        item |= {"matchType": {"S": match_type}, "matchScore": {"N": "0"}, "responseTimestamp": {"N": "2"}}
    return item


def test_an_unmatched_answer_carries_the_normalized_question() -> None:
    row = lake.lake_row(item("none"), 1)
    assert row["question_key"] == lake.normalize_question(QUESTION) != QUESTION


@pytest.mark.parametrize("match_type", ["full", "partial", None])
def test_any_other_row_leaves_it_null_and_keeps_the_question(match_type: str | None) -> None:
    row = lake.lake_row(item(match_type), 1)
    assert row["question_key"] is None and row["query"] == QUESTION


def test_the_contract_doc_says_the_same() -> None:
    from pathlib import Path

    contracts = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text(encoding="utf-8")
    line = next(line for line in contracts.splitlines() if line.startswith("| `query`, `question_key`"))
    assert "only when `match_type` is `none`, null otherwise" in line
