"""``make local``: the local stack, the processor and the chatbot, running until Ctrl-C.

Stable ports (moto 4566, the chatbot 8787; ``make local PORT=... CHATBOT_PORT=...`` or ``--port`` /
``--chatbot-port`` to change them), and the Worker's environment written to ``edge/.dev.vars``, so
``cd edge && npm run dev`` sends to this stack at once, after every restart.

The first paths a user walks end cleanly, whatever happens:

* a port another program holds is found before anything is deployed: one line naming the port and how
  to choose another, exit status 2 (``--check-ports`` does only that, so ``make local`` can say it
  before it synthesizes);
* Ctrl-C or SIGTERM stops the command within a few seconds in every phase (deploying, serving): the
  first signal interrupts whatever runs and cleans up; if the clean-up itself hangs, a watchdog stops
  the chatbot and the process after ``STOP_GRACE_S``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from local.emulator.ports import next_free_port, port_is_free

if TYPE_CHECKING:  # moto and boto3 take seconds to import: the port check must answer before them
    from local.emulator.stack import StackInfo

REPO = Path(__file__).resolve().parent.parent

DEFAULT_PORT = 4566  # the port local AWS emulators customarily use
DEFAULT_CHATBOT_PORT = 8787  # wrangler dev's, for the Python chatbot standing in for the Worker
DEV_VARS = REPO / "edge" / ".dev.vars"
STOP_GRACE_S = 3.0  # after a stop signal, the clean-up's budget before the watchdog ends the process
EXIT_PORT_BUSY = 2
PORT_ROLES = {"port": ("the local AWS endpoint", "PORT", "--port"), "chatbot_port": ("the chatbot", "CHATBOT_PORT", "--chatbot-port")}


class Stopped(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM: unwinds whatever phase runs, through its clean-up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def port_problem(port: int, chatbot_port: int) -> str | None:
    """One line naming the first port that cannot be used and how to choose another, or None."""
    ports = {"port": port, "chatbot_port": chatbot_port}
    for key, value in ports.items():
        role, make_var, flag = PORT_ROLES[key]
        if not 1 <= value <= 65535:
            return f"error: {make_var}={value} is not a port number (1 to 65535) for {role}"
    if port == chatbot_port:
        return f"error: PORT and CHATBOT_PORT are both {port}; choose two ports: make local PORT={port} CHATBOT_PORT={next_free_port(port)}"
    for key, value in ports.items():
        if port_is_free(value):
            continue
        role, make_var, flag = PORT_ROLES[key]
        suggestion = next_free_port(value, avoid=ports.values()) or value + 1
        other = {k: v for k, v in ports.items() if k != key}
        [(other_key, other_value)] = other.items()
        assignment = {key: suggestion, other_key: other_value}
        return (
            f"error: port {value} ({role}) is in use by another program; choose another:"
            f" make local PORT={assignment['port']} CHATBOT_PORT={assignment['chatbot_port']}"
            f" (or python -m local.serve {flag} {suggestion})"
        )
    return None


def worker_dev_vars(info: StackInfo) -> dict[str, str]:
    """What `wrangler dev` needs to send to this stack: the four secrets, and the one loopback endpoint the
    Worker may send to (it refuses every host that is not SQS's otherwise)."""
    return {**info.worker_env(), "ANALYTICS_LOCAL_ENDPOINT": info.endpoint_url}


def write_dev_vars(path: Path, values: dict[str, str]) -> None:
    """``KEY="value"`` lines, as wrangler reads ``.dev.vars`` (the file is git-ignored: local keys only)."""
    path.write_text("".join(f'{key}="{value}"\n' for key, value in values.items()), encoding="utf-8")


def shell_environment(info: StackInfo) -> dict[str, str]:
    """The environment a shell needs for ``chat-analytics`` against this stack: the local administrator's
    key (local only, created at each start) and the region. ``--endpoint-url`` names the stack itself."""
    return {
        "AWS_ACCESS_KEY_ID": info.admin.access_key_id,
        "AWS_SECRET_ACCESS_KEY": info.admin.secret_access_key,
        "AWS_REGION": info.region,
    }


def usage_lines(info: StackInfo, chatbot_url: str, log_path: Path, dev_vars: Path, stage: str) -> list[str]:
    """What ``make local`` prints once the stack is up: where things are, then lines to paste."""
    cli = f"chat-analytics --stage {stage} --endpoint-url {info.endpoint_url}"
    exports = [f"export {key}={shlex.quote(value)}" for key, value in shell_environment(info).items()]
    return [
        f"local stack {info.stack_name} (moto, IAM enforced) on {info.endpoint_url}",
        *(f"  {key}: {value}" for key, value in info.outputs.items()),
        f"chatbot: {chatbot_url}/ask?q=Does+the+candidate+know+Python",
        f"processor logs and EMF metrics: {_shown(log_path)}",
        f"Worker environment written to {_shown(dev_vars)} (`cd edge && npm run dev` sends here)",
        "",
        "In another terminal, from this folder, paste:",
        "  source .venv/bin/activate",
        *(f"  {line}" for line in exports),
        f"  {cli} check",
        f"  {cli} report",
        f"  {cli} report --engine duckdb",
        "",
        "Ctrl-C to stop.",
    ]


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(REPO))
    return str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stage", choices=("dev", "prod"), default="dev", help="the stage whose template runs (default dev)")
    parser.add_argument("--template", type=Path, help="a synthesized template (default: cdk.out/ChatAnalytics-<stage>.template.json)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the local AWS endpoint's port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--chatbot-port", type=int, default=DEFAULT_CHATBOT_PORT, help=f"the chatbot's port (default {DEFAULT_CHATBOT_PORT})"
    )
    parser.add_argument("--dev-vars", type=Path, default=DEV_VARS, help="where to write the Worker's environment (default edge/.dev.vars)")
    parser.add_argument("--check-ports", action="store_true", help="only check that both ports are free (exit 2 if not)")
    return parser.parse_args(argv)


