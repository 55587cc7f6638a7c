// Generated from schema/contract.py by schema/generate.py; do not edit by hand.
export const MATCH_TYPES = ["full", "partial", "none"] as const;
export type MatchType = (typeof MATCH_TYPES)[number];
export const CANARY_SOURCE = "chat-analytics-check";
