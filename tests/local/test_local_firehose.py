"""The local stack's Firehose object names follow Firehose's documented custom-prefix rules (moto's do not).

https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html: ``!{timestamp:<pattern>}`` is evaluated in
UTC with Java DateTimeFormatter letters; ``!{firehose:error-output-type}`` names the failure; a prefix with
no expression gets the default ``YYYY/MM/dd/HH/`` time prefix, one with an expression gets none.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from local.emulator.stack import firehose_prefix

ARRIVED = datetime(2026, 11, 29, 23, 5, 7, tzinfo=UTC)


def test_timestamp_expressions_are_evaluated_and_no_default_time_prefix_is_added() -> None:
    assert firehose_prefix("requests/dt=!{timestamp:yyyy-MM-dd}/", ARRIVED) == "requests/dt=2026-11-29/"
    assert firehose_prefix("h=!{timestamp:HH}/m=!{timestamp:mm}/s=!{timestamp:ss}/", ARRIVED) == "h=23/m=05/s=07/"


def test_a_prefix_without_expressions_gets_the_default_time_prefix() -> None:
    assert firehose_prefix("plain/", ARRIVED) == "plain/2026/11/29/23/"


def test_the_error_prefix_names_the_failure() -> None:
    prefix = "errors/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/"
    assert firehose_prefix(prefix, ARRIVED, error_type="format-conversion-failed") == "errors/format-conversion-failed/dt=2026-11-29/"


@pytest.mark.parametrize("prefix", ["x=!{timestamp:EEEE}/", "x=!{partitionKeyFromQuery:id}/"])
def test_what_the_local_stack_cannot_evaluate_is_refused_not_written_literally(prefix: str) -> None:
    with pytest.raises(ValueError, match="local Firehose: unsupported"):
        firehose_prefix(prefix, ARRIVED)
