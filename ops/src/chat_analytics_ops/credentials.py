"""The edge Worker's four secrets: read from Secrets Manager, shown masked, pushed with wrangler.

The stack keeps the producer's access key only in the secret named by the ``ProducerSecretName``
output (never in an output); this module is the one way an operator moves it to the Worker. The four values travel to
one ``wrangler secret bulk`` as a JSON object on stdin (one upload, one new Worker version), so they
never appear in a process list or shell history, and nothing here prints them unless ``--show`` is
given. wrangler is the project's own (``edge/node_modules/.bin``) or the one on PATH, never one
``npx`` would download.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from chat_analytics_ops.errors import OpsError, error_code

SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SQS_URL", "AWS_REGION")
# The queue URL and region are not secret (the URL is a stack output too): masking them would only
# hide which stack and region the Worker is about to talk to.
MASKED_KEYS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})
DEFAULT_WRANGLER_CONFIG = Path("edge/wrangler.jsonc")
WRANGLER_TIMEOUT_S = 120
WRANGLER_MISSING = "wrangler not found: run `make install` (npm ci in edge/ pins wrangler in edge/node_modules) or put wrangler on PATH"


def read_worker_env(secrets: Any, secret_name: str) -> dict[str, str]:
    """The four values, in contract order; a missing secret or key is one clear error."""
    try:
        response = secrets.get_secret_value(SecretId=secret_name)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise OpsError(f"missing secret: {secret_name} does not exist (is the stack deployed in this region?)") from None
        if error_code(error) in {"InvalidRequestException"}:
            raise OpsError(f"secret {secret_name} cannot be read: {error.response.get('Error', {}).get('Message', '')}") from None
        raise
    raw = response.get("SecretString")
    if not raw:
        raise OpsError(f"secret {secret_name} has no string value")
    try:
        values = json.loads(raw)
    except ValueError:
        raise OpsError(f"secret {secret_name} is not a JSON object") from None
    if not isinstance(values, dict):
        raise OpsError(f"secret {secret_name} is not a JSON object")
    missing = [key for key in SECRET_KEYS if not isinstance(values.get(key), str) or not values.get(key)]
    if missing:
        raise OpsError(f"secret {secret_name} lacks {', '.join(missing)}")
    return {key: values[key] for key in SECRET_KEYS}


def mask(name: str, value: str) -> str:
    """What may be shown of a value: an access key id keeps AWS's usual first and last four."""
    if name not in MASKED_KEYS:
        return value
    if name == "AWS_ACCESS_KEY_ID" and len(value) >= 12:
        return value[:4] + "*" * (len(value) - 8) + value[-4:]
    return "*" * 8 + f" ({len(value)} characters)"


def render_env(values: dict[str, str], *, show: bool) -> str:
    """``NAME=value`` lines (the ``.dev.vars`` format wrangler reads), masked unless ``show``."""
    return "\n".join(f"{name}={value if show else mask(name, value)}" for name, value in values.items())


@dataclass(frozen=True)
class WranglerCommand:
    """The one ``wrangler secret bulk``: the argv (never holding a value), where it runs, and what it reads on stdin."""

    argv: list[str]
    cwd: Path

    def display(self, values: dict[str, str]) -> str:
        masked = json.dumps({name: mask(name, value) for name, value in values.items()})
        return f"(cd {shlex.quote(str(self.cwd))} && {shlex.join(self.argv)})  # stdin: {masked}"


def find_wrangler(config: Path) -> str | None:
    """The project's own wrangler: ``node_modules/.bin/wrangler`` in the config's folder or a folder above
    it (where ``npm install`` puts it, e.g. ``edge/node_modules``), else ``wrangler`` on PATH; None when
    neither exists. Never ``npx --yes``, which would download a wrangler nobody pinned."""
    name = "wrangler.cmd" if os.name == "nt" else "wrangler"
    folder = (config.parent if str(config.parent) else Path(".")).resolve()
    for directory in (folder, *folder.parents):
        candidate = directory / "node_modules" / ".bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("wrangler")


def wrangler_command(config: Path, env: str | None, wrangler: str) -> WranglerCommand:
    """``wrangler secret bulk`` reading the four values as one JSON object on stdin: one upload, one new
    Worker version (four ``secret put`` would make four). It runs in the config's folder."""
    folder = config.parent if str(config.parent) else Path(".")
    argv = [wrangler, "secret", "bulk", "--config", config.name] + (["--env", env] if env else [])
    return WranglerCommand(argv, folder)


Runner = Callable[..., subprocess.CompletedProcess]


def push_to_wrangler(
    values: dict[str, str],
    *,
    config: Path,
    env: str | None,
    dry_run: bool,
    echo: Callable[[str], None],
    runner: Runner = subprocess.run,
) -> int:
    """Run (or with ``dry_run`` print) one ``wrangler secret bulk`` with the values on stdin; returns how many were put."""
    wrangler = find_wrangler(config)
    if dry_run:
        echo(wrangler_command(config, env, wrangler or "wrangler").display(values))
        if wrangler is None:
            echo(f"note: {WRANGLER_MISSING}")
        return 0
    if not config.is_file():
        raise OpsError(f"wrangler config not found: {config} (pass --config)")
    if wrangler is None:
        raise OpsError(WRANGLER_MISSING)
    command = wrangler_command(config, env, wrangler)
    echo(f"wrangler secret bulk ({', '.join(values)}) ...")
    try:
        completed = runner(
            command.argv,
            input=json.dumps(values),
            cwd=command.cwd,
            capture_output=True,
            text=True,
            timeout=WRANGLER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OpsError(
            f"wrangler secret bulk timed out after {WRANGLER_TIMEOUT_S} s: check with `wrangler secret list` whether the secrets were put"
        ) from None
    except OSError as error:
        raise OpsError(f"cannot run {wrangler}: {error.strerror or error}") from None
    if completed.returncode != 0:
        detail = _last_line(completed.stderr) or _last_line(completed.stdout) or "no output"
        raise OpsError(f"wrangler secret bulk failed (exit {completed.returncode}, no secret put): {detail}")
    return len(values)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
