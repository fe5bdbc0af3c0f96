"""A config artefact's document against its JSON Schema, with ``jsonschema`` (ADR 0088).

The domain may not import the validator (tools/check_boundaries.py), so the use case calls
``problems`` and hands the result to the artefact decider (``schema_problems``). Draft 2020-12
unless the schema's ``$schema`` names another draft; ``$ref`` resolves inside the schema only:
the validator gets an empty registry, so nothing is fetched from the network (jsonschema
would otherwise download a remote ``$ref``), and a reference it cannot resolve is a problem."""

from __future__ import annotations

from typing import Any

from jsonschema import exceptions, validators
from referencing import Registry
from referencing.exceptions import Unresolvable

from outpost_fleet.domain.desired_state import pointer

MAX_PROBLEMS = 20


def problems(document: Any, schema: dict[str, Any] | None) -> tuple[str, ...]:
    """What is wrong, as ``"<JSON Pointer>: <message>"`` (at most ``MAX_PROBLEMS``); ``()``
    when the document satisfies the schema or there is none. A schema that is itself invalid
    is one problem saying so."""
    if schema is None:
        return ()
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as exc:
        return (f"schema: not a valid JSON Schema: {exc.message}",)
    validator = cls(schema, registry=Registry())
    try:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    except Unresolvable as exc:
        return (f"schema: a $ref that does not resolve within the schema: {exc.ref}",)
    found: list[str] = []
    for error in errors:
        where = pointer(str(p) for p in error.absolute_path)
        found.append(f"{where or '/'}: {error.message}")
        if len(found) == MAX_PROBLEMS:
            break
    return tuple(found)
