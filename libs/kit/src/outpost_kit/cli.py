"""The one ``main()`` every service's entry point delegates to.

``outpost-<service> serve`` (the default) runs the service; ``outpost-<service> migrate``
creates its schema and roles and applies its migrations (as ``make dev`` and the Kubernetes
migrations Job do). Settings are read here, once, from the environment.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from outpost_contracts.base import Event
from outpost_kit.db.eventstore import Projector
from outpost_kit.db.migrate import upgrade
from outpost_kit.db.provision import provision_service
from outpost_kit.db.reseal import reseal
from outpost_kit.logs import setup_logging
from outpost_kit.runtime import ServiceRuntime
from outpost_kit.settings import CommonSettings, Secret, load_settings

S = TypeVar("S", bound=CommonSettings)


def migrations_dir(package_file: str) -> Path:
    """A service's ``migrations/``: inside the package when installed from a wheel, beside
    ``src/`` in a source checkout."""
    package = Path(package_file).resolve().parent
    for candidate in (package / "migrations", package.parents[1] / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError(f"no migrations for {package.name}")


async def migrate(service: str, migrations: Path, environ: dict[str, str]) -> None:
    admin = environ.get("OUTPOST_ADMIN_DATABASE_URL")
    password = environ.get(f"OUTPOST_{service.upper()}_DB_PASSWORD")
    if not admin or not password:
        raise SystemExit(
            f"migrate needs OUTPOST_ADMIN_DATABASE_URL and OUTPOST_{service.upper()}_DB_PASSWORD"
        )
    await provision_service(admin, service, password)
    await upgrade(admin, service, migrations)


def reseal_command(
    name: str,
    settings_type: type[S],
    *,
    key_variable: str,
    keys: Callable[[S], Secret | None],
    rotator: Callable[[str], Callable[[Any], Any]],
    table: str,
    key_columns: Sequence[str],
    column: str,
    done: str,
) -> Callable[[S, list[str]], Awaitable[None]]:
    """A service command (``commands`` of ``service_main``) that re-seals ``column`` of every
    row of ``table`` under the first of the keys in ``key_variable`` (new first, then the old
    ones; ``rotator(keys)`` re-seals one value): it reads every tenant's row, so it connects
    as ``OUTPOST_ADMIN_DATABASE_URL`` (the migrations' role). ``done`` is what it prints,
    ``{count}`` the rows re-sealed. ``settings_type`` types ``keys``' argument."""

    async def command(settings: S, args: list[str]) -> None:
        admin = os.environ.get("OUTPOST_ADMIN_DATABASE_URL")
        secret = keys(settings)
        if args or secret is None or not admin:
            raise SystemExit(
                f"usage: {name}, with {key_variable} (new key first, then the old ones) and"
                " OUTPOST_ADMIN_DATABASE_URL"
            )
        count = await reseal(
            admin,
            table=table,
            keys=key_columns,
            column=column,
            rotate=rotator(secret.reveal()),
        )
        print(done.format(count=count))

    return command


def service_main(
    service: str,
    *,
    settings_type: type[S],
    build: Callable[[ServiceRuntime, S], Awaitable[None]],
    migrations: Path,
    event_types: Sequence[type[Event]] = (),
    projectors: Callable[[S], Sequence[Projector]] = lambda _s: (),
    commands: dict[str, Callable[[S, list[str]], Awaitable[None]]] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "serve"
    environ = dict(os.environ)
    if command == "migrate":
        setup_logging(service)
        asyncio.run(migrate(service, migrations, environ))
        return
    extra = commands or {}
    if command != "serve" and command not in extra:
        raise SystemExit(f"usage: outpost-{service} [{'|'.join(['serve', 'migrate', *extra])}]")
    settings = load_settings(settings_type, service, environ)
    setup_logging(service, settings.log_level)
    if command in extra:
        _run(extra[command](settings, args[1:]))
        return

    async def run() -> None:
        runtime = ServiceRuntime(
            service,
            settings,
            environ,
            event_types=event_types,
            projectors=projectors(settings),
        )
        await runtime.connect()
        await build(runtime, settings)
        await runtime.run()

    _run(run())


def _run(coro: Awaitable[Any]) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep a fallback
        asyncio.run(coro)  # type: ignore[arg-type]
