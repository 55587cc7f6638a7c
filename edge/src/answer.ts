/**
 * Answer generation behind one interface: Workers AI in production, a deterministic CV-skills
 * matcher in tests and locally (the same rules as local/demo/answers.py in the repository).
 */

import type { MatchType } from "@chat-analytics/worker-logger";

export type { MatchType };

export interface Answer {
  text: string;
  matchType: MatchType;
  matchScore: number;
  reasoning: string;
  /** What answered: the Workers AI model's name, or the deterministic matcher's (logged as the response's `model`). */
  model: string;
}

export interface AnswerGenerator {
  answer(question: string): Promise<Answer>;
}

export const CV_SKILLS: Record<string, string> = {
  python: "Python (8 years: services, data pipelines, tooling)",
  aws: "AWS (Lambda, SQS, DynamoDB, CloudWatch, IAM)",
  lambda: "AWS Lambda in production since 2018",
  sqs: "SQS FIFO and standard queues, DLQ design",
  dynamodb: "DynamoDB single-table design",
  cdk: "AWS CDK in Python and TypeScript",
  typescript: "TypeScript on Node and Cloudflare Workers",
  cloudflare: "Cloudflare Workers, KV and Workers AI",
  terraform: "Terraform modules for multi-account AWS",
  postgresql: "PostgreSQL schema design and tuning",
  docker: "Docker images and CI pipelines",
  fastapi: "FastAPI services",
  observability: "Metrics, structured logs and alarms",
};
const OTHER_SKILLS = new Set([
  "rust", "golang", "go", "kubernetes", "java", "scala", "react", "angular", "swift", "kotlin",
  "azure", "gcp", "spark", "kafka", "haskell", "php", "ruby", "c++", "cobol", "salesforce", "sap",
]);
const ALIASES: Record<string, string> = { postgres: "postgresql", k8s: "kubernetes", py: "python", workers: "cloudflare", ts: "typescript" };

/** The name the deterministic matcher answers under (the response event's `model`). */
export const MATCHER_MODEL = "cv-skill-matcher";

export class CvSkillMatcher implements AnswerGenerator {
  skillsIn(question: string): string[] {
    const words = (question.toLowerCase().match(/[a-z0-9+#]+/g) ?? []).map((w) => ALIASES[w] ?? w);
    return [...new Set(words.filter((w) => w in CV_SKILLS || OTHER_SKILLS.has(w)))];
  }

  async answer(question: string): Promise<Answer> {
    const asked = this.skillsIn(question);
    if (asked.length === 0) {
      return {
        text: "I can only answer questions about the candidate's skills; try naming a technology.",
        matchType: "none",
        matchScore: 0,
        reasoning: "no known skill named in the question",
        model: MATCHER_MODEL,
      };
    }
    const found = asked.filter((s) => s in CV_SKILLS);
    const missing = asked.filter((s) => !(s in CV_SKILLS));
    const matchScore = Math.round((1000 * found.length) / asked.length) / 10;
    const matchType: MatchType = missing.length === 0 ? "full" : found.length > 0 ? "partial" : "none";
    const parts = found.map((s) => CV_SKILLS[s]);
    if (missing.length) parts.push(`no experience listed with ${missing.join(", ")}`);
    const reasoning = `matched ${found.length} of ${asked.length} skills` + (missing.length ? `; missing: ${missing.join(", ")}` : "");
    return { text: parts.join("; ") + ".", matchType, matchScore, reasoning, model: MATCHER_MODEL };
  }
}

interface AiBinding {
  run(model: string, input: { messages: { role: string; content: string }[] }): Promise<{ response?: string }>;
}

/** Workers AI writes the answer; the match quality comes from the CV matcher, so it stays measurable. */
export class WorkersAiAnswerer implements AnswerGenerator {
  constructor(
    private readonly ai: AiBinding,
    private readonly matcher = new CvSkillMatcher(),
    private readonly model = "@cf/meta/llama-3.1-8b-instruct",
  ) {}

  async answer(question: string): Promise<Answer> {
    const match = await this.matcher.answer(question);
    const cv = Object.values(CV_SKILLS).join("\n");
    const result = await this.ai.run(this.model, {
      messages: [
        { role: "system", content: `Answer questions about this candidate's CV in two sentences, only from it:\n${cv}` },
        { role: "user", content: question },
      ],
    });
    return { ...match, text: result.response ?? match.text, model: this.model };
  }
}

/** Takes `delayMs` per answer (a timer, like waiting on a model), then answers with `inner`. */
export class DelayedAnswerer implements AnswerGenerator {
  constructor(
    private readonly inner: AnswerGenerator,
    private readonly delayMs: number,
  ) {}

  async answer(question: string): Promise<Answer> {
    await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return this.inner.answer(question);
  }
}
