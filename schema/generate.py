"""Write ``schema/analytics-event.schema.json`` from the processor's models.

Run ``.venv/bin/python schema/generate.py`` after changing ``lambda_src/processor/models.py``;
``--check`` exits 1 when the checked-in file differs (a test does the same).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schema" / "analytics-event.schema.json"
# The operations CLI ships a copy as package data, so an installed `chat-analytics` judges bodies by it.
OPS_COPY = REPO / "ops" / "src" / "chat_analytics_ops" / "analytics-event.schema.json"
TARGETS = (SCHEMA_FILE, OPS_COPY)
PROCESSOR_DIR = REPO / "lambda_src" / "processor"


def render() -> str:
    """The schema file's exact text: stable key order and a trailing newline, so diffs stay readable."""
    if str(PROCESSOR_DIR) not in sys.path:
        sys.path.insert(0, str(PROCESSOR_DIR))
    import models  # the Lambda asset's top-level module, as Lambda imports it

    return json.dumps(models.json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        stale = [path for path in TARGETS if not path.exists() or path.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"{path.relative_to(REPO)} is out of date: run schema/generate.py", file=sys.stderr)
        return 1 if stale else 0
    for path in TARGETS:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
