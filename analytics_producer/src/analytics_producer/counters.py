"""Counters that caller threads increment without a lock, and warnings rate-limited per key.

``log()`` runs in the caller's threads, many at once, and must stay a few microseconds: a counter
it increments cannot take a lock, and ``self.n += 1`` is not atomic (two threads can both read
``n`` and lose an increment). ``next()`` on an ``itertools.count`` is one C call, atomic under the
GIL; :class:`Tally` reads such a count back through that same public call, not through its repr.
"""

from __future__ import annotations

import itertools
import threading
from time import monotonic


class Tally:
    """A count many threads increment without a lock; reading it takes a lock (reads are rare: ``stats()``).

    ``increment()`` is the ``itertools.count``'s own ``__next__``. A read advances the same count
    once more and subtracts the reads made so far: every ``next()`` is either an increment or a
    read, so what remains is exactly the number of increments.
    """

    __slots__ = ("_count", "_lock", "_reads", "increment")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.increment = self._count.__next__  # one C call: no Python frame in the caller's path
        self._reads = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        """How many times ``increment()`` was called."""
        with self._lock:
            total = next(self._count)  # increments + earlier reads
            value = total - self._reads
            self._reads += 1
            return value

    def __repr__(self) -> str:
        return f"Tally({self.value})"


class RateLimiter:
    """At most one line per key per ``interval_s``, and how many were held back since the last one.

    ``allow(key)`` is cheap when the key is quiet (a dict lookup and one ``time.monotonic()``
    comparison, plus a lock-free increment when the line is held back); the lock is taken only when a
    line is due, at most once per key per interval.
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._keys: dict[str, _KeyState] = {}

    def allow(self, key: str) -> int | None:
        """None when the line is held back; else how many lines were held back for ``key`` since the last one."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys.setdefault(key, _KeyState())
        now = monotonic()
        if now < state.due:
            state.held_back.increment()
            return None
        with state.lock:
            if now < state.due:  # another thread wrote the line a moment ago
                state.held_back.increment()
                return None
            state.due = now + self.interval_s
            total = state.held_back.value
            held_back, state.reported = total - state.reported, total
            return held_back


class _KeyState:
    __slots__ = ("due", "held_back", "lock", "reported")

    def __init__(self) -> None:
        self.due = -float("inf")
        self.held_back = Tally()
        self.reported = 0
        self.lock = threading.Lock()
