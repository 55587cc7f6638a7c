// The batcher (packages/worker-logger/src/batcher.ts): a Durable Object of the Worker that puts many
// questions' events in one SendMessageBatch. It runs in workerd here, bound as wrangler.jsonc binds it
// (vitest.config.ts), its window at 1,000 ms; it sends to the moto queue of the Worker's own bindings.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import worker, { type Env } from "../src/index";
import {
  type AnalyticsBatcher,
  type AnalyticsEvent,
  BATCHER_DELIVERY_BOUND_MS,
  BATCHER_NAME,
  DEFAULT_BATCH_WINDOW_MS,
  MAX_BATCH_WINDOW_MS,
  batchWindowMs,
  batcherName,
  batcherTimeoutMs,
  logAnalyticsEvents,
} from "@chat-analytics/worker-logger";
import type { MotoInfo } from "./moto-info";

interface Received {
  body: Record<string, unknown>;
  groupId: string;
  dedupId: string;
  schemaErrors: string[];
}

const moto = JSON.parse(env.MOTO) as MotoInfo;
const at = (url: string) => ({ AWS_SQS_URL: url, ANALYTICS_LOCAL_ENDPOINT: new URL(url).origin });
const direct: Env = { AWS_ACCESS_KEY_ID: moto.producerKeyId, AWS_SECRET_ACCESS_KEY: moto.producerSecret, AWS_REGION: moto.region, ...at(moto.queueUrl) };
const batched: Env = { ...direct, ANALYTICS_BATCHER: env.ANALYTICS_BATCHER };

async function control<T>(path: string): Promise<T> {
  return (await (await fetch(moto.control + path)).json()) as T;
}

async function ask(question: string, overrides: Partial<Env>) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`https://cv.example/ask?q=${encodeURIComponent(question)}`), { ...direct, ...overrides }, ctx);
  const body = (await response.json()) as { requestId: string };
  return { status: response.status, requestId: body.requestId, background: waitOnExecutionContext(ctx) };
}

const query = (requestId: string): AnalyticsEvent => ({ eventType: "query", requestId, timestamp: Date.now(), query: "Python?" });
const response = (requestId: string, matchScore = 100): AnalyticsEvent => ({ eventType: "response", requestId, timestamp: Date.now(), matchType: "full", matchScore, reasoning: "matched 1 of 1 skills" });

