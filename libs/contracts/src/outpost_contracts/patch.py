"""What a change command (a JSON merge patch, PATCH) does to an aggregate's state: shared by
the services' deciders, which may import only contracts (tools/check_boundaries.py). RFC 7396
itself (``merge_patch``) lives here once: devices' attributes and desired state, and fleet's
effective desired state, merge with it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import msgspec

from outpost_contracts.errors import NotFound


class Deletable(Protocol):
    @property
    def deleted(self) -> bool: ...


S = TypeVar("S", bound=Deletable)


def live(state: S | None, what: str) -> S:
    """``state`` if the aggregate exists and is not deleted; ``NotFound`` ("no such
    ``what``") otherwise."""
    if state is None or state.deleted:
        raise NotFound(f"no such {what}")
    return state


def changes(
    state: Any,
    patch: Any,
    fields: Mapping[str, str],
    convert: Mapping[str, Callable[[Any, Any], Any]] = {},
) -> dict[str, Any]:
    """The patch's effective changes as {API name: new value}, in ``fields`` order
    ({API name: attribute}): the fields it sets (not ``UNSET``) to a value other than the
    state's. ``convert[attribute](state, value)`` turns a patched value into the new one
    first (a merge into the old value, a normal form) and may refuse it."""
    new: dict[str, Any] = {}
    for api_name, attr in fields.items():
        value = getattr(patch, attr)
        if value is msgspec.UNSET:
            continue
        if attr in convert:
            value = convert[attr](state, value)
        new[api_name] = value
    return {k: v for k, v in new.items() if v != getattr(state, fields[k])}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
