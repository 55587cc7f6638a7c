"""What the error log says about a record that is not a valid event, without the question text.

The log must let an operator see why a message is headed for the DLQ, but the question a user
typed never goes to logs: the ``query`` field is dropped from the excerpt (or masked when the body
is not parseable JSON), and pydantic's errors are reported without their input values.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

EXCERPT_CHARS = 200
MAX_ERRORS = 5
# A "query" member in text that is not parseable JSON (e.g. a truncated body): its value is masked.
_QUERY_MEMBER = re.compile(r'("query"\s*:\s*)"(?:[^"\\]|\\.)*(?:"|$)', re.DOTALL)


def excerpt(body: str) -> str:
    """At most ``EXCERPT_CHARS`` characters of the body, with any ``query`` value removed."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        parsed.pop("query", None)
        text = json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    else:
        text = _QUERY_MEMBER.sub(r'\1"<omitted>"', body)
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def validation_errors(error: ValidationError) -> list[dict[str, str]]:
    """The first few errors as ``{"loc", "type", "msg"}``: pydantic's ``input`` values are left out."""
    return [
        {"loc": ".".join(str(part) for part in item["loc"]), "type": item["type"], "msg": item["msg"]}
        for item in error.errors(include_url=False, include_input=False, include_context=False)[:MAX_ERRORS]
    ]


def describe_invalid(body: str, error: ValidationError) -> dict[str, Any]:
    """The structured fields of the one error log an invalid record gets."""
    described: dict[str, Any] = {
        "validationErrors": validation_errors(error),
        "errorCount": error.error_count(),
        "bodyLength": len(body),
        "excerpt": excerpt(body),
    }
    return described
