/**
 * Fire-and-forget analytics for a Worker: `logAnalyticsEvents(events, env)` sends a request's events to
 * the SQS FIFO queue in ONE `SendMessageBatch` request (one signature) and returns a promise that never
 * rejects, made for `ctx.waitUntil`. `logAnalyticsEvent(event, env)` is the same for one event.
 *
 * - Order: the entries go in the order given (the Worker gives query, then response). They share one
 *   MessageGroupId (the request id), and within one batch and one group SQS FIFO keeps entry order,
 *   so a request's events arrive in order. MessageDeduplicationId is `requestId:eventType` (its
 *   SHA-256 hex past 128 characters), reused by every retry, so a retry never makes a duplicate.
 * - Retries: the batch answer lists `Successful` and `Failed` entries; only failed entries are sent
 *   again, and not those with `SenderFault: true` (they cannot succeed). Throttling, 5xx, network
 *   errors, timeouts and a 200 that is not a SendMessageBatch answer are retried; at most 3 attempts
 *   in all, with exponential backoff and full jitter. Anything else (403 AccessDenied, a missing
 *   queue) is not retried.
 * - Bounds: each attempt, headers AND body, is bounded by `attemptTimeoutMs` (3 s), so a stalled body
 *   cannot keep `waitUntil` pending: at most 3 x 3 s plus backoff.
 * - Where it sends: only to an SQS endpoint, never to whatever AWS_SQS_URL names. The queue URL must be
 *   `https://sqs.<region>.amazonaws.com/<12-digit account>/<name>.fifo` (or `sqs-fips.<region>.amazonaws.com`,
 *   `<region>.queue.amazonaws.com`, `sqs.<region>.amazonaws.com.cn`) with <region> = AWS_REGION.
 *   For development (moto, `make local`, the tests), ANALYTICS_LOCAL_ENDPOINT names one loopback origin
 *   (`http://127.0.0.1:<port>`, `http://localhost:<port>`, `http://[::1]:<port>`) the queue URL may use
 *   instead; it cannot name anything else. Leave it unset in production.
 * - Configuration errors (a queue URL that is not SQS's, a region that disagrees with it, credentials
 *   with whitespace or control characters, anything that makes signing throw) are found before any
 *   send, are never retried, send nothing, and are reported once per isolate (one console.error line).
 * - Contract: every event is checked with `validateEvent` (event-contract.ts) before sending; an
 *   invalid one is not sent and is reported. The logger never rewrites an event.
 * - Reporting: a call that leaves events undelivered logs ONE line (every undelivered event and why),
 *   without credentials or question text, and never throws to the caller.
 *
 * aws4fetch signs the request (15 KiB against the AWS SDK's 390 KiB); the body speaks SQS's JSON
 * protocol. One signing client per isolate. IAM: `sqs:SendMessage` authorizes SendMessageBatch on AWS.
 */
import { AwsClient } from "aws4fetch";
import type { MatchType } from "./contract.generated.js";
import { SCHEMA_VERSION, validateEvent } from "./event-contract.js";
import type { AnalyticsBatcher } from "./batcher.js";

export interface AnalyticsEnv {
  AWS_ACCESS_KEY_ID: string;
  AWS_SECRET_ACCESS_KEY: string;
  AWS_SQS_URL: string;
  AWS_REGION: string;
  /** Development only: the loopback origin of a local SQS (moto), e.g. `http://127.0.0.1:4566`. Unset in production. */
  ANALYTICS_LOCAL_ENDPOINT?: string;
  /**
   * The batcher (batcher.ts), a Durable Object binding to the class `AnalyticsBatcher`: when bound, the
   * events of many questions go to SQS in one request. Unbound, every call sends its own.
   */
  ANALYTICS_BATCHER?: DurableObjectNamespace<AnalyticsBatcher>;
  /** How long the batcher waits for more events after the first of a batch, in ms (default 100, at most 1,000). */
  ANALYTICS_BATCH_WINDOW_MS?: string;
  /** How many batcher objects share the calls (default 1, at most 64): past a few hundred questions a second. */
  ANALYTICS_BATCHER_SHARDS?: string;
}

