"""The signing keys as a JSON Web Key Set (RFC 7517, ``/.well-known/jwks.json``), so that a
service outside the platform verifies session and OAuth access tokens with any JOSE library
(decision 78). Pure: the set is derived from the credential cache's signing keys.

Every key that verifies tokens now is in the set: the active one, one published ahead of its
``not_before``, and a retired one until its overlap ends (decision 25), so a token signed
just before a rotation still finds its key. Ed25519 public keys are OKP keys (RFC 8037):
``x`` is the raw 32-byte key, base64url without padding. The published PEM is a
SubjectPublicKeyInfo whose DER is a fixed 12-byte header and the key, read here without a
crypto library (the domain does no I/O and imports none).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from outpost_contracts.tokens import ALGORITHM
from outpost_gateway.domain.credentials import SigningKeyRecord

# DER of SEQUENCE { SEQUENCE { OID 1.3.101.112 (Ed25519) }, BIT STRING (32 bytes) }, up to
# the key itself (RFC 8410 §4).
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_BEGIN = "-----BEGIN PUBLIC KEY-----"
_PEM_END = "-----END PUBLIC KEY-----"

# How long a client may keep the set (Cache-Control max-age). A client that meets an
# unknown ``kid`` fetches again (PyJWKClient, jose and the like all do), and identity
# publishes a key before it signs with it, so this bounds only how long a retired key
# stays trusted by a cache, well under the overlap.
MAX_AGE_SECONDS = 300


def ed25519_raw(public_key_pem: str) -> bytes | None:
    """The raw 32-byte Ed25519 key of a PEM SubjectPublicKeyInfo; None if it is not one."""
    text = public_key_pem.strip()
    if not (text.startswith(_PEM_BEGIN) and text.endswith(_PEM_END)):
        return None
    body = "".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split())
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_ED25519_SPKI_PREFIX) + 32 or not der.startswith(_ED25519_SPKI_PREFIX):
        return None
    return der[len(_ED25519_SPKI_PREFIX) :]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwk(record: SigningKeyRecord) -> dict[str, str] | None:
    """One key as a JWK; None for a key that is not Ed25519 (none is today)."""
    if record.algorithm != ALGORITHM:
        return None
    raw = ed25519_raw(record.public_key_pem)
    if raw is None:
        return None
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(raw),
        "kid": record.kid,
        "alg": ALGORITHM,
        "use": "sig",
    }


def jwk_set(records: Iterable[SigningKeyRecord], now: datetime) -> dict[str, Any]:
    """The JWK Set of every key that verifies tokens at ``now``, oldest first."""
    keys = []
    for record in sorted(records, key=lambda r: (r.not_before, r.kid)):
        if not record.verifies_at(now):
            continue
        found = jwk(record)
        if found is not None:
            keys.append(found)
    return {"keys": keys}
