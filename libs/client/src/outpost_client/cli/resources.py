"""The resource groups: ``outpost devices list``, ``outpost alert-rules create`` … one
``Spec`` per collection of docs/api.md; the verbs every collection shares (list, get, create,
update, delete) are built here once, and the few a resource adds (``alerts ack``,
``channels test``) are written beside it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from outpost_client.cli.context import (
    OutputOpt,
    QuietOpt,
    body_of,
    device_id,
    filters,
    state,
)

LIST_VERBS = ("list",)
CRUD = ("list", "get", "create", "update", "delete")

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="A field: key=value (JSON values; dotted keys nest)"),
]
DataOpt = Annotated[
    str | None, typer.Option("--data", "-d", help="The body as JSON, or @file.json")
]
IfMatchOpt = Annotated[
    str | None, typer.Option("--if-match", help="Only if the version (ETag) is still this")
]
FilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        "-f",
        help="name__eq=gw-1 (field style) or \"name eq 'gw-1'\" (OData); repeatable, and-ed",
    ),
]
SelectOpt = Annotated[str | None, typer.Option("--select", help="Fields to return: a,b,c")]
LimitOpt = Annotated[int, typer.Option("--limit", "-l", help="Page size (1-1000)")]
AllOpt = Annotated[bool, typer.Option("--all", "-A", help="Follow `after` through every page")]
OrderOpt = Annotated[str | None, typer.Option("--order", help="ASC or DESC (creation order)")]
CountOpt = Annotated[bool, typer.Option("--count", help="Print totalCount of the filter")]


@dataclass(frozen=True)
class Spec:
    name: str  # the command group
    path: str  # the collection
    columns: tuple[str, ...]
    verbs: tuple[str, ...] = CRUD
    noun: str = ""  # in help texts
    name_field: str | None = "name"  # create takes it as an argument
    example_create: str = ""

    @property
    def what(self) -> str:
        return self.noun or self.name.replace("-", " ")


SPECS = [
    Spec(
        "orgs",
        "/api/v1/admin/organizations",
        ("id", "name", "status", "createdAt"),
        ("list", "get", "create"),
        "organizations (operator key)",
    ),
    Spec("users", "/api/v1/users", ("id", "email", "role", "createdAt"), ("list", "get"), "users"),
    Spec(
        "api-keys",
        "/api/v1/api-keys",
        ("id", "name", "prefix", "scopes", "lastUsedAt", "expiresAt", "revokedAt"),
        ("list", "delete"),
        "API keys",
    ),
    Spec(
        "oauth-clients",
        "/api/v1/oauth-clients",
        ("id", "name", "clientId", "scopes", "createdAt"),
        ("list", "delete"),
        "OAuth clients",
    ),
    Spec(
        "devices",
        "/api/v1/devices",
        ("id", "name", "status", "online", "deviceType", "tags", "lastSeenAt"),
        ("list", "get", "update", "delete"),
        "devices",
    ),
    Spec(
        "groups",
        "/api/v1/device-groups",
        ("id", "name", "description", "createdAt"),
        noun="device groups",
        example_create="outpost groups create basement --set description='Boiler room'",
    ),
    Spec(
        "sites",
        "/api/v1/sites",
        ("id", "name", "address", "timezone", "createdAt"),
        example_create="outpost sites create lyon --set timezone=Europe/Paris",
    ),
    Spec(
        "sensors",
        "/api/v1/sensors",
        ("id", "deviceId", "key", "unit", "valueType"),
        name_field=None,
        example_create="outpost sensors create --set deviceId=… --set key=temperature",
    ),
    Spec(
        "tokens",
        "/api/v1/devices/registration/tokens",
        ("id", "deviceName", "deviceId", "status", "expiresAt"),
        ("list", "delete"),
        "registration tokens",
    ),
    Spec(
        "alert-rules",
        "/api/v1/alert-rules",
        ("id", "name", "sensor", "condition", "severity", "enabled", "scope"),
        ("list", "get", "update", "delete"),
        "alert rules",
    ),
    Spec(
        "alerts",
        "/api/v1/alerts",
        ("id", "status", "severity", "sensor", "deviceId", "trigger.value", "openedAt"),
        ("list", "get"),
    ),
    Spec(
        "channels",
        "/api/v1/notification-channels",
        ("id", "name", "type", "url", "enabled"),
        ("list", "get", "update", "delete"),
        "notification channels",
    ),
    Spec(
        "config-artefacts",
        "/api/v1/config-artefacts",
        ("id", "name", "version", "versionCount", "updatedAt"),
        ("list", "get", "create", "delete"),
        "config artefacts",
        example_create=(
            "outpost config-artefacts create sampling --set document='{\"interval\": 60}'"
        ),
    ),
    Spec(
        "bindings",
        "/api/v1/desired-state-bindings",
        ("id", "artefactId", "artefactVersion", "target.type", "target.id", "priority"),
        CRUD,
        "desired-state bindings",
        name_field=None,
        example_create=(
            "outpost bindings create --set artefactId=… --set target.type=ORGANIZATION"
        ),
    ),
    Spec(
        "audit-log",
        "/api/v1/audit-log",
        ("occurredAt", "service", "type", "streamType", "streamId", "actorKind"),
        LIST_VERBS,
        "audit log entries",
    ),
    Spec(
        "events",
        "/api/v1/events",
        ("ts", "type", "summary", "deviceId", "alertId"),
        LIST_VERBS,
        "timeline events",
    ),
]


def list_params(
    limit: int,
    order: str | None,
    filter_: list[str] | None,
    select: str | None,
    count: bool,
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit, **filters(filter_)}
    if order:
        params["order"] = order.upper()
    if select:
        params["$select"] = select
    if count:
        params["include"] = "totalCount"
    return params


def add_list(group: typer.Typer, spec: Spec) -> None:
    @group.command(
        "list",
        help=f"List {spec.what}.",
        epilog=f"Example: outpost {spec.name} list --limit 20 -o json",
    )
    def list_(
        ctx: typer.Context,
        limit: LimitOpt = 50,
        all_pages: AllOpt = False,
        order: OrderOpt = None,
        filter_: FilterOpt = None,
        select: SelectOpt = None,
        count: CountOpt = False,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        st = state(ctx)
        params = list_params(limit, order, filter_, select, count)
        with st.client() as api:
            if all_pages:
                items = list(api.iterate(spec.path, params))
                total = None
            else:
                page = api.json("GET", spec.path, params=params)
                items, total = page["data"], page.get("totalCount")
                if page.get("hasMore"):
                    st.note(f"[dim]more: --all, or --after {page.get('after')}[/dim]")
        columns = select.split(",") if select else list(spec.columns)
        if select and "id" not in columns:
            columns.insert(0, "id")
        st.show(items, columns, out, quiet)
        if total is not None:
            st.note(f"totalCount: {total}")


def add_get(group: typer.Typer, spec: Spec) -> None:
    @group.command(
        "get",
        help=f"Show one of the {spec.what}.",
        epilog=f"Example: outpost {spec.name} get 0190b8e2-… -o yaml",
    )
    def get(
        ctx: typer.Context,
        ident: Annotated[str, typer.Argument(metavar="ID")],
        select: SelectOpt = None,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        st = state(ctx)
        with st.client() as api:
            if spec.name == "devices":
                ident = device_id(api, ident)
            params = {"$select": select} if select else None
            item = api.json("GET", f"{spec.path}/{ident}", params=params)
        st.show(item, spec.columns, out, quiet)


def add_create(group: typer.Typer, spec: Spec) -> None:
    example = spec.example_create or f"outpost {spec.name} create my-{spec.name[:-1]}"

    if spec.name_field:

        @group.command(
            "create", help=f"Create one of the {spec.what}.", epilog=f"Example: {example}"
        )
        def create_named(
            ctx: typer.Context,
            name: Annotated[str, typer.Argument(help="Its name")],
            set_: SetOpt = None,
            data: DataOpt = None,
            out: OutputOpt = None,
            quiet: QuietOpt = False,
        ) -> None:
            _create(ctx, spec, body_of(data, set_, {"name": name}), out, quiet)

        return

    @group.command("create", help=f"Create one of the {spec.what}.", epilog=f"Example: {example}")
    def create(
        ctx: typer.Context,
        set_: SetOpt = None,
        data: DataOpt = None,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        _create(ctx, spec, body_of(data, set_), out, quiet)


def _create(ctx: typer.Context, spec: Spec, body: Any, out: str | None, quiet: bool) -> None:
    st = state(ctx)
    with st.client() as api:
        created = api.json("POST", spec.path, json=body)
    st.show(created, spec.columns, out, quiet)


def add_update(group: typer.Typer, spec: Spec) -> None:
    @group.command(
        "update",
        help=f"Change fields of one of the {spec.what} (PATCH).",
        epilog=f"Example: outpost {spec.name} update ID --set name=new-name --if-match 3",
    )
    def update(
        ctx: typer.Context,
        ident: Annotated[str, typer.Argument(metavar="ID")],
        set_: SetOpt = None,
        data: DataOpt = None,
        if_match: IfMatchOpt = None,
        out: OutputOpt = None,
        quiet: QuietOpt = False,
    ) -> None:
        st = state(ctx)
        headers = {"If-Match": _etag(if_match)} if if_match else None
        with st.client() as api:
            if spec.name == "devices":
                ident = device_id(api, ident)
            changed = api.json(
                "PATCH", f"{spec.path}/{ident}", json=body_of(data, set_), headers=headers
            )
        st.show(changed, spec.columns, out, quiet)


def _etag(version: str) -> str:
    return version if version.startswith('"') else f'"{version}"'


def add_delete(group: typer.Typer, spec: Spec) -> None:
    verb = "revoke" if spec.name in ("api-keys", "tokens") else "delete"

    def delete(
        ctx: typer.Context,
        ident: Annotated[str, typer.Argument(metavar="ID")],
        if_match: IfMatchOpt = None,
    ) -> None:
        st = state(ctx)
        headers = {"If-Match": _etag(if_match)} if if_match else None
        with st.client() as api:
            if spec.name == "devices":
                ident = device_id(api, ident)
            api.request("DELETE", f"{spec.path}/{ident}", headers=headers)
        st.note(f"{verb}d {ident}")
        if st.quiet:
            print(ident)

    for name in {verb, "delete"}:
        group.command(
            name,
            help=f"{verb.capitalize()} one of the {spec.what}.",
            epilog=f"Example: outpost {spec.name} {name} ID",
        )(delete)


BUILDERS = {
    "list": add_list,
    "get": add_get,
    "create": add_create,
    "update": add_update,
    "delete": add_delete,
}


def group_for(spec: Spec) -> typer.Typer:
    group = typer.Typer(
        help=f"{spec.what[:1].upper()}{spec.what[1:]}: {spec.path}", no_args_is_help=True
    )
    for verb in spec.verbs:
        BUILDERS[verb](group, spec)
    return group
