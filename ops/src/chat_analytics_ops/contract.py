# Generated from schema/contract.py by schema/generate.py; do not edit by hand.
"""Names every part of the pipeline shares, each written once: the authority.

The processor (Lambda), the CDK app, the operations CLI, the local stack, the report's SQL and the Worker all
need the same few names: the stack's outputs, the processor's metrics, the table's day index and what it
projects, the source of ``chat-analytics check``'s canaries, the match types, and how a question is normalized
for the report. Each is written here and nowhere else.

Two of the readers cannot import this file: the Lambda asset ships ``lambda_src/`` alone, and the operations CLI
is an installed wheel. ``schema/generate.py`` writes a byte copy into each (``lambda_src/chat_processor/contract.py``,
``ops/src/chat_analytics_ops/contract.py``) and the Worker's constants (``edge/packages/worker-logger/src/
contract.generated.ts``); ``--check`` (a test) fails when a copy differs. The CDK app and the local stack import
``schema.contract``; the SQL's literals are filled in from it when the statement is loaded.

This module is standard library only: it ships inside the Lambda asset.
"""

from __future__ import annotations

import unicodedata
from typing import Final, Literal

# The match types of a response event (the contract's ``matchType``), in the report's order.
MatchType = Literal["full", "partial", "none"]
MATCH_TYPES: Final[tuple[MatchType, ...]] = ("full", "partial", "none")
# report.sql's ``match_code`` for each match type (a small integer groups faster than text).
MATCH_CODES: Final[dict[str, int]] = {"full": 1, "partial": 2, "none": 3}

# ``chat-analytics check`` sends its canaries with this source; every report leaves them out.
CANARY_SOURCE: Final = "chat-analytics-check"

# The processor's metrics (EMF, namespace from the stack's settings), as the alarms and the dashboard read them.
QUERY_EVENTS: Final = "QueryEvents"
RESPONSE_EVENTS: Final = "ResponseEvents"
INVALID_EVENTS: Final = "InvalidEvents"
MATCH_METRICS: Final[dict[str, str]] = {"full": "MatchFull", "partial": "MatchPartial", "none": "MatchNone"}
MATCH_SCORE: Final = "MatchScore"
INGEST_LAG_MS: Final = "IngestLagMs"
LAKE_ROWS: Final = "LakeRows"
LAKE_DELIVERY_FAILURES: Final = "LakeDeliveryFailures"
REJECTED_ROWS: Final = "RejectedRows"
REJECTED_DELIVERY_FAILURES: Final = "RejectedDeliveryFailures"
COLD_START: Final = "ColdStart"

# The table's day index: partition key ``day`` (UTC date), sort key ``requestId``; it projects only what its
# readers use (``report --engine dynamodb``: questions, match quality, timings, ``source``). Not ``reasoning``
# (up to 4096 characters), ``sessionId``, ``schemaVersion`` or ``expiresAt``: every byte projected is written twice.
DAY_INDEX: Final = "byDay"
DAY_INDEX_ATTRIBUTES: Final[tuple[str, ...]] = (
    "query",
    "matchType",
    "matchScore",
    "latencyMs",
    "responseLatencyMs",
    "queryTimestamp",
    "queryIngestedAt",
    "responseTimestamp",
    "responseIngestedAt",
    "source",
)

# The stack's outputs (CloudFormation output keys): what the CLI, the local stack and a person read after a deploy.
EVENTS_QUEUE_URL: Final = "EventsQueueUrl"
DEAD_LETTER_QUEUE_URL: Final = "DeadLetterQueueUrl"
EVENTS_TABLE_NAME: Final = "EventsTableName"
PRODUCER_SECRET_NAME: Final = "ProducerSecretName"
DASHBOARD_NAME: Final = "DashboardName"
ALARM_TOPIC_ARN: Final = "AlarmTopicArn"
RECOVERY_RULE_NAME: Final = "RecoveryRuleName"
RECOVERY_DEAD_LETTER_QUEUE_URL: Final = "RecoveryDeadLetterQueueUrl"
PROCESSOR_FUNCTION_NAME: Final = "ProcessorFunctionName"
LAKE_BUCKET_NAME: Final = "LakeBucketName"
LAKE_DATABASE_NAME: Final = "LakeDatabaseName"
LAKE_TABLE_NAME: Final = "LakeTableName"
ATHENA_WORK_GROUP_NAME: Final = "AthenaWorkGroupName"
LAKE_STREAM_NAME: Final = "LakeStreamName"
REJECTED_TABLE_NAME: Final = "RejectedTableName"
REJECTED_STREAM_NAME: Final = "RejectedStreamName"
REPORT_READER_POLICY_ARN: Final = "ReportReaderPolicyArn"
ERASURE_POLICY_ARN: Final = "ErasurePolicyArn"
COMPACTION_SCHEDULE: Final = "CompactionSchedule"  # "<schedule group>/<schedule name>"; only with lakeCompaction

# The event lake's compacted tables (stacks/compaction.py makes them; the CLI's lake.py, compact.py and erase.py
# and its sql/ read and write them): one row per request and arrival day, and each compacted day's section
# summary (sql/sections.sql), under the compacted table's folder (its readers, lifecycle rule and erasure
# reach the summaries too). The summaries' columns, in order: the Glue table's and what sections.sql selects.
COMPACTED_TABLE: Final = "compacted"
COMPACTED_PREFIX: Final = "compacted/"
SECTIONS_TABLE: Final = "compacted_sections"
SECTIONS_PREFIX: Final = "compacted/sections/"
SECTIONS_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("section", "string"),
    ("day_number", "int"),
    ("canary", "int"),
    ("has_query", "int"),
    ("match_code", "int"),
    ("score_bin", "int"),
    ("value", "double"),
    ("question", "string"),
    ("n", "bigint"),
    ("score_sum", "double"),
)

# What ``normalize_question`` trims from both ends after folding: spaces, quotes and closing punctuation.
QUESTION_TRIM: Final = " \"'`“”‘’?!.,;:…"


def normalize_question(text: str) -> str:
    """One key for questions that differ only in case, spacing, quotes or closing punctuation.

    The processor writes it into the lake's ``question_key``; the table engine computes it from ``query``; so the
    lake and the table group unmatched questions alike. NFKC first (full-width letters, ligatures), then
    ``casefold`` (``Straße`` and ``STRASSE`` meet), whitespace runs to one space, then the trim.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split()).strip(QUESTION_TRIM)