class _Shutdown:
    """The stop signals' handler: the first raises :class:`Stopped` in the main thread and arms a watchdog
    that ends the process (after stopping the chatbot) if the clean-up overruns; a second one exits at once."""

    def __init__(self, grace_s: float = STOP_GRACE_S) -> None:
        self.grace_s = grace_s
        self.children: list[subprocess.Popen] = []
        self.signum: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self._exit_now(signum)
        self.signum = signum
        watchdog = threading.Timer(self.grace_s, self._exit_now, args=(signum,))
        watchdog.daemon = True
        watchdog.start()
        raise Stopped(signum)

    def _exit_now(self, signum: int) -> None:
        for child in self.children:
            with contextlib.suppress(OSError):
                child.kill()
        with contextlib.suppress(Exception):
            sys.stderr.write("stopped (clean-up cut short)\n")
            sys.stderr.flush()
        os._exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    shutdown = _Shutdown()
    shutdown.install()
    try:
        return _run(parse_args(argv), shutdown)
    except Stopped as stopped:
        print(f"stopped by {signal.Signals(stopped.signum).name}", file=sys.stderr, flush=True)
        if __name__ == "__main__":
            # Everything this process started is stopped; skip the interpreter's finalization, which waits
            # for every thread a library left behind (moto's, botocore's pools) and can outlast the grace.
            sys.stdout.flush()
            os._exit(128 + stopped.signum)
        return 128 + stopped.signum


def _run(args: argparse.Namespace, shutdown: _Shutdown) -> int:
    problem = port_problem(args.port, args.chatbot_port)
    if problem:
        print(problem, file=sys.stderr, flush=True)
        return EXIT_PORT_BUSY
    if args.check_ports:
        return 0
    template = args.template or REPO / "cdk.out" / f"ChatAnalytics-{args.stage}.template.json"
    if not template.exists():
        print(f"error: {template} not found; run `make synth STAGE={args.stage}` first", file=sys.stderr)
        return 2
    # Imported here: moto and boto3 take seconds to import, and the port check must answer at once.
    from local.demo.run import start_chatbot, stop_chatbot
    from local.emulator.pipeline import LocalPipeline

    log_path = REPO / "cdk.out" / "local-processor.log"
    started = time.monotonic()
    print(f"deploying {template.name} into moto on 127.0.0.1:{args.port} ...", flush=True)
    pipeline = LocalPipeline(template=template, processor_log=log_path, port=args.port)
    chatbot: subprocess.Popen | None = None
    stopped = False
    try:
        pipeline.start()
        info = pipeline.info
        # Registered as soon as it is spawned: a signal while it starts must not leave it running.
        chatbot, chatbot_url = start_chatbot(info.worker_env(), analytics=True, port=args.chatbot_port, spawned=shutdown.children.append)
        write_dev_vars(args.dev_vars, worker_dev_vars(info))
        lines = usage_lines(info, chatbot_url, log_path, args.dev_vars, args.stage)
        lines.insert(1, f"  (deployed in {time.monotonic() - started:.1f} s)")
        print("\n".join(lines), flush=True)
        while True:
            time.sleep(3600)
    except Stopped:
        stopped = True
        raise
    finally:
        for child in shutdown.children:
            if child is chatbot:
                stats = stop_chatbot(child, timeout=1.5)
                print(f"\nstopping; producer counters: {stats}", flush=True)
            else:  # spawned, not yet started: nothing of it to keep
                child.kill()
                child.wait()
        pipeline.close()
        if stopped:
            print("stopped: the local stack is gone (its state lived in this process)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
