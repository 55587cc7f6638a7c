"""Fire-and-forget analytics events to an SQS FIFO queue.

from analytics_producer import AnalyticsLogger

analytics = AnalyticsLogger.from_env()          # ANALYTICS_SQS_URL (or AWS_SQS_URL), region, credentials
analytics.log_query(request_id, question)       # returns at once, never raises
analytics.log_response(request_id, "full", 92, "matched 3 of 3 skills", latency_ms=11.8)
"""

from analytics_producer.batching import UnsendableEventError
from analytics_producer.client import client_config
from analytics_producer.errors import ConfigurationError, EntryError, LoggerClosedError
from analytics_producer.events import InvalidEventError, MatchType, deduplication_id, query_event, response_event, validate
from analytics_producer.logger import AnalyticsLogger

__all__ = [
    "AnalyticsLogger",
    "ConfigurationError",
    "EntryError",
    "InvalidEventError",
    "LoggerClosedError",
    "MatchType",
    "UnsendableEventError",
    "client_config",
    "deduplication_id",
    "query_event",
    "response_event",
    "validate",
]
__version__ = "1.0.0"
