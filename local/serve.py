"""``make local``: the local stack, the processor and the chatbot, running until Ctrl-C.

Stable ports (moto 4566, the chatbot 8787; ``--port`` / ``--chatbot-port`` to change them), and the
Worker's environment written to ``edge/.dev.vars``, so ``cd edge && npx wrangler dev --env local`` sends
to this stack at once, after every restart.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from local.demo import start_chatbot, stop_chatbot
from local.pipeline import LocalPipeline
from local.stack import REPO, StackInfo, template_path

DEFAULT_PORT = 4566  # the port local AWS emulators customarily use
DEFAULT_CHATBOT_PORT = 8787  # wrangler dev's, for the Python chatbot standing in for the Worker
DEV_VARS = REPO / "edge" / ".dev.vars"


def worker_dev_vars(info: StackInfo) -> dict[str, str]:
    """What `wrangler dev` needs to send to this stack: the four secrets, and the one loopback endpoint the
    Worker may send to (it refuses every host that is not SQS's otherwise)."""
    return {**info.worker_env(), "ANALYTICS_LOCAL_ENDPOINT": info.endpoint_url}


def write_dev_vars(path: Path, values: dict[str, str]) -> None:
    """``KEY="value"`` lines, as wrangler reads ``.dev.vars`` (the file is git-ignored: local keys only)."""
    path.write_text("".join(f'{key}="{value}"\n' for key, value in values.items()), encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("dev", "prod"), default="dev", help="the stage whose template runs (default dev)")
    parser.add_argument("--template", type=Path, help="a synthesized template (default: cdk.out/ChatAnalytics-<stage>.template.json)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the local AWS endpoint's port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--chatbot-port", type=int, default=DEFAULT_CHATBOT_PORT, help=f"the chatbot's port (default {DEFAULT_CHATBOT_PORT})"
    )
    parser.add_argument("--dev-vars", type=Path, default=DEV_VARS, help="where to write the Worker's environment (default edge/.dev.vars)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    template = args.template or template_path(args.stage)
    if not template.exists():
        print(f"error: {template} not found; run `make synth STAGE={args.stage}` first", file=sys.stderr)
        return 2
    console = sys.stdout
    log_path = REPO / "cdk.out" / "local-processor.log"
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        pipeline = LocalPipeline(template=template, processor_log=log_path, port=args.port)
    except OSError as error:
        print(f"error: cannot use port {args.port}: {error}", file=sys.stderr)
        return 2
    with pipeline:
        info = pipeline.info
        assert info is not None  # set by start()
        chatbot, chatbot_url = start_chatbot(info.worker_env(), analytics=True, port=args.chatbot_port)
        try:
            env = worker_dev_vars(info)
            write_dev_vars(args.dev_vars, env)
            lines = [
                f"local stack {info.stack_name} (moto, IAM enforced) on {info.endpoint_url}",
                *(f"  {key}: {value}" for key, value in info.outputs.items()),
                f"chatbot: {chatbot_url}/ask?q=Does+the+candidate+know+Python",
                f"processor logs and EMF metrics: {log_path.relative_to(REPO)}",
                "",
                f"Worker environment written to {args.dev_vars} (`cd edge && npx wrangler dev --env local` sends here):",
                *(f'  {key}="{value}"' for key, value in env.items()),
                "",
                "ops tool: chat-analytics --endpoint-url " + info.endpoint_url + " report",
                "  and from the event lake (the same SQL as Athena, on DuckDB): ... report --engine duckdb",
                "  (local admin credentials: AWS_ACCESS_KEY_ID="
                + info.admin.access_key_id
                + " AWS_SECRET_ACCESS_KEY="
                + info.admin.secret_access_key
                + ")",
                "Ctrl-C to stop.",
            ]
            print("\n".join(lines), file=console, flush=True)
            stop.wait()
        finally:
            stats = stop_chatbot(chatbot)
            print(f"\nstopping; producer counters: {stats}", file=console, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
