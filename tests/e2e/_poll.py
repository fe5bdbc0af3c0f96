"""Waiting for the platform to get somewhere: the e2e tests' one polling helper."""

from __future__ import annotations

import time
from typing import Any


def eventually(check: Any, timeout: float = 30.0, every: float = 0.3) -> Any:
    """``check()`` until it returns something true or ``timeout`` seconds passed; its last
    result either way (the caller's assert says what was expected)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)
