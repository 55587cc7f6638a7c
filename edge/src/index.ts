/**
 * The CV chatbot Worker: answers at once; the query and the answer's match quality are logged to
 * SQS in the background through `ctx.waitUntil`, so analytics never delays or breaks an answer.
 *
 * Per question: the query event, then the response event, sent after the answer is returned
 * (@chat-analytics/worker-logger, packages/worker-logger/): through the batcher (a Durable Object, bound as
 * ANALYTICS_BATCHER), which puts up to five questions in one SendMessageBatch, or, unbound or failing, in ONE
 * SendMessageBatch of the question's own. When the answer generator throws, the Worker answers
 * 500 with a JSON error and the query event is still logged (there is no response event). A question
 * is 1 to 4096 code points; the logged copy is made SQS-safe (refused code points become U+FFFD).
 */
import { type Answer, type AnswerGenerator, CvSkillMatcher, DelayedAnswerer, WorkersAiAnswerer } from "./answer";
import { type AnalyticsEnv, type AnalyticsEvent, logAnalyticsEvents, toSqsSafe } from "@chat-analytics/worker-logger";

// The batcher's Durable Object class (bound as ANALYTICS_BATCHER in wrangler.jsonc): many questions' events
// share one SendMessageBatch, and so one receive, one invocation and one Firehose record downstream.
export { AnalyticsBatcher } from "@chat-analytics/worker-logger";

export interface Env extends AnalyticsEnv {
  AI?: ConstructorParameters<typeof WorkersAiAnswerer>[0];
  /** "off" disables analytics (benchmarks); "await" awaits it before answering (to show its cost). */
  ANALYTICS_MODE?: string;
  /** Local runs and benchmarks: make the deterministic matcher take this long, like a model call. */
  ANSWER_DELAY_MS?: string;
}

const SOURCE = "cv-worker";
const matcher = new CvSkillMatcher();

function generatorFor(env: Env): AnswerGenerator {
  if (env.AI) return new WorkersAiAnswerer(env.AI, matcher);
  const delayMs = Number(env.ANSWER_DELAY_MS ?? 0);
  return delayMs > 0 ? new DelayedAnswerer(matcher, delayMs) : matcher;
}

/**
 * Resolves once the runtime has had the chance to write the response out: 2 ms later. A zero-delay
 * timer ran before the response was flushed, and the logger's CPU (validating, serializing, signing:
 * well under a millisecond) then delayed the answer itself (+0.8 ms at the median in bench/latency.mjs);
 * 1 to 3 ms all measure at the noise floor. waitUntil leaves 30 s, so the delay costs nothing.
 */
const LOG_START_DELAY_MS = 2;
function afterResponse(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, LOG_START_DELAY_MS));
}

function codePointCount(text: string): number {
  if (text.length <= 4096) return text.length; // at most as many code points as UTF-16 units
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

async function readQuestion(request: Request, url: URL): Promise<string | null> {
  if (request.method === "GET") return url.searchParams.get("q");
  if (request.method === "POST") {
    const body = (await request.json().catch(() => null)) as { question?: unknown } | null;
    return typeof body?.question === "string" ? body.question : null;
  }
  return null;
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== "/ask") return json(404, { error: `no route ${url.pathname}` });
    const question = (await readQuestion(request, url))?.trim();
    if (!question || codePointCount(question) > 4096) return json(400, { error: "ask with ?q=... or POST {\"question\": \"...\"} (1 to 4096 characters)" });

    const started = Date.now();
    const requestId = crypto.randomUUID();
    const mode = env.ANALYTICS_MODE ?? "waitUntil";
    // The question is logged as SQS-safe text: each code point SQS refuses becomes U+FFFD (toSqsSafe, from the package).
    const events: AnalyticsEvent[] = [{ eventType: "query", requestId, timestamp: started, query: toSqsSafe(question), source: SOURCE }];
    const send = async () => {
      if (mode === "off") return;
      if (mode === "await") {
        await logAnalyticsEvents(events, env);
        return;
      }
      // One SendMessageBatch (query, then response), started after the response is on its way: signing and
      // serializing would otherwise share the isolate's event loop with the answer.
      ctx.waitUntil(afterResponse().then(() => logAnalyticsEvents(events, env)));
    };

    let answer: Answer;
    try {
      answer = await generatorFor(env).answer(question);
    } catch (error) {
      // No answer, so no response event; the question is still logged.
      console.error(`answer failed for request ${requestId}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
      await send();
      return json(500, { error: "the answer could not be generated; try again", requestId });
    }
    events.push({
      eventType: "response",
      requestId,
      timestamp: Date.now(),
      matchType: answer.matchType,
      matchScore: answer.matchScore,
      reasoning: toSqsSafe(answer.reasoning),
      latencyMs: Date.now() - started,
      source: SOURCE,
      model: answer.model, // contract 1.1: the answering model
    });
    await send();
    return json(200, { requestId, answer: answer.text, matchType: answer.matchType, matchScore: answer.matchScore });
  },
} satisfies ExportedHandler<Env>;
