"""One person, several organizations (decision 78): organization B adding an email that a
person of organization A already has is answered as for a new email, and the person logs in
to either, naming it (docs/design/reliability.md "bola")."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from _keys import bearer

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def _shape(resp: httpx.Response) -> tuple[int, list[str], list[str]]:
    volatile = {"date", "x-request-id", "content-length", "x-ratelimit-remaining"}
    headers = sorted(k for k in resp.headers if k.lower() not in volatile)
    return resp.status_code, headers, sorted(resp.json())


def test_an_email_known_elsewhere_is_answered_as_a_new_one(
    http: httpx.Client, tenants: Any
) -> None:
    """``bola``: nothing in B's answer (status, headers, fields, an id and time
    of now) says the person exists in A."""
    key_a = tenants.key(tenants.org("people-a")["id"])["key"]
    b_org = tenants.org("people-b")["id"]
    key_b = tenants.key(b_org)["key"]
    email = f"grace-{uuid.uuid4().hex[:8]}@example.com"
    in_a = http.post(
        "/api/v1/users",
        json={"email": email, "password": PASSWORD, "role": "member"},
        headers=bearer(key_a),
    )
    assert in_a.status_code == 201, in_a.text

    def add(address: str) -> httpx.Response:
        return http.post(
            "/api/v1/users",
            json={"email": address, "password": "chosen by b, unused", "role": "viewer"},
            headers=bearer(key_b),
        )

    known = add(email)
    new = add(f"new-{uuid.uuid4().hex[:8]}@example.com")
    assert _shape(known) == _shape(new) and known.status_code == 201, known.text
    k, n = known.json(), new.json()
    assert k["id"] != in_a.json()["id"]  # B's own id for the person
    assert uuid.UUID(k["id"]) < uuid.UUID(n["id"])  # both minted now, in order
    assert in_a.json()["createdAt"] < k["createdAt"] <= n["createdAt"]
    assert (k["role"], k["version"]) == (n["role"], n["version"]) == ("viewer", 1)
    # A's key sees nothing of B's membership, B's nothing of A's.
    assert http.get(f"/api/v1/users/{k['id']}", headers=bearer(key_a)).status_code == 404
    assert http.get(f"/api/v1/users/{in_a.json()['id']}", headers=bearer(key_b)).status_code == 404

    # The person keeps their password and chooses the organization at login.
    login = {"email": email, "password": PASSWORD}
    several = http.post("/api/v1/auth/login", json=login)
    assert several.status_code == 400 and several.json()["fields"][0]["name"] == "organization"
    refused = http.post("/api/v1/auth/login", json={**login, "password": "chosen by b, unused"})
    assert refused.status_code == 401
    session = http.post("/api/v1/auth/login", json={**login, "organization": b_org})
    assert session.status_code == 200, session.text
    me = http.get(f"/api/v1/users/{k['id']}", headers=bearer(session.json()["accessToken"]))
    assert me.status_code == 200 and me.json()["role"] == "viewer"
