"""Every string pattern of the contracts matches whole strings only (docs/design/reliability.md
``hostile-export``; decision 77).

msgspec searches a ``pattern`` and Python's ``$`` matches before a final newline, so
``^[A-Za-z0-9_.:-]+$`` let the sensor key ``"temp\\n"`` in, which then split CSV rows and
NDJSON lines of exports. The patterns are collected from the JSON Schema of every contract
(``/api/schemas``: what msgspec enforces, and what clients read), so a new one is checked
the day it is added."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost_contracts import devices, identity, readings, registry
from outpost_contracts.base import whole
from outpost_contracts.schemas import json_schemas

pytestmark = pytest.mark.unit


def patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from patterns(item)


PATTERNS = sorted(set(patterns(json_schemas())))


def test_the_contracts_have_patterns_to_check() -> None:
    assert len(PATTERNS) >= 10
    assert readings.SENSOR_KEY_PATTERN in PATTERNS


@pytest.mark.parametrize("pattern", PATTERNS)
def test_no_pattern_accepts_a_trailing_newline(pattern: str) -> None:
    """Strings the pattern accepts (as msgspec checks it: ``re.search``) never end in a
    newline, and a newline after one is refused. The pattern is ECMA-262 too (no ``\\Z``)."""
    assert "\\Z" not in pattern and "\\A" not in pattern and "(?P" not in pattern
    compiled = re.compile(pattern)

    @settings(max_examples=60, deadline=None)
    @given(st.from_regex(compiled))
    def check(accepted: str) -> None:
        assert compiled.search(accepted)
        assert not accepted.endswith(("\n", "\r")), repr(accepted)
        for tail in ("\n", "\r\n", "\n\n"):
            assert compiled.search(accepted + tail) is None, repr(accepted + tail)

    check()


@pytest.mark.parametrize(
    ("type_", "good"),
    [
        (readings.SensorKey, "temp"),
        (registry.SensorKey, "temp"),
        (devices.DeviceName, "gw-1"),
        (identity.Scope, "devices:read"),
        (identity.Scope, "*"),
        (identity.Email, "a@b.co"),
    ],
)
def test_msgspec_refuses_a_value_with_a_final_newline(type_: Any, good: str) -> None:
    assert msgspec.convert(good, type_) == good
    for bad in (good + "\n", good + "\r\n", "\n" + good):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, type_)


def test_whole_anchors_an_alternation_at_both_ends() -> None:
    pattern = whole("a|b")
    assert re.search(pattern, "a") and re.search(pattern, "b")
    for bad in ("ab", "xb", "ax", "a\n", "b\n"):
        assert re.search(pattern, bad) is None, bad
