"""The signing key aggregate: the platform's token-signing keys, their rotation with an
overlap, and the active key's private half for the use cases that sign tokens."""

from __future__ import annotations

from datetime import datetime

from outpost_contracts.envelope import PLATFORM_ORG_ID
from outpost_contracts.errors import ServiceUnavailable
from outpost_identity.app.deps import Deps, vault
from outpost_identity.app.ports import IdentityTx, SigningSecret
from outpost_identity.domain import signing_keys
from outpost_kit import ids
from outpost_kit.aggregate import Aggregate

SIGNING_KEYS = Aggregate(signing_keys.STREAM_TYPE, signing_keys.decide, signing_keys.evolve)


async def ensure_signing_key(
    deps: Deps, *, force: bool = False, revoke_previous: bool = False, now: datetime | None = None
) -> str:
    """The kid of the active signing key, making one (and retiring the previous one with an
    overlap of one access-token lifetime) when there is none, it nears its end, or ``force``.
    ``revoke_previous`` (a compromised key) ends the previous key's overlap at once: every
    token it signed is refused as soon as gateways apply the event."""
    keys = vault(deps)
    now = now or ids.now()
    async with deps.uow(PLATFORM_ORG_ID) as tx:
        await tx.lock_signing_keys()
        active = await tx.active_signing_key()
        renew_at = max(2 * deps.access_ttl, deps.signing_key_lifetime / 10)
        if active is not None and not force and active.not_after - now > renew_at:
            return active.kid
        if active is not None:
            await SIGNING_KEYS.execute(
                tx,
                None,
                stream_id=active.id,
                command=signing_keys.RetireSigningKey(
                    verify_until=now
                    if revoke_previous
                    else min(active.not_after, now + deps.access_ttl)
                ),
                org_id=PLATFORM_ORG_ID,
                now=now,
            )
        pair = keys.generate()
        key_id = ids.new_id()
        kid = str(key_id)
        await SIGNING_KEYS.execute(
            tx,
            None,
            stream_id=key_id,
            command=signing_keys.PublishSigningKey(
                kid=kid,
                public_key_pem=pair.public_key_pem,
                not_after=now + deps.signing_key_lifetime,
            ),
            org_id=PLATFORM_ORG_ID,
            now=now,
        )
        await tx.save_signing_secret(kid, pair.private_key_enc)
        await tx.commit()
    return kid


async def active_secret(tx: IdentityTx, now: datetime) -> SigningSecret:
    """The active signing key's kid, end and encrypted private half (platform data)."""
    found = await tx.signing_secret()
    if found is None or found.not_after <= now:
        raise ServiceUnavailable("no signing key is active yet; try again shortly")
    return found
