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
# The shared names (schema/contract.py, the authority): byte copies for the two readers that cannot import it (the
# Lambda asset ships lambda_src/ alone; the CLI is an installed wheel), and the Worker's constants.
CONTRACT_FILE = REPO / "schema" / "contract.py"
CONTRACT_COPIES = (LAMBDA_DIR / "chat_processor" / "contract.py", REPO / "ops" / "src" / "chat_analytics_ops" / "contract.py")
WORKER_CONTRACT = REPO / "edge" / "packages" / "worker-logger" / "src" / "contract.generated.ts"
if str(LAMBDA_DIR) not in sys.path:  # on Lambda's path as on pytest's (pyproject's pythonpath); this script runs from schema/
    sys.path.append(str(LAMBDA_DIR))

from chat_processor import lake, models  # noqa: E402


def render() -> str:
    """The schema file's exact text: stable key order and a trailing newline, so diffs stay readable."""
    return json.dumps(models.json_schema(), indent=2, ensure_ascii=False) + "\n"


def render_lake_columns() -> str:
    """``lake-columns.json``: the Glue table's columns, in order, as the processor's ``LAKE_COLUMNS`` has them."""
    document = {
        "description": (
            "The event lake's columns (Glue table `requests`, Parquet under requests/dt=YYYY-MM-DD/), in order. "
            "Generated from lambda_src/chat_processor/lake.py LAKE_COLUMNS by schema/generate.py; do not edit by hand."
        ),
        "columns": [{"name": name, "type": kind} for name, kind in lake.LAKE_COLUMNS],
    }
    return json.dumps(document, indent=2) + "\n"


def render_rejected_columns() -> str:
    """``rejected-columns.json``: the Glue table ``rejected``'s columns, in order, as the processor's ``REJECTED_COLUMNS``."""
    document = {
        "description": (
            "The event lake's rejected events (Glue table `rejected`, Parquet under rejected/dt=YYYY-MM-DD/), in order. "
            "Generated from lambda_src/chat_processor/lake.py REJECTED_COLUMNS by schema/generate.py; do not edit by hand."
        ),
        "columns": [{"name": name, "type": kind} for name, kind in lake.REJECTED_COLUMNS],
    }
    return json.dumps(document, indent=2) + "\n"


def render_contract_copy() -> str:
    """schema/contract.py as it is, under a first line that says where it comes from."""
    return "# Generated from schema/contract.py by schema/generate.py; do not edit by hand.\n" + CONTRACT_FILE.read_text(encoding="utf-8")


def render_worker_contract() -> str:
    """The names the Worker's logger needs (the match types, the canary source), as TypeScript constants."""
    contract = _contract_module()
    types = ", ".join(json.dumps(name) for name in contract.MATCH_TYPES)
    return (
        "// Generated from schema/contract.py by schema/generate.py; do not edit by hand.\n"
        f"export const MATCH_TYPES = [{types}] as const;\n"
        "export type MatchType = (typeof MATCH_TYPES)[number];\n"
        f"export const CANARY_SOURCE = {json.dumps(contract.CANARY_SOURCE)};\n"
    )


def _contract_module():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("schema.contract")


def main(argv: list[str]) -> int:
    outputs = [(path, render()) for path in TARGETS] + [(path, render_lake_columns()) for path in LAKE_COLUMNS_TARGETS]
    outputs += [(path, render_rejected_columns()) for path in REJECTED_COLUMNS_TARGETS]
    outputs += [(path, render_contract_copy()) for path in CONTRACT_COPIES] + [(WORKER_CONTRACT, render_worker_contract())]
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
