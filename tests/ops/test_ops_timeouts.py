"""Every command ends with one line and exit 1 when the endpoint accepts connections and never answers.

Each command runs as a real process (``python -m chat_analytics_ops``, the CLI's own defaults, no
test overrides) against its own ``SilentEndpoint``; all of them run at once. The scenarios are run
once by a module fixture and the tests below assert on what each one saw: the exit status, stderr,
every request the endpoint received and accepted connection, and the client configuration of every
AWS call the process made (recorded inside the process, ``RECORDER``; the scenarios and their runner are
``testkit.ops_scenarios``, shared with the benchmark). How long a command takes is
not asserted (beyond a lower bound the read timeout implies, and a generous "it ends at all"): a
busy machine only makes it slower. The times are measured by ``bench/ops_timeouts_bench.py``
(docs/benchmarks/ops.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from chat_analytics_ops import dlq, timeouts
from chat_analytics_ops.cli import build_parser
from chat_analytics_ops.outputs import CLIENT_CONFIG, AwsContext
from testkit.ops_scenarios import HALF_SILENT, LONG_POLL, PROCESS_TIMEOUT_S, SILENT, Run, clean_env, run

# The value the CLI really uses; conftest's autouse fixture sets it to 0 for the moto tests.
RECEIVE_WAIT_SECONDS = dlq.RECEIVE_WAIT_SECONDS


def attempts() -> int:
    return CLIENT_CONFIG.retries["total_max_attempts"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every scenario at once, each in its own process against its own endpoint."""
    home = tmp_path_factory.mktemp("home")
    env = clean_env(home)
    scenarios = {**SILENT, **HALF_SILENT, "long-poll": LONG_POLL}
    with ThreadPoolExecutor(max_workers=len(scenarios)) as pool:
        futures = {name: pool.submit(run, scenario, env, home) for name, scenario in scenarios.items()}
        yield {name: future.result() for name, future in futures.items()}


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_the_configured_timeouts_and_attempts() -> None:
    """The values timeouts.py documents (and ops/README.md), in the one Config every client is built with.

    botocore reads ``Config(retries={"max_attempts": N})`` as N *retries*, N + 1 requests, while
    ``total_max_attempts`` (and ``max_attempts`` in the shared config file or ``AWS_MAX_ATTEMPTS``)
    counts attempts including the first: botocore's ``Config`` documentation and the AWS SDKs and
    Tools Reference Guide, "Retry behavior",
    https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html.
    """
    assert (timeouts.CONNECT_TIMEOUT_S, timeouts.READ_TIMEOUT_S, timeouts.TOTAL_MAX_ATTEMPTS, timeouts.RETRY_MODE) == (3, 5, 2, "standard")
    assert CLIENT_CONFIG is timeouts.CLIENT_CONFIG
    assert (CLIENT_CONFIG.connect_timeout, CLIENT_CONFIG.read_timeout) == (3, 5)
    retries = CLIENT_CONFIG.retries
    assert "max_attempts" not in retries, f"{retries}: a client Config's max_attempts counts retries; say total_max_attempts"
    assert retries == {"mode": "standard", "total_max_attempts": 2}


@pytest.mark.parametrize("name", [*SILENT, *HALF_SILENT, "long-poll"])
def test_every_call_of_every_command_uses_the_configured_client(runs: dict[str, Run], name: str) -> None:
    """Recorded inside each command's process: the Config of the client that made each AWS call."""
    calls = runs[name].calls
    assert calls, f"{name}: no AWS call recorded"
    for call in calls:
        assert (call["connect_timeout"], call["read_timeout"]) == (timeouts.CONNECT_TIMEOUT_S, timeouts.READ_TIMEOUT_S), call
        assert call["retries"] == {"mode": timeouts.RETRY_MODE, "total_max_attempts": timeouts.TOTAL_MAX_ATTEMPTS}, call


