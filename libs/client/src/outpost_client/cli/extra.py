"""The commands a resource adds to its group's shared verbs (``resources.py``): creating
with named options, alert transitions, channel tests, commands and state."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from outpost_client.cli.context import OutputOpt, QuietOpt, assignments, body_of, device_id, state
from outpost_client.cli.resources import SPECS, DataOpt, SetOpt, Spec

COLUMNS = {spec.name: spec.columns for spec in SPECS}


def _spec(name: str) -> Spec:
    return next(s for s in SPECS if s.name == name)


def _post(
    ctx: typer.Context, path: str, body: Any, columns: Any, out: str | None, quiet: bool
) -> Any:
    st = state(ctx)
    with st.client() as api:
        created = api.json("POST", path, json=body)
    st.show(created, columns, out, quiet)
    return created


# -- conditions ---------------------------------------------------------------------------

COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.eE+-]+)\s*$")


def parse_condition(text: str) -> dict[str, Any]:
    """``"> 30"``, ``"outside 10 20"``, ``"nodata 300"``, ``"offline 60"`` → the rule's
    condition (docs/api.md, Alert rules)."""
    match = COMPARISON.match(text)
    if match:
        return {"op": match.group(1), "threshold": float(match.group(2))}
    words = text.split()
    try:
        if len(words) == 3 and words[0] == "outside":
            return {"op": "outside", "low": float(words[1]), "high": float(words[2])}
        if len(words) == 2 and words[0] in ("nodata", "offline"):
            return {"op": words[0], "seconds": int(words[1])}
    except ValueError:
        pass
    raise typer.BadParameter(
        f"a condition like '> 30', 'outside 10 20', 'nodata 300' or 'offline 60', got {text!r}"
    )


def register(groups: dict[str, typer.Typer]) -> None:
    devices, rules, alerts = groups["devices"], groups["alert-rules"], groups["alerts"]

    @devices.command(
        "create",
        help="Create a device.",
        epilog="Example: outpost devices create gw-1 --type gateway --tag env=prod",
    )
    def create_device(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="Unique in the organization")],
        device_type: Annotated[str | None, typer.Option("--type", help="deviceType")] = None,
        site: Annotated[str | None, typer.Option(help="siteId")] = None,
        group: Annotated[str | None, typer.Option(help="groupId")] = None,
        tag: Annotated[list[str] | None, typer.Option(help="key=value; repeatable")] = None,
        attr: Annotated[list[str] | None, typer.Option(help="attribute key=value")] = None,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        body: dict[str, Any] = {"name": name}
        if device_type:
            body["deviceType"] = device_type
        if site:
            body["siteId"] = site
        if group:
            body["groupId"] = group
        if tag:
            body["tags"] = [_tag(t) for t in tag]
        if attr:
            body["attributes"] = assignments(attr)
        _post(ctx, "/api/v1/devices", body, COLUMNS["devices"], out, quiet)

    def _retag(
        ctx: typer.Context, ref: str, add: list[str], remove: list[str], out: str | None
    ) -> None:
        st = state(ctx)
        with st.client() as api:
            ident = device_id(api, ref)
            resp = api.request("GET", f"/api/v1/devices/{ident}")
            current = resp.json().get("tags", [])
            removed = set(remove) | {_tag(t)["key"] for t in add}
            tags = [t for t in current if t["key"] not in removed] + [_tag(t) for t in add]
            changed = api.json(
                "PATCH",
                f"/api/v1/devices/{ident}",
                json={"tags": tags},
                headers={"If-Match": resp.headers.get("etag", "")},
            )
        st.show(changed, COLUMNS["devices"], out)

    @devices.command(
        "tag", help="Set tags of a device.", epilog="Example: outpost devices tag gw-1 env=prod"
    )
    def tag_device(
        ctx: typer.Context,
        device: Annotated[str, typer.Argument(help="Id or name")],
        tags: Annotated[list[str], typer.Argument(help="key=value …")],
        out: OutputOpt = None,
    ) -> None:
        _retag(ctx, device, tags, [], out)

    @devices.command(
        "untag", help="Remove tags of a device.", epilog="Example: outpost devices untag gw-1 env"
    )
    def untag_device(
        ctx: typer.Context,
        device: Annotated[str, typer.Argument(help="Id or name")],
        keys: Annotated[list[str], typer.Argument(help="Tag keys")],
        out: OutputOpt = None,
    ) -> None:
        _retag(ctx, device, [], keys, out)

    @devices.command(
        "health", help="A device's health.", epilog="Example: outpost devices health gw-1"
    )
    def health(
        ctx: typer.Context,
        device: Annotated[str, typer.Argument(help="Id or name")],
        out: OutputOpt = None,
    ) -> None:
        st = state(ctx)
        with st.client() as api:
            found = api.json("GET", f"/api/v1/devices/{device_id(api, device)}/health")
        st.show(found, (), out)

    @devices.command(
        "certificates",
        help="A device's certificates.",
        epilog="Example: outpost devices certificates gw-1",
    )
    def certificates(
        ctx: typer.Context,
        device: Annotated[str, typer.Argument(help="Id or name")],
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        st = state(ctx)
        with st.client() as api:
            page = api.json("GET", f"/api/v1/devices/{device_id(api, device)}/certificates")
        st.show(page["data"], ("serial", "status", "notBefore", "notAfter"), out, quiet)

    @rules.command(
        "create",
        help="Create an alert rule.",
        epilog=(
            "Example: outpost alert-rules create too-hot --sensor temperature"
            " --condition '> 30' --device gw-1 --severity MAJOR\n\n"
            "An offline rule needs no sensor: outpost alert-rules create gone"
            " --condition 'offline 300' --group g-1"
        ),
    )
    def create_rule(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument()],
        condition: Annotated[
            str, typer.Option(help="'> 30', 'outside 10 20', 'nodata 300', 'offline 60'")
        ],
        sensor: Annotated[
            str | None,
            typer.Option(help="The sensor key; required unless the condition is 'offline N'"),
        ] = None,
        severity: Annotated[str, typer.Option(help="CRITICAL, MAJOR, MINOR, WARNING")] = "MAJOR",
        device: Annotated[str | None, typer.Option(help="Scope: one device (id or name)")] = None,
        group: Annotated[str | None, typer.Option(help="Scope: a device group")] = None,
        site: Annotated[str | None, typer.Option(help="Scope: a site")] = None,
        for_seconds: Annotated[int, typer.Option("--for", help="Seconds it must hold")] = 0,
        channel: Annotated[list[str] | None, typer.Option(help="Channel id; repeatable")] = None,
        set_: SetOpt = None,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        parsed = parse_condition(condition)
        extra = assignments(set_)
        given = extra.get("condition", parsed)
        op = given.get("op") if isinstance(given, dict) else None
        if sensor is None and "sensor" not in extra and op != "offline":
            raise typer.BadParameter(
                f"required with the condition {condition!r} (only 'offline N' needs none)",
                param_hint="'--sensor'",
            )
        st = state(ctx)
        with st.client() as api:
            if device:
                scope = {"type": "DEVICE", "id": device_id(api, device)}
            elif group:
                scope = {"type": "GROUP", "id": group}
            elif site:
                scope = {"type": "SITE", "id": site}
            else:
                scope = {"type": "ORGANIZATION"}
            body = {
                "name": name,
                **({} if sensor is None else {"sensor": sensor}),
                "condition": parsed,
                "severity": severity.upper(),
                "scope": scope,
                "forSeconds": for_seconds,
                "channelIds": channel or [],
                **extra,
            }
            created = api.json("POST", "/api/v1/alert-rules", json=body)
        st.show(created, COLUMNS["alert-rules"], out, quiet)

    def transition(path: str) -> Any:
        def run(
            ctx: typer.Context,
            ident: Annotated[str, typer.Argument(metavar="ID")],
            comment: Annotated[str | None, typer.Option(help="Why")] = None,
            out: OutputOpt = None,
            quiet: QuietOpt = False,
        ) -> None:
            st = state(ctx)
            body = {"comment": comment} if comment else None
            with st.client() as api:
                done = api.json("POST", f"/api/v1/alerts/{ident}/{path}", json=body)
            st.show(done, COLUMNS["alerts"], out, quiet)

        return run

    for verb, path, help_ in (
        ("ack", "acknowledge", "Acknowledge an alert."),
        ("resolve", "resolve", "Resolve an alert."),
    ):
        alerts.command(
            verb, help=help_, epilog=f"Example: outpost alerts {verb} ID --comment 'on it'"
        )(transition(path))

    @groups["orgs"].command(
        "suspend",
        help="Suspend an organization (operator).",
        epilog="Example: outpost orgs suspend ID",
    )
    def suspend(
        ctx: typer.Context,
        ident: Annotated[str, typer.Argument(metavar="ID")],
        out: OutputOpt = None,
    ) -> None:
        st = state(ctx)
        with st.client() as api:
            done = api.json("POST", f"/api/v1/admin/organizations/{ident}/suspend")
        st.show(done, COLUMNS["orgs"], out)

    @groups["orgs"].command(
        "reinstate",
        help="Lift an organization's suspension (operator).",
        epilog="Example: outpost orgs reinstate ID",
    )
    def reinstate(
        ctx: typer.Context,
        ident: Annotated[str, typer.Argument(metavar="ID")],
        out: OutputOpt = None,
    ) -> None:
        st = state(ctx)
        with st.client() as api:
            done = api.json("POST", f"/api/v1/admin/organizations/{ident}/reinstate")
        st.show(done, COLUMNS["orgs"], out)

    @groups["users"].command(
        "create",
        help="Create a user of the organization.",
        epilog="Example: outpost users create ada@example.com --password … --role admin",
    )
    def create_user(
        ctx: typer.Context,
        email: Annotated[str, typer.Argument()],
        password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
        role: Annotated[str, typer.Option(help="owner, admin, member, viewer")] = "member",
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        body = {"email": email, "password": password, "role": role}
        _post(ctx, "/api/v1/users", body, COLUMNS["users"], out, quiet)

    @groups["api-keys"].command(
        "create",
        help="Create an API key (shown once).",
        epilog="Example: outpost api-keys create ci --scope devices:read --scope readings:read",
    )
    def create_key(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument()],
        scope: Annotated[list[str] | None, typer.Option(help="A scope; repeatable")] = None,
        expires_at: Annotated[str | None, typer.Option(help="RFC 3339")] = None,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        body: dict[str, Any] = {"name": name}
        if scope:
            body["scopes"] = scope
        if expires_at:
            body["expiresAt"] = expires_at
        st = state(ctx)
        with st.client() as api:
            created = api.json("POST", "/api/v1/api-keys", json=body)
        if quiet or st.quiet:
            print(created["key"])
            return
        st.show(created, ("id", "name", "key", "scopes"), out)

    @groups["oauth-clients"].command(
        "create",
        help="Create an OAuth client (its secret shown once).",
        epilog="Example: outpost oauth-clients create etl --scope readings:read",
    )
    def create_oauth(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument()],
        scope: Annotated[list[str], typer.Option(help="A scope; repeatable")],
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        body = {"name": name, "scopes": scope}
        _post(ctx, "/api/v1/oauth-clients", body, ("id", "clientId", "clientSecret"), out, quiet)

    @groups["oauth-clients"].command(
        "rotate-secret",
        help="A new secret for an OAuth client.",
        epilog="Example: outpost oauth-clients rotate-secret ID",
    )
    def rotate(
        ctx: typer.Context,
        ident: Annotated[str, typer.Argument(metavar="ID")],
        out: OutputOpt = None,
    ) -> None:
        path = f"/api/v1/oauth-clients/{ident}/rotate-secret"
        _post(ctx, path, None, ("id", "clientSecret"), out, False)

    @groups["tokens"].command(
        "create",
        help="A registration token for a device (created if no device has the name).",
        epilog="Example: outpost tokens create gw-7 --ttl 3600",
    )
    def create_token(
        ctx: typer.Context,
        device_name: Annotated[str, typer.Argument()],
        ttl: Annotated[int | None, typer.Option(help="Seconds it stays valid")] = None,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        body: dict[str, Any] = {"deviceName": device_name}
        if ttl:
            body["ttlSeconds"] = ttl
        columns = ("token", "deviceId", "deviceName", "expiresAt", "provisionEndpoint")
        st = state(ctx)
        with st.client() as api:
            issued = api.json("POST", "/api/v1/devices/registration/tokens", json=body)
        if quiet or st.quiet:
            print(issued["token"])
            return
        st.show(issued, columns, out)

    channels = groups["channels"]

    @channels.command(
        "create",
        help="Create a notification channel: a webhook (--url, --secret) or e-mail (--email).",
        epilog="Example: outpost channels create ops --url https://hooks.example.com/x --secret …",
    )
    def create_channel(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument()],
        url: Annotated[str | None, typer.Option(help="Webhook URL")] = None,
        secret: Annotated[str | None, typer.Option(help="Webhook HMAC secret (16+ chars)")] = None,
        email: Annotated[list[str] | None, typer.Option(help="An address; repeatable")] = None,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        body: dict[str, Any] = {"name": name}
        if email:
            body.update(type="EMAIL", addresses=email)
        else:
            body.update(type="WEBHOOK", url=url, secret=secret)
        _post(ctx, "/api/v1/notification-channels", body, COLUMNS["channels"], out, quiet)

    @channels.command(
        "test",
        help="Send a test notification through a channel.",
        epilog="Example: outpost channels test ID",
    )
    def test_channel(
        ctx: typer.Context,
        ident: Annotated[str, typer.Argument(metavar="ID")],
        out: OutputOpt = None,
    ) -> None:
        columns = ("outcome", "statusCode", "latencyMs", "error")
        _post(ctx, f"/api/v1/notification-channels/{ident}/test", None, columns, out, False)


def _tag(text: str) -> dict[str, str]:
    key, _, value = text.partition("=")
    if not key:
        raise typer.BadParameter(f"a tag is key=value, got {text!r}")
    return {"key": key, "value": value}


# -- commands and state (under a device) --------------------------------------------------

commands_app = typer.Typer(
    help="Commands to a device: /api/v1/devices/{id}/commands", no_args_is_help=True
)
state_app = typer.Typer(help="A device's desired and reported state", no_args_is_help=True)
COMMAND_COLUMNS = ("id", "name", "status", "params", "createdAt", "completedAt")


@commands_app.command(
    "list", help="A device's commands.", epilog="Example: outpost commands list gw-1"
)
def list_commands(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Id or name")],
    out: OutputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    st = state(ctx)
    with st.client() as api:
        items = list(api.iterate(f"/api/v1/devices/{device_id(api, device)}/commands"))
    st.show(items, COMMAND_COLUMNS, out, quiet)


@commands_app.command(
    "send",
    help="Send a command to a device.",
    epilog="Example: outpost commands send gw-1 reboot --param delay=5",
)
def send_command(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Id or name")],
    name: Annotated[str, typer.Argument(help="The command")],
    param: Annotated[list[str] | None, typer.Option(help="key=value; repeatable")] = None,
    ttl: Annotated[int | None, typer.Option(help="Seconds before it expires")] = None,
    out: OutputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    st = state(ctx)
    body: dict[str, Any] = {"name": name, "params": assignments(param)}
    if ttl:
        body["ttlSeconds"] = ttl
    with st.client() as api:
        sent = api.json("POST", f"/api/v1/devices/{device_id(api, device)}/commands", json=body)
    st.show(sent, COMMAND_COLUMNS, out, quiet)


@commands_app.command(
    "get", help="One command.", epilog="Example: outpost commands get gw-1 CMD_ID"
)
def get_command(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Id or name")],
    ident: Annotated[str, typer.Argument(metavar="ID")],
    out: OutputOpt = None,
) -> None:
    st = state(ctx)
    with st.client() as api:
        found = api.json("GET", f"/api/v1/devices/{device_id(api, device)}/commands/{ident}")
    st.show(found, COMMAND_COLUMNS, out)


@state_app.command(
    "get",
    help="Desired, reported and delta (--explain: the source of each desired key).",
    epilog="Example: outpost state get gw-1 --explain -o yaml",
)
def get_state(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Id or name")],
    explain: Annotated[
        bool, typer.Option("--explain", help="Which binding (or the device) set each key")
    ] = False,
    out: OutputOpt = None,
) -> None:
    st = state(ctx)
    params = {"explain": "true"} if explain else None
    with st.client() as api:
        found = api.json("GET", f"/api/v1/devices/{device_id(api, device)}/state", params=params)
    st.show(found, (), out)


@state_app.command(
    "set",
    help="Merge into the desired state (JSON merge patch; key=null deletes).",
    epilog="Example: outpost state set gw-1 fan.speed=3 led=true",
)
def set_state(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Id or name")],
    pairs: Annotated[list[str] | None, typer.Argument(help="key=value …")] = None,
    data: DataOpt = None,
    replace: Annotated[bool, typer.Option(help="Replace the desired state (PUT)")] = False,
    out: OutputOpt = None,
) -> None:
    st = state(ctx)
    desired = body_of(data, pairs)
    with st.client() as api:
        found = api.json(
            "PUT" if replace else "PATCH",
            f"/api/v1/devices/{device_id(api, device)}/state",
            json={"desired": desired},
        )
    st.show(found, (), out)
