import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { AwsClient } from "aws4fetch";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CvSkillMatcher } from "../src/answer";
import worker, { type Env } from "../src/index";
import { type AnalyticsEvent, deduplicationId, logAnalyticsEvent, logAnalyticsEvents, validateEvent } from "@chat-analytics/worker-logger";
import type { MotoInfo } from "./moto-info";

interface Received {
  body: Record<string, unknown>;
  groupId: string;
  dedupId: string;
  schemaErrors: string[];
}

interface StubRequest {
  behaviour: string;
  target: string;
  ids: string[];
}

const moto = JSON.parse(env.MOTO) as MotoInfo;
/** The queue at `url`, a loopback endpoint the tests name explicitly (as `make local` does). */
const at = (url: string) => ({ AWS_SQS_URL: url, ANALYTICS_LOCAL_ENDPOINT: new URL(url).origin });
const stubQueue = (behaviour: string) => at(`${moto.stub}/123456789012/${behaviour}.fifo`);
const baseEnv: Env = { AWS_ACCESS_KEY_ID: moto.producerKeyId, AWS_SECRET_ACCESS_KEY: moto.producerSecret, AWS_REGION: moto.region, ...at(moto.queueUrl) };

async function control<T>(path: string): Promise<T> {
  return (await (await fetch(moto.control + path)).json()) as T;
}

/** Ask the Worker; returns the response, how long the answer took, and a promise for the background work. */
async function ask(question: string, overrides: Partial<Env> = {}, method: "GET" | "POST" = "GET") {
  const ctx = createExecutionContext();
  const request =
    method === "GET"
      ? new Request(`https://cv.example/ask?q=${encodeURIComponent(question)}`)
      : new Request("https://cv.example/ask", { method: "POST", body: JSON.stringify({ question }), headers: { "Content-Type": "application/json" } });
  const started = performance.now();
  const response = await worker.fetch(request, { ...baseEnv, ...overrides }, ctx);
  const answeredMs = performance.now() - started;
  const body = (await response.json()) as { requestId: string; matchType: string; matchScore: number; error?: string };
  return { response, body, answeredMs, background: waitOnExecutionContext(ctx) };
}

const query = (requestId: string, text = "Python?"): AnalyticsEvent => ({ eventType: "query", requestId, timestamp: Date.now(), query: text });
const response = (requestId: string): AnalyticsEvent => ({ eventType: "response", requestId, timestamp: Date.now(), matchType: "full", matchScore: 100, reasoning: "matched 1 of 1 skills" });

