/**
 * The batcher: one Durable Object that gathers the events of many questions, from every isolate of the
 * Worker, into one SendMessageBatch request (at most 10 entries). Why: at the edge each question is its own
 * request, so without it every question costs SQS a send, and downstream a receive, a delete, a Lambda
 * invocation and a Firehose record of its own (FIFO event source mappings take no batching window: a receive
 * carries what was sent together). Through the batcher a send carries up to five questions, and so, in
 * the same proportion, does everything after it (docs/cost.md).
 *
 * - Who waits: only `ctx.waitUntil`. The Worker calls the batcher after the answer is out; the call resolves
 *   when its own events are delivered or given up (the same `LogResult` as a direct send), so nothing is
 *   acknowledged before SQS has it.
 * - When a batch goes: when it holds 10 entries (SendMessageBatch's limit; a question's events are never
 *   split between batches) or `ANALYTICS_BATCH_WINDOW_MS` after its first event (default 100 ms, at most
 *   1,000), whichever comes first. Analytics arrive that much later; answers are not touched.
 * - Order: a question's events are contiguous in its batch and keep their order (one message group).
 * - Failure: if the batcher throws or does not answer within its window plus a send's worst case
 *   (`BATCHER_DELIVERY_BOUND_MS`), the Worker sends the events itself, as without a batcher. Had the batcher
 *   sent them after all, SQS drops the copy: the deduplication ids are the same and FIFO deduplicates
 *   within 5 minutes, and both sends end well within that.
 * - Cost on Cloudflare (docs/cost.md): one Durable Object request per question (an RPC call), and the
 *   object's wall time while it holds events.
 * - Scale: one object serves the whole Worker by default, and an object is single-threaded, in one place
 *   (far colos add their round trip to it, inside `waitUntil`). Past a few hundred questions a second, set
 *   `ANALYTICS_BATCHER_SHARDS` (1 to 64): each call picks one of that many objects at random, each batching
 *   its share.
 */
import { DurableObject } from "cloudflare:workers";
import { type AnalyticsEnv, type AnalyticsEvent, type LogResult, MAX_ENTRIES, deliverEvents, resultOf, withTimeout } from "./sqs-logger.js";

export const DEFAULT_BATCH_WINDOW_MS = 100;
export const MAX_BATCH_WINDOW_MS = 1_000;
/**
 * How long a batch's delivery can take at most once it is sent: 3 attempts of at most 3 s each and two
 * backoffs (100 and 200 ms at most) with defaults, rounded up. The Worker stops waiting for the batcher after
 * the window plus this, then sends directly (at most as long again): 1 + 10 + 9.3 s < waitUntil's 30 s.
 */
export const BATCHER_DELIVERY_BOUND_MS = 10_000;
/** The batcher object every isolate of the Worker sends to (by name), or the first of its shards. */
export const BATCHER_NAME = "analytics-batcher";
export const MAX_BATCHER_SHARDS = 64;

const reported = new Map<string, string>(); // setting -> the bad value last reported

/** A whole-number setting from `min` to `max`, else `fallback` (a bad value is reported once, one line). */
function wholeNumber(name: string, value: string | undefined, min: number, max: number, fallback: number, unit: string): number {
  if (value === undefined || value === "") return fallback;
  const number = Number(value);
  if (/^\d+$/.test(String(value).trim()) && number >= min && number <= max) return number;
  if (reported.get(name) !== value) {
    reported.set(name, value);
    console.error(`analytics: ${name} ${JSON.stringify(String(value).slice(0, 40))} is not a whole number ${unit}from ${min} to ${max}; using ${fallback}`);
  }
  return fallback;
}

/** `ANALYTICS_BATCH_WINDOW_MS` as a number: an integer 0 to 1,000, else the default (reported once). */
export function batchWindowMs(env: Pick<AnalyticsEnv, "ANALYTICS_BATCH_WINDOW_MS">): number {
  return wholeNumber("ANALYTICS_BATCH_WINDOW_MS", env.ANALYTICS_BATCH_WINDOW_MS, 0, MAX_BATCH_WINDOW_MS, DEFAULT_BATCH_WINDOW_MS, "of ms ");
}