interface BaseEvent {
  /** The contract's major version (1, the default): a minor revision such as 1.1 only adds optional fields. */
  schemaVersion?: number;
  requestId: string;
  timestamp: number;
  source?: string | null;
  sessionId?: string | null;
  latencyMs?: number | null;
}

export interface QueryEvent extends BaseEvent {
  eventType: "query";
  query: string;
}

export interface ResponseEvent extends BaseEvent {
  eventType: "response";
  matchType: MatchType;
  matchScore: number;
  reasoning: string;
  /** The answering model's name, 1 to 128 characters (contract 1.1); leave it out (or null) when there is none. */
  model?: string | null;
}

export type AnalyticsEvent = QueryEvent | ResponseEvent;

export interface LogOptions {
  /** Bound of one attempt, headers and body, in ms (default 3,000). */
  attemptTimeoutMs?: number;
  /** Retries after the first attempt (default 2, so at most 3 attempts). */
  maxRetries?: number;
  /** First backoff in ms, doubled per retry, with full jitter (default 100). */
  backoffMs?: number;
}

export interface LogResult {
  /** Every event delivered. */
  ok: boolean;
  /** SendMessageBatch requests made (0: nothing was sent). */
  attempts: number;
  /** Events SQS accepted. */
  delivered: number;
  /** Why the first undelivered event was not delivered. */
  error?: string;
}

const DEFAULTS = { attemptTimeoutMs: 3_000, maxRetries: 2, backoffMs: 100 };
const THROTTLING = /Throttl|RequestThrottled|TooManyRequests|ServiceUnavailable|InternalError|KmsThrottled/;
export const MAX_ENTRIES = 10; // SendMessageBatch's limit

// ---------------------------------------------------------------------------------------------
// Where to send: SQS endpoints only.

const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
const AWS_SQS_HOSTS = [
  /^sqs\.([a-z0-9-]+)\.amazonaws\.com$/,
  /^sqs-fips\.([a-z0-9-]+)\.amazonaws\.com$/,
  /^([a-z0-9-]+)\.queue\.amazonaws\.com$/,
  /^sqs\.([a-z0-9-]+)\.amazonaws\.com\.cn$/,
];
const QUEUE_PATH = /^\/\d{12}\/[A-Za-z0-9_-]{1,75}\.fifo$/;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
const HEADER_SAFE = /^[\x21-\x7E]+$/; // what can go in a header and a credential: printable ASCII, no spaces

class ConfigError extends Error {}
class Retryable extends Error {}

interface Target {
  endpoint: string;
  queueUrl: string;
  client: AwsClient;
}

function parseUrl(value: string, name: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
}

