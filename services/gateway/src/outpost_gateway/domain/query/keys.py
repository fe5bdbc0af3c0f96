"""OData key predicates: ``devices(<id>)``, ``devices('<id>')``, ``devices(name='…')``
(reference/fleet-api-odata.txt). Composite keys are not supported yet."""

from __future__ import annotations

from collections.abc import Collection

from outpost_contracts.errors import validation_error
from outpost_gateway.domain.query.odata import tokenize

KEY = "key"
ID = "id"


def parse_key(text: str, alternate: Collection[str]) -> tuple[str, str]:
    """``(key name, value)``: a bare or quoted value is the id; ``name='…'`` must be one of
    ``alternate``. Anything else is a validation_error naming ``key``."""
    eq = text.find("=")
    if eq < 0 or text.lstrip().startswith("'"):
        tokens = tokenize(text, KEY)
        if [t.kind for t in tokens] in (["string", "end"], ["literal", "end"], ["number", "end"]):
            return ID, str(tokens[0].value)
    elif eq > 0:
        name = text[:eq].strip()
        value_tokens = tokenize(text[eq + 1 :], KEY)
        if [t.kind for t in value_tokens] in (["string", "end"], ["literal", "end"]):
            if name == ID or name in alternate:
                return name, str(value_tokens[0].value)
            allowed = ", ".join([ID, *alternate])
            raise validation_error(KEY, f"'{name}' is not a key; keys here: {allowed}")
    forms = " or ".join(["(<id>)", *(f"({a}='…')" for a in alternate)])
    raise validation_error(KEY, f"expected {forms}, found ({text})")