let errors: ReturnType<typeof vi.spyOn>;
beforeEach(async () => {
  await control("/drain");
  await control("/attempts");
  await control("/sqs-requests");
  await control("/stub-log");
  errors = vi.spyOn(console, "error").mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

describe("the chatbot Worker", () => {
  it("answers, then sends both events in ONE SendMessageBatch with valid bodies and FIFO ids", async () => {
    const { response, body, background } = await ask("Does the candidate know Python and Rust?");
    expect(response.status).toBe(200);
    expect(body.matchType).toBe("partial");
    expect(body.matchScore).toBe(50);
    await background;
    expect(await control("/sqs-requests")).toEqual({ send_message_batch: 1 }); // one request (and one signature) per question
    const messages = await control<Received[]>("/drain");
    expect(messages.map((m) => m.body.eventType)).toEqual(["query", "response"]);
    for (const message of messages) {
      expect(message.schemaErrors).toEqual([]);
      expect(validateEvent(message.body)).toBeNull();
      expect(message.groupId).toBe(body.requestId);
      expect(message.dedupId).toBe(`${body.requestId}:${message.body.eventType}`);
    }
    expect(messages[0].body).toMatchObject({ query: "Does the candidate know Python and Rust?", source: "cv-worker", schemaVersion: 1 });
    // contract 1.1: the response names the answering model (here the deterministic matcher)
    expect(messages[1].body).toMatchObject({ matchType: "partial", matchScore: 50, reasoning: "matched 1 of 2 skills; missing: rust", model: "cv-skill-matcher", schemaVersion: 1 });
    expect(errors).not.toHaveBeenCalled();
  });

  it("50 questions: 50 SQS requests, and each request's query precedes its response in the queue", async () => {
    const asked = await Promise.all(Array.from({ length: 50 }, (_, i) => ask(`Question ${i}: Python, AWS or Kotlin?`)));
    await Promise.all(asked.map((a) => a.background));
    expect(await control("/sqs-requests")).toEqual({ send_message_batch: 50 });
    const messages = await control<Received[]>("/drain");
    expect(messages).toHaveLength(100);
    const order = new Map<string, string[]>();
    for (const m of messages) order.set(m.groupId, [...(order.get(m.groupId) ?? []), String(m.body.eventType)]);
    expect(order.size).toBe(50);
    for (const { body } of asked) expect(order.get(body.requestId)).toEqual(["query", "response"]);
    expect(errors).not.toHaveBeenCalled();
  });

  it("still logs the query when the answer fails, and answers 500 with a JSON error", async () => {
    vi.spyOn(CvSkillMatcher.prototype, "answer").mockRejectedValueOnce(new Error("model unavailable"));
    const { response, body, background } = await ask("Any Terraform?");
    expect(response.status).toBe(500);
    expect(body.error).toMatch(/could not be generated/);
    await background;
    const messages = await control<Received[]>("/drain");
    expect(messages.map((m) => m.body)).toEqual([expect.objectContaining({ eventType: "query", requestId: body.requestId, query: "Any Terraform?" })]);
    expect(messages[0].schemaErrors).toEqual([]);
    expect(errors).toHaveBeenCalledTimes(1); // the answer's failure, not the analytics
    expect(String(errors.mock.calls[0][0])).toContain("model unavailable");
  });

  it("logs a question that is not SQS-safe text with each refused code point replaced by U+FFFD", async () => {
    const question = "Rust\ud800 or Go\uFFFE? \u0001 😀";
    const { response, background } = await ask(question, {}, "POST");
    expect(response.status).toBe(200);
    await background;
    const [message] = await control<Received[]>("/drain");
    // Compared as JSON text (lone surrogates escaped): a failure diff with a lone surrogate would break the test pool's WebSocket.
    expect(JSON.stringify(message.body.query)).toBe(JSON.stringify("Rust\uFFFD or Go\uFFFD? \uFFFD 😀"));
    expect(message.schemaErrors).toEqual([]);
    expect(errors).not.toHaveBeenCalled();
  });

  it("counts a question's length in code points: 4096 emoji are accepted and logged, 4097 are not", async () => {
    const accepted = await ask("😀".repeat(4096), {}, "POST");
    expect(accepted.response.status).toBe(200);
    await accepted.background;
    const [message] = await control<Received[]>("/drain");
    expect(message.body.query).toBe("😀".repeat(4096));
    expect(message.schemaErrors).toEqual([]);
    const refused = await ask("😀".repeat(4097), {}, "POST");
    expect(refused.response.status).toBe(400);
  });

  it("rejects a missing question with 400 and logs nothing", async () => {
    const ctx = createExecutionContext();
    const response = await worker.fetch(new Request("https://cv.example/ask"), baseEnv, ctx);
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(400);
    expect(await control<Received[]>("/drain")).toEqual([]);
  });

  for (const [name, overrides, attempts] of [
    ["down (connection refused)", at(moto.downQueueUrl), 3],
    ["answering 403 (a key without permission)", { AWS_ACCESS_KEY_ID: moto.deniedKeyId, AWS_SECRET_ACCESS_KEY: moto.deniedSecret }, 1],
    ["failing with 500", at(moto.failingQueueUrl), 3],
  ] as const) {
    it(`still answers 200 at once when SQS is ${name}, and logs the failure in one line`, async () => {
      const { response, answeredMs, background } = await ask("Is there Kubernetes experience?", overrides);
      expect(response.status).toBe(200);
      expect(answeredMs).toBeLessThan(500); // generous: the answer never waits on SQS
      await background;
      expect(errors).toHaveBeenCalledTimes(1); // one line for the request's two events
      const line = String(errors.mock.calls[0][0]);
      expect(line).toContain(`2 of 2 event(s) not delivered after ${attempts} attempt(s)`);
      expect(line).toMatch(/query event .* response event/);
      expect(line).not.toContain("AWS_SECRET_ACCESS_KEY" in overrides ? overrides.AWS_SECRET_ACCESS_KEY : moto.producerSecret);
      expect(line).not.toContain("Kubernetes"); // never the question text
      if (name.startsWith("failing")) expect(await control<number>("/attempts")).toBe(3); // 3 attempts of one batch, no more
    });
  }

  it("still answers at once when SQS is slow (+50 ms), and the events arrive", async () => {
    const { response, answeredMs, background } = await ask("Any DynamoDB?", at(moto.slowQueueUrl));
    expect(response.status).toBe(200);
    expect(answeredMs).toBeLessThan(50 + 500);
    await background;
    expect(errors).not.toHaveBeenCalled();
    expect(await control<Received[]>("/drain")).toHaveLength(2);
  });
});

describe("logAnalyticsEvents: retries", () => {
  it("retries only the failed entry of a batch", async () => {
    const result = await logAnalyticsEvents([query("retry-1"), response("retry-1")], { ...baseEnv, ...stubQueue("retry-once") }, { backoffMs: 5 });
    expect(result).toEqual({ ok: true, attempts: 2, delivered: 2 });
    expect(await control<StubRequest[]>("/stub-log")).toEqual([
      { behaviour: "retry-once", target: "AmazonSQS.SendMessageBatch", ids: ["0", "1"] },
      { behaviour: "retry-once", target: "AmazonSQS.SendMessageBatch", ids: ["1"] },
    ]);
    expect(errors).not.toHaveBeenCalled();
  });

  it("does not retry an entry that failed with SenderFault: true", async () => {
    const result = await logAnalyticsEvents([query("fault-1"), response("fault-1")], { ...baseEnv, ...stubQueue("sender-fault") }, { backoffMs: 5 });
    expect(result).toMatchObject({ ok: false, attempts: 1, delivered: 1 });
    expect(await control<StubRequest[]>("/stub-log")).toHaveLength(1);
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0][0])).toContain('1 of 2 event(s) not delivered after 1 attempt(s): response event for request "fault-1": failed entry InvalidParameterValue (sender fault)');
  });

  for (const behaviour of ["html", "truncated"]) {
    it(`does not count a 200 that is not a SendMessageBatch answer (${behaviour}) as delivered`, async () => {
      const result = await logAnalyticsEvents([query(`${behaviour}-1`), response(`${behaviour}-1`)], { ...baseEnv, ...stubQueue(behaviour) }, { backoffMs: 5 });
      expect(result).toMatchObject({ ok: false, attempts: 3, delivered: 0 });
      expect(result.error).toContain("HTTP 200 but not a SendMessageBatch answer");
      expect(errors).toHaveBeenCalledTimes(1);
    });
  }

  it("retries a connection closed without an answer, at most 3 attempts in all", async () => {
    const result = await logAnalyticsEvents([query("hangup-1"), response("hangup-1")], { ...baseEnv, ...stubQueue("hangup") }, { backoffMs: 5 });
    expect(result).toMatchObject({ ok: false, attempts: 3, delivered: 0 });
    expect(result.error).toMatch(/^network error/);
    expect(await control<StubRequest[]>("/stub-log")).toHaveLength(3);
    expect(errors).toHaveBeenCalledTimes(1);
  });

  for (const behaviour of ["stall", "stall-500"]) {
    it(`bounds the whole exchange, body included: a body that stalls after its headers times out (${behaviour})`, async () => {
      const started = performance.now();
      const result = await logAnalyticsEvent(query(`${behaviour}-1`), { ...baseEnv, ...stubQueue(behaviour) }, { attemptTimeoutMs: 200, backoffMs: 5 });
      expect(result).toMatchObject({ ok: false, attempts: 3 });
      expect(result.error).toBe("timeout after 200 ms");
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(await control<StubRequest[]>("/stub-log")).toHaveLength(3);
    }, 10_000);
  }

  it("bounds each attempt with a timeout and gives up after 3 attempts without rejecting", async () => {
    // The slow proxy adds 50 ms; a 20 ms attempt timeout makes every attempt time out.
    const started = performance.now();
    const result = await logAnalyticsEvent(query("timeout-1", "Go?"), { ...baseEnv, ...at(moto.slowQueueUrl) }, { attemptTimeoutMs: 20, backoffMs: 5 });
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
    const result = await logAnalyticsEvent(query("r".repeat(128)), baseEnv);
    expect(result).toEqual({ ok: true, attempts: 1, delivered: 1 });
    const [message] = (await control<Received[]>("/drain")).filter((m) => m.body.requestId === "r".repeat(128));
    expect(message.dedupId).toBe(long);
    expect(message.groupId).toBe("r".repeat(128));
  });
});

