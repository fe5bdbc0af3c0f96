"""Identity's composition root: the only place that wires settings, adapters and entry points."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import replace
from datetime import timedelta

from outpost_contracts import identity
from outpost_identity.adapters.broker import JetStreamConsumers
from outpost_identity.adapters.passwords import Passwords, make_hasher
from outpost_identity.adapters.projections import PROJECTORS
from outpost_identity.adapters.signing import KeyVault
from outpost_identity.adapters.store import PgIdentity
from outpost_identity.app.api_keys import issue_operator_key, operator_key_valid
from outpost_identity.app.deps import Deps
from outpost_identity.app.signing_keys import ensure_signing_key
from outpost_identity.entrypoints import rpc
from outpost_identity.settings import IdentitySettings
from outpost_kit.cli import migrations_dir, service_main
from outpost_kit.db.engine import create_engine
from outpost_kit.db.eventstore import EventCodec
from outpost_kit.db.uow import UnitOfWorkFactory
from outpost_kit.runtime import ServiceRuntime

EVENT_TYPES = (
    identity.OrganizationCreated,
    identity.OrganizationSuspended,
    identity.OrganizationReinstated,
    identity.ApiKeyCreated,
    identity.ApiKeyRevoked,
    identity.UserCreated,
    identity.MembershipGranted,
    identity.SigningKeyPublished,
    identity.SigningKeyRetired,
    identity.SessionStarted,
    identity.SessionRefreshed,
    identity.SessionRevoked,
    identity.OAuthClientCreated,
    identity.OAuthClientSecretRotated,
    identity.OAuthClientDeleted,
    identity.IntegrationCreated,
    identity.IntegrationCredentialRotated,
    identity.IntegrationRevoked,
)

_log = logging.getLogger(__name__)
SIGNING_KEY_CHECK_SECONDS = 600.0


def _make_deps(uow: UnitOfWorkFactory, settings: IdentitySettings) -> Deps:
    kek = settings.key_encryption_key
    return Deps(
        uow=PgIdentity.over(uow),
        passwords=Passwords(
            make_hasher(
                time_cost=settings.argon2_time_cost,
                memory_kib=settings.argon2_memory_kib,
                parallelism=settings.argon2_parallelism,
            ),
            max_concurrent=settings.max_concurrent_hashes,
            wait_seconds=settings.hash_wait_seconds,
        ),
        vault=KeyVault(kek.reveal()) if kek is not None else None,
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        signing_key_lifetime=timedelta(seconds=settings.signing_key_lifetime_seconds),
    )


async def build(runtime: ServiceRuntime, settings: IdentitySettings) -> None:
    assert runtime.uow is not None
    assert runtime.js is not None
    deps = replace(_make_deps(runtime.uow, settings), consumers=JetStreamConsumers(runtime.js))
    runtime.serve(rpc.handlers(deps))
    if deps.vault is None:
        _log.warning("OUTPOST_IDENTITY_KEY_ENCRYPTION_KEY is not set: login is disabled")
        return
    kid = await ensure_signing_key(deps)
    _log.info("access tokens are signed with key %s", kid)

    async def keep_signing_key_fresh(stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), SIGNING_KEY_CHECK_SECONDS)
            if not stop.is_set():
                try:
                    await ensure_signing_key(deps)
                except Exception:
                    _log.exception("signing key check failed; retrying later")

    runtime.background(keep_signing_key_fresh)


def _deps(settings: IdentitySettings) -> tuple[Deps, object]:
    if settings.database_url is None:
        raise SystemExit("OUTPOST_IDENTITY_DATABASE_URL is required")
    engine = create_engine(settings.database_url.reveal(), "identity", pool_size=2)
    uow = UnitOfWorkFactory(engine, EventCodec(EVENT_TYPES), PROJECTORS)
    return _make_deps(uow, settings), engine


async def rotate_signing_key(settings: IdentitySettings, args: list[str]) -> None:
    """``outpost-identity rotate-signing-key [--revoke-previous]``: publish a new signing key
    now; the previous one keeps verifying for one access-token lifetime, or not at all with
    ``--revoke-previous``. The running service's relay publishes the events."""
    if args not in ([], ["--revoke-previous"]):
        raise SystemExit("usage: outpost-identity rotate-signing-key [--revoke-previous]")
    deps, engine = _deps(settings)
    try:
        print(await ensure_signing_key(deps, force=True, revoke_previous=bool(args)))
    finally:
        await engine.dispose()  # type: ignore[attr-defined]


async def bootstrap_operator(settings: IdentitySettings, args: list[str]) -> None:
    """``outpost-identity bootstrap-operator [--reuse KEY]``: print a working operator key,
    reusing ``KEY`` when it is still valid. The outbox relay of the running service
    publishes the event that lets gateways accept it."""
    deps, engine = _deps(settings)
    try:
        if len(args) == 2 and args[0] == "--reuse" and await operator_key_valid(deps, args[1]):
            print(args[1])
            return
        print(await issue_operator_key(deps, "platform operator"))
    finally:
        await engine.dispose()  # type: ignore[attr-defined]


def main() -> None:
    service_main(
        "identity",
        settings_type=IdentitySettings,
        build=build,
        migrations=migrations_dir(__file__),
        event_types=EVENT_TYPES,
        projectors=lambda _s: PROJECTORS,
        commands={
            "bootstrap-operator": bootstrap_operator,
            "rotate-signing-key": rotate_signing_key,
        },
    )


if __name__ == "__main__":
    main()
    sys.exit(0)
