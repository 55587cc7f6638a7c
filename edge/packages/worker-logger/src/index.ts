/**
 * @chat-analytics/worker-logger: fire-and-forget analytics from a Cloudflare Worker to the chat-analytics
 * SQS FIFO queue. `logAnalyticsEvents(events, env)` sends a request's events in ONE SendMessageBatch and
 * returns a promise that never rejects, made for `ctx.waitUntil`; bind `AnalyticsBatcher` (a Durable Object)
 * as ANALYTICS_BATCHER and many questions share one request; `toSqsSafe` makes user text loggable;
 * `validateEvent` is the event contract the logger checks before sending.
 */
export {
  type AnalyticsEnv,
  type AnalyticsEvent,
  type LogOptions,
  type LogResult,
  type QueryEvent,
  type ResponseEvent,
  deduplicationId,
} from "./sqs-logger.js";
export { logAnalyticsEvent, logAnalyticsEvents } from "./log.js";
export {
  AnalyticsBatcher,
  BATCHER_DELIVERY_BOUND_MS,
  BATCHER_NAME,
  DEFAULT_BATCH_WINDOW_MS,
  MAX_BATCH_WINDOW_MS,
  batchWindowMs,
  batcherName,
  batcherTimeoutMs,
} from "./batcher.js";
export { toSqsSafe, validateEvent } from "./event-contract.js";
export { CANARY_SOURCE, MATCH_TYPES, type MatchType } from "./contract.generated.js";
