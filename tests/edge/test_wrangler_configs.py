"""The CV Worker's two wrangler configs: ``edge/wrangler.jsonc`` (deployed) and ``edge/wrangler.local.jsonc``
(``npm run dev``) run the same Worker, so they must agree on what the Worker is (its main module, runtime
date and flags) and on the batcher (the Durable Object binding and its migration), and wrangler itself must
accept each and bind the batcher (``wrangler deploy --dry-run``: bundles and checks, uploads nothing).

Durable Object migrations: https://developers.cloudflare.com/durable-objects/reference/durable-objects-migrations/
(a class is created by a migration, ``new_sqlite_classes`` for a SQLite-backed one, the kind the Workers Free
plan allows too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.edge.conftest import BIN, EDGE, run

WRANGLER = BIN / "wrangler"
CONFIGS = ("wrangler.jsonc", "wrangler.local.jsonc")
SHARED = ("main", "compatibility_date", "compatibility_flags", "durable_objects", "migrations")
BATCHER = {"name": "ANALYTICS_BATCHER", "class_name": "AnalyticsBatcher"}


def read_jsonc(path: Path) -> dict[str, Any]:
    """The configs' comments are whole lines (``//``): dropped, the rest is JSON with trailing commas removed."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("//"))
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", text))


def test_both_configs_run_the_same_worker_with_the_same_batcher() -> None:
    deployed, local = (read_jsonc(EDGE / name) for name in CONFIGS)
    for key in SHARED:
        assert deployed.get(key) == local.get(key), f"{key} differs between {CONFIGS[0]} and {CONFIGS[1]}"
    assert deployed["durable_objects"] == {"bindings": [BATCHER]}
    assert deployed["migrations"] == [{"tag": "v1", "new_sqlite_classes": [BATCHER["class_name"]]}]
    # The class a binding names must be exported by the Worker's main module.
    main = (EDGE / deployed["main"]).read_text()
    assert re.search(r"export \{ AnalyticsBatcher \} from \"@chat-analytics/worker-logger\"", main)


@pytest.mark.parametrize("config", CONFIGS)
def test_wrangler_accepts_the_config_and_binds_the_batcher(config: str, tmp_path: Path) -> None:
    assert WRANGLER.exists(), "edge/node_modules is not installed: run make install"
    run(["npm", "run", "--silent", "build"], EDGE)
    result = run([str(WRANGLER), "deploy", "--dry-run", "--config", config, "--outdir", str(tmp_path)], EDGE)
    assert re.search(r"env\.ANALYTICS_BATCHER \(AnalyticsBatcher\)\s+Durable Object", result.stdout), result.stdout
    assert re.search(r"export\s*\{[^}]*\bAnalyticsBatcher\b", (tmp_path / "index.js").read_text()), "the bundle does not export the class"
