"""Why a dead-lettered body would fail the processor, told from the event contract.

The processor validates every body against its models, and ``schema/analytics-event.schema.json``
is generated from those models; validating the DLQ body against the same file tells the operator
"the producer sent a bad event" (fix the producer, then purge) apart from "a valid event the
processor could not store" (fix the processor or the table, then redrive).

The schema ships inside the package (``analytics-event.schema.json``, the copy ``schema/generate.py``
writes beside the original), read through ``importlib.resources``, so an installed ``chat-analytics``
judges bodies exactly as the processor does; ``$CHAT_ANALYTICS_SCHEMA`` names another file (a newer
contract). Messages name the field and the rule, never the offending value: a question must not end
up in a terminal.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import jsonschema

from chat_analytics_ops.errors import OpsError

SCHEMA_ENV = "CHAT_ANALYTICS_SCHEMA"
PACKAGED_SCHEMA = "analytics-event.schema.json"
EVENT_TYPES = ("query", "response")
MAX_SCHEMA_VERSION = 999  # the field's bound: above the known major and up to this, a major the contract does not know


def schema_path() -> Path | None:
    """``$CHAT_ANALYTICS_SCHEMA`` when set, else None (the packaged schema is used)."""
    override = os.environ.get(SCHEMA_ENV)
    return Path(override) if override else None


@functools.cache
def _load(path: Path | None) -> dict[str, Any]:
    try:
        if path is None:
            text = resources.files("chat_analytics_ops").joinpath(PACKAGED_SCHEMA).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        schema: dict[str, Any] = json.loads(text)
    except (OSError, ValueError) as error:
        where = path or f"the package's {PACKAGED_SCHEMA}"
        raise OpsError(f"cannot read the event schema from {where}: {error}") from None
    return schema


def load_schema() -> dict[str, Any]:
    """The parsed contract; a missing or unreadable file is an error, never a silent downgrade."""
    return _load(schema_path())


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def validate_body(body: str) -> str | None:
    """None when the body is a valid event, else one line saying which field breaks which rule."""
    try:
        event = json.loads(body, parse_constant=_refuse_constant)  # NaN and Infinity are Python's, not JSON's
    except json.JSONDecodeError as error:
        return f"not JSON ({type(error).__name__} at character {error.pos})"
    except ValueError as error:
        return f"not JSON ({error})"
    except RecursionError:
        return "nested deeper than the JSON parser's recursion limit"
    if not isinstance(event, dict):
        return f"not a JSON object (a {type(event).__name__})"
    known = _known_major(load_schema())
    version = event.get("schemaVersion")
    if (
        isinstance(version, int | float)
        and not isinstance(version, bool)
        and version == int(version)
        and known < version <= MAX_SCHEMA_VERSION
    ):
        return _unknown_major(version, known)  # first, as the processor judges it: a new major's other fields say nothing
    event_type = event.get("eventType")
    if event_type not in EVENT_TYPES:
        return "eventType: missing or not one of query, response"
    schema = load_schema()
    definition = _definition_for(schema, event_type)
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(definition)
    try:
        errors = list(validator.iter_errors(event))
    except RecursionError:
        return "nested deeper than the validator's recursion limit"
    return "; ".join(_describe(error) for error in _one_per_field(errors)[:3]) or None


def _one_per_field(errors: list[Any]) -> list[Any]:
    """The most telling error of each field: a wrong type says more than the rules that assume the type."""
    best: dict[tuple[str, ...], Any] = {}
    for error in errors:
        key = tuple(str(part) for part in error.absolute_path)
        if error.validator == "required":  # each missing field is its own finding
            key += ("required", error.message)
        if key not in best or (error.validator == "type" and best[key].validator != "type"):
            best[key] = error
    return [best[key] for key in sorted(best)]


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
    if "propertyNames" in error.relative_schema_path:
        return f"{path}: a field name contains a character SQS refuses in a message"
    if "additionalProperties" in error.relative_schema_path:
        return f"{path}: an extra field must be null, a boolean, a finite number, text SQS accepts, or arrays and objects of those nested at most 4 levels deep"
    if error.validator == "anyOf" and error.context:
        # e.g. ``source`` is "a string of at most 64 characters, or null": the branch of the right type says why.
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        typed = [subs for subs in branches.values() if all(sub.validator != "type" for sub in subs)]
        if typed:
            error = typed[0][0]
        else:
            kinds = [sub.validator_value for subs in branches.values() for sub in subs if sub.validator == "type"]
            return f"{path}: must be of type {' or '.join(map(str, kinds))}"
    rule, limit = error.validator, error.validator_value
    if path == "schemaVersion" and rule == "maximum" and isinstance(error.instance, int | float) and error.instance <= MAX_SCHEMA_VERSION:
        return _unknown_major(error.instance, limit)
    if rule == "not":
        return f"{path}: {_describe_not(limit)}"
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


def _known_major(schema: dict[str, Any]) -> int:
    """The highest major version the schema accepts (its ``schemaVersion`` maximum; 1 when it says none)."""
    for definition in schema.get("$defs", {}).values():
        maximum = definition.get("properties", {}).get("schemaVersion", {}).get("maximum") if isinstance(definition, dict) else None
        if isinstance(maximum, int):
            return maximum
    return 1


def _unknown_major(version: float, known: int) -> str:
    """A version number, never user text: a major the contract does not know (docs/contracts.md, "How the contract evolves")."""
    return f"schemaVersion: {version:g} is a major version this contract does not know (it knows {known}): a newer producer, or a wrong one"


def _describe_not(forbidden: dict[str, Any]) -> str:
    """The contract's ``not`` rules: a forbidden character class, or DynamoDB's unstorable magnitudes."""
    if "pattern" in forbidden:
        if forbidden["pattern"].startswith("[^"):
            return f"does not match: holds a character outside {forbidden['pattern'][2:-1]}"
        return "contains a character SQS refuses in a message"
    if "exclusiveMaximum" in forbidden:
        return f"a non-zero magnitude below {forbidden['exclusiveMaximum']} (DynamoDB cannot store it)"
    return "matches a form the contract forbids"
