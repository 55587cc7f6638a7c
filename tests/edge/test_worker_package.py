"""The Worker logger as a Worker author gets it: `npm pack` of edge/packages/worker-logger, the tarball
installed into a new Worker project made from scratch, the README's Worker type-checked, bundled by wrangler
and run in workerd (Miniflare), its question's events sent to a local moto stack.

The new project holds only what a user writes (package.json, wrangler.jsonc, the Worker, a tsconfig) and the
tarball; `npm install` fetches aws4fetch, the package's one dependency, from the npm registry (or npm's
cache). wrangler, Miniflare and tsc are the ones `make install` put in edge/node_modules (a user's own
devDependencies; installing them again would only copy workerd's 100 MB). The queue is moto's, started by
edge/test/moto_launcher.py (the CDK stack's own queue, producer user and policy, IAM enforced), on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.edge.conftest import BIN, EDGE, run

PACKAGE = "@chat-analytics/worker-logger"
COMPATIBILITY_DATE = "2026-04-20"
QUESTION = "Does the candidate know Python?\x00"  # \x00: SQS refuses it; toSqsSafe makes it U+FFFD

# Runs the bundled Worker in workerd with the local queue's bindings, prints the answer as one JSON line, then
# keeps workerd (and the Worker's waitUntil) alive until its stdin closes.
RUNNER = """
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
const [edge, script, compatibilityDate, bindingsJson, url] = process.argv.slice(2);
const { Miniflare } = await import(pathToFileURL(createRequire(edge + "/package.json").resolve("miniflare")).href);
const mf = new Miniflare({ modules: true, scriptPath: script, compatibilityDate, bindings: JSON.parse(bindingsJson) });
const response = await mf.dispatchFetch(url);
console.log(JSON.stringify({ status: response.status, body: await response.json() }));
process.stdin.resume();
process.stdin.on("end", async () => { await mf.dispose(); process.exit(0); });
"""


def ts_block(readme: str, section: str, name: str) -> str:
    """The first ```ts block after the heading ``section`` of a README (the Worker a user copies)."""
    parts = readme.split(section, 1)
    assert len(parts) == 2, f"{name} has no '{section}' section"
    block = re.search(r"```ts\n(.*?)```", parts[1], re.S)
    assert block, f"{name}'s '{section}' section has no ```ts block"
    return block.group(1)


def readme_worker() -> str:
    """The Worker of edge/README.md's "Log a question" section, as a user copies it."""
    return ts_block((EDGE / "README.md").read_text(encoding="utf-8"), "## Log a question", "edge/README.md")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # the launcher's control API, on 127.0.0.1
        return json.loads(response.read())


