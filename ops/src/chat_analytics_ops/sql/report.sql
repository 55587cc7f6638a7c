-- Every figure of `chat-analytics report`, in ONE scan of the event lake's `requests` table.
--
-- The same text runs on Athena (engine version 3, Trino's dialect) and on DuckDB: it keeps to what both
-- mean alike (tests parse it with sqlglot in both dialects and run it on DuckDB against the table's
-- report). Athena inlines WITH clauses (each reference scans again), so every CTE below is referenced
-- once, and the sections are one GROUPING SETS aggregation instead of one query each. No least() or
-- greatest(): DuckDB skips their NULL arguments where Trino returns NULL, so CASE says what is meant.
--
-- Parameters (positional), in order:
--   1, 2  the first and last `dt` partition read (the UTC days Firehose received rows: a request's rows
--         arrive on or after its day, and late ones up to the queue's retention later),
--   3, 4  the first and last request day of the report (the table's `day`, the query's UTC day),
--   5     how many unmatched questions to list.
-- Output: one row per (section, key); chat_analytics_ops/lake.py turns them into the report.
WITH request AS (
    -- One row per request: its rows are successive states of the table's item, and the complete one
    -- holds everything the others hold (every complete row of a request is the same).
    SELECT
        max_by(day, state) AS day,
        max_by(source, state) AS source,
        max_by(query_timestamp, state) AS query_timestamp,
        max_by(query_ingested_at, state) AS query_ingested_at,
        max_by(question_key, state) AS question_key,
        max_by(match_type, state) AS match_type,
        max_by(match_score, state) AS match_score,
        max_by(latency_ms, state) AS latency_ms,
        max_by(response_timestamp, state) AS response_timestamp,
        max_by(response_ingested_at, state) AS response_ingested_at,
        max_by(response_latency_ms, state) AS response_latency_ms
    FROM (
        SELECT
            request_key, day, source, query_timestamp, query_ingested_at, question_key, match_type, match_score,
            latency_ms, response_timestamp, response_ingested_at, response_latency_ms,
            CASE WHEN complete THEN 1 ELSE 0 END AS state
        FROM requests
        WHERE dt BETWEEN ? AND ?
    ) AS lake_row
    GROUP BY request_key
),
measured AS (
    -- The report's view of a request. Canaries (`chat-analytics check`) are counted apart and kept out
    -- of every distribution, score bin and question.
    SELECT
        day,
        canary,
        CASE WHEN query_timestamp IS NOT NULL THEN 1 ELSE 0 END AS has_query,
        match_type,
        match_score,
        CASE WHEN canary THEN NULL WHEN match_score >= 95 THEN 19 ELSE CAST(floor(match_score / 5) AS INTEGER) END AS score_bin,
        CASE WHEN canary THEN NULL ELSE CAST(latency_ms AS DOUBLE) END AS answer_ms,
        CASE WHEN canary THEN NULL ELSE CAST(response_latency_ms AS DOUBLE) END AS response_ms,
        -- an ingest lag is never negative (a producer's clock ahead of the processor's counts as 0)
        CASE
            WHEN canary THEN NULL
            WHEN query_ingested_at < query_timestamp THEN 0
            ELSE CAST(query_ingested_at - query_timestamp AS DOUBLE)
        END AS query_lag_ms,
        CASE
            WHEN canary THEN NULL
            WHEN response_ingested_at < response_timestamp THEN 0
            ELSE CAST(response_ingested_at - response_timestamp AS DOUBLE)
        END AS response_lag_ms,
        CASE WHEN NOT canary AND match_type = 'none' AND question_key <> '' THEN question_key END AS unmatched_question
    FROM (
        SELECT *, coalesce(source = 'chat-analytics-check', false) AS canary
        FROM request
        WHERE day BETWEEN ? AND ?
    ) AS in_range
),
grouped AS (
    SELECT
        CASE
            WHEN grouping(day) = 0 THEN 'day'
            WHEN grouping(score_bin) = 0 THEN 'score'
            WHEN grouping(answer_ms) = 0 THEN 'answer_ms'
            WHEN grouping(response_ms) = 0 THEN 'response_ms'
            WHEN grouping(query_lag_ms) = 0 THEN 'query_lag_ms'
            WHEN grouping(response_lag_ms) = 0 THEN 'response_lag_ms'
            ELSE 'question'
        END AS section,
        day,
        canary,
        match_type,
        score_bin,
        coalesce(answer_ms, response_ms, query_lag_ms, response_lag_ms) AS value,
        unmatched_question AS question,
        count(*) AS n,
        sum(has_query) AS queries,
        sum(CASE WHEN match_type = 'full' THEN 1 ELSE 0 END) AS match_full,
        sum(CASE WHEN match_type = 'partial' THEN 1 ELSE 0 END) AS match_partial,
        sum(CASE WHEN match_type = 'none' THEN 1 ELSE 0 END) AS match_none,
        sum(match_score) AS score_sum,
        count(match_score) AS score_count,
        sum(CASE WHEN has_query = 1 AND match_type IS NULL THEN 1 ELSE 0 END) AS unanswered,
        sum(CASE WHEN has_query = 0 AND match_type IS NOT NULL THEN 1 ELSE 0 END) AS without_query
    FROM measured
    GROUP BY GROUPING SETS (
        (day, canary),
        (score_bin, match_type),
        (answer_ms),
        (response_ms),
        (query_lag_ms),
        (response_lag_ms),
        (unmatched_question)
    )
),
ranked AS (
    -- Distributions: each value's count and the count up to it (nearest rank, as the table's report).
    SELECT
        *,
        sum(n) OVER (PARTITION BY section ORDER BY value ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto,
        sum(n) OVER (PARTITION BY section) AS total,
        row_number() OVER (PARTITION BY section ORDER BY n DESC, question) AS position
    FROM grouped
    WHERE section = 'day'
       OR (section = 'score' AND score_bin IS NOT NULL)
       OR (section = 'question' AND question IS NOT NULL)
       OR (section NOT IN ('day', 'score', 'question') AND value IS NOT NULL)
)
SELECT
    section, day, canary, match_type, score_bin, value, question, n, upto, total, position,
    queries, match_full, match_partial, match_none, score_sum, score_count, unanswered, without_query
FROM ranked
WHERE section IN ('day', 'score')
   OR (section = 'question' AND position <= ?)
   -- a distribution keeps only the values at the median's two ranks, the 95th percentile's and the maximum
   OR (
       section NOT IN ('day', 'score', 'question')
       AND (
           (upto >= floor((total + 1) * 0.5) AND upto - n < floor((total + 1) * 0.5))
           OR (upto >= floor(total * 0.5) + 1 AND upto - n < floor(total * 0.5) + 1)
           OR (upto >= ceil(total * 0.95) AND upto - n < ceil(total * 0.95))
           OR upto = total
       )
   )
ORDER BY section, day, canary, match_type, score_bin, value, position
