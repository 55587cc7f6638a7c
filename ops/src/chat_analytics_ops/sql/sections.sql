-- The section summary of compacted days: for each `dt` partition of `compacted` not summarized yet, what
-- report.sql's `grouped` computes over that partition's `late` = '0' rows (the request's first partition,
-- taken as it is), with `day_number` kept in EVERY grouping set (a report takes only its own request days,
-- and the histograms and the questions are summed again across partitions), and one row of section
-- 'rows' whose `n` counts the `late` = '0' rows it summarizes. The counts are additive: the report
-- (sql/report.sql) takes a summarized day's rows as they are, subtracts the day's `late` = '0' rows a later
-- row of the same request supersedes and adds the merged late rows, which is the same report as one over
-- the rows themselves. A day is read from its summary only while the 'rows' count is still the count of
-- its `late` = '0' rows (sql/compacted_days.sql): a summary written twice, or a partition rewritten since
-- (an erasure), and the day is read from `compacted` again.
--
-- Athena runs this statement as it is (`INSERT INTO compacted_sections`, on its own daily schedule over
-- older days than the compaction's, so that no day is summarized while it is being compacted); DuckDB
-- (`chat-analytics compact`, right after the day's compaction) runs the SELECT after the first line and
-- writes its result with `COPY ... PARTITION_BY (dt)` under compacted/sections/.
--
-- Parameters (positional), in order:
--   1, 2  the first and last `dt` partition to summarize,
--   3, 4  the same two: the partitions of that range already in `compacted_sections` are skipped, which
--         makes the statement idempotent (run it twice, or over overlapping ranges: a day is written once).
-- The same text as report.sql for what a request counts as (canaries apart, the score bins, the
-- unmatched questions): tests/ops/test_ops_compaction.py holds the summaries' reports equal to the rows'.
INSERT INTO compacted_sections
SELECT section, day_number, canary, has_query, match_code, score_bin, value, question, n, score_sum, dt
FROM (
    SELECT
        CASE
            WHEN grouping(day_number) = 1 THEN 'rows'
            WHEN grouping(canary) = 0 THEN 'day'
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
        count(*) AS n,
        sum(match_score) AS score_sum,
        dt
    FROM (
        SELECT
            dt,
            day_number,
            canary,
            CASE WHEN query_ingest_lag_ms IS NOT NULL THEN 1 ELSE 0 END AS has_query,
            match_code,
            match_score,
            CASE WHEN canary = 1 THEN NULL WHEN match_score >= 95 THEN 19 ELSE CAST(floor(match_score / 5) AS INTEGER) END AS score_bin,
            CASE WHEN canary = 1 THEN NULL ELSE CAST(latency_ms AS DOUBLE) END AS answer_ms,
            CASE WHEN canary = 1 THEN NULL ELSE CAST(response_latency_ms AS DOUBLE) END AS response_ms,
            CASE WHEN canary = 1 THEN NULL ELSE CAST(query_ingest_lag_ms AS DOUBLE) END AS query_lag_ms,
            CASE WHEN canary = 1 THEN NULL ELSE CAST(response_ingest_lag_ms AS DOUBLE) END AS response_lag_ms,
            CASE WHEN canary = 0 AND match_code = 3 AND question_key <> '' THEN question_key END AS unmatched_question
        FROM (
            SELECT
                dt,
                CAST(replace(day, '-', '') AS INTEGER) AS day_number,
                CASE WHEN source = {{canary_source}} THEN 1 ELSE 0 END AS canary,
                question_key,
                {{match_code(match_type)}} AS match_code,
                match_score,
                latency_ms,
                response_latency_ms,
                query_ingest_lag_ms,
                response_ingest_lag_ms
            FROM compacted
            WHERE dt BETWEEN ? AND ? AND late = '0'
              AND dt NOT IN (SELECT done.dt FROM compacted_sections AS done WHERE done.dt BETWEEN ? AND ?)
        ) AS first_row
    ) AS measured
    GROUP BY GROUPING SETS (
        (dt, day_number, canary, has_query, match_code, score_bin),
        (dt, day_number, answer_ms),
        (dt, day_number, response_ms),
        (dt, day_number, query_lag_ms),
        (dt, day_number, response_lag_ms),
        (dt, day_number, unmatched_question),
        (dt)
    )
) AS grouped
-- the groups a report reads: a distribution's values and the questions, not the rows that have none
WHERE section IN ('rows', 'day')
   OR (section = 'question' AND question IS NOT NULL)
   OR (section NOT IN ('rows', 'day', 'question') AND value IS NOT NULL)