@pytest.fixture(scope="module")
def moto() -> Iterator[dict[str, str]]:
    launcher = subprocess.Popen(
        [sys.executable, str(EDGE / "test" / "moto_launcher.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert launcher.stdout is not None and launcher.stdin is not None
    try:
        line = launcher.stdout.readline()
        assert line, f"edge/test/moto_launcher.py exited with {launcher.wait()} before printing its endpoints"
        yield json.loads(line)
    finally:
        launcher.stdin.close()  # the launcher serves until its stdin closes
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("npm", "node"):
        assert shutil.which(tool), f"{tool} is not on PATH (Node 20 and npm are needed for the Worker package)"
    assert (BIN / "wrangler").exists(), "edge/node_modules is not installed: run make install"
    out = tmp_path_factory.mktemp("pack")
    packed = json.loads(run(["npm", "pack", "--workspace", PACKAGE, "--pack-destination", str(out), "--json"], EDGE).stdout)
    return out / packed[0]["filename"]


def test_the_tarball_ships_built_js_with_types_and_aws4fetch_as_its_only_dependency(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
        manifest_file, readme_file = archive.extractfile("package/package.json"), archive.extractfile("package/README.md")
        assert manifest_file is not None and readme_file is not None, "regular files in the tarball"
        manifest = json.loads(manifest_file.read())
        shipped_readme = readme_file.read().decode()
    assert {f"package/dist/{module}.{ext}" for module in ("index", "sqs-logger", "event-contract") for ext in ("js", "d.ts")} <= names
    assert not [name for name in names if name.endswith(".ts") and not name.endswith(".d.ts")], "TypeScript sources shipped"
    assert manifest["name"] == PACKAGE
    assert list(manifest["dependencies"]) == ["aws4fetch"]
    assert manifest["sideEffects"] is False
    assert manifest["exports"]["."] == {"types": "./dist/index.d.ts", "default": "./dist/index.js"}
    # The package's own README shows the same Worker as edge/README.md (the one the test below runs).
    assert ts_block(shipped_readme, "## Use", "the package's README.md") == readme_worker()


def test_a_new_worker_project_installs_the_tarball_and_sends_one_questions_events_in_one_batch(
    tarball: Path, moto: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "my-worker"
    (project / "src").mkdir(parents=True)
    (project / "package.json").write_text(json.dumps({"name": "my-worker", "private": True, "type": "module"}, indent=2))
    (project / "wrangler.jsonc").write_text(
        json.dumps({"name": "my-worker", "main": "src/index.ts", "compatibility_date": COMPATIBILITY_DATE}, indent=2)
    )
    (project / "src" / "index.ts").write_text(readme_worker())
    # Type-check as a user's project would (moduleResolution bundler, the Workers runtime's types): the
    # package's `exports` must lead TypeScript to its .d.ts.
    tsconfig = {
        "compilerOptions": {
            "target": "ES2022",
            "module": "ES2022",
            "moduleResolution": "bundler",
            "lib": ["ES2022"],
            "typeRoots": [str(EDGE / "node_modules" / "@cloudflare")],
            "types": ["workers-types"],
            "strict": True,
            "noEmit": True,
        },
        "include": ["src"],
    }
    (project / "tsconfig.json").write_text(json.dumps(tsconfig, indent=2))

    run(["npm", "install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", str(tarball)], project)
    installed = json.loads((project / "package.json").read_text())["dependencies"]
    assert list(installed) == [PACKAGE] and installed[PACKAGE].endswith(tarball.name)
    assert (project / "node_modules" / "aws4fetch" / "package.json").exists()

    run([str(BIN / "tsc"), "-p", "tsconfig.json"], project)
    run([str(BIN / "wrangler"), "deploy", "--dry-run", "--outdir", "dist"], project)
    bundle = project / "dist" / "index.js"
    bundled = bundle.read_text()
    assert not re.search(r"""from\s*["']@chat-analytics/""", bundled), "the bundle still imports the package"
    assert "node_modules/@chat-analytics/worker-logger/dist/sqs-logger.js" in bundled, "not bundled from the installed tarball"

    get_json(f"{moto['control']}/drain")  # an empty queue and zeroed counters to start from
    get_json(f"{moto['control']}/sqs-requests")
    origin = moto["queueUrl"].split("/", 3)[:3]
    bindings = {
        "AWS_ACCESS_KEY_ID": moto["producerKeyId"],
        "AWS_SECRET_ACCESS_KEY": moto["producerSecret"],
        "AWS_SQS_URL": moto["queueUrl"],
        "AWS_REGION": moto["region"],
        "ANALYTICS_LOCAL_ENDPOINT": "/".join(origin),
    }
    (project / "run.mjs").write_text(RUNNER)
    url = "http://my-worker.local/?" + urllib.parse.urlencode({"q": QUESTION})
    worker = subprocess.Popen(
        ["node", "run.mjs", str(EDGE), str(bundle), COMPATIBILITY_DATE, json.dumps(bindings), url],
        cwd=project,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None and worker.stdin is not None and worker.stderr is not None
    try:
        line = worker.stdout.readline()
        assert line, f"the Worker did not answer: {worker.stderr.read() if worker.poll() is not None else '(still running)'}"
        answer = json.loads(line)
        assert answer["status"] == 200 and answer["body"]["answer"] == f"You asked: {QUESTION}"
        request_id = answer["body"]["requestId"]

        # The events go out in waitUntil, after the answer: poll the queue (bounded in count) while workerd runs.
        received: list[dict] = []
        for _ in range(100):
            received += get_json(f"{moto['control']}/drain")
            if len(received) >= 2:
                break
            time.sleep(0.1)
        sends = get_json(f"{moto['control']}/sqs-requests")
    finally:
        try:
            _, errors = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, errors = worker.communicate()

    assert sends == {"send_message_batch": 1}, f"expected ONE SendMessageBatch, moto served {sends}; Worker said: {errors}"
    assert [event["body"]["eventType"] for event in received] == ["query", "response"]
    assert all(event["schemaErrors"] == [] for event in received), received
    assert {event["groupId"] for event in received} == {request_id}
    assert [event["dedupId"] for event in received] == [f"{request_id}:query", f"{request_id}:response"]
    query, response = (event["body"] for event in received)
    assert query["requestId"] == response["requestId"] == request_id
    assert query["query"] == "Does the candidate know Python?\ufffd"
    assert query["source"] == response["source"] == "my-worker"
    assert (response["matchType"], response["matchScore"], response["reasoning"]) == ("full", 100, "echo")
