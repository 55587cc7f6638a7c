-- The partitions of a report's range that it reads from `compacted` rather than `requests`: compacted, and
-- holding still exactly the raw rows the compaction merged (the day's raw row count is the sum of its
-- compacted rows' `source_rows`). A row delivered to a day after its compaction, or a day compacted twice,
-- and the counts differ: the report reads that day's raw rows, which are always kept (until the lifecycle
-- rule expires both). Both counts come from the files' footers and one small column.
--
-- Of those, the report reads from the day's section summary (`compacted_sections`, sql/sections.sql) the
-- ones whose summary still counts exactly the day's `late` = '0' compacted rows (`first_rows` =
-- `summarized_rows`): a summary written twice, or a day whose compacted objects were rewritten since (an
-- erasure), and the counts differ: the report reads that day's compacted rows. `summarized_rows` is NULL
-- for a day without a summary.
--
-- Parameters (positional): 1, 2 the first and last `dt` of the range; 3, 4 the same; 5, 6 the same.
SELECT
    raw_day.dt,
    raw_day.n AS raw_rows,
    compacted_day.n AS compacted_rows,
    compacted_day.first_rows,
    summarized_day.n AS summarized_rows
FROM (SELECT dt, count(*) AS n FROM requests WHERE dt BETWEEN ? AND ? GROUP BY dt) AS raw_day
JOIN (
    SELECT dt, sum(source_rows) AS n, sum(CASE WHEN late = '0' THEN 1 ELSE 0 END) AS first_rows
    FROM compacted
    WHERE dt BETWEEN ? AND ?
    GROUP BY dt
) AS compacted_day
    ON compacted_day.dt = raw_day.dt
LEFT JOIN (
    SELECT dt, sum(n) AS n FROM compacted_sections WHERE dt BETWEEN ? AND ? AND section = 'rows' GROUP BY dt
) AS summarized_day
    ON summarized_day.dt = raw_day.dt
ORDER BY raw_day.dt
