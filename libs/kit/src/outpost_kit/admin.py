"""``outpost-admin``: operator chores, run from a service image by the deployment jobs
(docker compose's ``init``, ``streams`` and ``credentials``, Kubernetes' migrations Job) or
on an operator's machine (docs/operations.md). ``streams apply`` creates or updates the
JetStream streams and durable consumers declared in ``outpost_contracts.streams``
(idempotent); ``deploy ...`` makes the deployment material (``outpost_kit.deploy``).

The standard library's ``argparse``: the images carry no CLI framework (ADR 0087). Options
that name an environment variable take it as their default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from nats.errors import NoServersError

from outpost_contracts.streams import (
    CONSUMERS,
    STREAMS,
    ConsumerSpec,
    StreamSpec,
    consumers_of,
    streams_of,
)


def _env(name: str, default: str | None = None) -> str | None:
    """An option's default from the environment (an empty value counts as unset)."""
    return os.environ.get(name) or default


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def streams_apply(
    nats_url: str,
    service: str | None,
    tls_ca: str,
    tls_cert: str,
    tls_key: str,
    replicas: int,
) -> int:
    """Create or update every stream and durable consumer (or one service's)."""
    if service is None:
        streams, consumers = STREAMS, CONSUMERS
    else:
        streams, consumers = streams_of(service), consumers_of(service)
        if not streams and not consumers:
            owners = sorted({s.owner for s in STREAMS} | {c.owner for c in CONSUMERS})
            _err(f"no streams or consumers belong to {service!r}; owners: {owners}")
            return 2
    errors: list[Exception] = []
    try:
        asyncio.run(
            _apply(nats_url, streams, consumers, errors, (tls_ca, tls_cert, tls_key), replicas)
        )
    except (OSError, NoServersError) as exc:
        reason = errors[-1] if errors else exc
        _err(f"cannot reach NATS at {nats_url}: {reason or type(reason).__name__}")
        return 1
    for spec in streams:
        print(f"stream   {spec.name:<10} {', '.join(spec.subjects)}")
    for cspec in consumers:
        kind = "durable" if cspec.durable else "ephemeral (made by each replica; skipped)"
        print(f"consumer {cspec.stream}/{cspec.name}  {kind}")
    return 0


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


def deploy_init(
    out: Path,
    database_url: str,
    nats_url: str,
    broker_host: Sequence[str],
    mount: str,
    kubernetes_namespace: str | None,
    stream_replicas: int = 1,
) -> int:
    """Generate the broker PKI, passwords, keys, nats-server's security.conf and each
    process's env file (idempotent: what exists is kept)."""
    from outpost_kit import deploy

    envs = deploy.init(
        out,
        broker_hosts=list(broker_host),
        nats_url=nats_url,
        admin_dsn=database_url,
        mount=mount,
        kubernetes_namespace=kubernetes_namespace,
        stream_replicas=stream_replicas,
    )
    print(f"deployment material in {out}: broker/, nats/security.conf, env/ ({', '.join(envs)})")
    if kubernetes_namespace is not None:
        print(f"Kubernetes Secrets: {out / 'kubernetes-secrets.yaml'} (kubectl apply -f)")
    return 0


def deploy_rotate_broker_credential(out: Path, user: str, retire: bool) -> int:
    """Rotate a broker user's password without downtime (docs/runbook.md, "Rotating a
    broker credential"): then run `deploy init` again, reload nats-server, restart the
    process; later `--retire` the old password, `deploy init` and reload again."""
    from outpost_kit.material import SECRETS_NAME, rotate_nats_password

    try:
        slot = rotate_nats_password(out / SECRETS_NAME, user, retire=retire)
    except ValueError as exc:
        _err(str(exc))
        return 2
    done = "the idle slot's password replaced" if retire else "a new password"
    then = "." if retire else f", then restart {user}'s processes."
    print(
        f"{user}: {done}; its processes log in as {slot!r}. Next: `outpost-admin deploy init`"
        f" (same options) and reload nats-server (`nats-server --signal reload`){then}"
    )
    return 0


def deploy_credentials(
    state_dir: Path,
    gateway_url: str,
    public_gateway_url: str,
    public_nats_url: str,
    public_mqtt_url: str,
    broker_ca_file: str,
) -> int:
    """The operator key and a demo organization's API key, printed (made once, then
    reused). Needs outpost-identity and identity's environment."""
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
    print("Outpost is running. Development credentials:")
    print(json.dumps(creds, indent=2))
    print(f'Try:\n  curl -H "Authorization: Bearer {key}" {public_gateway_url}/api/v1/devices')
    return 0


