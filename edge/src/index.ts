/**
 * The CV chatbot Worker: answers at once; the query and the answer's match quality are logged to
 * SQS in the background through `ctx.waitUntil`, so analytics never delays or breaks an answer.
 */
import { type AnswerGenerator, CvSkillMatcher, DelayedAnswerer, WorkersAiAnswerer } from "./answer";
import { type AnalyticsEnv, logAnalyticsEvent } from "./sqs-logger";

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

/** Resolves on a later macrotask, once the handler has returned its response. */
function afterResponse(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
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
    if (!question || question.length > 4096) return json(400, { error: "ask with ?q=... or POST {\"question\": \"...\"} (1 to 4096 characters)" });

    const started = Date.now();
    const requestId = crypto.randomUUID();
    const mode = env.ANALYTICS_MODE ?? "waitUntil";
    const pending: Promise<unknown>[] = [];
    const log = (event: Parameters<typeof logAnalyticsEvent>[0]) => {
      if (mode === "off") return;
      if (mode === "await") {
        pending.push(logAnalyticsEvent(event, env));
        return;
      }
      // Start after the response is on its way: signing and serializing would otherwise share the
      // isolate's event loop with the answer (a few milliseconds at the median).
      ctx.waitUntil(afterResponse().then(() => logAnalyticsEvent(event, env)));
    };

    log({ eventType: "query", requestId, timestamp: started, query: question, source: SOURCE });
    const answer = await generatorFor(env).answer(question);
    const latencyMs = Date.now() - started;
    log({
      eventType: "response",
      requestId,
      timestamp: Date.now(),
      matchType: answer.matchType,
      matchScore: answer.matchScore,
      reasoning: answer.reasoning,
      latencyMs,
      source: SOURCE,
    });
    await Promise.all(pending);
    return json(200, { requestId, answer: answer.text, matchType: answer.matchType, matchScore: answer.matchScore });
  },
} satisfies ExportedHandler<Env>;
