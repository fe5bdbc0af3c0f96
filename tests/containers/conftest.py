"""The container suite's fixtures (tests/containers/_compose.py) and its figures."""

from __future__ import annotations

from typing import Any

from tests.containers._compose import REPORT, platform

__all__ = ["platform"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("container figures")
        for line in REPORT:
            terminalreporter.write_line(line)
