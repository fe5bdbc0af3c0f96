"""``outpost-admin``: operator chores. ``streams apply`` creates or updates the JetStream
streams and durable consumers declared in ``outpost_contracts.streams`` (idempotent)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from nats.errors import NoServersError

from outpost_contracts.streams import (
    CONSUMERS,
    STREAMS,
    ConsumerSpec,
    StreamSpec,
    consumers_of,
    streams_of,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Outpost operator tools.")
streams_app = typer.Typer(no_args_is_help=True, help="JetStream streams and consumers.")
app.add_typer(streams_app, name="streams")
deploy_app = typer.Typer(
    no_args_is_help=True, help="Material for docker compose and Kubernetes (docs/operations.md)."
)
app.add_typer(deploy_app, name="deploy")


@streams_app.command("apply")
def apply(
    nats_url: Annotated[
        str, typer.Option(envvar="OUTPOST_NATS_URL", help="The NATS server to configure.")
    ] = "nats://127.0.0.1:4222",
    service: Annotated[
        str | None, typer.Option(help="Only this service's streams and consumers.")
    ] = None,
    tls_ca: Annotated[
        str, typer.Option(envvar="OUTPOST_NATS_TLS_CA", help="The broker's CA (PEM file).")
    ] = "",
    tls_cert: Annotated[
        str, typer.Option(envvar="OUTPOST_NATS_TLS_CERT", help="Client certificate (PEM).")
    ] = "",
    tls_key: Annotated[
        str, typer.Option(envvar="OUTPOST_NATS_TLS_KEY", help="Client key (PEM).")
    ] = "",
    replicas: Annotated[
        int,
        typer.Option(
            envvar="OUTPOST_NATS_STREAM_REPLICAS",
            min=1,
            max=5,
            help="Each stream's replicas (3 on a three-node cluster).",
        ),
    ] = 1,
) -> None:
    """Create or update every stream and durable consumer (or one service's)."""
    if service is None:
        streams, consumers = STREAMS, CONSUMERS
    else:
        streams, consumers = streams_of(service), consumers_of(service)
        if not streams and not consumers:
            owners = sorted({s.owner for s in STREAMS} | {c.owner for c in CONSUMERS})
            typer.echo(f"no streams or consumers belong to {service!r}; owners: {owners}", err=True)
            raise typer.Exit(2)
    errors: list[Exception] = []
    try:
        asyncio.run(
            _apply(nats_url, streams, consumers, errors, (tls_ca, tls_cert, tls_key), replicas)
        )
    except (OSError, NoServersError) as exc:
        reason = errors[-1] if errors else exc
        typer.echo(f"cannot reach NATS at {nats_url}: {reason or type(reason).__name__}", err=True)
        raise typer.Exit(1) from None
    for spec in streams:
        typer.echo(f"stream   {spec.name:<10} {', '.join(spec.subjects)}")
    for cspec in consumers:
        kind = "durable" if cspec.durable else "ephemeral (made by each replica; skipped)"
        typer.echo(f"consumer {cspec.stream}/{cspec.name}  {kind}")


async def _apply(
    url: str,
    streams: tuple[StreamSpec, ...],
    consumers: tuple[ConsumerSpec, ...],
    errors: list[Exception],
    tls: tuple[str, str, str] = ("", "", ""),
    replicas: int = 1,
) -> None:
    import nats

    from outpost_kit.messaging import apply_streams, client_tls

    async def record(exc: Exception) -> None:
        errors.append(exc)  # reported once by the caller, not as a traceback per attempt

    # Not messaging.connect: a one-shot tool should fail fast, not reconnect forever.
    nc = await asyncio.wait_for(
        nats.connect(
            url,
            name="outpost-admin",
            allow_reconnect=False,
            connect_timeout=5,
            max_reconnect_attempts=0,
            error_cb=record,
            tls=client_tls(*tls),
        ),
        timeout=10,
    )
    try:
        await apply_streams(nc.jetstream(), streams, consumers, replicas=replicas)
    finally:
        await nc.close()


@deploy_app.command("init")
def deploy_init(
    out: Annotated[Path, typer.Argument(help="Where to write (kept and completed if present).")],
    database_url: Annotated[
        str,
        typer.Option(
            envvar="OUTPOST_ADMIN_DATABASE_URL",
            help="The administrator DSN: its host, port and database name the service DSNs.",
        ),
    ],
    nats_url: Annotated[
        str, typer.Option(help="The broker as services reach it (no credentials).")
    ] = "tls://nats:4222",
    broker_host: Annotated[
        list[str] | None,
        typer.Option(help="More names for the broker's certificate (repeatable)."),
    ] = None,
    mount: Annotated[
        str, typer.Option(help="Where containers see OUT (compose volume, Secret mounts).")
    ] = "/etc/outpost",
    kubernetes_namespace: Annotated[
        str | None, typer.Option(help="Also write kubernetes-secrets.yaml for this namespace.")
    ] = None,
    stream_replicas: Annotated[
        int,
        typer.Option(
            envvar="OUTPOST_NATS_STREAM_REPLICAS",
            min=1,
            max=5,
            help="The replicas of nats-server's MQTT streams (3 on a three-node cluster).",
        ),
    ] = 1,
) -> None:
    """Generate the broker PKI, passwords, keys, nats-server's security.conf and each
    process's env file (idempotent: what exists is kept)."""
    from outpost_kit import deploy

    envs = deploy.init(
        out,
        broker_hosts=broker_host or [],
        nats_url=nats_url,
        admin_dsn=database_url,
        mount=mount,
        kubernetes_namespace=kubernetes_namespace,
        stream_replicas=stream_replicas,
    )
    typer.echo(
        f"deployment material in {out}: broker/, nats/security.conf, env/ ({', '.join(envs)})"
    )
    if kubernetes_namespace is not None:
        typer.echo(f"Kubernetes Secrets: {out / 'kubernetes-secrets.yaml'} (kubectl apply -f)")


@deploy_app.command("rotate-broker-credential")
def deploy_rotate_broker_credential(
    out: Annotated[Path, typer.Argument(help="The deployment material (deploy init's OUT).")],
    user: Annotated[str, typer.Argument(help="identity, ..., gateway, outpost-dev, ...")],
    retire: Annotated[
        bool, typer.Option(help="Replace the idle (previous) password instead.")
    ] = False,
) -> None:
    """Rotate a broker user's password without downtime (docs/runbook.md, "Rotating a
    broker credential"): then run `deploy init` again, reload nats-server, restart the
    process; later `--retire` the old password, `deploy init` and reload again."""
    from outpost_kit.dev.stack import SECRETS_NAME, rotate_nats_password

    try:
        slot = rotate_nats_password(out / SECRETS_NAME, user, retire=retire)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    done = "the idle slot's password replaced" if retire else "a new password"
    then = "." if retire else f", then restart {user}'s processes."
    typer.echo(
        f"{user}: {done}; its processes log in as {slot!r}. Next: `outpost-admin deploy init`"
        f" (same options) and reload nats-server (`nats-server --signal reload`){then}"
    )


@deploy_app.command("credentials")
def deploy_credentials(
    state_dir: Annotated[Path, typer.Argument(help="Where dev-credentials.json is kept.")],
    gateway_url: Annotated[str, typer.Option(help="The gateway, as this job reaches it.")] = (
        "http://gateway:8080"
    ),
    public_gateway_url: Annotated[str, typer.Option(help="The gateway, as users reach it.")] = (
        "http://127.0.0.1:8080"
    ),
    public_nats_url: Annotated[str, typer.Option()] = "tls://127.0.0.1:4222",
    public_mqtt_url: Annotated[str, typer.Option()] = "mqtts://127.0.0.1:1883",
    broker_ca_file: Annotated[str, typer.Option(help="Where users find the broker CA.")] = "",
) -> None:
    """The operator key and a demo organization's API key, printed (made once, then
    reused). Needs outpost-identity and identity's environment."""
    import json

    from outpost_kit import deploy

    creds = deploy.credentials(
        state_dir,
        gateway_url,
        {
            "gatewayUrl": public_gateway_url,
            "natsUrl": public_nats_url,
            "mqttUrl": public_mqtt_url,
            "brokerCaFile": broker_ca_file,
        },
    )
    key = creds["organization"]["apiKey"]
    typer.echo("Outpost is running. Development credentials:")
    typer.echo(json.dumps(creds, indent=2))
    typer.echo(f'Try:\n  curl -H "Authorization: Bearer {key}" {public_gateway_url}/api/v1/devices')