/** The SQS endpoint for `env`, or a ConfigError saying what is wrong (never echoing a secret). */
function resolveTarget(env: AnalyticsEnv): Target {
  for (const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] as const) {
    if (typeof env[name] !== "string" || !HEADER_SAFE.test(env[name])) {
      throw new ConfigError(`${name} is empty or holds whitespace or a control character (a trailing newline?)`);
    }
  }
  const region = env.AWS_REGION;
  if (typeof region !== "string" || !REGION.test(region)) throw new ConfigError(`AWS_REGION ${JSON.stringify(region)} is not an AWS region`);
  const url = parseUrl(String(env.AWS_SQS_URL ?? ""), "AWS_SQS_URL");
  if (url.username || url.password || url.search || url.hash || !QUEUE_PATH.test(url.pathname)) {
    throw new ConfigError("AWS_SQS_URL is not a FIFO queue URL (<endpoint>/<12-digit account>/<name>.fifo)");
  }
  const local = env.ANALYTICS_LOCAL_ENDPOINT;
  if (local) {
    const origin = parseUrl(local, "ANALYTICS_LOCAL_ENDPOINT");
    if (!/^https?:$/.test(origin.protocol) || !LOOPBACK.has(origin.hostname) || origin.pathname !== "/" || origin.username || origin.password || origin.search || origin.hash) {
      throw new ConfigError("ANALYTICS_LOCAL_ENDPOINT must be a loopback origin such as http://127.0.0.1:4566");
    }
  }
  if (local && url.origin === new URL(local).origin) {
    // Development: the explicitly named local SQS (moto). No region in its host to compare.
  } else {
    const region_in_host = url.protocol === "https:" && url.port === "" ? AWS_SQS_HOSTS.map((host) => host.exec(url.hostname)?.[1]).find(Boolean) : undefined;
    if (!region_in_host || !REGION.test(region_in_host)) {
      throw new ConfigError(
        `AWS_SQS_URL's host ${url.host} is not an SQS endpoint (https://sqs.<region>.amazonaws.com/...)` +
          (local ? ` nor ANALYTICS_LOCAL_ENDPOINT` : ""),
      );
    }
    if (region_in_host !== region) throw new ConfigError(`AWS_REGION ${region} disagrees with the queue URL's region ${region_in_host}`);
    if (url.hostname.endsWith(".cn") !== region.startsWith("cn-")) throw new ConfigError(`AWS_REGION ${region} does not belong to the queue URL's partition`);
  }
  const client = new AwsClient({
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    region,
    service: "sqs",
    retries: 0, // the retry policy is ours: bounded and aware of what cannot succeed
  });
  return { endpoint: url.origin + "/", queueUrl: url.href, client };
}

/** One target (and signing client) per isolate and configuration; a configuration error is reported once. */
let cached: { key: string; target?: Target; error?: string } | undefined;

function configKey(env: AnalyticsEnv): string {
  return [env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY, env.AWS_SQS_URL, env.AWS_REGION, env.ANALYTICS_LOCAL_ENDPOINT ?? ""].join("\u0000");
}

function reportConfigError(key: string, error: string): void {
  if (cached?.key === key && cached.error) return; // already reported in this isolate
  cached = { key, error };
  console.error(`analytics: configuration error, nothing is sent until it is fixed: ${error}`);
}

function targetFor(env: AnalyticsEnv): Target | { error: string } {
  const key = configKey(env);
  if (cached?.key === key) return cached.target ?? { error: cached.error! };
  try {
    const target = resolveTarget(env);
    cached = { key, target };
    return target;
  } catch (error) {
    const message = error instanceof ConfigError ? error.message : `unexpected: ${String(error)}`;
    reportConfigError(key, message);
    return { error: message };
  }
}

// ---------------------------------------------------------------------------------------------
// One SendMessageBatch exchange.

/** `requestId:eventType`, or its SHA-256 hex digest when over 128 characters (SQS's limit). */
export async function deduplicationId(event: Pick<AnalyticsEvent, "requestId" | "eventType">): Promise<string> {
  const raw = `${event.requestId}:${event.eventType}`;
  if (raw.length <= 128) return raw;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(raw));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

interface Entry {
  Id: string;
  MessageBody: string;
  MessageGroupId: string;
  MessageDeduplicationId: string;
}

interface BatchAnswer {
  successful: Set<string>;
  /** Failed entries: reason, and whether a retry can succeed (not a sender fault). */
  failed: Map<string, { reason: string; retry: boolean }>;
}

function decode(bytes: ArrayBuffer): string {
  return new TextDecoder().decode(bytes);
}

/** A short, printable excerpt of an answer for a log line. */
function excerpt(text: string): string {
  return JSON.stringify(text.slice(0, 80));
}

function errorName(text: string): string {
  const code = /"__type"\s*:\s*"([^"]+)"|<Code>([^<]+)<\/Code>/.exec(text);
  return code ? ((code[1] ?? code[2] ?? "").split("#").pop() ?? "") : "";
}

