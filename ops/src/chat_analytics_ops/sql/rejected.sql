-- The events the processor rejected, by reason code, for `chat-analytics report` (the lake's `rejected` table).
--
-- The same text runs on Athena (engine version 3) and on DuckDB, as report.sql does. The processor writes a
-- rejected row on every receive of an invalid record (three before the record moves to the dead-letter queue,
-- more when it is redriven), so an event is counted once per SQS message id (`events`); `receives` counts the
-- rows. A message received on two days counts on each day it was received.
--
-- Parameters (positional), in order:
--   1, 2  the first and last `dt` partition read (the UTC day Firehose received the rows: the processor's day
--         or the next),
--   3, 4  the first and last day of the report, YYYY-MM-DD: the UTC day the processor received the record.
SELECT
    reason,
    count(DISTINCT message_id) AS events,
    count(*) AS receives
FROM rejected
WHERE dt BETWEEN ? AND ?
    AND received_day BETWEEN ? AND ?
GROUP BY reason
ORDER BY events DESC, reason
