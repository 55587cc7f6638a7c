-- Every figure of `chat-analytics report`, in ONE query of the event lake: the summarized days from their
-- section summaries (`compacted_sections`, sql/sections.sql), the other compacted days from the `compacted`
-- table (one row per request and partition, sql/compact.sql), the other days' raw rows from `requests`.
--
-- The same text runs on Athena (engine version 3, Trino's dialect) and on DuckDB: it keeps to what both
-- mean alike (tests parse it with sqlglot in both dialects and run it on DuckDB against the table's
-- report). Athena inlines WITH clauses (each reference scans again), so every CTE below is referenced
-- once but `report_days` (a constant) and `late_row`, whose other references read only its request keys (the raw rows of the days not
-- compacted and the few late compacted rows), and the sections are one GROUPING SETS aggregation instead
-- of one query each. No least() or greatest(): DuckDB skips their NULL arguments where Trino returns NULL,
-- so CASE says what is meant.
--
-- A summarized day costs its summary's few thousand rows instead of its requests: the summary counts
-- every `late` = '0' row of the partition (the request's first partition, as it is); the report adds the
-- merged late rows as for any day, and subtracts (weight -1) the summarized `late` = '0' rows that a later
-- row of the same request in the range supersedes (their own values: what the summary counted). Counts
-- and score sums are additive, so the re-aggregation per (section, key) is the report over the rows; a
-- key whose count comes to 0 is dropped (a value no request has must not be a distribution's maximum).
--
-- The contract's names are not written here: `{{canary_source}}` and `{{match_code(column)}}` are filled in from
-- contract.py when the statement is loaded (lake.render_shared_names).
--
-- Parameters (positional), in order:
--   1, 2  the first and last `dt` partition read (the UTC days Firehose received rows: a request's rows
--         arrive on or after its day, and late ones up to the queue's retention later),
--   3, 4  the first and last request day of the report (the table's `day`, the query's UTC day) as YYYYMMDD
--         (`report_days`: the requests' and the summaries' rows are filtered by them),
--   5     how many unmatched questions to list.
-- and the texts 'compacted days' and 'summarized days', replaced by lake.py with the range's partitions to
-- read from `compacted` rows and from their summaries (sql/compacted_days.sql finds them; a day is in one
-- list at most) as quoted literals, or by one that matches no partition.
-- Output: one row per (section, key); chat_analytics_ops/lake.py turns them into the report.
WITH late_row AS (
    -- The rows merged per request: the raw rows of the days not compacted (one per stored state), and the
    -- compacted rows of requests that also have rows in an earlier partition (`late` = '1'). A request's rows
    -- are successive states of the table's item and a complete one holds everything the others hold (every
    -- complete row of a request is the same). A column only a complete row has, or that every row having it
    -- holds alike (what the response sets, the query's ingest lag), is found by max(); the day and the source
    -- can differ (a response stored before its query sets them until the query overwrites them), so they come
    -- from the row with the most state (max_by). Text becomes numbers before the aggregation (its one large
    -- hash table when nothing is compacted: a group per request): the day as YYYYMMDD, the source as a
    -- canary flag, the match type as a code.
    SELECT
        request_key,
        CAST(replace(day, '-', '') AS INTEGER) AS day_number,
        CASE WHEN source = {{canary_source}} THEN 1 ELSE 0 END AS canary,
        question_key,
        {{match_code(match_type)}} AS match_code,
        match_score,
        latency_ms,
        response_latency_ms,
        query_ingest_lag_ms,
        response_ingest_lag_ms,
        CASE WHEN complete THEN 1 ELSE 0 END AS state
    FROM requests
    -- 'compacted days' and 'summarized days' are replaced by the lists of the range's days read from
    -- `compacted` and from their summaries (lake.py): literals, so that Athena prunes those partitions
    WHERE dt BETWEEN ? AND ? AND dt NOT IN ('compacted days') AND dt NOT IN ('summarized days')
    UNION ALL
    SELECT
        request_key,
        CAST(replace(day, '-', '') AS INTEGER) AS day_number,
        CASE WHEN source = {{canary_source}} THEN 1 ELSE 0 END AS canary,
        question_key,
        {{match_code(match_type)}} AS match_code,
        match_score,
        latency_ms,
        response_latency_ms,
        query_ingest_lag_ms,
        response_ingest_lag_ms,
        CASE WHEN complete THEN 1 ELSE 0 END AS state
    FROM compacted
    WHERE (dt IN ('compacted days') OR dt IN ('summarized days')) AND late = '1'
),
report_days AS (
    -- The report's request days: a constant row (no scan), read by the requests and by the summaries.
    SELECT CAST(? AS INTEGER) AS first_day, CAST(? AS INTEGER) AS last_day
),
request AS (
    -- One row per request, weighted. A compacted row of a request's first partition (`late` = '0') is the
    -- request as it is (+1), unless the request has a later row in the range (then that later row holds all
    -- of it); of a summarized day, its summary counts that row already: it is subtracted (-1) when a later
    -- row supersedes it (a semi-join: only those rows come out). The late rows are merged per request (+1).
    -- Without compaction this is the whole lake grouped by request. lake.py leaves out the block of a list
    -- of days that is empty (its join would read `late_row`'s keys again for nothing: Athena scans each
    -- reference), and keeps at least the last branch.
    -- compacted days: begin
    SELECT
        1 AS weight,
        CAST(replace(only_row.day, '-', '') AS INTEGER) AS day_number,
        CASE WHEN only_row.source = {{canary_source}} THEN 1 ELSE 0 END AS canary,
        only_row.question_key,
        {{match_code(only_row.match_type)}} AS match_code,
        only_row.match_score,
        only_row.latency_ms,
        only_row.response_latency_ms,
        only_row.query_ingest_lag_ms,
        only_row.response_ingest_lag_ms
    FROM compacted AS only_row
    LEFT JOIN (SELECT DISTINCT request_key FROM late_row) AS later
        ON later.request_key = only_row.request_key
    WHERE only_row.dt IN ('compacted days') AND only_row.late = '0' AND later.request_key IS NULL
    UNION ALL
    -- compacted days: end
    -- summarized days: begin
    SELECT
        -1 AS weight,
        CAST(replace(superseded.day, '-', '') AS INTEGER) AS day_number,
        CASE WHEN superseded.source = {{canary_source}} THEN 1 ELSE 0 END AS canary,
        superseded.question_key,
        {{match_code(superseded.match_type)}} AS match_code,
        superseded.match_score,
        superseded.latency_ms,
        superseded.response_latency_ms,
        superseded.query_ingest_lag_ms,
        superseded.response_ingest_lag_ms
    FROM compacted AS superseded
    WHERE superseded.dt IN ('summarized days') AND superseded.late = '0'
      AND superseded.request_key IN (SELECT request_key FROM late_row)
    UNION ALL
    -- summarized days: end
    SELECT
        1 AS weight,
        max_by(day_number, state) AS day_number,
        max_by(canary, state) AS canary,
        max(question_key) AS question_key,
        max(match_code) AS match_code,
        max(match_score) AS match_score,
        max(latency_ms) AS latency_ms,
        max(response_latency_ms) AS response_latency_ms,
        max(query_ingest_lag_ms) AS query_ingest_lag_ms,
        max(response_ingest_lag_ms) AS response_ingest_lag_ms
    FROM late_row
    GROUP BY request_key
),
measured AS (
    -- The report's view of a request. Canaries (`chat-analytics check`) are counted apart and kept out
    -- of every distribution, score bin and question.
    SELECT
        weight,
        day_number,
        canary,
        CASE WHEN query_ingest_lag_ms IS NOT NULL THEN 1 ELSE 0 END AS has_query,  -- set with the query, as queryTimestamp
        match_code,
        match_score,
        CASE WHEN canary = 1 THEN NULL WHEN match_score >= 95 THEN 19 ELSE CAST(floor(match_score / 5) AS INTEGER) END AS score_bin,
        CASE WHEN canary = 1 THEN NULL ELSE CAST(latency_ms AS DOUBLE) END AS answer_ms,
        CASE WHEN canary = 1 THEN NULL ELSE CAST(response_latency_ms AS DOUBLE) END AS response_ms,
        CASE WHEN canary = 1 THEN NULL ELSE CAST(query_ingest_lag_ms AS DOUBLE) END AS query_lag_ms,
        CASE WHEN canary = 1 THEN NULL ELSE CAST(response_ingest_lag_ms AS DOUBLE) END AS response_lag_ms,
        CASE WHEN canary = 0 AND match_code = 3 AND question_key <> '' THEN question_key END AS unmatched_question
    FROM request
    CROSS JOIN report_days
    WHERE day_number BETWEEN report_days.first_day AND report_days.last_day
),
grouped AS (
    -- One aggregation, six grouping sets: the per-day figures and score bins (one set: everything else
    -- about a day is a sum over its groups), four value histograms, the unmatched questions. Only two
    -- aggregates: every set computes every aggregate. The rows are weighted (see `request`).
    SELECT
        CASE
            WHEN grouping(day_number) = 0 THEN 'day'
            WHEN grouping(answer_ms) = 0 THEN 'answer_ms'
            WHEN grouping(response_ms) = 0 THEN 'response_ms'
            WHEN grouping(query_lag_ms) = 0 THEN 'query_lag_ms'
            WHEN grouping(response_lag_ms) = 0 THEN 'response_lag_ms'
            ELSE 'question'
        END AS section,
        day_number,
        canary,
        has_query,
        match_code,
        score_bin,
        coalesce(answer_ms, response_ms, query_lag_ms, response_lag_ms) AS value,
        unmatched_question AS question,
        sum(weight) AS n,
        sum(weight * match_score) AS score_sum
    FROM measured
    GROUP BY GROUPING SETS (
        (day_number, canary, has_query, match_code, score_bin),
        (answer_ms),
        (response_ms),
        (query_lag_ms),
        (response_lag_ms),
        (unmatched_question)
    )
),
summed AS (
    -- The groups of the rows above and the summaries' (whose day is a key of every section: kept for the
    -- per-day section only), added up per (section, key); a key whose count is 0 is no value at all.
    SELECT section, day_number, canary, has_query, match_code, score_bin, value, question, sum(n) AS n, sum(score_sum) AS score_sum
    FROM (
        SELECT section, day_number, canary, has_query, match_code, score_bin, value, question, n, score_sum
        FROM grouped
        UNION ALL
        SELECT
            section,
            CASE WHEN section = 'day' THEN day_number END AS day_number,
            canary,
            has_query,
            match_code,
            score_bin,
            value,
            question,
            n,
            score_sum
        FROM compacted_sections
        CROSS JOIN report_days
        WHERE dt IN ('summarized days') AND section <> 'rows' AND day_number BETWEEN report_days.first_day AND report_days.last_day
    ) AS parts
    GROUP BY section, day_number, canary, has_query, match_code, score_bin, value, question
    HAVING sum(n) <> 0
),
ranked AS (
    -- Distributions: each value's count and the count up to it (nearest rank, as the table's report).
    SELECT
        *,
        sum(n) OVER (PARTITION BY section ORDER BY value ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto,
        sum(n) OVER (PARTITION BY section) AS total,
        row_number() OVER (PARTITION BY section ORDER BY n DESC, question) AS position
    FROM summed
    WHERE section = 'day'
       OR (section = 'question' AND question IS NOT NULL)
       OR (section NOT IN ('day', 'question') AND value IS NOT NULL)
)
SELECT section, day_number, canary, has_query, match_code, score_bin, value, question, n, score_sum, upto, total, position
FROM ranked
WHERE section = 'day'
   OR (section = 'question' AND position <= ?)
   -- a distribution keeps only the values at the median's two ranks, the 95th percentile's and the maximum
   OR (
       section NOT IN ('day', 'question')
       AND (
           (upto >= floor((total + 1) * 0.5) AND upto - n < floor((total + 1) * 0.5))
           OR (upto >= floor(total * 0.5) + 1 AND upto - n < floor(total * 0.5) + 1)
           OR (upto >= ceil(total * 0.95) AND upto - n < ceil(total * 0.95))
           OR upto = total
       )
   )
ORDER BY section, day_number, canary, has_query, match_code, score_bin, value, position
