"""The producer's tests' view of ``local.faults.SilentEndpoint``: an SQS endpoint that never answers."""

from __future__ import annotations

from local.faults import SilentEndpoint


class SilentServer(SilentEndpoint):
    """``with SilentServer() as server:`` ... ``server.endpoint_url``, ``server.queue_url``, ``server.counts()``."""

    def __init__(self) -> None:
        super().__init__()
        self.endpoint_url = self.url
        self.queue_url = f"{self.url}/123456789012/silent.fifo"
