/**
 * The public entry: `logAnalyticsEvents(events, env)` sends through the batcher when the Worker binds one
 * (batcher.ts), else (or when the batcher fails) directly (sqs-logger.ts). Either way it never rejects and
 * resolves when the events are delivered or given up: made for `ctx.waitUntil`.
 */
import { throughBatcher } from "./batcher.js";
import { type AnalyticsEnv, type AnalyticsEvent, type LogOptions, type LogResult, deliverEvents, resultOf } from "./sqs-logger.js";

/**
 * Send `events` (in this order) to the queue in `env.AWS_SQS_URL`: with `ANALYTICS_BATCHER` bound, in the
 * batcher's next SendMessageBatch together with other questions' events; without it (or when the batcher
 * fails), in one SendMessageBatch request per 10 events. `options` apply to the direct sends.
 */
export async function logAnalyticsEvents(events: readonly AnalyticsEvent[], env: AnalyticsEnv, options: LogOptions = {}): Promise<LogResult> {
  if (env.ANALYTICS_BATCHER !== undefined && events.length > 0) {
    const batched = await throughBatcher(env.ANALYTICS_BATCHER, events, env);
    if (batched) return batched;
  }
  return resultOf(await deliverEvents(events, env, options));
}

/** One event: `logAnalyticsEvents([event], env, options)`. */
export function logAnalyticsEvent(event: AnalyticsEvent, env: AnalyticsEnv, options: LogOptions = {}): Promise<LogResult> {
  return logAnalyticsEvents([event], env, options);
}
