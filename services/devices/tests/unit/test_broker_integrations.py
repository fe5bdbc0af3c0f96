"""The auth callout's side of integrations (issue 23, ADR 0097) without a broker: the CONNECT's
user and password read from the request, the password checked against the hash identity's
events carried, what an admitted integration may do, and a rotation or revocation heard on
core NATS refusing the old password and closing the connections at once."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from outpost_contracts import integrations
from outpost_contracts.errors import AccessDenied
from outpost_devices.adapters.callout import CalloutRequest, Sessions, parse_request
from outpost_devices.app.broker import authorize_integration, password_hash
from outpost_devices.app.ports import IntegrationCredential

pytestmark = pytest.mark.unit

ORG = UUID("01900000-0000-7000-8000-000000000001")
NOW = datetime(2026, 12, 8, tzinfo=UTC)
SESSION = timedelta(hours=1)
PASSWORD = "opi_" + "x" * 43


class _Reads:
    def __init__(self, **found: IntegrationCredential) -> None:
        self.found = {UUID(k): v for k, v in found.items()}

    async def integration(self, integration_id: UUID) -> IntegrationCredential | None:
        return self.found.get(integration_id)


def _credential(iid: UUID, **changes: Any) -> IntegrationCredential:
    fields: dict[str, Any] = {
        "org_id": ORG,
        "user": integrations.user(iid),
        "password_hash": password_hash(PASSWORD),
        "consumers": (integrations.consumer(iid, "default"),),
        "revoked": False,
        "suspended": False,
    }
    fields.update(changes)
    return IntegrationCredential(**fields)


def test_the_request_gives_the_connects_user_and_password() -> None:
    claims = {
        "nats": {
            "user_nkey": "UABC",
            "server_id": {"id": "NSERVER"},
            "client_info": {"kind": "Client", "id": 7},
            "connect_opts": {"user": "integration-x", "pass": PASSWORD},
        }
    }
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    request = parse_request(f"e30.{body}.sig")
    assert (request.user, request.password, request.client_id) == ("integration-x", PASSWORD, 7)
    assert request.chain_pems == []


async def test_the_current_password_admits_with_the_integrations_permissions_only() -> None:
    iid = uuid4()
    reads = _Reads(**{str(iid): _credential(iid)})
    session = await authorize_integration(reads, integrations.user(iid), PASSWORD, NOW, SESSION)  # type: ignore[arg-type]
    assert session.org_id == ORG and session.expires == NOW + SESSION
    assert session.name == f"integration:{ORG}:{iid}"  # not a device: presence ignores it
    assert session.permissions() == integrations.permissions(
        iid, (integrations.consumer(iid, "default"),)
    )


@pytest.mark.parametrize(
    ("user_of", "password", "changes"),
    [
        (integrations.user, "opi_wrong", {}),
        (lambda iid: integrations.user(uuid4()), PASSWORD, {}),  # another (unknown) one
        (lambda iid: "integration-garbage", PASSWORD, {}),
        (integrations.user, PASSWORD, {"revoked": True}),
        (integrations.user, PASSWORD, {"suspended": True}),
    ],
)
async def test_anything_else_is_refused(user_of: Any, password: str, changes: Any) -> None:
    iid = uuid4()
    reads = _Reads(**{str(iid): _credential(iid, **changes)})
    with pytest.raises(AccessDenied):
        await authorize_integration(reads, user_of(iid), password, NOW, SESSION)  # type: ignore[arg-type]


async def test_a_rotation_heard_admits_the_new_password_before_the_table_has_it() -> None:
    iid = uuid4()
    reads = _Reads(**{str(iid): _credential(iid)})  # still the old hash
    new = "opi_" + "y" * 43
    heard = password_hash(new)
    admitted = await authorize_integration(
        reads,  # type: ignore[arg-type]
        integrations.user(iid),
        new,
        NOW,
        SESSION,
        heard,
    )
    assert admitted.integration_id == iid
    with pytest.raises(AccessDenied):
        await authorize_integration(reads, integrations.user(iid), PASSWORD, NOW, SESSION, heard)  # type: ignore[arg-type]


class _System:
    def __init__(self) -> None:
        self.kicks: list[tuple[str, int]] = []

    async def request(self, subject: str, data: bytes, **_: Any) -> None:
        self.kicks.append((subject.split(".")[3], json.loads(data)["cid"]))


async def test_a_revocation_or_rotation_closes_what_was_admitted_and_refuses_the_old() -> None:
    clock = [0.0]
    system = _System()
    sessions = Sessions(None, system, clock=lambda: clock[0])  # type: ignore[arg-type]
    iid, other = uuid4(), uuid4()
    for cid, who in ((1, iid), (2, iid), (3, other)):
        sessions.integration_admitted(who, ORG, CalloutRequest("U", "S1", [], "Client", cid))
    old, new = password_hash(PASSWORD), password_hash("opi_new")
    assert not sessions.refuses_integration(iid, old)

    assert await sessions.integration_changed(iid, new) == 2
    assert sorted(system.kicks) == [("S1", 1), ("S1", 2)]  # not the other integration's
    assert sessions.refuses_integration(iid, old) and not sessions.refuses_integration(iid, new)
    assert sessions.heard_password(iid) == new

    await sessions.integration_changed(iid, None)  # revoked: every password refused
    assert sessions.refuses_integration(iid, new)
    clock[0] += 61  # the table decides from then on
    assert not sessions.refuses_integration(iid, new) and sessions.heard_password(iid) is None

    assert await sessions.kick_organization(ORG) == 1  # the suspension closes the other one
    assert system.kicks[-1] == ("S1", 3)


async def test_admissions_are_reported_in_one_batch_and_kept_when_identity_is_away() -> None:
    from outpost_devices.adapters.integration_connections import IntegrationConnections

    sent: list[Any] = []
    away = [True]

    async def send(ctx: Any, body: Any) -> None:  # identity's side of the request
        if away[0]:
            raise TimeoutError("identity is away")
        sent.append(body)

    reporter = IntegrationConnections(send, 30)
    iid = uuid4()
    reporter.note(iid, ORG, NOW)
    reporter.note(iid, ORG, NOW + timedelta(seconds=1))  # one row per integration
    assert await reporter.report() == 0  # identity away: kept
    reporter.note(iid, ORG, NOW + timedelta(seconds=2))  # newer than the kept one
    away[0] = False
    assert await reporter.report() == 1
    [body] = sent
    assert [(c.id, c.org_id, c.at) for c in body.connections] == [
        (iid, ORG, NOW + timedelta(seconds=2))
    ]
    assert await reporter.report() == 0  # nothing new
