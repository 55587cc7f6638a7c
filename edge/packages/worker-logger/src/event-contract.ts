/**
 * The event contract (docs/contracts.md, schema/analytics-event.schema.json), checked by hand before
 * anything is sent: `validateEvent(event)` returns null for a valid event, or one line saying what is
 * wrong. Same rules as the schema and the processor; the tests run every example of
 * schema/analytics-event.examples.json through this validator and through ajv with the schema.
 *
 * Text the Worker did not write (the user's question) is made valid with `toSqsSafe` rather than
 * rejected: each code point SQS refuses in a message body (a lone surrogate, U+0000-U+0008, U+000B,
 * U+000C, U+000E-U+001F, U+FFFE, U+FFFF) becomes U+FFFD, so the question is still logged, one code
 * point for one, and the logged text is what the contract accepts. The logger itself never rewrites
 * an event: anything invalid that reaches it is not sent and is reported.
 */

import { MATCH_TYPES } from "./contract.generated.js";

/** Finds a code point SQS refuses; with the u flag a surrogate pair is one astral code point and does not match. */
const REFUSED = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF\uFFFE\uFFFF]/u;
const REFUSED_ALL = new RegExp(REFUSED.source, "gu");
const REQUEST_ID = /^[\x21-\x7E]{1,128}$/;
const MATCH_TYPE_SET: ReadonlySet<string> = new Set(MATCH_TYPES);
const MAX_TIMESTAMP = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
const MAX_LATENCY_MS = 86_400_000; // one day
const MIN_NONZERO = 1e-130; // DynamoDB cannot store a smaller non-zero magnitude
const EXTRA_DEPTH = 4; // arrays / objects nested inside an unknown field
/** The contract's major version (docs/contracts.md, "How the contract evolves"): the only one the processor knows. */
export const SCHEMA_VERSION = 1;
const MAX_MODEL = 128; // the answering model's name (contract 1.1)

/** Replaces each code point SQS refuses with U+FFFD (text that is already valid comes back unchanged). */
export function toSqsSafe(text: string): string {
  return REFUSED.test(text) ? text.replace(REFUSED_ALL, "\uFFFD") : text;
}

function isSqsSafe(text: string): boolean {
  return !REFUSED.test(text);
}

/** Length in code points (what the contract, JSON Schema and Python count); counted only past `max` UTF-16 units. */
function codePoints(text: string, max: number): number {
  if (text.length <= max) return text.length; // an upper bound that is exact about "empty" and "at most max"
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

function text(value: unknown, field: string, min: number, max: number): string | null {
  if (typeof value !== "string") return `${field}: not a string`;
  const n = codePoints(value, max);
  if (n < min) return `${field}: empty`;
  if (n > max) return `${field}: over ${max} characters`;
  if (!isSqsSafe(value)) return `${field}: a character SQS refuses (lone surrogate, control character, U+FFFE or U+FFFF)`;
  return null;
}

function integer(value: unknown, field: string, min: number, max: number): string | null {
  if (typeof value !== "number" || !Number.isInteger(value)) return `${field}: not an integer`;
  if (value < min || value > max) return `${field}: outside ${min}..${max}`;
  return null;
}

/** A finite number in 0..max that is 0 or at least 1e-130 (what DynamoDB stores). */
function storableNumber(value: unknown, field: string, max: number): string | null {
  if (typeof value !== "number" || !Number.isFinite(value)) return `${field}: not a finite number`;
  if (value < 0 || value > max) return `${field}: outside 0..${max}`;
  if (value !== 0 && value < MIN_NONZERO) return `${field}: a non-zero magnitude below 1e-130`;
  return null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** An unknown field's value: null, boolean, finite number, SQS-safe string, or arrays/objects of those, 4 levels at most. */
function extraValue(value: unknown, field: string, depth: number): string | null {
  if (value === null || typeof value === "boolean") return null;
  if (typeof value === "number") return Number.isFinite(value) ? null : `${field}: not a finite number`;
  if (typeof value === "string") return isSqsSafe(value) ? null : `${field}: a character SQS refuses`;
  if (Array.isArray(value) || isPlainObject(value)) {
    if (depth >= EXTRA_DEPTH) return `${field}: nested deeper than ${EXTRA_DEPTH} levels`;
    if (Array.isArray(value)) {
      for (const item of value) {
        const error = extraValue(item === undefined ? null : item, `${field}[]`, depth + 1);
        if (error) return error;
      }
      return null;
    }
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue; // JSON.stringify leaves it out
      if (!isSqsSafe(key)) return `${field}: a key with a character SQS refuses`;
      const error = extraValue(item, `${field}.${key}`, depth + 1);
      if (error) return error;
    }
    return null;
  }
  return `${field}: not a JSON value`;
}

const COMMON = new Set(["schemaVersion", "eventType", "requestId", "timestamp", "source", "sessionId", "latencyMs"]);
const QUERY_FIELDS = new Set([...COMMON, "query"]);
const RESPONSE_FIELDS = new Set([...COMMON, "matchType", "matchScore", "reasoning", "model"]);

/**
 * Checks one event body against the contract; null when valid, else the first problem found. A field
 * whose value is `undefined` counts as absent (JSON.stringify leaves it out).
 */
export function validateEvent(event: unknown): string | null {
  if (!isPlainObject(event)) return "not a JSON object";
  const e = event;
  const has = (k: string) => e[k] !== undefined;
  let error: string | null = null;
  // The version first: a major the processor does not know is refused for that alone (its fields may differ).
  if (has("schemaVersion")) {
    if ((error = integer(e.schemaVersion, "schemaVersion", 1, 999))) return error;
    if (e.schemaVersion !== SCHEMA_VERSION) return `schemaVersion: major version ${e.schemaVersion} is not one the processor knows (${SCHEMA_VERSION})`;
  }
  if (e.eventType !== "query" && e.eventType !== "response") return "eventType: not query or response";
  if (typeof e.requestId !== "string" || !REQUEST_ID.test(e.requestId)) return "requestId: not 1 to 128 printable ASCII characters without spaces";
  if ((error = integer(e.timestamp, "timestamp", 0, MAX_TIMESTAMP))) return error;
  if (e.source != null && (error = text(e.source, "source", 0, 64))) return error;
  if (e.sessionId != null && (error = text(e.sessionId, "sessionId", 0, 128))) return error;
  if (e.latencyMs != null && (error = storableNumber(e.latencyMs, "latencyMs", MAX_LATENCY_MS))) return error;
  if (e.eventType === "query") {
    if ((error = text(e.query, "query", 1, 4096))) return error;
  } else {
    if (typeof e.matchType !== "string" || !MATCH_TYPE_SET.has(e.matchType)) return "matchType: not full, partial or none";
    if ((error = storableNumber(e.matchScore, "matchScore", 100))) return error;
    if ((error = text(e.reasoning, "reasoning", 0, 4096))) return error;
    if (e.model != null && (error = text(e.model, "model", 1, MAX_MODEL))) return error;
  }
  const known = e.eventType === "query" ? QUERY_FIELDS : RESPONSE_FIELDS;
  for (const [key, value] of Object.entries(e)) {
    if (known.has(key) || value === undefined) continue;
    if (!isSqsSafe(key)) return "an extra field's name has a character SQS refuses";
    if ((error = extraValue(value, key, 0))) return error;
  }
  return null;
}
