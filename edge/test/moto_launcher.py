"""Test fixture for the Worker's tests: a moto server with IAM enforced, fault endpoints, and a control API.

Started by vitest.config.ts (Node side) with the repository's .venv Python; prints one JSON line with
everything the tests need, then serves until its stdin closes (the test run ended) or SIGTERM.

- moto on 127.0.0.1 with the stack itself: the CDK app is synthesized for this test run (never a stale
  cdk.out) and deployed by the local stack (`local.emulator.stack.LocalStack`), so the queue, the producer user and
  its policy are the template's own; plus a key with no permission (403 AccessDenied).
- slow: a proxy adding 50 ms to every request; failing: an HTTP endpoint answering 500 and counting
  attempts; down: a closed port.
- stub: an HTTP endpoint whose behaviour is the queue name in the request's QueueUrl
  (<stub>/123456789012/<behaviour>.fifo): html, truncated, stall and stall-500 (a 200 or a 500: headers,
  then a body that never ends), hangup (the connection closes without an answer), retry-once (the second entry fails once, retryable), sender-fault (the second entry fails
  with SenderFault: true); it records each request's X-Amz-Target and entry Ids.
- control: GET /drain (every message in the queue, validated against the event schema, then deleted),
  GET /attempts (and reset the failing endpoint's counter), GET /sqs-requests (the SendMessage and
  SendMessageBatch requests moto served, by action, then reset), GET /stub-log (the stub's requests, then reset).

IAM: on AWS, `sqs:SendMessage` also authorizes SendMessageBatch; moto checks the action name literally.
The local stack bridges that in its one place (`local.emulator.stack.bridge_sqs_batch_actions`); the producer's
policy stays the template's `sqs:SendMessage` only.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
from jsonschema import Draft202012Validator  # noqa: E402

from local.emulator.stack import LocalStack  # noqa: E402
from testkit.faults import DelayProxy, closed_port  # noqa: E402

REGION = "us-east-1"


def synthesize(outdir: Path) -> Path:
    """The dev template as `cdk synth` would write it, into ``outdir`` (a Python CDK synth takes seconds)."""
    import os

    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from app import build_app

    app, stack = build_app({"stage": "dev"}, outdir=str(outdir))
    return Path(app.synth().directory) / f"{stack.stack_name}.template.json"


def count_sqs_sends(counts: dict[str, int], lock: threading.Lock) -> None:
    """Count the send requests moto serves (after authorization), by action."""
    from moto.sqs.responses import SQSResponse

    for action in ("send_message", "send_message_batch"):
        original = getattr(SQSResponse, action)

        def counted(self, _original=original, _action=action):
            result = _original(self)
            with lock:
                counts[_action] = counts.get(_action, 0) + 1
            return result

        setattr(SQSResponse, action, counted)


logging.getLogger("werkzeug").setLevel(logging.WARNING)
SCHEMA = Draft202012Validator(json.loads((REPO / "schema" / "analytics-event.schema.json").read_text()))


def main() -> None:
    sqs_requests: dict[str, int] = {}
    sqs_requests_lock = threading.Lock()
    count_sqs_sends(sqs_requests, sqs_requests_lock)
    workdir = Path(tempfile.mkdtemp(prefix="edge-moto-"))
    local = LocalStack(synthesize(workdir / "cdk.out"), enforce_iam=True)
    stack = local.deploy()  # IAM enforced from here on: moto checks signatures and policies
    port, endpoint = local.port, stack.endpoint_url
    queue_url = stack.events_queue_url
    iam = stack.client("iam")
    iam.create_user(UserName="edge-denied")
    denied = iam.create_access_key(UserName="edge-denied")["AccessKey"]
    producer = {"AccessKeyId": stack.producer.access_key_id, "SecretAccessKey": stack.producer.secret_access_key}
    admin = {"AccessKeyId": stack.admin.access_key_id, "SecretAccessKey": stack.admin.secret_access_key}

    admin_sqs = boto3.Session(
        aws_access_key_id=admin["AccessKeyId"], aws_secret_access_key=admin["SecretAccessKey"], region_name=REGION
    ).client("sqs", endpoint_url=endpoint)
    slow = DelayProxy(port, 0.05).start()
    attempts = {"count": 0}
    lock = threading.Lock()

    class Failing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                attempts["count"] += 1
            body = b'{"__type":"com.amazonaws.sqs#InternalError","message":"injected"}'
            self.send_response(500)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    failing = ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=failing.serve_forever, daemon=True).start()

    stub_log: list[dict] = []
    retried: set[str] = set()

    class Stub(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            behaviour = request.get("QueueUrl", "").rsplit("/", 1)[-1].removesuffix(".fifo")
            ids = [entry["Id"] for entry in request.get("Entries", [])]
            with lock:
                stub_log.append({"behaviour": behaviour, "target": self.headers.get("X-Amz-Target"), "ids": ids})
            if behaviour == "hangup":
                self.close_connection = True  # no answer at all: the connection closes
                self.connection.shutdown(2)
            elif behaviour == "html":
                self.answer(200, "text/html", b"<html><body>Sign in to continue</body></html>")
            elif behaviour == "truncated":
                self.answer(200, "application/x-amz-json-1.0", b'{"Successful":[{"Id":"0","MessageId":"m-')
            elif behaviour in ("stall", "stall-500"):
                self.send_response(200 if behaviour == "stall" else 500)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b'{"Successful":[')
                self.wfile.flush()
                time.sleep(30)  # the body never ends (daemon thread; the run ends first)
            else:
                failed = []
                if behaviour == "sender-fault" and len(ids) > 1:
                    failed = [{"Id": ids[1], "SenderFault": True, "Code": "InvalidParameterValue", "Message": "injected"}]
                elif behaviour == "retry-once" and len(ids) > 1 and request["QueueUrl"] + ids[1] not in retried:
                    retried.add(request["QueueUrl"] + ids[1])
                    failed = [{"Id": ids[1], "SenderFault": False, "Code": "InternalError", "Message": "injected"}]
                failed_ids = {f["Id"] for f in failed}
                successful = [{"Id": i, "MessageId": f"m-{i}", "MD5OfMessageBody": "0" * 32} for i in ids if i not in failed_ids]
                self.answer(200, "application/x-amz-json-1.0", json.dumps({"Successful": successful, "Failed": failed}).encode())

        def log_message(self, *args) -> None:
            pass

    stub = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    stub.daemon_threads = True
    threading.Thread(target=stub.serve_forever, daemon=True).start()

    class Control(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # workerd reuses connections

        def do_GET(self) -> None:
            result: Any
            if self.path == "/attempts":
                with lock:
                    result, attempts["count"] = attempts["count"], 0
            elif self.path == "/drain":
                result = drain()
            elif self.path == "/sqs-requests":
                with sqs_requests_lock:
                    result = dict(sqs_requests)
                    sqs_requests.clear()
            elif self.path == "/stub-log":
                with lock:
                    result = list(stub_log)
                    stub_log.clear()
                    retried.clear()
            else:
                self.send_error(404)
                return
            body = json.dumps(result).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    def drain() -> list[dict]:
        found: list[dict[str, Any]] = []
        while True:
            batch = admin_sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]).get(
                "Messages", []
            )
            if not batch:
                return found
            for message in batch:
                body = json.loads(message["Body"])
                found.append(
                    {
                        "body": body,
                        "groupId": message["Attributes"]["MessageGroupId"],
                        "dedupId": message["Attributes"]["MessageDeduplicationId"],
                        "schemaErrors": sorted(e.message for e in SCHEMA.iter_errors(body)),
                    }
                )
            admin_sqs.delete_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            )

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()

    path = queue_url.split("/", 3)[3]
    info = {
        "queueUrl": f"{endpoint}/{path}",
        "slowQueueUrl": f"http://127.0.0.1:{slow.port}/{path}",
        "failingQueueUrl": f"http://127.0.0.1:{failing.server_address[1]}/{path}",
        "downQueueUrl": f"http://127.0.0.1:{closed_port()}/{path}",
        "stub": f"http://127.0.0.1:{stub.server_address[1]}",
        "region": REGION,
        "producerKeyId": producer["AccessKeyId"],
        "producerSecret": producer["SecretAccessKey"],
        "deniedKeyId": denied["AccessKeyId"],
        "deniedSecret": denied["SecretAccessKey"],
        "control": f"http://127.0.0.1:{control.server_address[1]}",
    }
    print(json.dumps(info), flush=True)
    sys.stdin.read()  # until the test run closes our stdin
    local.close()


if __name__ == "__main__":
    main()
