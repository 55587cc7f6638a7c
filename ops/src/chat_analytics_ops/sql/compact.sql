-- The event lake's compaction: the raw rows of each complete `dt` partition of `requests` (several a request,
-- one per stored state) become ONE row per request in the `compacted` table, partitioned by the same `dt` and
-- by `late` (see below). Athena runs this statement as it is (`INSERT INTO`, on the daily schedule);
-- DuckDB runs the SELECT after the first line and writes its result with `COPY ... PARTITION_BY (dt, late)`.
--
-- Parameters (positional), in order:
--   1, 2  the first and last `dt` partition to compact (complete days: the schedule passes today - 4 and
--         today - 2, so a missed run is caught up on the next),
--   3, 4  the same two: the partitions of that range already in `compacted` are skipped, which makes the
--         statement idempotent (run it twice, or over overlapping ranges: a day is written once),
--   5, 6  the look-back: the first partition that can hold an earlier row of the same requests (the first
--         day - 15: a request's rows arrive from its day - 1 to its day + 14), and the last day again.
--
-- A compacted row is what report.sql makes of the partition's rows of one request (the same aggregates:
-- max() where every row that has the value holds the same one, max_by(..., complete) for the day and the
-- source), plus `source_rows`, how many raw rows it stands for: the report takes a day from `compacted`
-- only while the day's raw row count is still the sum of `source_rows` (a row delivered after the
-- compaction, or a day compacted twice, and the day is read raw again).
--
-- `late` = '1' when the request also has rows in an earlier partition (up to 15 days before): such rows
-- are merged again by the report with the request's other late rows and its raw rows of days not yet
-- compacted; `late` = '0' rows are the request's first partition, taken as they are unless a later row
-- of the same request is in the report's range. A request's rows are the item's successive states, each
-- written after the one before (its events are processed in order, one FIFO group per request), so a
-- later partition's rows hold everything an earlier one's hold.
INSERT INTO compacted
SELECT
    merged.request_key,
    merged.day,
    merged.source,
    merged.complete,
    merged.match_type,
    merged.match_score,
    merged.question_key,
    merged.latency_ms,
    merged.response_latency_ms,
    merged.query_ingest_lag_ms,
    merged.response_ingest_lag_ms,
    merged.schema_version,
    merged.query_timestamp,
    merged.query_ingested_at,
    merged.response_timestamp,
    merged.response_ingested_at,
    merged.written_at,
    merged.request_id,
    merged.session_id,
    merged.query,
    merged.reasoning,
    merged.model,
    merged.source_rows,
    merged.dt,
    CASE WHEN seen.first_dt < merged.dt THEN '1' ELSE '0' END AS late
FROM (
    SELECT
        request_key,
        max_by(day, state) AS day,
        max_by(source, state) AS source,
        max(complete) AS complete,
        max(match_type) AS match_type,
        max(match_score) AS match_score,
        max(question_key) AS question_key,
        max(latency_ms) AS latency_ms,
        max(response_latency_ms) AS response_latency_ms,
        max(query_ingest_lag_ms) AS query_ingest_lag_ms,
        max(response_ingest_lag_ms) AS response_ingest_lag_ms,
        max(schema_version) AS schema_version,
        max(query_timestamp) AS query_timestamp,
        max(query_ingested_at) AS query_ingested_at,
        max(response_timestamp) AS response_timestamp,
        max(response_ingested_at) AS response_ingested_at,
        max(written_at) AS written_at,
        max(request_id) AS request_id,
        max(session_id) AS session_id,
        max(query) AS query,
        max(reasoning) AS reasoning,
        max(model) AS model,
        count(*) AS source_rows,
        dt
    FROM (
        SELECT requests.*, CASE WHEN complete THEN 1 ELSE 0 END AS state
        FROM requests
        WHERE dt BETWEEN ? AND ?
          AND dt NOT IN (SELECT done.dt FROM compacted AS done WHERE done.dt BETWEEN ? AND ?)
    ) AS raw_row
    GROUP BY request_key, dt
) AS merged
LEFT JOIN (
    SELECT request_key, min(dt) AS first_dt
    FROM requests
    WHERE dt BETWEEN ? AND ?
    GROUP BY request_key
) AS seen
    ON seen.request_key = merged.request_key
