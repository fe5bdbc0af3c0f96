"""What every command shares: the chosen profile, the output options, the console and a
client built from them; parsing of ``--set k=v``, ``--filter`` and durations."""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from outpost_client import Client, output
from outpost_client.config import Config, Profile
from outpost_client.errors import ApiError


def _format(value: str | None) -> str | None:
    if value is not None and value.lower() not in output.FORMATS:
        raise typer.BadParameter(f"one of {', '.join(output.FORMATS)}, not {value!r}")
    return value.lower() if value else None


OutputOpt = Annotated[
    str | None,
    typer.Option("--output", "-o", help="table (default), json, yaml or csv", callback=_format),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print ids only, one a line")]


@dataclass
class State:
    profile_name: str | None = None
    url: str | None = None
    api_key: str | None = None
    output: str = "table"
    quiet: bool = False
    config_file: Path | None = None
    console: Console = field(default_factory=lambda: Console(highlight=False))
    errors: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    def config(self) -> Config:
        return Config.load(self.config_file)

    def profile(self) -> Profile:
        profile = self.config().profile(self.profile_name)
        if self.url:
            profile.url = self.url
        if self.api_key:
            profile.api_key, profile.access_token = self.api_key, ""
        return profile

    def client(self, profile: Profile | None = None) -> Client:
        chosen = profile or self.profile()

        def refresh() -> str | None:
            return self.refresh(chosen)

        session = bool(chosen.refresh_token and not chosen.api_key)
        return Client(
            chosen.url,
            chosen.token or None,
            organization=chosen.organization or None,
            refresh=refresh if session else None,
        )

    def refresh(self, profile: Profile) -> str | None:
        """A new access token for a session profile (``POST /auth/refresh``), saved; None
        when the refresh token is refused (the session was revoked or expired)."""
        with Client(profile.url) as api:
            try:
                issued = api.json(
                    "POST", "/api/v1/auth/refresh", json={"refreshToken": profile.refresh_token}
                )
            except ApiError:
                return None
        profile.access_token = str(issued["accessToken"])
        profile.refresh_token = str(issued["refreshToken"])
        cfg = self.config()
        saved = cfg.profiles.get(profile.name)
        if saved is not None:
            saved.access_token, saved.refresh_token = profile.access_token, profile.refresh_token
            cfg.save()
        return profile.access_token

    def show(
        self,
        data: Any,
        columns: tuple[str, ...] | list[str],
        fmt: str | None = None,
        quiet: bool = False,
    ) -> None:
        chosen = (fmt or self.output).lower()
        if chosen not in output.FORMATS:
            raise typer.BadParameter(f"--output must be one of {', '.join(output.FORMATS)}")
        rendered = output.render(data, chosen, columns, quiet=quiet or self.quiet)
        if isinstance(rendered, str):
            sys.stdout.write(rendered)
            sys.stdout.flush()
        else:
            self.console.print(rendered)

    def note(self, message: str) -> None:
        """A message for people (stderr, so that stdout stays what scripts parse)."""
        if not self.quiet:
            self.errors.print(message)


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def console_for_terminal() -> Console:
    """Colours only on a terminal (rich decides; ``NO_COLOR`` is honoured)."""
    return Console(highlight=False, no_color=bool(os.environ.get("NO_COLOR")) or None)


# -- parsing ------------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses (numbers, true, null, [..], {..}), else the
    text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def assignments(pairs: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` → ``{"a": 1, "b": {"c": "x"}}``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}")
        target = out
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = parse_value(value)
    return out


def body_of(data: str | None, pairs: list[str] | None, base: dict[str, Any] | None = None) -> Any:
    """A request body from ``--data`` (JSON, or ``@file``) merged with ``--set`` pairs."""
    body: dict[str, Any] = dict(base or {})
    if data:
        text = Path(data[1:]).read_text() if data.startswith("@") else data
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise typer.BadParameter(f"--data is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise typer.BadParameter("--data must be a JSON object")
        body.update(loaded)
    body.update(assignments(pairs))
    return body


FIELD_FILTER = re.compile(
    r"^(?P<field>[A-Za-z][A-Za-z0-9_.]*?(?:__(?:eq|neq|lt|lte|gt|gte|in|nin))?)=(?P<value>.*)$"
)


def filters(expressions: list[str] | None) -> dict[str, str]:
    """``--filter`` in either query style (docs/api.md, Collections): ``field__op=value`` (or
    ``field=value``) becomes that query parameter; anything else is OData, joined with
    ``and`` into ``$filter``."""
    params: dict[str, str] = {}
    odata: list[str] = []
    for expression in expressions or []:
        match = FIELD_FILTER.match(expression.strip())
        if match and " " not in match.group("field"):
            params[match.group("field")] = match.group("value")
        else:
            odata.append(expression.strip())
    if odata:
        params["$filter"] = odata[0] if len(odata) == 1 else " and ".join(f"({e})" for e in odata)
    return params


DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match:
        raise typer.BadParameter(f"a duration like 30s, 15m, 2h or 7d, got {text!r}")
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def window(since: str | None, start: str | None, end: str | None) -> tuple[str, str]:
    """``from``/``to`` for a query: explicit times win, else the last ``since``."""
    now = datetime.now(UTC)
    to = end or rfc3339(now)
    frm = start or rfc3339(now - parse_duration(since or "1h"))
    return frm, to


UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def device_id(api: Client, ref: str) -> str:
    """A device by id, or by name (the alternate key ``name='…'``)."""
    if UUID_RE.match(ref):
        return ref
    quoted = ref.replace("'", "''")
    found = api.json("GET", f"/api/v1/devices/by-key/name='{quoted}'")
    return str(found["id"])
