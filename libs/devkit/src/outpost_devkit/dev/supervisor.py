"""``outpost-dev``: run the whole platform in the foreground (``make dev``), and find or stop
a running one. Ctrl-C or SIGTERM stops everything in order and exits 0."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from outpost_devkit.dev.stack import (
    STATE_NAME,
    AlreadyRunning,
    DevStack,
    DevStackError,
    ServiceDied,
    lock_holder,
)
from outpost_kit.deploy import CREDENTIALS_NAME
from outpost_kit.material import ALL_SERVICES

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help="Run Outpost on this machine: nats-server, PostgreSQL and every service.",
)

DEFAULT_BASE = Path(".outpost")
BaseDir = Annotated[Path, typer.Option("--base-dir", help="Where data, logs and credentials live.")]


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(up)


@app.command()
def up(
    base_dir: BaseDir = DEFAULT_BASE,
    gateway_port: Annotated[int, typer.Option(help="Preferred; a free one if taken.")] = 8080,
    nats_port: Annotated[int, typer.Option(help="Preferred; a free one if taken.")] = 4222,
    pg_port: Annotated[int, typer.Option(help="Preferred; a free one if taken.")] = 5432,
    mqtt_port: Annotated[int, typer.Option(help="Preferred; a free one if taken.")] = 1883,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only these services (repeatable); identity and gateway always."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(envvar="DATABASE_URL", help="Use this PostgreSQL (admin DSN) instead."),
    ] = None,
) -> None:
    """Start everything, print the credentials, and run until Ctrl-C."""
    services = ALL_SERVICES
    if only:
        services = tuple(s for s in ALL_SERVICES if s in {*only, "identity", "gateway"})
    stack = DevStack(
        base_dir,
        gateway_port=gateway_port,
        nats_port=nats_port,
        pg_port=pg_port,
        mqtt_port=mqtt_port,
        services=services,
        database_url=database_url,
    )
    phase = "starting"

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal phase
        if phase == "running":
            phase = "stopping"
            stack.request_stop()
        elif phase == "starting":
            phase = "stopping"
            raise KeyboardInterrupt  # unwinds start(), which stops what it started
        # already stopping: let the clean shutdown finish

    # Set explicitly: a background job of a non-interactive shell starts with SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        creds = stack.start()
    except AlreadyRunning as exc:
        typer.echo(f"outpost-dev: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("outpost-dev: interrupted while starting; stopped", err=True)
        raise typer.Exit(0) from None
    except DevStackError as exc:
        typer.echo(f"outpost-dev: {exc}", err=True)
        raise typer.Exit(1) from None
    if phase == "starting":
        phase = "running"
    stack.echo(_banner(stack, creds))
    code = 0
    try:
        stack.wait()
    except ServiceDied as exc:
        typer.echo(f"outpost-dev: {exc}", err=True)
        code = 1
    finally:
        phase = "stopping"
        stack.echo("stopping...")
        stack.stop()
    stack.echo("stopped" if code == 0 else "stopped after a failure")
    raise typer.Exit(code)


def _banner(stack: DevStack, creds: dict[str, object]) -> str:
    org = creds["organization"]
    key = org["apiKey"] if isinstance(org, dict) else ""
    # the console signs people in (docs/console.md): the body of a user to sign in as
    user = json.dumps(
        {"email": "you@example.com", "password": "a long passphrase", "role": "owner"},
        separators=(",", ":"),
    )
    return "\n".join(
        [
            "",
            f"Outpost is running. Credentials ({stack.credentials_path}):",
            json.dumps(creds, indent=2),
            "",
            "Try:",
            f'  curl -H "Authorization: Bearer {key}" {creds["gatewayUrl"]}/api/v1/devices',
            "",
            f"Console: {creds['gatewayUrl']}/  (sign in as a user of the organization; make one:",
            f'  curl -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\',
            f"    -d '{user}' \\",
            f"    {creds['gatewayUrl']}/api/v1/users )",
            "",
            f"Logs: {stack.log_dir}/<service>.log, "
            f"{stack.base_dir / 'nats' / 'nats.log'}, {stack.base_dir / 'pg' / 'postgres.log'}",
            "Ctrl-C stops everything.",
            "",
        ]
    )


@app.command()
def status(base_dir: BaseDir = DEFAULT_BASE) -> None:
    """Whether a stack is running in BASE_DIR, and on which ports (exit 1 if none is)."""
    pid = lock_holder(base_dir)
    if pid is None:
        typer.echo(f"no dev stack running in {base_dir.resolve()}")
        raise typer.Exit(1)
    typer.echo(f"dev stack running in {base_dir.resolve()} (supervisor PID {pid})")
    state_path = base_dir / STATE_NAME
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        typer.echo("(still starting: no state yet)")
        return
    typer.echo(f"  gateway   {state.get('gatewayUrl')}")
    typer.echo(f"  nats      {state.get('natsUrl')}")
    typer.echo(f"  mqtt      {state.get('mqttUrl')}")
    if state.get("postgresPort"):
        typer.echo(f"  postgres  127.0.0.1:{state['postgresPort']}")
    for name, info in state.get("services", {}).items():
        typer.echo(f"  {name:<9} PID {info.get('pid')}  {info.get('readyz')}")
    creds = base_dir / CREDENTIALS_NAME
    if creds.exists():
        typer.echo(f"  credentials in {creds.resolve()}")


@app.command()
def down(
    base_dir: BaseDir = DEFAULT_BASE,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a clean stop.")] = 60.0,
) -> None:
    """Stop the stack running in BASE_DIR (SIGTERM to its supervisor)."""
    pid = lock_holder(base_dir)
    if pid is None:
        typer.echo(f"no dev stack running in {base_dir.resolve()}")
        return
    if pid <= 0:
        typer.echo("the lock is held but names no PID; stop it from its terminal", err=True)
        raise typer.Exit(1)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while lock_holder(base_dir) is not None:
        if time.monotonic() >= deadline:
            typer.echo(f"PID {pid} still running after {timeout:.0f}s", err=True)
            raise typer.Exit(1)
        time.sleep(0.2)
    typer.echo(f"stopped the dev stack (PID {pid})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
    sys.exit(0)