/** The batcher object a call goes to: the one, or one of `ANALYTICS_BATCHER_SHARDS` at random. */
export function batcherName(env: Pick<AnalyticsEnv, "ANALYTICS_BATCHER_SHARDS">, random: () => number = Math.random): string {
  const shards = wholeNumber("ANALYTICS_BATCHER_SHARDS", env.ANALYTICS_BATCHER_SHARDS, 1, MAX_BATCHER_SHARDS, 1, "");
  const shard = Math.min(shards - 1, Math.floor(random() * shards));
  return shard === 0 ? BATCHER_NAME : `${BATCHER_NAME}-${shard}`;
}

/** How long the Worker waits for the batcher before it sends the events itself. */
export function batcherTimeoutMs(env: Pick<AnalyticsEnv, "ANALYTICS_BATCH_WINDOW_MS">): number {
  return batchWindowMs(env) + BATCHER_DELIVERY_BOUND_MS;
}

interface Waiting {
  events: AnalyticsEvent[];
  resolve: (result: LogResult) => void;
}

/**
 * The Durable Object class (bind it as `ANALYTICS_BATCHER`, export it from the Worker's main module). Holds
 * nothing in storage: events wait in memory only while their callers wait for them.
 */
export class AnalyticsBatcher extends DurableObject<AnalyticsEnv> {
  #waiting: Waiting[] = [];
  #entries = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Calls, batches sent and events in them, since the object started (`stats()`: benchmarks and tests). */
  #calls = 0;
  #batches = 0;
  #events = 0;

  /** RPC: send `events` (one question's, in order) in the next batch; resolves with their own result. */
  log(events: AnalyticsEvent[]): Promise<LogResult> {
    this.#calls += 1;
    if (!Array.isArray(events)) return Promise.resolve({ ok: false, attempts: 0, delivered: 0, error: "the batcher takes an array of events" });
    if (events.length === 0) return Promise.resolve({ ok: true, attempts: 0, delivered: 0 });
    if (this.#entries > 0 && this.#entries + events.length > MAX_ENTRIES) this.#flush();
    const result = new Promise<LogResult>((resolve) => this.#waiting.push({ events, resolve }));
    this.#entries += events.length;
    if (this.#entries >= MAX_ENTRIES) this.#flush();
    else this.#timer ??= setTimeout(() => this.#flush(), batchWindowMs(this.env));
    return result;
  }

  /** RPC: calls taken, batches sent and the events they held, since the object started. */
  stats(): { calls: number; batches: number; events: number } {
    return { calls: this.#calls, batches: this.#batches, events: this.#events };
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#waiting;
    this.#waiting = [];
    this.#entries = 0;
    if (batch.length > 0) void this.#send(batch);
  }

  async #send(batch: Waiting[]): Promise<void> {
    const events = batch.flatMap((waiting) => waiting.events);
    this.#batches += 1;
    this.#events += events.length;
    // deliverEvents never rejects (it catches what it does not expect and reports it per event).
    const delivery = await deliverEvents(events, this.env);
    let from = 0;
    for (const waiting of batch) {
      waiting.resolve(resultOf(delivery, from, from + waiting.events.length));
      from += waiting.events.length;
    }
  }
}

/**
 * The Worker's side: `events` through the batcher, or null when it failed or did not answer in time (the
 * caller then sends them itself; one line says why).
 */
export async function throughBatcher(namespace: DurableObjectNamespace<AnalyticsBatcher>, events: readonly AnalyticsEvent[], env: AnalyticsEnv): Promise<LogResult | null> {
  const timeoutMs = batcherTimeoutMs(env);
  try {
    const stub = namespace.get(namespace.idFromName(batcherName(env)));
    return await withTimeout(stub.log([...events]) as Promise<LogResult>, timeoutMs, () => new Error(`no answer within ${timeoutMs} ms`));
  } catch (error) {
    console.error(`analytics: the batcher failed (${error instanceof Error ? error.message.slice(0, 200) : String(error)}); sending directly`);
    return null;
  }
}
