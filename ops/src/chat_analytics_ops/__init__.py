"""chat-analytics: operate the chat analytics pipeline (DLQ, reports, Worker credentials)."""

__version__ = "0.1.0"
