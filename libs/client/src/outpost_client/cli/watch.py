"""``outpost watch alerts|events|devices``: what changes, as it changes. It follows the
organization's timeline live (``GET /api/v1/events/stream``, Server-Sent Events) and prints
each entry once: a timeline event as it is; for ``alerts`` the alert an entry is about, for
``devices`` the device, each as it is when the entry arrives. A dropped connection is resumed
after the last entry received (``Last-Event-ID``): nothing missed, nothing twice."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer

from outpost_client import errors, output
from outpost_client.cli.context import OutputOpt, state
from outpost_client.events import EventStream


class Kind(StrEnum):
    alerts = "alerts"
    events = "events"
    devices = "devices"


@dataclass(frozen=True)
class Watched:
    filter: str | None  # the entries it follows (``/events``' OData ``$filter``)
    path: str | None  # what an entry is about, fetched to print it (by the entry's ``key``)
    key: str
    columns: tuple[str, ...]


WATCHED = {
    Kind.alerts: Watched(
        "alertId ne null",
        "/api/v1/alerts/{}",
        "alertId",
        ("id", "status", "severity", "sensor", "deviceId", "trigger.value", "openedAt"),
    ),
    Kind.events: Watched(None, None, "id", ("seq", "ts", "type", "summary", "deviceId")),
    Kind.devices: Watched(
        "startswith(type, 'devices.Device')",
        "/api/v1/devices/{}",
        "deviceId",
        ("id", "name", "status", "online", "lastSeenAt"),
    ),
}


def subject_of(api: Any, watched: Watched, entry: dict[str, Any]) -> dict[str, Any]:
    """What to print for an entry: the entry, or the object it is about (with the entry as
    ``event``); an object gone since (a decommissioned device's 404) is its id and the entry."""
    if watched.path is None:
        return entry
    key = entry.get(watched.key)
    try:
        found = api.json("GET", watched.path.format(key))
    except errors.ApiError as exc:
        if exc.status not in (404, 410):
            raise
        found = {"id": key}
    return {**found, "event": entry}


def register(app: typer.Typer) -> None:
    @app.command(
        "watch",
        help=(
            "Follow alerts, timeline events or devices as they change (Ctrl-C to stop), live"
            " from the timeline's stream; resumed after a dropped connection. With --output"
            " json, one JSON object a line."
        ),
        epilog="Example: outpost watch alerts -o json",
    )
    def watch(
        ctx: typer.Context,
        kind: Annotated[Kind, typer.Argument(help="alerts, events or devices")],
        history: Annotated[
            bool, typer.Option(help="Replay the whole timeline first, then follow")
        ] = False,
        after: Annotated[
            int | None,
            typer.Option(help="Start after this timeline entry (its seq; e.g. the last printed)"),
        ] = None,
        stop_after: Annotated[
            float | None,
            typer.Option("--for", help="Stop after this many seconds (after the replay)"),
        ] = None,
        until: Annotated[
            int | None, typer.Option("--count", help="Stop after this many changes")
        ] = None,
        interval: Annotated[
            float | None, typer.Option(hidden=True, help="Ignored: the stream is live")
        ] = None,
        out: OutputOpt = None,
    ) -> None:
        st = state(ctx)
        watched = WATCHED[kind]
        fmt = (out or st.output).lower()
        start = "0" if history else (str(after) if after is not None else None)
        deadline = None if stop_after is None else time.monotonic() + stop_after
        params = {"$filter": watched.filter} if watched.filter else {}
        printed = 0
        with st.client() as api:
            stream = EventStream(
                api,
                params,
                last_event_id=start,
                stop_at=deadline,
                on_reconnect=lambda exc: st.errors.print(
                    f"connection lost ({type(exc).__name__}); resuming after"
                    f" {stream.last_event_id or 'now'}",
                    markup=False,
                ),
            )
            try:
                for entry in stream:
                    _emit(st, fmt, subject_of(api, watched, entry), watched.columns)
                    printed += 1
                    if until is not None and printed >= until:
                        return
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
