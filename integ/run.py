"""Runs the integration test app (``integ/integ_pipeline.py``) the way integ-runner does, with the pinned CDK CLI.

    python -m integ.run check    # synthesize, compare with the committed snapshot (no AWS call)
    python -m integ.run update   # synthesize, rewrite the snapshot (no AWS call)
    python -m integ.run deploy   # deploy, run the assertions, destroy; rewrite the snapshot if they passed

Why not ``integ-runner`` itself: its newest release (2.197.10) bundles a CDK toolkit that reads cloud
assemblies up to schema 53, and aws-cdk-lib 2.275 writes schema 55 ("Cloud assembly schema version
mismatch: Maximum schema version supported is 53.x.x, but found 55.0.0"), so it fails before it compares
or deploys anything. This module does the same three things with the CDK CLI the project pins
(``node_modules/.bin/cdk``), and keeps integ-runner's conventions: the snapshot is the synthesized
assembly without its asset folders, in ``integ/integ_pipeline.py.snapshot/``; asset hashes are not
compared (integ-runner's default, ``diffAssets: false``: a change to the processor's code is for the
unit tests, a change to the infrastructure is for this one); a deploy that passes is what refreshes it.

The assertions run inside the deploy: they are custom resources of the assertion stack, and one that
fails (or times out) fails that stack's creation, so ``cdk deploy`` fails with the assertion's message.
Whatever happened, ``deploy`` destroys both stacks afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "integ" / "integ_pipeline.py"
SNAPSHOT = REPO / "integ" / "integ_pipeline.py.snapshot"
CDK = REPO / "node_modules" / ".bin" / "cdk"
SYNTH_TIMEOUT_S = 300
# An asset's hash as it appears in templates and manifests (S3 keys "<hash>.zip", asset ids).
ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
# integ-tests' assertion resources carry a "salt" (the synth time) so that every deploy runs them again.
VOLATILE_KEYS = frozenset({"salt"})
MAX_SHOWN = 25


class IntegError(Exception):
    """A problem a person must fix (a missing tool, a failed synth); the message says which."""


def synth(outdir: Path, *, python: str = sys.executable) -> Path:
    """Runs the integ app into ``outdir`` (a cloud assembly) and returns it."""
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    env.pop("CDK_CONTEXT_JSON", None)  # the app reads cdk.json's context itself
    done = subprocess.run([python, str(APP)], cwd=APP.parent, env=env, capture_output=True, text=True, timeout=SYNTH_TIMEOUT_S, check=False)
    if done.returncode != 0 or not (outdir / "manifest.json").is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise IntegError(f"synthesizing {APP.relative_to(REPO)} failed (exit {done.returncode}): {' / '.join(tail)}")
    return outdir


def normalized(value: Any) -> Any:
    """``value`` with asset hashes replaced by one placeholder and volatile keys left out."""
    if isinstance(value, dict):
        return {key: normalized(item) for key, item in value.items() if key not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, str):
        return ASSET_HASH.sub("<asset hash>", value)
    return value


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected``, one line per differing path."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines: list[str] = []
        for key in sorted(expected.keys() | actual.keys()):
            where = f"{path}.{key}" if path else key
            if key not in actual:
                lines.append(f"[-] {where}")
            elif key not in expected:
                lines.append(f"[+] {where}")
            else:
                lines.extend(differences(expected[key], actual[key], where))
        return lines
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            line
            for index, (old, new) in enumerate(zip(expected, actual, strict=True))
            for line in differences(old, new, f"{path}[{index}]")
        ]
    if expected != actual:
        return [f"[~] {path}: {_short(expected)} -> {_short(actual)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:79] + "…"


def compared_files(assembly: Path) -> set[str]:
    """The files of an assembly the check compares: every stack's template and the test's manifest."""
    return {path.name for path in assembly.glob("*.template.json")} | ({"integ.json"} if (assembly / "integ.json").is_file() else set())


def compare(snapshot: Path, actual: Path) -> list[str]:
    """Every difference between the snapshot and a fresh synth (asset hashes and salts aside); [] when equal."""
    if not snapshot.is_dir():
        return [f"no snapshot at {snapshot}: run `python -m integ.run deploy` (or `update`, without AWS)"]
    lines: list[str] = []
    expected_files, actual_files = compared_files(snapshot), compared_files(actual)
    lines += [f"[-] {name} (in the snapshot, not synthesized)" for name in sorted(expected_files - actual_files)]
    lines += [f"[+] {name} (synthesized, not in the snapshot)" for name in sorted(actual_files - expected_files)]
    for name in sorted(expected_files & actual_files):
        old = normalized(json.loads((snapshot / name).read_text(encoding="utf-8")))
        new = normalized(json.loads((actual / name).read_text(encoding="utf-8")))
        lines += [f"{name}: {line}" for line in differences(old, new)]
    return lines


def write_snapshot(assembly: Path, snapshot: Path = SNAPSHOT) -> None:
    """The assembly without its asset folders (integ-runner's snapshot layout)."""
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(assembly, snapshot, ignore=shutil.ignore_patterns("asset.*", ".cache"))


def cdk(*args: str) -> int:
    if not os.access(CDK, os.X_OK):
        raise IntegError(f"{CDK.relative_to(REPO)} is missing: run `make install`")
    return subprocess.run([str(CDK), *args, "--no-notices"], cwd=REPO, check=False).returncode


def check() -> int:
    with tempfile.TemporaryDirectory(prefix="integ-synth-") as outdir:
        lines = compare(SNAPSHOT, synth(Path(outdir)))
    if not lines:
        print(f"integ snapshot: no change ({SNAPSHOT.relative_to(REPO)})")
        return 0
    print(f"integ snapshot: {len(lines)} difference(s) from {SNAPSHOT.relative_to(REPO)}:", file=sys.stderr)
    for line in lines[:MAX_SHOWN]:
        print(f"  {line}", file=sys.stderr)
    if len(lines) > MAX_SHOWN:
        print(f"  ... and {len(lines) - MAX_SHOWN} more", file=sys.stderr)
    print("Deploy the change with `make integ` (it refreshes the snapshot when the assertions pass).", file=sys.stderr)
    return 1


def update() -> int:
    with tempfile.TemporaryDirectory(prefix="integ-synth-") as outdir:
        write_snapshot(synth(Path(outdir)))
    print(f"wrote {SNAPSHOT.relative_to(REPO)} (synthesized, not deployed)")
    return 0


def deploy() -> int:
    with tempfile.TemporaryDirectory(prefix="integ-synth-") as outdir:
        assembly = synth(Path(outdir))
        passed = False
        try:
            passed = cdk("deploy", "--app", str(assembly), "--all", "--require-approval", "never") == 0
        finally:
            destroyed = cdk("destroy", "--app", str(assembly), "--all", "--force") == 0
        if passed:
            write_snapshot(assembly)
    print(f"integ: assertions {'passed' if passed else 'FAILED'}; stacks {'destroyed' if destroyed else 'NOT destroyed (see above)'}")
    if passed:
        print(f"wrote {SNAPSHOT.relative_to(REPO)}: commit it")
    return 0 if passed and destroyed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integ.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("check", "update", "deploy"))
    args = parser.parse_args(argv)
    try:
        return {"check": check, "update": update, "deploy": deploy}[args.command]()
    except IntegError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except subprocess.TimeoutExpired as error:
        print(f"error: {' '.join(map(str, error.cmd))} took longer than {error.timeout:.0f} s", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
