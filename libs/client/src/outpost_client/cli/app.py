"""``outpost``: the Outpost API from a terminal. Global options come before the command
(``outpost --profile ops devices list``); ``-o`` and ``-q`` also after it."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from outpost_client import Client
from outpost_client.cli import exports, extra, readings, simulate, watch
from outpost_client.cli.context import OutputOpt, state
from outpost_client.cli.resources import SPECS, group_for
from outpost_client.config import Profile
from outpost_client.errors import ApiError, OutpostError, ValidationError


class Group(TyperGroup):
    """Errors of the API as one line on stderr (with its request id) and exit status 1,
    not a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except OutpostError as exc:
            message = str(exc)
            if isinstance(exc, ApiError) and exc.status == 401:
                message += "\n(log in again: outpost login)"
            typer.echo(f"Error: {message}", err=True)
            ctx.exit(1)


app = typer.Typer(
    cls=Group,
    help=(
        "The Outpost IoT platform from a terminal: devices, readings, alerts, exports and"
        " simulated devices.\n\nStart with: outpost login --url http://127.0.0.1:8080"
        " --api-key sk_live_…"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", envvar="OUTPOST_PROFILE", help="Profile")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Gateway URL (over the profile's)")] = None,
    output: OutputOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Ids only")] = False,
    config: Annotated[
        Path | None, typer.Option(envvar="OUTPOST_CONFIG", help="Config file")
    ] = None,
) -> None:
    """Global options."""
    st = state(ctx)
    st.profile_name, st.url, st.quiet, st.config_file = profile, url, quiet, config
    if output:
        st.output = output


# -- login, whoami, profiles ----------------------------------------------------------------


@app.command(
    help=(
        "Save a profile: an API key (checked against the API), or a session from an e-mail"
        " and password. The config file is written with mode 0600."
    ),
    epilog=(
        "Example: outpost login --url http://127.0.0.1:8080 --api-key sk_live_…\n\n"
        "Example: outpost --profile ops login --url https://outpost.example.com"
        " --email ada@example.com"
    ),
)
def login(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(help="Gateway URL")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="OUTPOST_API_KEY", help="sk_live_…")] = None,
    email: Annotated[str | None, typer.Option(help="Log in as a user instead")] = None,
    password: Annotated[str | None, typer.Option(help="(prompted when absent)")] = None,
    organization: Annotated[str | None, typer.Option(help="Organization id")] = None,
    broker_ca: Annotated[
        Path | None, typer.Option(help="The broker's CA, for device simulate")
    ] = None,
    default: Annotated[bool, typer.Option(help="Make it the default profile")] = True,
) -> None:
    st = state(ctx)
    cfg = st.config()
    name = st.profile_name or cfg.default
    profile = cfg.profiles.get(name) or Profile(name)
    profile.url = (url or st.url or profile.url).rstrip("/")
    if broker_ca:
        profile.broker_ca = str(broker_ca.resolve())
    if email:
        secret = password or typer.prompt("Password", hide_input=True)
        body: dict[str, Any] = {"email": email, "password": secret}
        if organization:
            body["organization"] = organization
        with Client(profile.url) as api:
            issued = api.json("POST", "/api/v1/auth/login", json=body)
        profile.api_key = ""
        profile.access_token = issued["accessToken"]
        profile.refresh_token = issued["refreshToken"]
    elif api_key:
        profile.api_key, profile.access_token, profile.refresh_token = api_key, "", ""
    elif not profile.token:
        raise typer.BadParameter("give --api-key (or OUTPOST_API_KEY) or --email")
    if organization:
        profile.organization = organization
    with st.client(profile) as api:
        role = check_credential(api)  # the credential works
    cfg.profiles[name] = profile
    if default:
        cfg.default = name
    cfg.save()
    st.note(
        f"logged in to {profile.url} as profile [bold]{name}[/bold] ({profile.kind}"
        f"{', platform operator' if role == 'operator' else ''})"
    )


