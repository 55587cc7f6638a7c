import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import worker, { type Env } from "../src/index";
import { deduplicationId, logAnalyticsEvent } from "../src/sqs-logger";
import type { MotoInfo } from "./moto-info";

interface Received {
  body: Record<string, unknown>;
  groupId: string;
  dedupId: string;
  schemaErrors: string[];
}

const moto = JSON.parse(env.MOTO) as MotoInfo;
const baseEnv: Env = { AWS_ACCESS_KEY_ID: moto.producerKeyId, AWS_SECRET_ACCESS_KEY: moto.producerSecret, AWS_SQS_URL: moto.queueUrl, AWS_REGION: moto.region };

async function control<T>(path: string): Promise<T> {
  return (await (await fetch(moto.control + path)).json()) as T;
}

/** Ask the Worker; returns the response, how long the answer took, and a promise for the background work. */
async function ask(question: string, overrides: Partial<Env> = {}) {
  const ctx = createExecutionContext();
  const started = performance.now();
  const response = await worker.fetch(new Request(`https://cv.example/ask?q=${encodeURIComponent(question)}`), { ...baseEnv, ...overrides }, ctx);
  const answeredMs = performance.now() - started;
  const body = (await response.json()) as { requestId: string; matchType: string; matchScore: number };
  return { response, body, answeredMs, background: waitOnExecutionContext(ctx) };
}

let errors: ReturnType<typeof vi.spyOn>;
beforeEach(async () => {
  await control("/drain");
  await control("/attempts");
  errors = vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => errors.mockRestore());

describe("the chatbot Worker", () => {
  it("answers and both events of the request arrive with valid bodies and FIFO ids", async () => {
    const { response, body, background } = await ask("Does the candidate know Python and Rust?");
    expect(response.status).toBe(200);
    expect(body.matchType).toBe("partial");
    expect(body.matchScore).toBe(50);
    await background;
    const messages = await control<Received[]>("/drain");
    expect(messages).toHaveLength(2);
    for (const message of messages) {
      expect(message.schemaErrors).toEqual([]);
      expect(message.groupId).toBe(body.requestId);
      expect(message.dedupId).toBe(`${body.requestId}:${message.body.eventType}`);
    }
    const byType = Object.fromEntries(messages.map((m) => [m.body.eventType, m.body]));
    expect(byType.query).toMatchObject({ query: "Does the candidate know Python and Rust?", source: "cv-worker", schemaVersion: 1 });
    expect(byType.response).toMatchObject({ matchType: "partial", matchScore: 50, reasoning: "matched 1 of 2 skills; missing: rust" });
    expect(errors).not.toHaveBeenCalled();
  });

  it("rejects a missing question with 400 and logs nothing", async () => {
    const ctx = createExecutionContext();
    const response = await worker.fetch(new Request("https://cv.example/ask"), baseEnv, ctx);
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(400);
    expect(await control<Received[]>("/drain")).toEqual([]);
  });

  for (const [name, overrides, attemptsPerEvent] of [
    ["down (connection refused)", { AWS_SQS_URL: moto.downQueueUrl }, 3],
    ["answering 403 (a key without permission)", { AWS_ACCESS_KEY_ID: moto.deniedKeyId, AWS_SECRET_ACCESS_KEY: moto.deniedSecret }, 1],
    ["failing with 500", { AWS_SQS_URL: moto.failingQueueUrl }, 3],
  ] as const) {
    it(`still answers 200 at once when SQS is ${name}, and logs each failure once`, async () => {
      const { response, answeredMs, background } = await ask("Is there Kubernetes experience?", overrides);
      expect(response.status).toBe(200);
      expect(answeredMs).toBeLessThan(500); // generous: the answer never waits on SQS
      await background;
      expect(errors).toHaveBeenCalledTimes(2); // one line per event (query and response)
      for (const [line] of errors.mock.calls) {
        expect(String(line)).toContain(`after ${attemptsPerEvent} attempt(s)`);
        expect(String(line)).not.toContain(overrides.AWS_SECRET_ACCESS_KEY ?? moto.producerSecret);
      }
      if (name.startsWith("failing")) expect(await control<number>("/attempts")).toBe(6); // 3 attempts x 2 events, no more
    });
  }

  it("still answers at once when SQS is slow (+50 ms), and the events arrive", async () => {
    const { response, answeredMs, background } = await ask("Any DynamoDB?", { AWS_SQS_URL: moto.slowQueueUrl });
    expect(response.status).toBe(200);
    expect(answeredMs).toBeLessThan(50 + 500);
    await background;
    expect(errors).not.toHaveBeenCalled();
    expect(await control<Received[]>("/drain")).toHaveLength(2);
  });
});

describe("logAnalyticsEvent", () => {
  it("bounds each attempt with a timeout and gives up after 3 attempts without rejecting", async () => {
    // The slow proxy adds 50 ms; a 20 ms attempt timeout makes every attempt time out.
    const started = performance.now();
    const result = await logAnalyticsEvent(
      { eventType: "query", requestId: "timeout-1", timestamp: Date.now(), query: "Go?" },
      { ...baseEnv, AWS_SQS_URL: moto.slowQueueUrl },
      { attemptTimeoutMs: 20, backoffMs: 5 },
    );
    expect(result).toMatchObject({ ok: false, attempts: 3 });
    expect(result.error).toContain("timeout");
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(errors).toHaveBeenCalledTimes(1);
    // A timed-out attempt may still reach SQS (the proxy forwards it late); the deduplication id,
    // the same for every attempt, keeps the three attempts from becoming three messages.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const delivered = (await control<Received[]>("/drain")).filter((m) => m.body.requestId === "timeout-1");
    expect(delivered.length).toBeLessThanOrEqual(1);
  });

  it("uses the request id as group, requestId:eventType as deduplication id, hashed past 128 characters", async () => {
    expect(await deduplicationId({ requestId: "abc", eventType: "query" })).toBe("abc:query");
    const long = await deduplicationId({ requestId: "r".repeat(128), eventType: "query" });
    expect(long).toMatch(/^[0-9a-f]{64}$/);
    const result = await logAnalyticsEvent({ eventType: "query", requestId: "r".repeat(128), timestamp: Date.now(), query: "Python?" }, baseEnv);
    expect(result).toEqual({ ok: true, attempts: 1 });
    const [message] = (await control<Received[]>("/drain")).filter((m) => m.body.requestId === "r".repeat(128));
    expect(message.dedupId).toBe(long);
    expect(message.groupId).toBe("r".repeat(128));
  });

  it("never rejects, even with a malformed queue URL", async () => {
    const result = await logAnalyticsEvent({ eventType: "query", requestId: "x", timestamp: 1, query: "q" }, { ...baseEnv, AWS_SQS_URL: "not a url" });
    expect(result.ok).toBe(false);
    expect(errors).toHaveBeenCalledTimes(1);
  });
});
