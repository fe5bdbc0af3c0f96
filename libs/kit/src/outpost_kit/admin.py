"""``outpost-admin``: operator chores. ``streams apply`` creates or updates the JetStream
streams and durable consumers declared in ``outpost_contracts.streams`` (idempotent)."""

from __future__ import annotations

import asyncio
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
        asyncio.run(_apply(nats_url, streams, consumers, errors, (tls_ca, tls_cert, tls_key)))
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
        await apply_streams(nc.jetstream(), streams, consumers)
    finally:
        await nc.close()