let errors: ReturnType<typeof vi.spyOn>;
beforeEach(async () => {
  await control("/drain");
  await control("/sqs-requests");
  await control("/stub-log");
  errors = vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

/** Each group's events in queue order. */
function byGroup(messages: Received[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const message of messages) groups.set(message.groupId, [...(groups.get(message.groupId) ?? []), String(message.body.eventType)]);
  return groups;
}

describe("the batcher", () => {
  it("puts questions asked together in shared SendMessageBatch requests: 8 questions, 2 requests (5 + 3), every event in order", async () => {
    const asked = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(`Does the candidate know Python? (${i})`, { ANALYTICS_BATCHER: env.ANALYTICS_BATCHER })));
    await Promise.all(asked.map((a) => a.background));
    expect(asked.map((a) => a.status)).toEqual(Array(8).fill(200));
    // A batch holds at most 10 entries and never splits a question: 5 questions go at once, 3 after the window.
    expect(await control("/sqs-requests")).toEqual({ send_message_batch: 2 });
    const messages = await control<Received[]>("/drain");
    expect(messages).toHaveLength(16);
    const groups = byGroup(messages);
    expect([...groups.keys()].sort()).toEqual(asked.map((a) => a.requestId).sort());
    for (const events of groups.values()) expect(events).toEqual(["query", "response"]);
    for (const message of messages) {
      expect(message.schemaErrors).toEqual([]);
      expect(message.dedupId).toBe(`${message.groupId}:${message.body.eventType}`);
    }
    expect(errors).not.toHaveBeenCalled();
  });

  it("answers each caller for its own events: an invalid event fails its caller only", async () => {
    const [bad, good] = await Promise.all([
      logAnalyticsEvents([query("batch-bad"), response("batch-bad", 500)], batched),
      logAnalyticsEvents([query("batch-good"), response("batch-good")], batched),
    ]);
    expect(good).toEqual({ ok: true, attempts: 1, delivered: 2 });
    expect(bad).toMatchObject({ ok: false, attempts: 1, delivered: 1 });
    expect(bad.error).toMatch(/^invalid event, not sent: .*matchScore/);
    expect(await control("/sqs-requests")).toEqual({ send_message_batch: 1 });
    expect([...byGroup(await control<Received[]>("/drain")).entries()].sort()).toEqual([
      ["batch-bad", ["query"]],
      ["batch-good", ["query", "response"]],
    ]);
  });

  it("sends a call of more than 10 events whole, in order, in requests of at most 10", async () => {
    const events = Array.from({ length: 6 }, (_, i) => [query(`long-${i}`), response(`long-${i}`)]).flat();
    expect(await logAnalyticsEvents(events, batched)).toEqual({ ok: true, attempts: 2, delivered: 12 });
    expect(await control("/sqs-requests")).toEqual({ send_message_batch: 2 });
    for (const kinds of byGroup(await control<Received[]>("/drain")).values()) expect(kinds).toEqual(["query", "response"]);
  });

  it("keeps its largest batch, 10 events of the contract's largest, inside SendMessageBatch's 256 KiB payload", async () => {
    // AWS: "The maximum allowed individual message size and the maximum total payload size (the sum of the
    // individual lengths of all of the batched messages) are both 256 KiB" (since raised to 1 MiB; 256 KiB holds
    // under both), https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html.
    // moto does not enforce it. Without the batcher a batch held one question's two events; with it, five
    // questions': the contract's bounds (4,096 code points of text, 4 bytes each at most in UTF-8) keep it inside.
    const longest = "\u{1F600}".repeat(4096); // 4,096 code points, 16 KiB of UTF-8: the contract's largest text
    const events = Array.from({ length: 5 }, (_, i): AnalyticsEvent[] => {
      const requestId = `largest-${i}-${"r".repeat(100)}`;
      const common = { requestId, timestamp: Date.now(), source: "s".repeat(64), sessionId: "x".repeat(128), latencyMs: 12 };
      return [
        { ...common, eventType: "query", query: longest },
        { ...common, eventType: "response", matchType: "full", matchScore: 100, reasoning: longest, model: "m".repeat(128) },
      ];
    }).flat();
    // The payload as the batcher sends it: each body (deliverEvents: schemaVersion, then the event) and its ids.
    const payload = events.reduce(
      (bytes, event) => bytes + new TextEncoder().encode(JSON.stringify({ schemaVersion: 1, ...event })).length + 2 * 128,
      0,
    );
    expect(payload).toBeLessThan(256 * 1024);
    const results = await Promise.all([0, 2, 4, 6, 8].map((i) => logAnalyticsEvents(events.slice(i, i + 2), batched)));
    expect(results).toEqual(Array(5).fill({ ok: true, attempts: 1, delivered: 2 }));
    expect(await control("/sqs-requests")).toEqual({ send_message_batch: 1 });
    expect(await control<Received[]>("/drain")).toHaveLength(10);
  });

  it("answers a call that is not a list of events without touching the batch it is gathering", async () => {
    const stub = env.ANALYTICS_BATCHER.get(env.ANALYTICS_BATCHER.idFromName(BATCHER_NAME));
    const [odd, empty, good] = await Promise.all([
      stub.log("not a list" as unknown as AnalyticsEvent[]),
      stub.log([]),
      logAnalyticsEvents([query("batch-after-odd"), response("batch-after-odd")], batched),
    ]);
    expect(odd).toEqual({ ok: false, attempts: 0, delivered: 0, error: "the batcher takes an array of events" });
    expect(empty).toEqual({ ok: true, attempts: 0, delivered: 0 });
    expect(good).toEqual({ ok: true, attempts: 1, delivered: 2 });
    expect(await control("/sqs-requests")).toEqual({ send_message_batch: 1 });
  });

  it("is left for the direct path when it fails: the events are sent by the caller, one line says why", async () => {
    const failing = {
      idFromName: (name: string) => name,
      get: () => ({ log: () => Promise.reject(new Error("Durable Object reset because its code was updated.")) }),
    } as unknown as DurableObjectNamespace<AnalyticsBatcher>;
    const { status, background } = await ask("Does the candidate know Rust?", { ANALYTICS_BATCHER: failing });
    await background;
    expect(status).toBe(200);
    expect(await control("/sqs-requests")).toEqual({ send_message_batch: 1 });
    expect((await control<Received[]>("/drain")).map((m) => m.body.eventType)).toEqual(["query", "response"]);
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0][0])).toBe("analytics: the batcher failed (Durable Object reset because its code was updated.); sending directly");
  });
});