def test_a_silent_endpoint_receives_exactly_the_configured_attempts(runs: dict[str, Run]) -> None:
    """The first call of each command is the one it is stuck on: the endpoint sees exactly ``total_max_attempts``
    requests of it, each on its own connection (a timed-out connection is not reused), and nothing after it.
    The config as found said ``max_attempts: 3`` and the silent endpoint received 4 requests of up to 30 s each."""
    for name, scenario in SILENT.items():
        result = runs[name]
        assert result.actions == [scenario.silent_action] * attempts(), name
        assert result.connections == attempts(), name
        assert [call["operation"] for call in result.calls] == [scenario.silent_action], name


def test_the_shells_retry_settings_do_not_change_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """``AWS_MAX_ATTEMPTS``/``AWS_RETRY_MODE`` set for other tools must not turn a dead endpoint into a long wait."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "10")
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    config = AwsContext(endpoint_url="http://127.0.0.1:9").client("sqs").meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": attempts()}
    assert (config.connect_timeout, config.read_timeout) == (CLIENT_CONFIG.connect_timeout, CLIENT_CONFIG.read_timeout)


@pytest.mark.parametrize("name", [*SILENT, *HALF_SILENT])
def test_every_command_ends_with_one_line_and_exit_1(runs: dict[str, Run], name: str) -> None:
    result = runs[name]
    assert result.code is not None, f"{name} still ran after {PROCESS_TIMEOUT_S} s"
    assert result.code == 1
    line = one_line(result.err)
    assert line == (
        f"chat-analytics: no answer from the endpoint {result.endpoint}/ within the {CLIENT_CONFIG.read_timeout} s read timeout"
        f" ({attempts()} attempts): is it up and answering?"
    )
    # A lower bound only (a busy machine makes it longer, never shorter): each attempt waited out the read timeout.
    assert result.elapsed_s >= attempts() * CLIENT_CONFIG.read_timeout


def test_every_command_is_in_the_table() -> None:
    """A new subcommand must be added to SILENT, so that it is held to the same rules."""

    def handlers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, object]]:
        children = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
        if not children:
            yield parser.prog, parser.get_default("handler")
        for action in children:
            for child in action.choices.values():
                yield from handlers(child)

    parser = build_parser()
    tested = {parser.parse_args(list(scenario.argv)).handler for scenario in SILENT.values()}
    missing = [prog for prog, handler in handlers(parser) if handler not in tested]
    assert not missing


def test_a_receive_that_never_answers_is_one_timeout(runs: dict[str, Run]) -> None:
    """The endpoint answers GetQueueAttributes, then goes silent in the receive loop: the configured attempts, then one line."""
    assert runs["dlq-inspect-receive-silent"].actions == ["GetQueueAttributes", *["ReceiveMessage"] * attempts()]


def test_a_redrive_cut_off_mid_way_does_not_wait_again_to_release(runs: dict[str, Run]) -> None:
    """The send never answers: the held message is not released through the same silent endpoint (that
    would wait out the timeouts a second time); it becomes visible again by itself after HOLD_SECONDS."""
    actions = runs["dlq-redrive-send-silent"].actions
    assert actions == ["GetQueueAttributes", "GetQueueAttributes", "ReceiveMessage", *["SendMessageBatch"] * attempts()]


def test_a_long_poll_fits_in_the_read_timeout(runs: dict[str, Run]) -> None:
    """SQS answers an empty long poll after WaitTimeSeconds: the read timeout leaves it room to, with a margin."""
    assert RECEIVE_WAIT_SECONDS >= 1  # short polls of a FIFO queue may miss messages
    assert CLIENT_CONFIG.read_timeout >= RECEIVE_WAIT_SECONDS + 3
    result = runs["long-poll"]
    assert result.actions == ["GetQueueAttributes", "ReceiveMessage"]  # answered, not timed out and retried
    assert result.connections == 1
    assert [call["operation"] for call in result.calls] == ["GetQueueAttributes", "ReceiveMessage"]
    assert result.code == 1 and "in flight" in one_line(result.err)
    assert result.elapsed_s >= RECEIVE_WAIT_SECONDS  # the endpoint held the poll for WaitTimeSeconds: a lower bound only
