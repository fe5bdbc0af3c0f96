"""Requests carrying U+0000 are bad input, refused before any handler runs."""

from __future__ import annotations

import msgspec
import pytest

from outpost_contracts.errors import ValidationFailed
from outpost_kit.responder import refuse_nul

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("a\x00b", True),
        ("\\\x00", True),  # a backslash, then NUL
        ("\\u0000", False),  # the six characters \u0000, not NUL
        ("\\\\u0000", False),
        ("plain", False),
    ],
)
def test_refuse_nul(text: str, refused: bool) -> None:
    data = msgspec.json.encode({"body": {"name": text}})
    if refused:
        with pytest.raises(ValidationFailed):
            refuse_nul(data)
    else:
        refuse_nul(data)
