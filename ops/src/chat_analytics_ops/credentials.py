"""The edge Worker's four secrets: read from Secrets Manager, shown masked, pushed with wrangler.

The stack keeps the producer's access key only in the secret named by the ``ProducerSecretName``
output (never in an output); this module is the one way an operator moves it to the Worker. Values
travel to ``wrangler secret put`` on stdin, so they never appear in a process list or shell
history, and nothing here prints them unless ``--show`` is given.
"""

from __future__ import annotations

import json
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
    """One ``wrangler secret put``: the argv (never holding the value) and where it runs."""

    name: str
    argv: list[str]
    cwd: Path

    def display(self, value: str) -> str:
        return f"(cd {shlex.quote(str(self.cwd))} && {shlex.join(self.argv)})  # stdin: {mask(self.name, value)}"


def wrangler_commands(config: Path, env: str | None) -> list[WranglerCommand]:
    """The commands for the four names. They run in the config's folder so npx finds the Worker's own
    wrangler; ``--yes`` keeps npx from prompting, which would swallow the value on stdin."""
    folder = config.parent if str(config.parent) else Path(".")
    base = ["npx", "--yes", "wrangler", "secret", "put"]
    suffix = ["--config", config.name] + (["--env", env] if env else [])
    return [WranglerCommand(name, [*base, name, *suffix], folder) for name in SECRET_KEYS]


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
    """Run (or with ``dry_run`` print) ``wrangler secret put`` for each value; returns how many were put."""
    commands = wrangler_commands(config, env)
    if dry_run:
        for command in commands:
            echo(command.display(values[command.name]))
        return 0
    if not config.is_file():
        raise OpsError(f"wrangler config not found: {config} (pass --config)")
    if shutil.which("npx") is None:
        raise OpsError("npx not found on PATH: install Node.js (wrangler runs through npx)")
    for count, command in enumerate(commands):
        echo(f"wrangler secret put {command.name} ...")
        try:
            completed = runner(
                command.argv,
                input=values[command.name],
                cwd=command.cwd,
                capture_output=True,
                text=True,
                timeout=WRANGLER_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OpsError(f"wrangler secret put {command.name} timed out after {WRANGLER_TIMEOUT_S} s ({count} of 4 put)") from None
        except OSError as error:
            raise OpsError(f"cannot run npx: {error.strerror or error}") from None
        if completed.returncode != 0:
            detail = _last_line(completed.stderr) or _last_line(completed.stdout) or "no output"
            raise OpsError(f"wrangler secret put {command.name} failed (exit {completed.returncode}, {count} of 4 put): {detail}")
    return len(commands)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
