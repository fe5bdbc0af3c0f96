"""Readiness: named checks that must all pass before ``/readyz`` answers 200."""

from __future__ import annotations

from collections.abc import Callable


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], bool]] = {}

    def add(self, name: str, check: Callable[[], bool]) -> None:
        self._checks[name] = check

    def failing(self) -> list[str]:
        return [name for name, check in self._checks.items() if not check()]