/** The parsed answer if it is a SendMessageBatch result accounting for every entry sent, else null. */
function batchAnswer(text: string, ids: Set<string>): BatchAnswer | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof parsed !== "object" || parsed === null) return null;
  const { Successful = [], Failed = [] } = parsed as { Successful?: unknown; Failed?: unknown };
  if (!Array.isArray(Successful) || !Array.isArray(Failed) || !("Successful" in parsed || "Failed" in parsed)) return null;
  const answer: BatchAnswer = { successful: new Set(), failed: new Map() };
  for (const entry of Successful as { Id?: unknown }[]) {
    if (typeof entry?.Id !== "string" || !ids.has(entry.Id)) return null;
    answer.successful.add(entry.Id);
  }
  for (const entry of Failed as { Id?: unknown; SenderFault?: unknown; Code?: unknown }[]) {
    if (typeof entry?.Id !== "string" || !ids.has(entry.Id) || answer.successful.has(entry.Id)) return null;
    const code = typeof entry.Code === "string" ? entry.Code.slice(0, 60) : "unknown";
    const senderFault = entry.SenderFault === true;
    answer.failed.set(entry.Id, { reason: `failed entry ${code}${senderFault ? " (sender fault)" : ""}`, retry: !senderFault });
  }
  if (answer.successful.size + answer.failed.size !== ids.size) return null;
  return answer;
}