def _replicas(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 5:
        raise argparse.ArgumentTypeError(f"{number} is not in the range 1<=x<=5")
    return number


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="outpost-admin", description="Outpost operator tools.")
    groups = top.add_subparsers(dest="group", metavar="COMMAND")

    streams = groups.add_parser("streams", help="JetStream streams and consumers.")
    streams_commands = streams.add_subparsers(dest="command", metavar="COMMAND")
    apply = streams_commands.add_parser(
        "apply", help="Create or update every stream and durable consumer (or one service's)."
    )
    apply.add_argument(
        "--nats-url",
        default=_env("OUTPOST_NATS_URL", "nats://127.0.0.1:4222"),
        help="The NATS server to configure [env OUTPOST_NATS_URL].",
    )
    apply.add_argument("--service", help="Only this service's streams and consumers.")
    for option, variable, text in (
        ("--tls-ca", "OUTPOST_NATS_TLS_CA", "The broker's CA (PEM file)."),
        ("--tls-cert", "OUTPOST_NATS_TLS_CERT", "Client certificate (PEM)."),
        ("--tls-key", "OUTPOST_NATS_TLS_KEY", "Client key (PEM)."),
    ):
        apply.add_argument(option, default=_env(variable, ""), help=f"{text} [env {variable}]")
    apply.add_argument(
        "--replicas",
        type=_replicas,
        default=_env("OUTPOST_NATS_STREAM_REPLICAS", "1"),  # a string: checked by type
        help="Each stream's replicas (3 on a three-node cluster) [env "
        "OUTPOST_NATS_STREAM_REPLICAS].",
    )
    apply.set_defaults(
        run=lambda a: streams_apply(
            a.nats_url, a.service, a.tls_ca, a.tls_cert, a.tls_key, a.replicas
        )
    )

    deploy = groups.add_parser(
        "deploy", help="Material for docker compose and Kubernetes (docs/operations.md)."
    )
    deploy_commands = deploy.add_subparsers(dest="command", metavar="COMMAND")
    init = deploy_commands.add_parser(
        "init",
        help="Generate the broker PKI, passwords, keys, nats-server's security.conf and each "
        "process's env file (idempotent: what exists is kept).",
    )
    init.add_argument("out", type=Path, help="Where to write (kept and completed if present).")
    admin_dsn = _env("OUTPOST_ADMIN_DATABASE_URL")
    init.add_argument(
        "--database-url",
        default=admin_dsn,
        required=admin_dsn is None,
        help="The administrator DSN: its host, port and database name the service DSNs "
        "[env OUTPOST_ADMIN_DATABASE_URL].",
    )
    init.add_argument(
        "--nats-url",
        default="tls://nats:4222",
        help="The broker as services reach it (no credentials).",
    )
    init.add_argument(
        "--broker-host",
        action="append",
        default=[],
        help="More names for the broker's certificate (repeatable).",
    )
    init.add_argument(
        "--mount",
        default="/etc/outpost",
        help="Where containers see OUT (compose volume, Secret mounts).",
    )
    init.add_argument(
        "--kubernetes-namespace", help="Also write kubernetes-secrets.yaml for this namespace."
    )
    init.add_argument(
        "--stream-replicas",
        type=_replicas,
        default=_env("OUTPOST_NATS_STREAM_REPLICAS", "1"),  # a string: checked by type
        help="The replicas of nats-server's MQTT streams (3 on a three-node cluster) [env "
        "OUTPOST_NATS_STREAM_REPLICAS].",
    )
    init.set_defaults(
        run=lambda a: deploy_init(
            a.out,
            a.database_url,
            a.nats_url,
            a.broker_host,
            a.mount,
            a.kubernetes_namespace,
            a.stream_replicas,
        )
    )

    rotate = deploy_commands.add_parser(
        "rotate-broker-credential",
        help="Rotate a broker user's password without downtime (docs/runbook.md).",
    )
    rotate.add_argument("out", type=Path, help="The deployment material (deploy init's OUT).")
    rotate.add_argument("user", help="identity, ..., gateway, outpost-dev, ...")
    rotate.add_argument(
        "--retire",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Replace the idle (previous) password instead.",
    )
    rotate.set_defaults(run=lambda a: deploy_rotate_broker_credential(a.out, a.user, a.retire))

    credentials = deploy_commands.add_parser(
        "credentials",
        help="The operator key and a demo organization's API key, printed (made once, then "
        "reused). Needs outpost-identity and identity's environment.",
    )
    credentials.add_argument("state_dir", type=Path, help="Where dev-credentials.json is kept.")
    credentials.add_argument(
        "--gateway-url", default="http://gateway:8080", help="The gateway, as this job reaches it."
    )
    credentials.add_argument(
        "--public-gateway-url",
        default="http://127.0.0.1:8080",
        help="The gateway, as users reach it.",
    )
    credentials.add_argument("--public-nats-url", default="tls://127.0.0.1:4222")
    credentials.add_argument("--public-mqtt-url", default="mqtts://127.0.0.1:1883")
    credentials.add_argument("--broker-ca-file", default="", help="Where users find the broker CA.")
    credentials.set_defaults(
        run=lambda a: deploy_credentials(
            a.state_dir,
            a.gateway_url,
            a.public_gateway_url,
            a.public_nats_url,
            a.public_mqtt_url,
            a.broker_ca_file,
        )
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """``outpost-admin``: no command (or a group without one) prints the help."""
    top = parser()
    args = top.parse_args(argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        top.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    return run(args)


def app() -> None:
    """The ``outpost-admin`` console script."""
    raise SystemExit(main())
