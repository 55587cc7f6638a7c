"""Process lifecycle: flush at exit (bounded) and start over in a forked child.

Exit must neither lose what is queued while SQS is up nor hang while it is down, so the exit hook
gives all live loggers together at most the largest of their ``atexit_timeout_s``. A forked child
inherits the parent's buffer, a sender thread that no longer exists in it, and the client's
pooled sockets; each logger starts over there with an empty buffer, a new thread and a new client.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analytics_producer.logger import AnalyticsLogger

_live: weakref.WeakSet[AnalyticsLogger] = weakref.WeakSet()


def register(logger: AnalyticsLogger) -> None:
    _live.add(logger)


def unregister(logger: AnalyticsLogger) -> None:
    _live.discard(logger)


def close_all_at_exit() -> None:
    loggers = list(_live)
    if not loggers:
        return
    deadline = time.monotonic() + max(logger.atexit_timeout_s for logger in loggers)
    for logger in loggers:
        with contextlib.suppress(Exception):
            logger.close(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    for logger in list(_live):
        with contextlib.suppress(Exception):
            logger._after_fork_in_child()


atexit.register(close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
