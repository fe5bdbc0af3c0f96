"""``outpost watch alerts|events|devices``: what changes, as it changes. The API has no
push channel for people (devices have the broker), so the newest page is polled
(``--interval``, well inside the list rate limit) and each new or changed object printed
once: an alert whose status moved, a device that came online, a new timeline event."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer

from outpost_client import output
from outpost_client.cli.context import OutputOpt, state


class Kind(StrEnum):
    alerts = "alerts"
    events = "events"
    devices = "devices"


@dataclass(frozen=True)
class Watched:
    path: str
    columns: tuple[str, ...]
    version: Callable[[dict[str, Any]], Any]  # what, changed, makes an object worth printing


WATCHED = {
    Kind.alerts: Watched(
        "/api/v1/alerts",
        ("id", "status", "severity", "sensor", "deviceId", "trigger.value", "openedAt"),
        lambda a: (a.get("status"), a.get("version")),
    ),
    Kind.events: Watched(
        "/api/v1/events", ("ts", "type", "summary", "deviceId"), lambda e: e.get("id")
    ),
    Kind.devices: Watched(
        "/api/v1/devices",
        ("id", "name", "status", "online", "lastSeenAt"),
        lambda d: (d.get("status"), d.get("online"), d.get("version")),
    ),
}


def changes(
    seen: dict[str, Any], items: list[dict[str, Any]], version: Callable[[dict[str, Any]], Any]
) -> list[dict[str, Any]]:
    """The items that are new or whose version differs from ``seen`` (updated), oldest
    first (pages come newest first)."""
    fresh = []
    for item in reversed(items):
        key = str(item.get("id"))
        now = version(item)
        if seen.get(key) != now:
            seen[key] = now
            fresh.append(item)
    return fresh


def register(app: typer.Typer) -> None:
    @app.command(
        "watch",
        help=(
            "Stream changes of alerts, timeline events or devices as they happen (Ctrl-C to"
            " stop). With --output json, one JSON object a line."
        ),
        epilog="Example: outpost watch alerts --interval 2",
    )
    def watch(
        ctx: typer.Context,
        kind: Annotated[Kind, typer.Argument(help="alerts, events or devices")],
        interval: Annotated[float, typer.Option(help="Seconds between polls")] = 2.0,
        history: Annotated[bool, typer.Option(help="Print the current ones first")] = False,
        stop_after: Annotated[
            float | None, typer.Option("--for", help="Stop after this many seconds")
        ] = None,
        until: Annotated[
            int | None, typer.Option("--count", help="Stop after this many changes")
        ] = None,
        out: OutputOpt = None,
    ) -> None:
        st = state(ctx)
        watched = WATCHED[kind]
        fmt = (out or st.output).lower()
        seen: dict[str, Any] = {}
        printed = 0
        started = time.monotonic()
        params = {"order": "DESC", "limit": 100}
        first = True
        with st.client() as api:
            try:
                while True:
                    page = api.json("GET", watched.path, params=params)
                    fresh = changes(seen, page["data"], watched.version)
                    if first and not history:
                        fresh = []
                    first = False
                    for item in fresh:
                        _emit(st, fmt, item, watched.columns)
                        printed += 1
                        if until is not None and printed >= until:
                            return
                    if stop_after is not None and time.monotonic() - started >= stop_after:
                        return
                    time.sleep(interval)
            except KeyboardInterrupt:
                return


def _emit(st: Any, fmt: str, item: dict[str, Any], columns: tuple[str, ...]) -> None:
    if st.quiet:
        print(item.get("id"), flush=True)
    elif fmt == "json":
        print(json.dumps(item, separators=(",", ":")), flush=True)
    else:
        line = "  ".join(f"{c}={output.cell(output.pick(item, c))}" for c in columns)
        st.console.print(line, markup=False, highlight=False)
        sys.stdout.flush()
