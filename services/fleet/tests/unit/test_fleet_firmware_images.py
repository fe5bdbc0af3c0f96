"""Firmware images and the signing keys that sign them: given events, when a command, then
events (ADR 0094); and the Ed25519 adapter that makes and checks the signatures."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost_contracts.base import Event
from outpost_contracts.errors import Conflict, NotFound, ValidationFailed
from outpost_contracts.firmware import (
    FirmwareImageCreated,
    FirmwareImageDeleted,
    FirmwareImageReady,
    FirmwareImageRejected,
    FirmwareImageSigned,
    FirmwareSigningKeyAdded,
    FirmwareSigningKeyRetired,
    FirmwareStatus,
)
from outpost_fleet.adapters.firmware_crypto import FirmwareKeyVault, Measure, kid_of, verify
from outpost_fleet.domain import firmware_images as images
from outpost_fleet.domain import firmware_signing as signing
from outpost_fleet.domain.firmware_images import (
    CompleteUpload,
    CreateImage,
    DeleteImage,
    ExpireUpload,
    SignAgain,
    Signature,
    signature_for,
)
from outpost_fleet.domain.firmware_signing import AddKey, RevokeKey, signer, trusted

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
ORG = UUID(int=7)
DIGEST = hashlib.sha256(b"firmware").hexdigest()
PUB_A = base64.b64encode(b"a" * 32).decode()
PUB_B = base64.b64encode(b"b" * 32).decode()
PUB_C = base64.b64encode(b"c" * 32).decode()


def fold(evolve: Any, events: list[Event], state: Any = None, sid: UUID | None = None) -> Any:
    sid = sid or (state.id if state is not None else uuid4())
    for e in events:
        state = evolve(state, e, sid)
    return state


def keys_with(*commands: tuple[AddKey | RevokeKey, datetime]) -> signing.SigningKeys | None:
    state = None
    for command, at in commands:
        state = fold(signing.evolve, signing.decide(state, command, at), state, ORG)
    return state


ONE_KEY = keys_with((AddKey(kid="k1", public_key=PUB_A), NOW))


def create(**kw: Any) -> CreateImage:
    fields: dict[str, Any] = {
        "name": "gateway-fw",
        "firmware_version": "1.4.2",
        "size_bytes": 8,
        "sha256": DIGEST,
    }
    return CreateImage(**(fields | kw))


def uploading() -> images.FirmwareImage:
    return fold(images.evolve, images.decide(None, create(), NOW))


# --- images --------------------------------------------------------------------------------


def test_an_image_is_announced_uploading_with_an_upload_deadline() -> None:
    events = images.decide(None, create(hardware=("rev-b",)), NOW)
    assert events == [
        FirmwareImageCreated(
            name="gateway-fw",
            version="1.4.2",
            size_bytes=8,
            sha256=DIGEST,
            upload_expires_at=NOW + timedelta(days=1),
            hardware=["rev-b"],
        )
    ]
    assert fold(images.evolve, events).status is FirmwareStatus.UPLOADING


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"firmware_version": "1.4"}, "version"),
        ({"sha256": DIGEST.upper()}, "sha256"),
        ({"sha256": "ab"}, "sha256"),
        ({"size_bytes": 0}, "sizeBytes"),
        ({"size_bytes": 17 * 1024**3}, "sizeBytes"),
        ({"name": "  "}, "name"),
    ],
)
def test_a_bad_announcement_is_a_validation_error(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        images.decide(None, create(**kw), NOW)
    assert caught.value.fields[0].name == field


def test_a_name_and_version_pair_is_unique() -> None:
    other = uuid4()
    with pytest.raises(Conflict) as caught:
        images.decide(None, create(existing_id=other), NOW)
    assert caught.value.details == {"id": str(other)}


def test_matching_bytes_make_the_image_ready_with_the_signing_keys_signature() -> None:
    state = uploading()
    events = images.decide(
        state,
        CompleteUpload(
            size_bytes=8,
            sha256=DIGEST,
            signature=Signature(kid="k1", signature="c2ln"),
            keys=ONE_KEY,
        ),
        NOW,
    )
    assert events == [FirmwareImageReady(signing_key_id="k1", signature="c2ln")]
    ready = fold(images.evolve, events, state)
    assert ready.status is FirmwareStatus.READY and ready.signatures == {"k1": "c2ln"}
    with pytest.raises(Conflict):
        images.decide(ready, CompleteUpload(size_bytes=8, sha256=DIGEST), NOW)


@pytest.mark.parametrize(
    ("size", "digest", "says"),
    [
        (9, DIGEST, "size 9 bytes, announced 8"),
        (8, "0" * 64, f"sha256 {'0' * 64}, announced {DIGEST}"),
    ],
)
def test_other_bytes_reject_the_image_with_the_reason(size: int, digest: str, says: str) -> None:
    events = images.decide(uploading(), CompleteUpload(size_bytes=size, sha256=digest), NOW)
    assert events == [FirmwareImageRejected(reason=f"uploaded bytes differ: {says}")]
    rejected = fold(images.evolve, events, uploading())
    assert rejected.status is FirmwareStatus.REJECTED and says in (rejected.rejected_reason or "")


def test_only_the_key_that_signs_now_may_sign_a_new_image() -> None:
    for signature, keys in [
        (None, ONE_KEY),
        (Signature(kid="k9", signature="x"), ONE_KEY),
        (Signature(kid="k1", signature="x"), None),
    ]:
        with pytest.raises(Conflict):
            images.decide(
                uploading(),
                CompleteUpload(size_bytes=8, sha256=DIGEST, signature=signature, keys=keys),
                NOW,
            )


def test_an_upload_not_finished_in_time_is_rejected() -> None:
    state = uploading()
    assert images.decide(state, ExpireUpload(), NOW + timedelta(hours=23)) == []
    late = NOW + timedelta(days=1)
    assert images.decide(state, ExpireUpload(), late) == [
        FirmwareImageRejected(reason="upload expired")
    ]
    assert images.decide(state, CompleteUpload(size_bytes=8, sha256=DIGEST), late) == [
        FirmwareImageRejected(reason="upload expired")
    ]


def ready() -> images.FirmwareImage:
    state = uploading()
    return fold(images.evolve, [FirmwareImageReady(signing_key_id="k1", signature="s1")], state)


def test_after_a_rotation_an_image_is_signed_again_and_devices_get_the_new_signature() -> None:
    rotated = keys_with(
        (AddKey(kid="k1", public_key=PUB_A), NOW),
        (AddKey(kid="k2", public_key=PUB_B, overlap=timedelta(days=1)), NOW),
    )
    image = ready()
    during = NOW + timedelta(hours=1)
    assert signature_for(image, rotated, during) == Signature(kid="k1", signature="s1")
    with pytest.raises(Conflict):  # k2 does not sign yet
        images.decide(
            image, SignAgain(signature=Signature(kid="k2", signature="s2"), keys=rotated), during
        )
    after = NOW + timedelta(days=1)
    events = images.decide(
        image, SignAgain(signature=Signature(kid="k2", signature="s2"), keys=rotated), after
    )
    assert events == [FirmwareImageSigned(signing_key_id="k2", signature="s2")]
    image = fold(images.evolve, events, image)
    assert signature_for(image, rotated, after) == Signature(kid="k2", signature="s2")
    assert (
        images.decide(
            image, SignAgain(signature=Signature(kid="k2", signature="s3"), keys=rotated), after
        )
        == []
    )
    # not signed again in time: the old signature is sent while k1 is trusted, then none
    unsigned = ready()
    assert signature_for(unsigned, rotated, after) == Signature(kid="k1", signature="s1")
    assert signature_for(unsigned, rotated, NOW + timedelta(days=2)) is None


def test_an_image_in_use_cannot_be_deleted() -> None:
    image = ready()
    with pytest.raises(Conflict) as caught:
        images.decide(image, DeleteImage(used_by=("rollout 1", "device 2")), NOW)
    assert caught.value.details == {"usedBy": ["rollout 1", "device 2"]}
    events = images.decide(image, DeleteImage(), NOW)
    assert events == [FirmwareImageDeleted()]
    with pytest.raises(NotFound):
        images.decide(fold(images.evolve, events, image), DeleteImage(), NOW)


# --- signing keys ----------------------------------------------------------------------------


def test_the_first_key_signs_at_once() -> None:
    assert signing.decide(None, AddKey(kid="k1", public_key=PUB_A), NOW) == [
        FirmwareSigningKeyAdded(kid="k1", public_key=PUB_A, signs_from=NOW)
    ]
    assert signer(ONE_KEY, NOW) is not None and [k.kid for k in trusted(ONE_KEY, NOW)] == ["k1"]


def test_a_rotation_publishes_the_new_key_before_it_signs_and_keeps_the_old_one_after() -> None:
    overlap = timedelta(days=7)
    events = signing.decide(ONE_KEY, AddKey(kid="k2", public_key=PUB_B, overlap=overlap), NOW)
    switch = NOW + overlap
    assert events == [
        FirmwareSigningKeyAdded(kid="k2", public_key=PUB_B, signs_from=switch),
        FirmwareSigningKeyRetired(kid="k1", signs_until=switch, verify_until=switch + overlap),
    ]
    keys = fold(signing.evolve, events, ONE_KEY)
    before, after, later = switch - timedelta(seconds=1), switch, switch + overlap
    assert signer(keys, before).kid == "k1"  # type: ignore[union-attr]
    assert {k.kid for k in trusted(keys, before)} == {"k1", "k2"}
    assert signer(keys, after).kid == "k2"  # type: ignore[union-attr]
    assert {k.kid for k in trusted(keys, after)} == {"k1", "k2"}
    assert [k.kid for k in trusted(keys, later)] == ["k2"]
    with pytest.raises(Conflict) as caught:  # one rotation at a time
        signing.decide(keys, AddKey(kid="k3", public_key=PUB_C), before)
    assert caught.value.details == {"pending": "k2"}
    assert signing.decide(keys, AddKey(kid="k3", public_key=PUB_C, overlap=timedelta(0)), after)


def test_an_emergency_revocation_stops_signing_and_trust_now_and_a_new_key_signs_at_once() -> None:
    events = signing.decide(ONE_KEY, RevokeKey(kid="k1"), NOW + timedelta(hours=1))
    at = NOW + timedelta(hours=1)
    assert events == [FirmwareSigningKeyRetired(kid="k1", signs_until=at, verify_until=at)]
    keys = fold(signing.evolve, events, ONE_KEY)
    assert signer(keys, at) is None and trusted(keys, at) == []
    assert signing.decide(keys, RevokeKey(kid="k1"), at) == []
    assert signing.decide(keys, AddKey(kid="k2", public_key=PUB_B), at) == [
        FirmwareSigningKeyAdded(kid="k2", public_key=PUB_B, signs_from=at)
    ]
    with pytest.raises(NotFound):
        signing.decide(keys, RevokeKey(kid="nope"), at)


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (AddKey(kid="", public_key=PUB_A), "kid"),
        (AddKey(kid="a b", public_key=PUB_A), "kid"),
        (AddKey(kid="k", public_key="not base64!"), "publicKey"),
        (AddKey(kid="k", public_key=base64.b64encode(b"short").decode()), "publicKey"),
        (AddKey(kid="k", public_key=PUB_A, overlap=timedelta(seconds=-1)), "overlap"),
    ],
)
def test_a_bad_key_is_a_validation_error(command: AddKey, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        signing.decide(None, command, NOW)
    assert caught.value.fields[0].name == field


def test_a_kid_is_not_reused() -> None:
    with pytest.raises(Conflict):
        signing.decide(ONE_KEY, AddKey(kid="k1", public_key=PUB_B), NOW)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),  # add (True) or revoke (False)
            st.integers(0, 10),  # hours after the previous step
            st.integers(0, 48),  # overlap, hours
            st.integers(0, 5),  # which key to revoke
        ),
        min_size=1,
        max_size=10,
    ),
    st.integers(0, 100),
)
def test_one_key_signs_at_a_time_with_no_gap_unless_revoked(
    steps: list[tuple[bool, int, int, int]], probe_hours: int
) -> None:
    state = None
    at = NOW
    added: dict[str, datetime] = {}
    revoked = False
    for i, (add, hours, overlap, which) in enumerate(steps):
        at += timedelta(hours=hours)
        kids: list[str] = list(state.keys) if state else []
        if add:
            command: AddKey | RevokeKey = AddKey(
                kid=f"k{i}", public_key=PUB_A, overlap=timedelta(hours=overlap)
            )
        elif kids:
            command = RevokeKey(kid=kids[which % len(kids)])
        else:
            continue
        try:
            events = signing.decide(state, command, at)
        except Conflict:
            continue
        state = fold(signing.evolve, events, state, ORG)
        if add:
            added[f"k{i}"] = at
        else:
            revoked = True
    for probe in (at + timedelta(hours=h) for h in range(0, probe_hours, 7)):
        signing_now = [
            k
            for k in (state.keys.values() if state else [])
            if k.signs_at(probe) and k.verifies_at(probe)
        ]
        assert len(signing_now) <= 1
        current = signer(state, probe)
        if current is not None:
            assert current in trusted(state, probe)
            assert added[current.kid] <= current.signs_from
        elif added and not revoked:
            raise AssertionError("a rotation left a time with no key to sign")


# --- the Ed25519 adapter -------------------------------------------------------------------------


def test_the_vault_signs_what_a_device_verifies_and_nothing_else() -> None:
    vault = FirmwareKeyVault(Fernet.generate_key().decode())
    pair = vault.generate()
    assert pair.kid == kid_of(pair.public_key) and pair.kid.startswith("fw-")
    signing.check_public_key(pair.public_key)  # the domain accepts what the adapter makes
    sig = vault.sign(pair.private_key_enc, sha256=DIGEST, size_bytes=8, version="1.4.2")
    assert verify(pair.public_key, sig, sha256=DIGEST, size_bytes=8, version="1.4.2")
    assert not verify(pair.public_key, sig, sha256=DIGEST, size_bytes=9, version="1.4.2")
    assert not verify(pair.public_key, sig, sha256="0" * 64, size_bytes=8, version="1.4.2")
    assert not verify(pair.public_key, sig, sha256=DIGEST, size_bytes=8, version="1.4.3")
    other = vault.generate()
    assert not verify(other.public_key, sig, sha256=DIGEST, size_bytes=8, version="1.4.2")
    assert not verify(pair.public_key, "bm90IGEgc2ln", sha256=DIGEST, size_bytes=8, version="1.4.2")
    with pytest.raises(RuntimeError):
        FirmwareKeyVault(Fernet.generate_key().decode()).sign(
            pair.private_key_enc, sha256=DIGEST, size_bytes=8, version="1.4.2"
        )


def test_measure_hashes_a_stream_chunk_by_chunk() -> None:
    data = bytes(range(256)) * 1000
    measure = Measure()
    for i in range(0, len(data), 4096):
        measure.update(data[i : i + 4096])
    assert measure.size_bytes == len(data)
    assert measure.sha256 == hashlib.sha256(data).hexdigest()