def check_credential(api: Client) -> str:
    """``organization`` or ``operator``: what the credential is, by asking the API (an
    operator's key must name an organization for organization routes, so it is tried on
    the operator's own collection)."""
    try:
        api.json("GET", "/api/v1/devices", params={"limit": 1})
        return "organization"
    except ValidationError as exc:
        if not any(f.name == "X-Organization" for f in exc.fields):
            raise
    api.json("GET", "/api/v1/admin/organizations", params={"limit": 1})
    return "operator"


@app.command(
    help="Forget a profile's credentials (a session is logged out).",
    epilog="Example: outpost --profile ops logout",
)
def logout(ctx: typer.Context) -> None:
    st = state(ctx)
    cfg = st.config()
    name = st.profile_name or cfg.default
    profile = cfg.profiles.get(name)
    if profile is None:
        raise typer.BadParameter(f"no profile {name!r}")
    if profile.access_token:
        with st.client(profile) as api:
            with contextlib.suppress(ApiError):
                api.request("POST", "/api/v1/auth/logout")
    profile.api_key = profile.access_token = profile.refresh_token = ""
    cfg.save()
    st.note(f"logged out of profile {name}")


def jwt_claims(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return dict(json.loads(decoded))
    except (IndexError, ValueError):
        return {}


@app.command(
    help="Who the current profile's credential is: kind, organization, key name and scopes.",
    epilog="Example: outpost whoami -o json",
)
def whoami(ctx: typer.Context, out: OutputOpt = None) -> None:
    st = state(ctx)
    profile = st.profile()
    if not profile.token:
        raise typer.BadParameter("not logged in: outpost login")
    info: dict[str, Any] = {"profile": profile.name, "url": profile.url, "kind": profile.kind}
    with st.client(profile) as api:
        if profile.api_key:
            lookup = profile.api_key.removeprefix("sk_live_")[:12]  # the published part
            info["key"] = f"sk_live_{lookup}…"
            try:
                keys = list(api.iterate("/api/v1/api-keys", {"limit": 1000}))
            except ApiError as exc:
                info["note"] = f"api-keys not readable ({exc.type})"
                keys = []
            for key in keys:
                if key.get("prefix") and lookup.startswith(str(key["prefix"])):
                    info.update(name=key["name"], keyId=key["id"], scopes=key["scopes"])
        else:
            claims = jwt_claims(profile.access_token)
            for claim, name in (("sub", "userId"), ("org", "organization"), ("role", "role")):
                if claim in claims:
                    info[name] = claims[claim]
            if "exp" in claims:
                info["expires"] = claims["exp"]
        info["acting as"] = check_credential(api)
    st.show(info, list(info), out)


profiles_app = typer.Typer(help="The saved profiles", no_args_is_help=True)


@profiles_app.command("list", help="Saved profiles.", epilog="Example: outpost profiles list")
def list_profiles(ctx: typer.Context, out: OutputOpt = None) -> None:
    st = state(ctx)
    cfg = st.config()
    rows = [
        {"name": p.name, "url": p.url, "kind": p.kind, "default": p.name == cfg.default}
        for p in cfg.profiles.values()
    ]
    st.show(rows, ("name", "url", "kind", "default"), out)


@profiles_app.command(
    "use", help="Make a profile the default.", epilog="Example: outpost profiles use ops"
)
def use_profile(ctx: typer.Context, name: str) -> None:
    st = state(ctx)
    cfg = st.config()
    if name not in cfg.profiles:
        raise typer.BadParameter(f"no profile {name!r}")
    cfg.default = name
    cfg.save()


# -- the groups ---------------------------------------------------------------------------

GROUPS = {spec.name: group_for(spec) for spec in SPECS}
extra.register(GROUPS)
device_app = typer.Typer(help="One device's tools (simulate)", no_args_is_help=True)
simulate.register(device_app)
simulate.register(GROUPS["devices"])
for spec in SPECS:
    app.add_typer(GROUPS[spec.name], name=spec.name)
app.add_typer(device_app, name="device")
app.add_typer(extra.commands_app, name="commands")
app.add_typer(extra.state_app, name="state")
app.add_typer(exports.app, name="exports")
app.add_typer(profiles_app, name="profiles")
readings.register(app)
watch.register(app)


def main() -> None:
    app(prog_name="outpost")


if __name__ == "__main__":
    main()
