"""``make local``: the local stack, the processor and the chatbot, running until Ctrl-C.

Prints the endpoints and the four values an edge Worker needs to send to this stack
(for ``wrangler dev``: put them in ``edge/.dev.vars``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from local.demo import start_chatbot, stop_chatbot
from local.pipeline import LocalPipeline
from local.stack import REPO, template_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=template_path("dev"))
    args = parser.parse_args(argv)
    if not args.template.exists():
        print(f"error: {args.template} not found; run `make synth` first", file=sys.stderr)
        return 2
    console = sys.stdout
    log_path = REPO / "cdk.out" / "local-processor.log"
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalPipeline(template=args.template, processor_log=log_path) as pipeline:
        info = pipeline.info
        assert info is not None  # set by start()
        chatbot, chatbot_url = start_chatbot(info.worker_env(), analytics=True)
        try:
            # The Worker sends only to SQS's own hosts unless ANALYTICS_LOCAL_ENDPOINT names the local one.
            env = {**info.worker_env(), "ANALYTICS_LOCAL_ENDPOINT": info.endpoint_url}
            lines = [
                f"local stack {info.stack_name} (moto, IAM enforced) on {info.endpoint_url}",
                *(f"  {key}: {value}" for key, value in info.outputs.items()),
                f"chatbot: {chatbot_url}/ask?q=Does+the+candidate+know+Python",
                f"processor logs and EMF metrics: {log_path.relative_to(REPO)}",
                "",
                "Worker environment (edge/.dev.vars for `cd edge && npx wrangler dev --env local`):",
                *(f'{key}="{value}"' for key, value in env.items()),
                "",
                "ops tool: chat-analytics --endpoint-url " + info.endpoint_url + " report --from <YYYY-MM-DD> --to <YYYY-MM-DD>",
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
