"""The shared names (schema/contract.py): one authority, generated copies where it cannot be imported.

The processor's lake rows and the table engine both call ``normalize_question`` from their copy of the
contract, so the lake and the table group unmatched questions alike by construction; what is tested here is the
normalization itself and where each reader takes it from (every copy is checked against the authority by
``schema/generate.py --check``, in tests/processor/test_processor_contract.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schema import contract

REPO = Path(__file__).resolve().parents[2]

NORMALIZED = [
    ("Does the candidate know Python?", "does the candidate know python"),
    ("  does THE candidate   know python??  ", "does the candidate know python"),
    ("“Ｐｙｔｈｏｎ” experience…", "python” experience"),  # NFKC folds the full-width letters; only the ends are trimmed
    ("Straße und STRASSE", "strasse und strasse"),  # casefold, not lower
    ("tab\tand\nnewline\r\nhere!", "tab and newline here"),
    ("İstanbul ΣΊΣΥΦΟΣ", "i̇stanbul σίσυφοσ"),
    ("?!.,;:", ""),
    ("emoji 🐍 and \u00a0no-break\u3000space", "emoji 🐍 and no-break space"),
]


@pytest.mark.parametrize(("question", "key"), NORMALIZED)
def test_questions_that_differ_only_in_case_spacing_quotes_or_closing_punctuation_share_a_key(question: str, key: str) -> None:
    assert contract.normalize_question(question) == key


def test_the_copies_are_what_the_processor_and_the_cli_import() -> None:
    from chat_processor import contract as processor_contract
    from chat_processor import lake

    from chat_analytics_ops import contract as cli_contract

    assert Path(cli_contract.__file__).read_text(encoding="utf-8").endswith((REPO / "schema" / "contract.py").read_text(encoding="utf-8"))
    assert lake.normalize_question is processor_contract.normalize_question


def test_the_worker_reads_the_match_types_from_its_generated_file() -> None:
    generated = (REPO / "edge" / "packages" / "worker-logger" / "src" / "contract.generated.ts").read_text(encoding="utf-8")
    assert 'export const MATCH_TYPES = ["full", "partial", "none"] as const;' in generated