describe("the batcher's settings", () => {
  it("reads ANALYTICS_BATCH_WINDOW_MS as whole milliseconds from 0 to 1,000, else the default, said once", () => {
    expect(DEFAULT_BATCH_WINDOW_MS).toBe(100);
    expect(batchWindowMs({})).toBe(100);
    expect(batchWindowMs({ ANALYTICS_BATCH_WINDOW_MS: "" })).toBe(100);
    expect(batchWindowMs({ ANALYTICS_BATCH_WINDOW_MS: "0" })).toBe(0);
    expect(batchWindowMs({ ANALYTICS_BATCH_WINDOW_MS: "250" })).toBe(250);
    expect(batchWindowMs({ ANALYTICS_BATCH_WINDOW_MS: "1000" })).toBe(MAX_BATCH_WINDOW_MS);
    for (const value of ["1001", "-5", "1.5", "abc", "100ms"]) expect(batchWindowMs({ ANALYTICS_BATCH_WINDOW_MS: value })).toBe(100);
    expect(batchWindowMs({ ANALYTICS_BATCH_WINDOW_MS: "100ms" })).toBe(100); // the same bad value again: not said twice
    expect(errors.mock.calls.map((call: unknown[]) => String(call[0]))).toEqual(
      ["1001", "-5", "1.5", "abc", "100ms"].map((v) => `analytics: ANALYTICS_BATCH_WINDOW_MS "${v}" is not a whole number of ms from 0 to 1000; using 100`),
    );
  });

  it("sends to one object by name, or to one of ANALYTICS_BATCHER_SHARDS (1 to 64) at random", () => {
    expect(batcherName({})).toBe(BATCHER_NAME);
    expect(batcherName({ ANALYTICS_BATCHER_SHARDS: "1" }, () => 0.99)).toBe(BATCHER_NAME);
    const names = (shards: string) => new Set([0, 0.3, 0.5, 0.74, 0.75, 0.999999].map((r) => batcherName({ ANALYTICS_BATCHER_SHARDS: shards }, () => r)));
    expect(names("4")).toEqual(new Set([BATCHER_NAME, `${BATCHER_NAME}-1`, `${BATCHER_NAME}-2`, `${BATCHER_NAME}-3`]));
    expect(batcherName({ ANALYTICS_BATCHER_SHARDS: "64" }, () => 0.999999)).toBe(`${BATCHER_NAME}-63`);
    for (const bad of ["0", "65", "two"]) expect(batcherName({ ANALYTICS_BATCHER_SHARDS: bad }, () => 0.9)).toBe(BATCHER_NAME);
    expect(errors.mock.calls.map((call: unknown[]) => String(call[0]))).toEqual(
      ["0", "65", "two"].map((v) => `analytics: ANALYTICS_BATCHER_SHARDS "${v}" is not a whole number from 1 to 64; using 1`),
    );
  });

  it("bounds the wait for the batcher so that a direct send after it still ends inside waitUntil's 30 s", () => {
    // A direct send's worst case with the defaults: 3 attempts of 3 s and two backoffs of at most 100 and 200 ms.
    const directWorstMs = 3 * 3_000 + 100 + 200;
    expect(BATCHER_DELIVERY_BOUND_MS).toBeGreaterThanOrEqual(directWorstMs); // the batcher's own send is a direct send
    expect(batcherTimeoutMs({})).toBe(DEFAULT_BATCH_WINDOW_MS + BATCHER_DELIVERY_BOUND_MS);
    expect(batcherTimeoutMs({ ANALYTICS_BATCH_WINDOW_MS: "1000" }) + directWorstMs).toBeLessThan(30_000);
  });
});
