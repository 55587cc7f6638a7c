"""What the error log says about a record that is not a valid event, without the question text.

The log must let an operator see why a message is headed for the DLQ, but the question a user
typed never goes to logs: the excerpt leaves out ``query`` values (see ``excerpt``), and pydantic's
errors are reported without their input values.
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


def _without_query(value: Any) -> Any:
    """``value`` with every ``query`` member removed, at any depth."""
    if isinstance(value, dict):
        return {key: _without_query(item) for key, item in value.items() if key != "query"}
    if isinstance(value, list):
        return [_without_query(item) for item in value]
    return value


def excerpt(body: str) -> str:
    """At most ``EXCERPT_CHARS`` characters of the body, without the question text.

    Parseable JSON loses its ``query`` members; broken JSON gets its ``query`` value masked; a body
    that is not JSON at all, or a bare JSON string, may be the question itself and is not shown
    (the DLQ keeps the message for whoever needs to read it).
    """
    try:
        parsed = json.loads(body)
    except RecursionError:  # deeper than the parser goes: the shape is all an operator needs
        return f"<JSON nested past the parser's recursion limit, {len(body)} characters>"
    except ValueError:
        if not body.lstrip().startswith(("{", "[")):
            return f"<not JSON, {len(body)} characters>"
        text = _QUERY_MEMBER.sub(r'\1"<omitted>"', body)
    else:
        if isinstance(parsed, str):
            return f"<a JSON string, {len(parsed)} characters>"
        try:
            text = json.dumps(_without_query(parsed), ensure_ascii=False, separators=(",", ":"))
        except RecursionError:  # parseable, yet too deep to walk from here
            return f"<JSON nested past the recursion limit, {len(body)} characters>"
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
