"""One owner of the delivery state: the sender (the logger's lane) owns its buffer, thread and counters.

``AnalyticsLogger`` and the process hooks use only its public surface (``offer``, ``reject``,
``flush``, ``close``, ``stats``, ``after_fork``); counters are read without parsing a repr; a
forked child gets its own connection through public boto3/botocore calls only.
"""

from __future__ import annotations

import ast
import json
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from analytics_producer import AnalyticsLogger, LoggerClosedError
from analytics_producer import lifecycle as lifecycle_module
from analytics_producer.counters import RateLimiter, Tally
from analytics_producer.sender import Sender
from analytics_producer.transport import SQSTransport
from tests.producer.conftest import REPO
from tests.producer.scripted_sqs import ScriptedSQS

PACKAGE = REPO / "analytics_producer" / "src" / "analytics_producer"
SENDER_SURFACE = {"offer", "reject", "flush", "close", "stats", "after_fork", "start", "alive", "client", "wake"}


def query(request_id: str) -> dict[str, Any]:
    return {"eventType": "query", "requestId": request_id, "timestamp": 1_767_225_600_000, "query": "Python?"}


class RecordingClient:
    """Every entry succeeds; records the requestIds of each call. No botocore internals, no close()."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append([json.loads(entry["MessageBody"])["requestId"] for entry in Entries])
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


def new_sender(client: Any, **kwargs: Any) -> Sender:
    options: dict[str, Any] = {
        "client_factory": lambda: client,
        "client": client,
        "queue_url": "http://127.0.0.1:1/123456789012/q.fifo",
        "batch_size": 10,
        "max_queue_size": 5,
        "flush_interval_s": 30.0,
        "max_retries": 0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
        "group_key": None,
        "on_error": None,
        "atexit_timeout_s": 1.0,
    }
    options.update(kwargs)
    return Sender(**options)


def test_the_sender_alone_offers_flushes_counts_and_closes() -> None:
    """Everything flush(), close() and stats() need lives in the sender: it works without a logger."""
    client, reports = RecordingClient(), []
    sender = new_sender(client, on_error=lambda error, events: reports.append((type(error), len(events))))
    sender.start()
    try:
        assert all(sender.offer(query(f"own-{index}")) for index in range(3))
        assert sender.flush(timeout=5)
        assert sender.stats() == {
            "accepted": 3,
            "sent": 3,
            "retried": 0,
            "failed": 0,
            "dropped_full": 0,
            "dropped_invalid": 0,
            "dropped_closed": 0,
            "skipped_disabled": 0,
            "queued": 0,
            "requests": 1,
        }
        assert client.calls == [["own-0", "own-1", "own-2"]], "flush() sends a partial batch at once"
        sender.stopping.set()  # the thread stops taking events: close() fails what is left
        sender.thread.join(5)
        results = [sender.offer(query(f"left-{index}")) for index in range(7)]
        assert results == [True] * 5 + [False] * 2
        assert sender.close(timeout=0.1) is False
        assert sender.offer(query("late")) is False
        stats = sender.stats()
        assert (stats["accepted"], stats["sent"], stats["failed"], stats["queued"]) == (8, 3, 5, 0)
        assert (stats["dropped_full"], stats["dropped_closed"]) == (2, 1)
        assert reports == [(LoggerClosedError, 5)]
        assert sender.close(timeout=0.1) is True, "closing twice is harmless"
    finally:
        sender.close(timeout=0.1)


def test_a_logger_delegates_flush_close_and_stats_to_its_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    def recorded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls.append((name, args))
            return original(*args)

        return call

    with AnalyticsLogger("http://127.0.0.1:1/123456789012/q.fifo", client=RecordingClient(), close_timeout_s=0.7) as logger:
        sender = logger._sender
        for name in ("flush", "close", "stats"):
            original = getattr(sender, name)
            monkeypatch.setattr(sender, name, recorded(name, original))
        logger.log(query("delegated"))
        assert logger.flush(2.5)
        assert logger.stats()["sent"] == 1
        assert logger.close() is True
    assert calls[:3] == [("flush", (2.5,)), ("stats", ()), ("close", (0.7,))], "close() without a timeout: close_timeout_s"


def _attributes_read_from(tree: ast.AST, owner: str) -> set[str]:
    """Attribute names read from ``self.<owner>`` or from a local variable named like it."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if (
            isinstance(value, ast.Attribute) and value.attr == owner and isinstance(value.value, ast.Name) and value.value.id == "self"
        ) or (isinstance(value, ast.Name) and value.id == owner.lstrip("_")):
            names.add(node.attr)
    return names


