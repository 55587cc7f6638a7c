// The event contract: the hand-written validator (validateEvent, from @chat-analytics/worker-logger) and ajv with the JSON Schema
// must agree with every shared example in schema/analytics-event.examples.json.
import { env } from "cloudflare:test";
import Ajv2020 from "ajv/dist/2020";
import { describe, expect, it } from "vitest";
import { toSqsSafe, validateEvent } from "@chat-analytics/worker-logger";

interface Examples {
  valid: { name: string; event: unknown }[];
  invalid: ({ name: string; reason: string; event: unknown } | { name: string; reason: string; body: string })[];
}

const examples: Examples | null = env.CONTRACT_EXAMPLES ? JSON.parse(env.CONTRACT_EXAMPLES) : null;
const schema: object | null = env.CONTRACT_SCHEMA ? JSON.parse(env.CONTRACT_SCHEMA) : null;
const ajvValidate = schema ? new Ajv2020({ allErrors: false, strict: false }).compile(schema) : null;

/** ajv's verdict on a raw SQS body: it must parse as JSON and pass the schema. */
function ajvAcceptsBody(body: string): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return false;
  }
  return ajvValidate!(parsed) as boolean;
}

describe("the shared contract examples", () => {
  it("are there (schema/analytics-event.examples.json and the schema)", () => {
    expect(examples, "schema/analytics-event.examples.json is missing").not.toBeNull();
    expect(schema, "schema/analytics-event.schema.json is missing").not.toBeNull();
    expect(examples!.valid.length).toBeGreaterThan(0);
    expect(examples!.invalid.length).toBeGreaterThan(0);
  });

  it("valid events pass validateEvent and ajv", () => {
    const rejected = examples!.valid.flatMap(({ name, event }) => {
      const ts = validateEvent(event);
      const ajv = ajvValidate!(event) ? null : JSON.stringify(ajvValidate!.errors?.[0]);
      return ts || ajv ? [{ name, ts, ajv }] : [];
    });
    expect(rejected).toEqual([]);
  });

  it("invalid events fail validateEvent and ajv", () => {
    const accepted = examples!.invalid.flatMap((example) => {
      if (!("event" in example)) return [];
      const ts = validateEvent(example.event) !== null;
      const ajv = !ajvValidate!(example.event);
      return ts && ajv ? [] : [{ name: example.name, rejectedByValidateEvent: ts, rejectedByAjv: ajv }];
    });
    expect(accepted).toEqual([]);
  });

  it("invalid bodies fail JSON.parse + ajv", () => {
    const bodies = examples!.invalid.filter((example) => "body" in example) as { name: string; body: string }[];
    expect(bodies.length).toBeGreaterThan(0);
    expect(bodies.filter(({ body }) => ajvAcceptsBody(body)).map(({ name }) => name)).toEqual([]);
  });
});

describe("validateEvent", () => {
  const query = { eventType: "query", requestId: "req-1", timestamp: 1767225600000, query: "Python?" };
  const response = { eventType: "response", requestId: "req-1", timestamp: 1767225600000, matchType: "full", matchScore: 100, reasoning: "" };

  it("accepts the events the Worker builds and names the first problem otherwise", () => {
    expect(validateEvent(query)).toBeNull();
    expect(validateEvent({ ...response, source: "cv-worker", latencyMs: 12, sessionId: null })).toBeNull();
    expect(validateEvent({ ...query, query: "\ud800" })).toMatch(/^query: a character SQS refuses/);
    expect(validateEvent({ ...query, query: "😀".repeat(4096) })).toBeNull(); // 4096 code points, 8192 UTF-16 units
    expect(validateEvent({ ...query, query: "😀".repeat(4097) })).toBe("query: over 4096 characters");
    expect(validateEvent({ ...query, schemaVersion: null })).toBe("schemaVersion: not an integer");
    expect(validateEvent({ ...query, timestamp: true })).toBe("timestamp: not an integer");
    expect(validateEvent({ ...response, matchScore: Number.NaN })).toBe("matchScore: not a finite number");
    expect(validateEvent({ ...query, extra: [[[[1]]]] })).toBeNull();
    expect(validateEvent({ ...query, extra: [[[[[1]]]]] })).toBe("extra[][][][]: nested deeper than 4 levels");
    expect(validateEvent({ ...query, extra: { a: undefined }, other: undefined })).toBeNull(); // undefined is left out by JSON.stringify
    expect(validateEvent([query])).toBe("not a JSON object");
  });

  it("contract 1.1: a response may name its model; 1.0 events stay valid; an unknown major is refused", () => {
    expect(validateEvent(response)).toBeNull(); // 1.0: no model
    expect(validateEvent({ ...response, model: "@cf/meta/llama-3.1-8b-instruct" })).toBeNull();
    expect(validateEvent({ ...response, model: null })).toBeNull();
    expect(validateEvent({ ...response, model: "m".repeat(128) })).toBeNull();
    expect(validateEvent({ ...response, model: "m".repeat(129) })).toBe("model: over 128 characters");
    expect(validateEvent({ ...response, model: "" })).toBe("model: empty");
    expect(validateEvent({ ...response, model: 3 })).toBe("model: not a string");
    expect(validateEvent({ ...query, model: 3 })).toBeNull(); // on a query, model is an unknown extra field
    expect(validateEvent({ ...response, model: "x", tokensUsed: 412 })).toBeNull(); // a later minor's field: ignored
    expect(validateEvent({ ...response, schemaVersion: 1 })).toBeNull();
    expect(validateEvent({ ...response, schemaVersion: 2 })).toBe("schemaVersion: major version 2 is not one the processor knows (1)");
    expect(validateEvent({ ...response, schemaVersion: 1000 })).toBe("schemaVersion: outside 1..999");
    expect(validateEvent({ schemaVersion: 2, eventType: "feedback", requestId: "req-1", rating: 5 })).toBe(
      "schemaVersion: major version 2 is not one the processor knows (1)",
    ); // a new major is refused for its version, before its fields are judged by 1.x rules
  });

  it("toSqsSafe replaces each refused code point with U+FFFD and keeps surrogate pairs", () => {
    expect(toSqsSafe("a\ud800b\udc00c\uFFFE\uFFFF\u0000\u0008\u000B\u000C\u001F")).toBe("a\uFFFDb\uFFFDc" + "\uFFFD".repeat(7));
    expect(toSqsSafe("tab\tlf\ncr\r 😀 \uE000 \uFFFD")).toBe("tab\tlf\ncr\r 😀 \uE000 \uFFFD");
    expect(validateEvent({ ...query, query: toSqsSafe("Rust\ud83d?\u0001") })).toBeNull();
  });
});