async function exchange(request: Request, ids: Set<string>, signal: AbortSignal, timeoutMs: number): Promise<BatchAnswer> {
  let response: Response;
  try {
    response = await fetch(request, { signal });
  } catch (error) {
    throw new Retryable(signal.aborted ? `timeout after ${timeoutMs} ms` : `network error: ${error instanceof Error ? error.message : String(error)}`);
  }
  let text: string;
  try {
    // arrayBuffer + decode: .text() on application/x-amz-json-1.0 makes workerd warn.
    text = decode(await response.arrayBuffer());
  } catch (error) {
    throw new Retryable(signal.aborted ? `timeout after ${timeoutMs} ms` : `answer cut off: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (response.ok) {
    const answer = batchAnswer(text, ids);
    if (!answer) throw new Retryable(`HTTP ${response.status} but not a SendMessageBatch answer: ${excerpt(text)}`);
    return answer;
  }
  const name = errorName(text.slice(0, 500));
  const message = `HTTP ${response.status}${name ? ` ${name}` : ""}`;
  if (response.status >= 500 || response.status === 429 || THROTTLING.test(name)) throw new Retryable(message);
  throw new Error(message);
}

/** Sign and send one batch; the whole exchange (headers and body) is bounded by `timeoutMs`. */
async function sendBatch(target: Target, entries: Entry[], timeoutMs: number): Promise<BatchAnswer> {
  let request: Request;
  try {
    request = await target.client.sign(target.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessageBatch" },
      body: JSON.stringify({ QueueUrl: target.queueUrl, Entries: entries }),
    });
  } catch (error) {
    // Nothing was sent: an invalid header value (TypeError) or anything else signing rejects is configuration.
    throw new ConfigError(`signing failed (${error instanceof Error ? error.name : "error"}): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION`);
  }
  const controller = new AbortController();
  return withTimeout(exchange(request, new Set(entries.map((e) => e.Id)), controller.signal, timeoutMs), timeoutMs, () => {
    controller.abort();
    return new Retryable(`timeout after ${timeoutMs} ms`);
  });
}

/**
 * `work`'s outcome, or `onTimeout()`'s error if `ms` pass first. `work` may still reject after the timeout won:
 * that is not an unhandled rejection. The timer is cleared either way.
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  work.catch(() => {});
  try {
    return await Promise.race([work, timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// The public API.

function describe(event: unknown): string {
  const e = (typeof event === "object" && event !== null ? event : {}) as Partial<AnalyticsEvent>;
  const type = e.eventType === "query" || e.eventType === "response" ? e.eventType : "invalid";
  const id = typeof e.requestId === "string" ? JSON.stringify(e.requestId.slice(0, 140)) : "?";
  return `${type} event for request ${id}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const NOT_SENT = "not sent";

/** What one delivery did, event by event (in the order given). */
export interface Delivery {
  /** SendMessageBatch requests made. */
  attempts: number;
  /** Per event: undefined when SQS accepted it, else why it was not delivered. */
  reasons: (string | undefined)[];
  /** The indexes of the undelivered events, in the order they failed (the first is the call's error). */
  failedOrder: number[];
}

/**
 * Send `events` (in this order) in one SendMessageBatch per 10 events, with the retries above, and say what
 * became of each; logs ONE line for whatever was not delivered (a configuration error is reported once
 * per isolate instead). Never rejects. The batcher (batcher.ts) sends many callers' events through it.
 */
export async function deliverEvents(events: readonly AnalyticsEvent[], env: AnalyticsEnv, options: LogOptions = {}): Promise<Delivery> {
  const { attemptTimeoutMs, maxRetries, backoffMs } = { ...DEFAULTS, ...options };
  const reasons: (string | undefined)[] = events.map(() => NOT_SENT); // until delivered (undefined) or failed (why)
  const failedOrder: number[] = [];
  let attempts = 0;
  const fail = (index: number, reason: string) => {
    reasons[index] = reason;
    failedOrder.push(index);
  };
  const failUnsent = (reason: string) => {
    for (const [index, value] of reasons.entries()) if (value === NOT_SENT) fail(index, reason);
  };
  try {
    const target = targetFor(env);
    if ("error" in target) {
      failUnsent(`configuration: ${target.error}`);
      return { attempts: 0, reasons, failedOrder };
    }

    const entries: { entry: Entry; index: number }[] = [];
    for (const [index, event] of events.entries()) {
      const body = { schemaVersion: SCHEMA_VERSION, ...event };
      const invalid = validateEvent(body);
      if (invalid) {
        fail(index, `invalid event, not sent: ${invalid}`);
        continue;
      }
      const entry = { Id: String(index), MessageBody: JSON.stringify(body), MessageGroupId: event.requestId, MessageDeduplicationId: await deduplicationId(event) };
      entries.push({ entry, index });
    }

    for (let start = 0; start < entries.length; start += MAX_ENTRIES) {
      let pending = entries.slice(start, start + MAX_ENTRIES);
      for (let attempt = 1; pending.length > 0; attempt += 1) {
        attempts += 1;
        const last = attempt > maxRetries;
        let answer: BatchAnswer;
        try {
          answer = await sendBatch(target, pending.map((p) => p.entry), attemptTimeoutMs);
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          if (error instanceof ConfigError) {
            reportConfigError(configKey(env), reason);
            failUnsent(`configuration: ${reason}`);
            return { attempts: attempts - 1, reasons, failedOrder };
          }
          if (error instanceof Retryable && !last) {
            await sleep(Math.random() * backoffMs * 2 ** (attempt - 1));
            continue;
          }
          for (const p of pending) fail(p.index, reason);
          break;
        }
        const retry: typeof pending = [];
        for (const p of pending) {
          const failed = answer.failed.get(p.entry.Id);
          if (!failed) reasons[p.index] = undefined;
          else if (failed.retry && !last) retry.push(p);
          else fail(p.index, failed.reason);
        }
        pending = retry;
        if (pending.length > 0) await sleep(Math.random() * backoffMs * 2 ** (attempt - 1));
      }
    }
  } catch (error) {
    failUnsent(`unexpected: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (failedOrder.length > 0) {
    const lines = failedOrder.map((index) => `${describe(events[index])}: ${reasons[index]}`);
    console.error(`analytics: ${failedOrder.length} of ${events.length} event(s) not delivered after ${attempts} attempt(s): ${lines.join("; ")}`);
  }
  return { attempts, reasons, failedOrder };
}

/** The result of the events `from` to `to` (exclusive) of a delivery: one caller's share of it. */
export function resultOf(delivery: Delivery, from = 0, to = delivery.reasons.length): LogResult {
  let delivered = 0;
  for (let index = from; index < to; index += 1) if (delivery.reasons[index] === undefined) delivered += 1;
  const first = delivery.failedOrder.find((index) => index >= from && index < to);
  const { attempts } = delivery;
  return first === undefined ? { ok: true, attempts, delivered } : { ok: false, attempts, delivered, error: delivery.reasons[first] };
}
