"""Fire-and-forget analytics events to an SQS FIFO queue.

from analytics_producer import AnalyticsLogger

analytics = AnalyticsLogger.from_env()          # AWS_SQS_URL, AWS_REGION, credentials
analytics.log_query(request_id, question)       # returns at once, never raises
analytics.log_response(request_id, "full", 92, "matched 3 of 3 skills")
"""

from analytics_producer.batching import UnsendableEventError
from analytics_producer.client import client_config
from analytics_producer.errors import EntryError, LoggerClosedError
from analytics_producer.events import InvalidEventError, deduplication_id, query_event, response_event, validate
from analytics_producer.logger import AnalyticsLogger

__all__ = [
    "AnalyticsLogger",
    "EntryError",
    "InvalidEventError",
    "LoggerClosedError",
    "UnsendableEventError",
    "client_config",
    "deduplication_id",
    "query_event",
    "response_event",
    "validate",
]
__version__ = "1.0.0"
