"""Write ``schema/analytics-event.schema.json`` from the processor's models, and
``schema/lake-columns.json`` and ``schema/rejected-columns.json`` from its lake rows.

Run ``.venv/bin/python schema/generate.py`` after changing ``lambda_src/chat_processor/models.py`` or
``lake.py``; ``--check`` exits 1 when a checked-in file differs (a test does the same).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCHEMA_FILE = REPO / "schema" / "analytics-event.schema.json"
# The operations CLI ships a copy as package data, so an installed `chat-analytics` judges bodies by it.
OPS_COPY = REPO / "ops" / "src" / "chat_analytics_ops" / "analytics-event.schema.json"
TARGETS = (SCHEMA_FILE, OPS_COPY)
# The lake's columns: the CDK app's Glue table reads this file, the CLI ships a copy (its DuckDB view).
LAKE_COLUMNS_FILE = REPO / "schema" / "lake-columns.json"
LAKE_COLUMNS_TARGETS = (LAKE_COLUMNS_FILE, REPO / "ops" / "src" / "chat_analytics_ops" / "lake-columns.json")
# The rejected table's columns (Glue table ``rejected``): the same two places read them.
REJECTED_COLUMNS_FILE = REPO / "schema" / "rejected-columns.json"
REJECTED_COLUMNS_TARGETS = (REJECTED_COLUMNS_FILE, REPO / "ops" / "src" / "chat_analytics_ops" / "rejected-columns.json")
LAMBDA_DIR = REPO / "lambda_src"


def _processor_module(name: str):
    if str(LAMBDA_DIR) not in sys.path:
        sys.path.insert(0, str(LAMBDA_DIR))
    return importlib.import_module(f"chat_processor.{name}")


def render() -> str:
    """The schema file's exact text: stable key order and a trailing newline, so diffs stay readable."""
    return json.dumps(_processor_module("models").json_schema(), indent=2, ensure_ascii=False) + "\n"


def render_lake_columns() -> str:
    """``lake-columns.json``: the Glue table's columns, in order, as the processor's ``LAKE_COLUMNS`` has them."""
    document = {
        "description": (
            "The event lake's columns (Glue table `requests`, Parquet under requests/dt=YYYY-MM-DD/), in order. "
            "Generated from lambda_src/chat_processor/lake.py LAKE_COLUMNS by schema/generate.py; do not edit by hand."
        ),
        "columns": [{"name": name, "type": kind} for name, kind in _processor_module("lake").LAKE_COLUMNS],
    }
    return json.dumps(document, indent=2) + "\n"


def render_rejected_columns() -> str:
    """``rejected-columns.json``: the Glue table ``rejected``'s columns, in order, as the processor's ``REJECTED_COLUMNS``."""
    document = {
        "description": (
            "The event lake's rejected events (Glue table `rejected`, Parquet under rejected/dt=YYYY-MM-DD/), in order. "
            "Generated from lambda_src/chat_processor/lake.py REJECTED_COLUMNS by schema/generate.py; do not edit by hand."
        ),
        "columns": [{"name": name, "type": kind} for name, kind in _processor_module("lake").REJECTED_COLUMNS],
    }
    return json.dumps(document, indent=2) + "\n"


def main(argv: list[str]) -> int:
    outputs = [(path, render()) for path in TARGETS] + [(path, render_lake_columns()) for path in LAKE_COLUMNS_TARGETS]
    outputs += [(path, render_rejected_columns()) for path in REJECTED_COLUMNS_TARGETS]
    if "--check" in argv:
        stale = [path for path, text in outputs if not path.exists() or path.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"{path.relative_to(REPO)} is out of date: run schema/generate.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
