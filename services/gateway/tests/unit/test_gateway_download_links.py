"""Signed download links: a good one verifies until it expires; one flipped byte, another
export's signature, an unknown key or a missing part is refused; keys rotate."""

from __future__ import annotations

from urllib.parse import parse_qs
from uuid import uuid4

import pytest

from outpost_contracts.errors import AccessDenied
from outpost_gateway.domain.downloads import DownloadSigner, SigningKey, parse_keys

pytestmark = pytest.mark.unit

OLD = SigningKey("k1", b"o" * 32)
NEW = SigningKey("k2", b"n" * 32)


def parts(signer: DownloadSigner, export_id: object, org: object, now: float) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(signer.query(export_id, org, now)).items()}  # type: ignore[arg-type]


def test_a_link_verifies_until_it_expires() -> None:
    signer = DownloadSigner([OLD], ttl_seconds=60)
    export, org = uuid4(), uuid4()
    p = parts(signer, export, org, 1000.0)
    assert signer.verify(export, **p, now=1059.0) == org
    with pytest.raises(AccessDenied, match="expired"):
        signer.verify(export, **p, now=1060.0)


def test_tampering_and_other_exports_are_refused() -> None:
    signer = DownloadSigner([OLD])
    export, org = uuid4(), uuid4()
    p = parts(signer, export, org, 1000.0)
    sig = p["signature"]
    flipped = sig[:5] + ("A" if sig[5] != "A" else "B") + sig[6:]
    cases = [
        {**p, "signature": flipped},
        {**p, "expires": str(int(p["expires"]) + 3600)},  # a longer life than signed
        {**p, "org": str(uuid4())},  # another organization
        {**p, "kid": "nope"},
        {**p, "signature": ""},
        {**p, "org": "not-a-uuid"},
    ]
    for case in cases:
        with pytest.raises(AccessDenied):
            signer.verify(export, **case, now=1001.0)
    # Another export's signature does not open this export.
    other = parts(signer, uuid4(), org, 1000.0)
    with pytest.raises(AccessDenied):
        signer.verify(export, **other, now=1001.0)


def test_keys_rotate_new_first_then_the_old_one_dropped() -> None:
    export, org = uuid4(), uuid4()
    old_link = parts(DownloadSigner([OLD]), export, org, 1000.0)
    during = DownloadSigner([NEW, OLD])
    assert during.verify(export, **old_link, now=1001.0) == org
    new_link = parts(during, export, org, 1000.0)
    assert new_link["kid"] == "k2"
    after = DownloadSigner([NEW])
    assert after.verify(export, **new_link, now=1001.0) == org
    with pytest.raises(AccessDenied):
        after.verify(export, **old_link, now=1001.0)


def test_key_settings_are_checked() -> None:
    assert [k.kid for k in parse_keys("a1:" + "x" * 32 + ", b2:" + "y" * 40)] == ["a1", "b2"]
    for bad in ("", "a1", "a1:short", ":" + "x" * 32, "a-1:" + "x" * 32):
        with pytest.raises(ValueError):
            parse_keys(bad)
