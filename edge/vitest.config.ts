import { existsSync, readFileSync } from "node:fs";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { startMoto } from "./test/moto.ts";

// The Worker runs in workerd (through miniflare); moto, started here, stands in for SQS on 127.0.0.1.
// The contract's schema and shared examples (written by the schema's owner) reach the tests as bindings;
// a missing file is an empty string, and the contract test fails saying so.
const read = (file: string) => {
  const url = new URL(`../schema/${file}`, import.meta.url);
  return existsSync(url) ? readFileSync(url, "utf8") : "";
};

// workerd runs verbose under vitest-pool-workers (not configurable) and prints its own native trace
// for every failed outbound connection, even when the Worker handles the rejection. The tests make
// such failures on purpose (SQS down, a connection closed without an answer), so those exception
// lines are dropped (the tests assert the failure itself), and so is every native stack line (unsymbolized
// addresses in the workerd binary, which say nothing more). Any other output passes through.
const EXPECTED_WORKERD_NOISE = [
  /^exception = kj\/async-io[\w.+-]*:\d+: disconnected: (connect\(\): Connection refused|stream disconnected prematurely)$/,
  /^uncaught exception; (source = Uncaught \(in promise\); stack = Error|exception = workerd\/jsg\/\S+: disconnected: jsg\.Error): Network connection lost\.$/,
  /^stack:( \S+\/workerd@[0-9a-f]+)+$/,
];
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    if (!text.includes("workerd") && !text.includes("Network connection lost")) return write(chunk, ...rest);
    const kept = text.split("\n").filter((line) => !EXPECTED_WORKERD_NOISE.some((noise) => noise.test(line)));
    if (kept.join("") === "") {
      const callback = rest.find((arg) => typeof arg === "function") as (() => void) | undefined;
      callback?.();
      return true;
    }
    return write(kept.join("\n"), ...rest);
  }) as typeof stream.write;
}

export default defineConfig(async () => {
  const moto = await startMoto();
  return {
    plugins: [
      cloudflareTest({
        main: "./src/index.ts",
        miniflare: {
          compatibilityDate: "2026-04-20",
          compatibilityFlags: ["nodejs_compat"],
          // The batcher, as wrangler.jsonc binds it; tests that want the direct path leave it out of their env.
          durableObjects: { ANALYTICS_BATCHER: "AnalyticsBatcher" },
          bindings: {
            AWS_ACCESS_KEY_ID: moto.producerKeyId,
            AWS_SECRET_ACCESS_KEY: moto.producerSecret,
            AWS_SQS_URL: moto.queueUrl,
            ANALYTICS_LOCAL_ENDPOINT: new URL(moto.queueUrl).origin,
            AWS_REGION: moto.region,
            MOTO: JSON.stringify(moto),
            // The batcher's window, as the batcher (a Durable Object of this Worker) reads it: the longest
            // allowed, so that questions asked together are in one batch however busy the machine is.
            ANALYTICS_BATCH_WINDOW_MS: "1000",
            CONTRACT_SCHEMA: read("analytics-event.schema.json"),
            CONTRACT_EXAMPLES: read("analytics-event.examples.json"),
          },
        },
      }),
    ],
    test: { include: ["test/**/*.test.ts"], testTimeout: 30_000 },
  };
});