def test_the_logger_and_the_process_hooks_use_only_the_senders_public_surface() -> None:
    logger_tree = ast.parse((PACKAGE / "logger.py").read_text())
    used = _attributes_read_from(logger_tree, "_sender")
    assert used, "the logger reaches its sender through self._sender"
    assert used <= SENDER_SURFACE, f"logger.py reads the sender's internals: {sorted(used - SENDER_SURFACE)}"
    lifecycle_tree = ast.parse((PACKAGE / "lifecycle.py").read_text())
    private_calls = [
        node.func.attr
        for node in ast.walk(lifecycle_tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr.startswith("_")
    ]
    assert private_calls == [], f"lifecycle.py calls private methods: {private_calls}"


def test_no_module_reads_another_objects_private_attributes_or_parses_a_repr() -> None:
    """Only ``self``'s own underscored attributes: nothing from botocore's or boto3's internals
    (``client._request_signer._credentials``, ``session._session``), and no counter read through ``repr()``."""
    offenders: list[str] = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("_")
            ):
                offenders.append(f"{path.name}:{node.lineno} getattr(..., {node.args[1].value!r})")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "repr":
                offenders.append(f"{path.name}:{node.lineno} repr()")
    assert offenders == []


# -- counters -------------------------------------------------------------------------------------


def test_a_tally_counts_exactly_across_threads_and_reading_it_changes_nothing() -> None:
    tally = Tally()
    start = threading.Barrier(8)
    reads: list[int] = []

    def increment() -> None:
        start.wait()
        for index in range(20_000):
            tally.increment()
            if index % 5_000 == 0:
                reads.append(tally.value)  # reads interleaved with other threads' increments

    threads = [threading.Thread(target=increment) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tally.value == tally.value == 160_000
    assert reads and all(0 < value <= 160_000 for value in reads)
    assert Tally().value == 0


def test_a_rate_limiter_allows_one_line_per_key_per_interval_and_counts_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    from analytics_producer import counters

    now = [1000.0]
    monkeypatch.setattr(counters, "monotonic", lambda: now[0])
    limiter = RateLimiter(60.0)
    assert limiter.allow("a") == 0
    assert [limiter.allow("a") for _ in range(4)] == [None] * 4
    assert limiter.allow("b") == 0, "each key on its own"
    now[0] += 59.9
    assert limiter.allow("a") is None
    now[0] += 0.2
    assert limiter.allow("a") == 5, "the lines held back since the last one"
    assert limiter.allow("a") is None


# -- a forked child's client: public calls only ---------------------------------------------------------


def _in_child(check) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if check() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_keeps_a_client_without_botocore_internals() -> None:
    """A client= that is not a boto3 client (no ``meta``, no credentials to read) still sends in a child."""
    client = RecordingClient()
    with AnalyticsLogger("http://127.0.0.1:1/123456789012/q.fifo", client=client) as logger:

        def child() -> bool:
            fresh = logger.stats()["accepted"] == 0 and logger._client is None
            logger.log(query("child-0"))
            return fresh and logger.flush(timeout=5) and logger.stats()["sent"] == 1 and client.calls[-1] == ["child-0"]

        assert _in_child(child) == 0
        logger.log(query("parent-0"))
        assert logger.flush(timeout=5)
    assert client.calls == [["parent-0"]], "the child's sends happened in the child"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_gets_a_fresh_transport_when_given_one() -> None:
    with ScriptedSQS() as server:
        transport = SQSTransport(
            endpoint_url=server.endpoint_url, region_name="us-east-1", credentials=None, connect_timeout_s=1, read_timeout_s=3
        )
        with AnalyticsLogger(server.queue_url, client=transport) as logger:

            def child() -> bool:
                logger.log(query("child-0"))
                logger.flush(timeout=5)
                own = logger._client
                return isinstance(own, SQSTransport) and own is not transport and own.endpoint_url == transport.endpoint_url

            assert _in_child(child) == 0


def test_the_process_hooks_see_lanes_not_loggers() -> None:
    with AnalyticsLogger("http://127.0.0.1:1/123456789012/q.fifo", client=RecordingClient()) as logger:
        assert logger._sender in set(lifecycle_module._live)
    assert logger._sender not in set(lifecycle_module._live), "a closed lane is no longer flushed at exit"
