// Cost benchmark, the Worker's half: the real Worker (src/index.ts) in workerd through Miniflare, asked
// questions at the arrival times it is given, with bounded concurrency; its analytics go to whatever AWS_SQS_URL names (the
// local stack's moto, through a counting proxy). Driven by bench/cost_bench.py, which counts the requests
// at the proxy and everything after the queue; this script only asks the questions.
//
// Configuration: one JSON object in the environment variable COST_DRIVER_CONFIG:
//   { "bindings": {AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SQS_URL, AWS_REGION, ANALYTICS_LOCAL_ENDPOINT},
//     "questions": ["...", ...], "offsetsMs": [when each question arrives, ms from the start],
//     "concurrency": at most this many at once (a question arriving when all are busy waits its turn),
//     "answerMs": the answer time (12, the CV chatbot's), "settleMs": how long to wait for waitUntil sends,
//     "batcher": true (default: the Worker as wrangler.jsonc deploys it, its batcher bound) or false (every
//     question sends its own batch), "batchWindowMs": the batcher's window (default: the batcher's own) }
// (in the environment, not on the command line: the bindings hold the local producer key).
// Output: one JSON line {questions, statuses, latency: {median_ms, p95_ms}, elapsed_s, requestIds, batcher}
// (batcher: the Durable Object's own counts, {calls, batches, events}, or null without it).
//   node bench/cost-driver.mjs   (run from edge/)
import { execSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const config = JSON.parse(process.env.COST_DRIVER_CONFIG ?? "{}");
const { bindings, questions, offsetsMs, concurrency = 4, answerMs = 12, settleMs = 2000, batcher = true, batchWindowMs } = config;
if (!bindings || !Array.isArray(questions) || questions.length === 0 || !Array.isArray(offsetsMs) || offsetsMs.length !== questions.length) {
  console.error("COST_DRIVER_CONFIG must hold bindings, a non-empty questions list and one offset per question");
  process.exit(2);
}

const outdir = path.join(root, ".wrangler", "bench"); // inside the project: workerd refuses module paths above it
mkdirSync(outdir, { recursive: true });
const script = path.join(outdir, "cost-worker.js");
// The Worker imports @chat-analytics/worker-logger by name (its built dist/): build it from the current source first.
execSync("npm run --silent build", { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
await build({ entryPoints: [path.join(root, "src/index.ts")], bundle: true, format: "esm", platform: "neutral", conditions: ["workerd", "worker", "browser"], outfile: script, external: ["cloudflare:*"], logLevel: "error" });

const worker = new Miniflare({
  modules: true,
  scriptPath: script,
  modulesRoot: path.dirname(script),
  compatibilityDate: "2026-04-20",
  compatibilityFlags: ["nodejs_compat"],
  bindings: { ...bindings, ANSWER_DELAY_MS: String(answerMs), ...(batchWindowMs === undefined ? {} : { ANALYTICS_BATCH_WINDOW_MS: String(batchWindowMs) }) },
  // The batcher as wrangler.jsonc binds it (its name and class), or none: each question sends its own batch.
  durableObjects: batcher ? { ANALYTICS_BATCHER: "AnalyticsBatcher" } : {},
});

const latencies = [];
const statuses = {};
const requestIds = [];
let inFlight = 0;
const waiting = [];
const acquire = () => (inFlight < concurrency ? (inFlight++, Promise.resolve()) : new Promise((resolve) => waiting.push(resolve)));
const release = () => {
  const next = waiting.shift();
  if (next) next();
  else inFlight--;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function ask(question) {
  await acquire();
  try {
    const started = performance.now();
    const response = await worker.dispatchFetch(`http://cv.local/ask?q=${encodeURIComponent(question)}`);
    const body = await response.json().catch(() => ({}));
    latencies.push(performance.now() - started);
    statuses[response.status] = (statuses[response.status] ?? 0) + 1;
    if (body.requestId) requestIds.push(body.requestId);
  } finally {
    release();
  }
}

let elapsed = 0;
let batcherStats = null;
try {
  await (await worker.dispatchFetch("http://cv.local/nowhere")).text(); // start workerd (a 404 logs nothing)
  const started = performance.now();
  const pending = [];
  for (let i = 0; i < questions.length; i++) {
    const due = started + offsetsMs[i]; // the arrival times bench/cost_bench.py chose; a late question goes at once
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(ask(questions[i]));
  }
  await Promise.all(pending);
  elapsed = (performance.now() - started) / 1000;
  await sleep(settleMs); // the last questions' waitUntil sends
  if (batcher) {
    const namespace = await worker.getDurableObjectNamespace("ANALYTICS_BATCHER");
    const stats = await namespace.get(namespace.idFromName("analytics-batcher")).stats();
    batcherStats = { calls: stats.calls, batches: stats.batches, events: stats.events }; // plain numbers: the stub dies with workerd
  }
} finally {
  await worker.dispose();
}
const sorted = [...latencies].sort((a, b) => a - b);
const at = (q) => sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))] ?? 0;
console.log(
  JSON.stringify({
    questions: questions.length,
    statuses,
    latency: { median_ms: Number(at(0.5).toFixed(3)), p95_ms: Number(at(0.95).toFixed(3)) },
    elapsed_s: Number(elapsed.toFixed(2)),
    requestIds,
    batcher: batcherStats,
  }),
);
