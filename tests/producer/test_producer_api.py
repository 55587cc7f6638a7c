"""The producer as users of PostHog and Segment expect it: an off switch, rejected events logged (not only
counted), typed helpers a type checker checks, the region from the queue URL, its own environment
variable names (``AWS_*`` as a fallback), and valid license metadata."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
import threading
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from analytics_producer import AnalyticsLogger, InvalidEventError, counters
from analytics_producer import logger as logger_module
from analytics_producer.transport import SQSTransport
from tests.producer.conftest import REPO

AWS_QUEUE_URL = "https://sqs.eu-west-2.amazonaws.com/123456789012/events.fifo"
LOCAL_QUEUE_URL = "http://127.0.0.1:1/123456789012/q.fifo"
SECRET = "my salary is 123456"


def query(request_id: str = "r-1", **fields: Any) -> dict[str, Any]:
    return {"eventType": "query", "requestId": request_id, "timestamp": 1_767_225_600_000, "query": "Python?", **fields}


class NoClient:
    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        raise AssertionError("nothing is sent")


def sender_threads() -> int:
    return sum(thread.name == "analytics-producer-sender" for thread in threading.enumerate())


# -- disabled ---------------------------------------------------------------------------------------


def test_a_disabled_logger_has_no_thread_no_client_and_sends_nothing_but_still_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_client(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a disabled logger builds no client")

    monkeypatch.setattr(logger_module, "new_transport", no_client)
    monkeypatch.setattr(logger_module, "new_client", no_client)
    before = sender_threads()
    logger = AnalyticsLogger(AWS_QUEUE_URL, disabled=True, client=NoClient())
    assert sender_threads() == before, "no thread"
    assert logger.disabled and logger._client is None
    assert logger.log(query("r-1")) is True
    assert logger.log_query("r-2", "Go?", session_id="s") is True
    assert logger.log_response("r-2", "partial", 50, "matched 1 of 2", latency_ms=3) is True
    assert logger.log(query("r-3", query="")) is False, "an invalid event is still refused"
    assert logger.log_query("has space", "Go?") is False
    assert logger.flush(timeout=0.1) is True
    stats = logger.stats()
    assert stats["skipped_disabled"] == 3 and stats["dropped_invalid"] == 2
    assert (stats["accepted"], stats["sent"], stats["failed"], stats["queued"], stats["requests"]) == (0, 0, 0, 0, 0)
    assert stats["accepted"] == stats["sent"] + stats["failed"] + stats["queued"]
    assert logger.close() is True
    assert logger.log(query("late")) is False and logger.stats()["dropped_closed"] == 1
    assert sender_threads() == before
    with AnalyticsLogger("", disabled=True, strict=True) as strict, pytest.raises(InvalidEventError):
        strict.log(query(timestamp=-1))


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on"])
def test_from_env_honours_analytics_disabled_and_needs_no_queue_then(value: str) -> None:
    with AnalyticsLogger.from_env({"ANALYTICS_DISABLED": value}) as logger:
        assert logger.disabled and logger._client is None
        assert logger.log_query("r-1", "Python?") is True
        assert logger.stats()["skipped_disabled"] == 1


def test_analytics_disabled_off_or_unreadable() -> None:
    for value in ("0", "false", "", "off"):
        with pytest.raises(ValueError, match="ANALYTICS_SQS_URL"):
            AnalyticsLogger.from_env({"ANALYTICS_DISABLED": value})
    with pytest.raises(ValueError, match="ANALYTICS_DISABLED"):
        AnalyticsLogger.from_env({"ANALYTICS_DISABLED": "maybe", "ANALYTICS_SQS_URL": LOCAL_QUEUE_URL})


# -- rejected events are logged -------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The rate limiter's clock, moved by hand."""
    now = [10_000.0]
    monkeypatch.setattr(counters, "monotonic", lambda: now[0])
    return now


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "analytics_producer" and r.levelno == logging.WARNING]


def test_a_rejected_event_is_logged_naming_the_field_and_rule_at_most_once_a_minute_per_rule(
    caplog: pytest.LogCaptureFixture, clock
) -> None:
    caplog.set_level(logging.WARNING, logger="analytics_producer")
    with AnalyticsLogger(LOCAL_QUEUE_URL, client=NoClient()) as logger:
        for _ in range(5):
            assert logger.log_query("r-1", SECRET + "\x00") is False
        assert logger.log_response("r-1", "full", 250, SECRET) is False
        lines = warnings_of(caplog)
        assert len(lines) == 2, lines
        assert lines[0].startswith("analytics: log() rejected an event (not sent): query: must be SQS-safe text")
        assert "more rejected" not in lines[0], "nothing about 0 held back"
        assert lines[1].startswith("analytics: log() rejected an event (not sent): matchScore: a finite number from 0 to 100")
        clock[0] += 59
        assert logger.log_query("r-1", SECRET + "\x00") is False
        assert len(warnings_of(caplog)) == 2, "still within the minute"
        clock[0] += 2
        assert logger.log_query("r-1", SECRET + "\x00") is False
        lines = warnings_of(caplog)
        assert len(lines) == 3 and "5 more rejected for the same rule since the last warning" in lines[2], lines
        assert logger.stats()["dropped_invalid"] == 8, "every rejection is counted, logged or not"
    assert not any(SECRET in line for line in warnings_of(caplog)), "never the value"


