"""Why a dead-lettered body would fail the processor, told from the event contract.

The processor validates every body against its models, and ``schema/analytics-event.schema.json``
is generated from those models; validating the DLQ body against the same file tells the operator
"the producer sent a bad event" (fix the producer, then purge) apart from "a valid event the
processor could not store" (fix the processor or the table, then redrive).

The schema is read from the repository the package is installed from (editable install:
``<repo>/ops/src/chat_analytics_ops`` -> ``<repo>/schema``), or from ``$CHAT_ANALYTICS_SCHEMA``.
Without the file, or without ``jsonschema``, only the JSON and ``eventType`` checks run. Messages
name the field and the rule, never the offending value: a question must not end up in a terminal.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

SCHEMA_ENV = "CHAT_ANALYTICS_SCHEMA"
REPO_SCHEMA = Path(__file__).resolve().parents[3] / "schema" / "analytics-event.schema.json"
EVENT_TYPES = ("query", "response")


def schema_path() -> Path | None:
    """The schema file to use, if one can be found."""
    candidates = [Path(os.environ[SCHEMA_ENV])] if os.environ.get(SCHEMA_ENV) else []
    candidates.append(REPO_SCHEMA)
    return next((path for path in candidates if path.is_file()), None)


@functools.cache
def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_schema() -> dict[str, Any] | None:
    """The parsed schema, or None when it is missing or unreadable (checks degrade, never fail)."""
    path = schema_path()
    return _load(path) if path else None


def validate_body(body: str) -> str | None:
    """None when the body is a valid event, else one line saying which field breaks which rule."""
    try:
        event = json.loads(body)
    except ValueError as error:
        return f"not JSON ({type(error).__name__} at character {getattr(error, 'pos', '?')})"
    if not isinstance(event, dict):
        return f"not a JSON object (a {type(event).__name__})"
    event_type = event.get("eventType")
    if event_type not in EVENT_TYPES:
        return "eventType: missing or not one of query, response"
    schema = load_schema()
    if schema is None:
        return None
    try:
        import jsonschema
    except ImportError:  # optional dependency: the JSON checks above still ran
        return None
    definition = _definition_for(schema, event_type)
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(definition)
    errors = sorted(validator.iter_errors(event), key=lambda e: (list(e.absolute_path), e.validator))
    return "; ".join(_describe(error) for error in errors[:3]) or None


def _definition_for(schema: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The sub-schema the discriminator picks (``oneOf`` errors would be unreadable), with ``$defs`` kept for refs."""
    mapping = schema.get("discriminator", {}).get("mapping", {})
    ref = mapping.get(event_type, "")
    name = ref.rsplit("/", 1)[-1]
    definition = schema.get("$defs", {}).get(name)
    if definition is None:
        return schema
    return {**definition, "$defs": schema.get("$defs", {}), "$schema": schema.get("$schema")}


def _describe(error: Any) -> str:
    """``field: rule`` without the instance (which may be the user's question)."""
    path = ".".join(str(part) for part in error.absolute_path) or "(event)"
    if error.validator == "anyOf" and error.context:
        # e.g. ``source`` is "a string of at most 64 characters, or null": the string branch says why.
        specific = [sub for sub in error.context if sub.validator != "type"]
        if specific:
            error = specific[0]
    rule, limit = error.validator, error.validator_value
    if rule == "required":
        return error.message.replace("'", "") if len(error.message) < 80 else f"{path}: a required field is missing"
    text = {
        "type": f"must be of type {limit}",
        "minLength": f"shorter than {limit} characters",
        "maxLength": f"longer than {limit} characters",
        "minimum": f"below the minimum {limit}",
        "maximum": f"above the maximum {limit}",
        "pattern": f"does not match {limit}",
        "enum": f"not one of {', '.join(map(str, limit))}" if isinstance(limit, list) else "not an allowed value",
        "const": f"must be {limit!r}",
        "anyOf": "matches none of the allowed forms",
    }.get(rule, f"fails {rule}")
    return f"{path}: {text}"
