/**
 * Fire-and-forget analytics for a Worker: `logAnalyticsEvent(event, env)` sends one event to the
 * SQS FIFO queue and returns a promise that never rejects, made for `ctx.waitUntil`.
 *
 * aws4fetch signs the request (15 KiB against the AWS SDK's 390 KiB) and the body speaks SQS's JSON
 * protocol. One signing client per isolate. Each attempt is bounded by a timeout; throttling, 5xx,
 * network errors and timeouts are retried at most twice, well inside waitUntil's 30 s; anything that
 * cannot succeed (403 AccessDenied, a missing queue) is not retried. A failure is logged once, as one
 * line without credentials, and never reaches the caller.
 */
import { AwsClient } from "aws4fetch";

export interface AnalyticsEnv {
  AWS_ACCESS_KEY_ID: string;
  AWS_SECRET_ACCESS_KEY: string;
  AWS_SQS_URL: string;
  AWS_REGION: string;
}

interface BaseEvent {
  schemaVersion?: number;
  requestId: string;
  timestamp: number;
  source?: string;
  sessionId?: string;
  latencyMs?: number;
}

export interface QueryEvent extends BaseEvent {
  eventType: "query";
  query: string;
}

export interface ResponseEvent extends BaseEvent {
  eventType: "response";
  matchType: "full" | "partial" | "none";
  matchScore: number;
  reasoning: string;
}

export type AnalyticsEvent = QueryEvent | ResponseEvent;

export interface LogOptions {
  /** Bound of one attempt, in ms (default 3,000). */
  attemptTimeoutMs?: number;
  /** Retries after the first attempt (default 2, so at most 3 attempts). */
  maxRetries?: number;
  /** First backoff in ms, doubled per retry, with full jitter (default 100). */
  backoffMs?: number;
}

export interface LogResult {
  ok: boolean;
  attempts: number;
  error?: string;
}

const DEFAULTS = { attemptTimeoutMs: 3_000, maxRetries: 2, backoffMs: 100 };
const THROTTLING = /Throttl|RequestThrottled|TooManyRequests|ServiceUnavailable|InternalError/;

let cached: { key: string; client: AwsClient } | undefined;

/** One signing client per isolate (and per key: a rotated secret gets a new one). */
function clientFor(env: AnalyticsEnv): AwsClient {
  const key = `${env.AWS_ACCESS_KEY_ID}\u0000${env.AWS_SECRET_ACCESS_KEY}\u0000${env.AWS_REGION}`;
  if (cached?.key !== key) {
    cached = {
      key,
      client: new AwsClient({
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        region: env.AWS_REGION,
        service: "sqs",
        retries: 0, // the retry policy is ours: bounded and aware of what cannot succeed
      }),
    };
  }
  return cached.client;
}

/** `requestId:eventType`, or its SHA-256 hex digest when over 128 characters (SQS's limit). */
export async function deduplicationId(event: Pick<AnalyticsEvent, "requestId" | "eventType">): Promise<string> {
  const raw = `${event.requestId}:${event.eventType}`;
  if (raw.length <= 128) return raw;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(raw));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

class Retryable extends Error {}

async function attempt(client: AwsClient, endpoint: string, body: string, timeoutMs: number): Promise<void> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response: Response;
  try {
    response = await client.fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessage" },
      body,
      signal: controller.signal,
    });
  } catch (error) {
    throw new Retryable(controller.signal.aborted ? `timeout after ${timeoutMs} ms` : `network error: ${String(error)}`);
  } finally {
    clearTimeout(timer);
  }
  if (response.ok) {
    await response.body?.cancel();
    return;
  }
  const text = (await response.text()).slice(0, 300);
  const code = /"__type"\s*:\s*"([^"]+)"|<Code>([^<]+)<\/Code>/.exec(text);
  const name = code ? (code[1] ?? code[2] ?? "").split("#").pop() : "";
  const message = `HTTP ${response.status}${name ? ` ${name}` : ""}`;
  if (response.status >= 500 || response.status === 429 || THROTTLING.test(name ?? "")) throw new Retryable(message);
  throw new Error(message);
}

/**
 * Send `event` to the queue in `env.AWS_SQS_URL`. Resolves when delivered or given up; never rejects.
 * MessageGroupId is the request id (a request's query and response stay in order; requests run in
 * parallel) and MessageDeduplicationId is `requestId:eventType`, reused by every retry.
 */
export async function logAnalyticsEvent(event: AnalyticsEvent, env: AnalyticsEnv, options: LogOptions = {}): Promise<LogResult> {
  const { attemptTimeoutMs, maxRetries, backoffMs } = { ...DEFAULTS, ...options };
  let attempts = 0;
  try {
    const endpoint = new URL(env.AWS_SQS_URL).origin + "/";
    const body = JSON.stringify({
      QueueUrl: env.AWS_SQS_URL,
      MessageBody: JSON.stringify({ schemaVersion: 1, ...event }),
      MessageGroupId: event.requestId,
      MessageDeduplicationId: await deduplicationId(event),
    });
    const client = clientFor(env);
    for (;;) {
      attempts += 1;
      try {
        await attempt(client, endpoint, body, attemptTimeoutMs);
        return { ok: true, attempts };
      } catch (error) {
        if (!(error instanceof Retryable) || attempts > maxRetries) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * backoffMs * 2 ** (attempts - 1)));
      }
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    console.error(`analytics: ${event?.eventType} event for request ${event?.requestId} not delivered after ${attempts} attempt(s): ${reason}`);
    return { ok: false, attempts, error: reason };
  }
}
