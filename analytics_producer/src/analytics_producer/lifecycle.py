"""Process lifecycle: flush at exit (bounded) and start over in a forked child.

Exit must neither lose what is queued while SQS is up nor hang while it is down, so the exit hook
gives all live lanes (each logger's :class:`~analytics_producer.sender.Sender`) together at most the
largest of their ``atexit_timeout_s``. A forked child inherits the parent's buffer, a sender thread
that no longer exists in it, locks another thread may hold and the client's pooled sockets; each lane
starts over there (``after_fork()``) with an empty buffer, a new thread and its own connection.

Lanes register themselves when they start and unregister when closed; this module only calls their
public ``close(timeout)`` and ``after_fork()``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
import weakref
from typing import Protocol


class Lane(Protocol):
    atexit_timeout_s: float

    def close(self, timeout: float) -> bool: ...

    def after_fork(self) -> None: ...


_live: weakref.WeakSet[Lane] = weakref.WeakSet()


def register(lane: Lane) -> None:
    _live.add(lane)


def unregister(lane: Lane) -> None:
    _live.discard(lane)


def close_all_at_exit() -> None:
    lanes = list(_live)
    if not lanes:
        return
    deadline = time.monotonic() + max(lane.atexit_timeout_s for lane in lanes)
    for lane in lanes:
        with contextlib.suppress(Exception):
            lane.close(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    for lane in list(_live):
        with contextlib.suppress(Exception):
            lane.after_fork()


atexit.register(close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