def test_rejections_of_extra_fields_share_one_rule_and_a_raising_mapping_is_named_by_type_only(
    caplog: pytest.LogCaptureFixture, clock
) -> None:
    class Broken(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise KeyError(SECRET)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError(SECRET)

        def __len__(self) -> int:
            return 1

    caplog.set_level(logging.WARNING, logger="analytics_producer")
    with AnalyticsLogger(LOCAL_QUEUE_URL, client=NoClient()) as logger:
        for index in range(3):
            assert logger.log({**query(), f"note{index}": {"a", "set"}}) is False
        assert logger.log(Broken()) is False
        lines = warnings_of(caplog)
    assert len(lines) == 2, lines
    assert "extra field 'note0': values must be JSON" in lines[0]
    assert "event: reading it raised RuntimeError" in lines[1]
    assert not any(SECRET in line for line in lines)


class DenyingClient:
    """Refuses every batch as SQS refuses a key without sqs:SendMessage (not retryable)."""

    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        response = {"Error": {"Code": "AccessDenied", "Message": "not authorized"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
        raise ClientError(response, "SendMessageBatch")


def test_the_undelivered_warning_counts_in_words_and_says_nothing_of_none_held_back(caplog: pytest.LogCaptureFixture, clock) -> None:
    caplog.set_level(logging.WARNING, logger="analytics_producer")
    with AnalyticsLogger(LOCAL_QUEUE_URL, client=DenyingClient()) as logger:

        def fail(count: int) -> None:
            for index in range(count):
                assert logger.log_query(f"r-{index}", "Go?")
            assert logger.flush(timeout=5)

        fail(1)
        fail(2)  # held back: within the minute
        clock[0] += 61
        fail(2)
        fail(1)
        fail(1)
        clock[0] += 61
        fail(1)
    lines = warnings_of(caplog)
    end = " (at most one warning a minute per error code)"
    assert lines == [
        "analytics: 1 event not delivered to q.fifo: AccessDenied: not authorized" + end,
        "analytics: 2 events not delivered to q.fifo: AccessDenied: not authorized; 1 more AccessDenied report since the last warning"
        + end,
        "analytics: 1 event not delivered to q.fifo: AccessDenied: not authorized; 2 more AccessDenied reports since the last warning"
        + end,
    ]
    assert logger.stats()["failed"] == 8


@pytest.mark.parametrize("disabled", [False, True], ids=["live", "disabled"])
def test_log_after_close_is_counted_and_logged_once_per_logger(caplog: pytest.LogCaptureFixture, disabled: bool) -> None:
    caplog.set_level(logging.WARNING, logger="analytics_producer")
    first, second = (AnalyticsLogger(LOCAL_QUEUE_URL, client=NoClient(), disabled=disabled) for _ in range(2))
    first.close()
    second.close()
    assert warnings_of(caplog) == []
    assert [first.log(query(f"late-{index}")) for index in range(3)] == [False] * 3
    assert first.log_query("late-3", "Go?") is False and first.log_response("late-3", "none", 0, "") is False
    assert first.stats()["dropped_closed"] == 5
    expected = (
        "analytics: log() after close() (or at interpreter exit): the event is not sent, counted in stats()['dropped_closed']"
        " (logged once per logger)"
    )
    assert warnings_of(caplog) == [expected]
    assert second.log(query("late")) is False
    assert warnings_of(caplog) == [expected, expected], "once per logger: the other logger's first one is logged too"


# -- typed helpers ----------------------------------------------------------------------------------------


def test_a_type_checker_catches_a_misspelled_keyword_and_a_bad_match_type(tmp_path: Path) -> None:
    from mypy import api

    snippet = tmp_path / "chatbot.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from analytics_producer import AnalyticsLogger

            analytics = AnalyticsLogger("https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo", disabled=True)
            analytics.log_query("r-1", "Python?", sesion_id="s-1")
            analytics.log_response("r-1", "partial match", 50, "matched 1 of 2 skills")
            analytics.log_response("r-1", "partial", 50.5, "ok", session_id="s-1", latency_ms=1.5, timestamp=1, extra={"model": "m"})
            analytics.log_query("r-2", "Go?", source="bot", extra={"tags": ["a"]})
            """
        )
    )
    config = tmp_path / "mypy.ini"
    config.write_text(
        f"[mypy]\nmypy_path = {REPO / 'analytics_producer' / 'src'}\nignore_missing_imports = True\nfollow_imports = silent\n"
    )
    out, err, status = api.run(
        ["--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), "--hide-error-context", "--no-error-summary", str(snippet)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, (out, err)
    assert len(errors) == 2, out
    assert 'chatbot.py:5: error: Unexpected keyword argument "sesion_id" for "log_query"' in errors[0]
    assert 'chatbot.py:6: error: Argument 2 to "log_response"' in errors[1] and "Literal['full', 'partial', 'none']" in errors[1]


def test_a_misspelled_keyword_is_a_type_error_at_the_call_and_extra_fields_go_through_extra() -> None:
    with AnalyticsLogger(LOCAL_QUEUE_URL, client=NoClient(), disabled=True) as logger:
        with pytest.raises(TypeError, match="sesion_id"):
            logger.log_query("r-1", "Python?", sesion_id="s")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="latencyMs"):
            logger.log_response("r-1", "full", 1, "ok", latencyMs=3)  # type: ignore[call-arg]
        assert logger.log_query("r-1", "Python?", extra={"model": "gpt", "tags": ["a", 1]}) is True
        assert logger.log_query("r-1", "Python?", extra={"requestId": "other"}) is False, "a contract field has its own argument"
        assert logger.log_query("r-1", "Python?", extra=["not", "a", "mapping"]) is False  # type: ignore[arg-type]
        assert logger.log_response("r-1", "full", 1, "ok", extra={"query": "a response may carry it"}) is True
        assert logger.stats()["dropped_invalid"] == 2


def test_the_helpers_build_the_event_their_arguments_describe() -> None:
    sent: list[dict[str, Any]] = []

    class Client:
        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
            import json

            sent.extend(json.loads(entry["MessageBody"]) for entry in Entries)
            return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}

    with AnalyticsLogger(LOCAL_QUEUE_URL, client=Client(), source="bot") as logger:
        assert logger.log_query("r-1", "Python?", session_id="s-1", timestamp=5, extra={"model": "m"})
        assert logger.log_response("r-1", "none", 0, "", latency_ms=2.5, source="other", timestamp=6)
        assert logger.flush(timeout=5)
    assert sent == [
        {"schemaVersion": 1, "eventType": "query", "requestId": "r-1", "timestamp": 5, "query": "Python?", "sessionId": "s-1", "model": "m", "source": "bot"},
        {"schemaVersion": 1, "eventType": "response", "requestId": "r-1", "timestamp": 6, "matchType": "none", "matchScore": 0, "reasoning": "", "source": "other", "latencyMs": 2.5},
    ]  # fmt: skip


# -- where it sends, from the environment -------------------------------------------------------------


def built(environ: dict[str, str], **kwargs: Any) -> tuple[str, str, str, str | None]:
    """(queue URL, region, access key, session token) of the logger from_env builds (nothing is sent)."""
    logger = AnalyticsLogger.from_env(environ, **kwargs)
    try:
        transport = logger._client
        assert isinstance(transport, SQSTransport)
        frozen = transport.credentials.get_frozen_credentials()
        return logger.queue_url, transport.region_name, frozen.access_key, frozen.token
    finally:
        logger.close(timeout=0.1)


def test_without_a_region_the_queue_urls_is_used(clean_aws_env: pytest.MonkeyPatch) -> None:
    clean_aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDCHAIN")
    clean_aws_env.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
    clean_aws_env.setenv("AWS_REGION", "us-east-1")  # the application's region: the queue URL's wins over it
    logger = AnalyticsLogger(AWS_QUEUE_URL)
    try:
        assert logger.region_name == logger._client.region_name == "eu-west-2"
    finally:
        logger.close(timeout=0.1)
    logger = AnalyticsLogger(AWS_QUEUE_URL, region_name="eu-west-2")
    try:
        assert logger._client.region_name == "eu-west-2", "a region given that agrees with the URL's"
    finally:
        logger.close(timeout=0.1)
    with pytest.raises(ValueError, match=r"^region_name='eu-west-1' contradicts the queue URL's region eu-west-2 "):
        AnalyticsLogger(AWS_QUEUE_URL, region_name="eu-west-1")


def test_from_env_reads_its_own_names_first(clean_aws_env: pytest.MonkeyPatch) -> None:
    environ = {
        "ANALYTICS_SQS_URL": AWS_QUEUE_URL,
        "ANALYTICS_ACCESS_KEY_ID": "AKIDANALYTICS",
        "ANALYTICS_SECRET_ACCESS_KEY": "analytics-secret",
        "ANALYTICS_SESSION_TOKEN": "analytics-token",
        "AWS_SQS_URL": "https://sqs.us-west-2.amazonaws.com/123456789012/other.fifo",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDAPP",
        "AWS_SECRET_ACCESS_KEY": "app-secret",
        "AWS_SESSION_TOKEN": "app-token",
    }
    assert built(environ) == (AWS_QUEUE_URL, "eu-west-2", "AKIDANALYTICS", "analytics-token"), "the queue URL's region over AWS_REGION"
    assert built({**environ, "ANALYTICS_REGION": "eu-west-2"})[1] == "eu-west-2", "ANALYTICS_REGION agreeing with the URL's"
    with pytest.raises(ValueError, match=r"^ANALYTICS_REGION='eu-central-1' contradicts the queue URL's region eu-west-2 "):
        built({**environ, "ANALYTICS_REGION": "eu-central-1"})
    local = {**environ, "ANALYTICS_SQS_URL": LOCAL_QUEUE_URL, "ANALYTICS_REGION": "eu-central-1"}
    assert built(local)[:2] == (LOCAL_QUEUE_URL, "eu-central-1"), "ANALYTICS_REGION over AWS_REGION when the URL names none"
    without_token = {key: value for key, value in environ.items() if key != "ANALYTICS_SESSION_TOKEN"}
    assert built(without_token)[2:] == ("AKIDANALYTICS", None), "never the app's session token with the producer's key"


def test_from_env_falls_back_to_the_aws_names_the_stacks_secret_holds(clean_aws_env: pytest.MonkeyPatch) -> None:
    environ = {"AWS_SQS_URL": "http://127.0.0.1:4566/123456789012/events.fifo", "AWS_REGION": "us-east-1"}
    keys = {"AWS_ACCESS_KEY_ID": "AKIDWORKER", "AWS_SECRET_ACCESS_KEY": "worker-secret", "AWS_SESSION_TOKEN": "worker-token"}
    logger = AnalyticsLogger.from_env({**environ, **keys})
    try:
        assert logger.endpoint_url == "http://127.0.0.1:4566" and logger._client.region_name == "us-east-1"
        frozen = logger._client.credentials.get_frozen_credentials()
        assert (frozen.access_key, frozen.token) == ("AKIDWORKER", "worker-token")
    finally:
        logger.close(timeout=0.1)
    assert built({**environ, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": ""}, session=boto3.Session(**_keys("AKIDGIVEN")))[1:3] == (
        "eu-west-1",
        "AKIDGIVEN",
    )


def _keys(key_id: str) -> dict[str, str]:
    return {"aws_access_key_id": key_id, "aws_secret_access_key": "given-secret"}


def test_the_producers_key_never_becomes_other_clients_credentials(clean_aws_env: pytest.MonkeyPatch) -> None:
    environ = {"ANALYTICS_SQS_URL": AWS_QUEUE_URL, "ANALYTICS_ACCESS_KEY_ID": "AKIDSENDONLY", "ANALYTICS_SECRET_ACCESS_KEY": "send-only"}
    clean_aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDAPP")
    clean_aws_env.setenv("AWS_SECRET_ACCESS_KEY", "app-secret")
    assert built(environ)[2] == "AKIDSENDONLY"
    assert boto3.Session().get_credentials().get_frozen_credentials().access_key == "AKIDAPP", "the app's own clients keep theirs"


def test_half_a_key_pair_is_an_error_not_a_silent_fallback(clean_aws_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="ANALYTICS_ACCESS_KEY_ID and ANALYTICS_SECRET_ACCESS_KEY"):
        AnalyticsLogger.from_env({"ANALYTICS_SQS_URL": AWS_QUEUE_URL, "ANALYTICS_ACCESS_KEY_ID": "AKIDHALF", "AWS_ACCESS_KEY_ID": "x"})


# -- packaging --------------------------------------------------------------------------------------------


def test_the_wheel_carries_valid_license_metadata_and_the_license_file(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "analytics_producer"
    shutil.copytree(REPO / "analytics_producer", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "license" not in result.stderr.lower(), result.stderr  # no deprecation warning about the license metadata
    [wheel] = tmp_path.glob("analytics_producer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
        [license_file] = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        license_text = archive.read(license_file).decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert license_text.startswith("MIT License") and "Copyright (c) 2026 the chat analytics authors" in license_text
    assert "analytics_producer/py.typed" in names
    pyproject = tomllib.loads((REPO / "analytics_producer" / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT" and pyproject["project"]["license-files"] == ["LICENSE"]
    assert pyproject["build-system"]["requires"] == ["setuptools>=77"], "the first setuptools that reads an SPDX license string"