describe("logAnalyticsEvents: only valid events, only to SQS", () => {
  it("does not send an event that breaks the contract, and says why in one line", async () => {
    const result = await logAnalyticsEvents([query("bad-1", "Python\ud800?"), response("bad-1")], baseEnv);
    expect(result).toMatchObject({ ok: false, attempts: 1, delivered: 1 });
    expect(result.error).toContain("invalid event, not sent: query: a character SQS refuses");
    expect(errors).toHaveBeenCalledTimes(1);
    expect((await control<Received[]>("/drain")).map((m) => m.body.eventType)).toEqual(["response"]);
  });

  const attacker = `${moto.stub}/123456789012/ok.fifo`; // a server that would accept the signed events
  for (const [name, overrides] of [
    ["any https origin", { AWS_SQS_URL: "https://collector.example/123456789012/ChatAnalytics-dev-events.fifo" }],
    ["a host that only starts like SQS's", { AWS_SQS_URL: "https://sqs.us-east-1.amazonaws.com.attacker.example/123456789012/ChatAnalytics-dev-events.fifo" }],
    ["SQS's host over http", { AWS_SQS_URL: "http://sqs.us-east-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo" }],
    ["credentials in the URL", { AWS_SQS_URL: "https://user:pw@sqs.us-east-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo" }],
    ["not a FIFO queue path", { AWS_SQS_URL: "https://sqs.us-east-1.amazonaws.com/123456789012/ChatAnalytics-dev-events" }],
    ["a loopback server without ANALYTICS_LOCAL_ENDPOINT", { AWS_SQS_URL: attacker, ANALYTICS_LOCAL_ENDPOINT: undefined }],
    ["a loopback server other than ANALYTICS_LOCAL_ENDPOINT", { AWS_SQS_URL: attacker, ANALYTICS_LOCAL_ENDPOINT: "http://127.0.0.1:1" }],
    ["ANALYTICS_LOCAL_ENDPOINT naming a host that is not loopback", { AWS_SQS_URL: "http://collector.example/123456789012/q.fifo", ANALYTICS_LOCAL_ENDPOINT: "http://collector.example" }],
  ] as const) {
    it(`sends nothing to ${name}: a configuration error, reported once`, async () => {
      const fetches = vi.spyOn(globalThis, "fetch");
      const first = await ask("Does the candidate know Python?", overrides);
      const second = await ask("Any AWS?", overrides);
      await Promise.all([first.background, second.background]);
      expect([first.response.status, second.response.status]).toEqual([200, 200]);
      expect(fetches).not.toHaveBeenCalled();
      expect(await control<StubRequest[]>("/stub-log")).toEqual([]);
      expect(errors).toHaveBeenCalledTimes(1); // once, not per event nor per question
      expect(String(errors.mock.calls[0][0])).toMatch(/^analytics: configuration error, nothing is sent until it is fixed: /);
    });
  }

  it("sends nothing when AWS_REGION disagrees with the queue URL: one configuration line, before any send", async () => {
    const fetches = vi.spyOn(globalThis, "fetch");
    const overrides = { AWS_SQS_URL: "https://sqs.us-east-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo", AWS_REGION: "eu-west-1" };
    for (const q of ["Python?", "AWS?", "Rust?"]) await (await ask(q, overrides)).background;
    expect(fetches).not.toHaveBeenCalled();
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0][0])).toContain("AWS_REGION eu-west-1 disagrees with the queue URL's region us-east-1");
  });

  for (const [url, region] of [
    ["https://sqs.eu-west-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo", "eu-west-1"],
    ["https://sqs-fips.us-gov-west-1.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo", "us-gov-west-1"],
    ["https://ap-southeast-2.queue.amazonaws.com/123456789012/ChatAnalytics-dev-events.fifo", "ap-southeast-2"],
    ["https://sqs.cn-north-1.amazonaws.com.cn/123456789012/ChatAnalytics-dev-events.fifo", "cn-north-1"],
  ]) {
    it(`sends to AWS's SQS endpoint ${new URL(url).host}`, async () => {
      const fetches = vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
        const request = input as Request;
        const { Entries } = JSON.parse(new TextDecoder().decode(await request.arrayBuffer())) as { Entries: { Id: string }[] };
        return new Response(JSON.stringify({ Successful: Entries.map(({ Id }) => ({ Id, MessageId: Id })), Failed: [] }), {
          headers: { "Content-Type": "application/x-amz-json-1.0" },
        });
      });
      const result = await logAnalyticsEvents([query("aws-1"), response("aws-1")], { ...baseEnv, AWS_SQS_URL: url, AWS_REGION: region, ANALYTICS_LOCAL_ENDPOINT: undefined });
      expect(result).toEqual({ ok: true, attempts: 1, delivered: 2 });
      expect(fetches).toHaveBeenCalledTimes(1);
      const request = fetches.mock.calls[0][0] as Request;
      expect(request.url).toBe(`${new URL(url).origin}/`);
      expect(request.headers.get("X-Amz-Target")).toBe("AmazonSQS.SendMessageBatch");
      expect(request.headers.get("Authorization")).toContain(`/${region}/sqs/aws4_request`);
    });
  }

  it("classifies a key id ending in a newline as configuration: not retried, nothing sent", async () => {
    const result = await logAnalyticsEvents([query("key-1"), response("key-1")], { ...baseEnv, ...stubQueue("ok"), AWS_ACCESS_KEY_ID: `${moto.producerKeyId}\n` });
    expect(result).toMatchObject({ ok: false, attempts: 0, delivered: 0 });
    expect(result.error).toMatch(/^configuration: AWS_ACCESS_KEY_ID .* whitespace/);
    expect(await control<StubRequest[]>("/stub-log")).toEqual([]);
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0][0])).not.toContain(moto.producerKeyId);
  });

  it("classifies a signing failure (an invalid header value's TypeError) as configuration: not retried, nothing sent", async () => {
    vi.spyOn(AwsClient.prototype, "sign").mockRejectedValue(new TypeError("Invalid header value."));
    const env = { ...baseEnv, ...stubQueue("ok"), AWS_REGION: "us-west-2" }; // a configuration of its own
    const first = await logAnalyticsEvents([query("sign-1"), response("sign-1")], env);
    const second = await logAnalyticsEvents([query("sign-2")], env);
    expect(first).toMatchObject({ ok: false, attempts: 0, delivered: 0 });
    expect(first.error).toMatch(/^configuration: signing failed \(TypeError\)/);
    expect(second).toMatchObject({ ok: false, attempts: 0 });
    expect(await control<StubRequest[]>("/stub-log")).toEqual([]);
    expect(errors).toHaveBeenCalledTimes(1);
  });

  it("never rejects, even with a malformed queue URL", async () => {
    const result = await logAnalyticsEvent(query("x"), { ...baseEnv, AWS_SQS_URL: "not a url" });
    expect(result.ok).toBe(false);
    expect(errors).toHaveBeenCalledTimes(1);
  });
});
