"""The OAuth2 token endpoint's request (RFC 6749 §4.4 client-credentials grant, §2.3.1 client
authentication) and its errors (§5.2). Pure: bytes and headers in, a grant or an error out.

Its errors are RFC 6749's ``{"error", "error_description"}``, not the API's error model
(ADR 0033): OAuth client libraries parse these bodies.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

FORM_TYPE = "application/x-www-form-urlencoded"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
MAX_BODY_BYTES = 8192
REALM = 'Basic realm="outpost"'
_SCOPE = re.compile(r"^[a-z][a-z-]*:(read|write|\*)$|^\*$")


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = REALM
        return headers


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_client(description: str = "client authentication failed") -> OAuthError:
    return OAuthError("invalid_client", description, 401)


def invalid_scope(description: str) -> OAuthError:
    return OAuthError("invalid_scope", description)


@dataclass(frozen=True)
class ClientCredentialsGrant:
    client_id: str
    client_secret: str
    scope: tuple[str, ...] | None  # None: not asked, every scope of the client


def _form(content_type: str | None, body: bytes) -> dict[str, str]:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != FORM_TYPE:
        raise invalid_request(f"the request body must be {FORM_TYPE}")
    if len(body) > MAX_BODY_BYTES:
        raise invalid_request("the request body is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise invalid_request("the request body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise invalid_request(f"the parameter '{name}' is repeated")
        form[name] = value
    # Parameters sent without a value are treated as omitted (RFC 6749 §3.1).
    return {k: v for k, v in form.items() if v != ""}


def _basic(authorization: str) -> tuple[str, str]:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise invalid_client("client authentication must use HTTP Basic or the form")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("the Basic credentials are malformed") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise invalid_client("the Basic credentials are malformed")
    # §2.3.1: id and secret are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def parse_token_request(
    content_type: str | None, body: bytes, authorization: str | None
) -> ClientCredentialsGrant:
    form = _form(content_type, body)
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise invalid_request("the parameter 'grant_type' is missing")
    if grant_type != GRANT_CLIENT_CREDENTIALS:
        raise OAuthError(
            "unsupported_grant_type", f"only '{GRANT_CLIENT_CREDENTIALS}' is supported"
        )
    if authorization:
        if "client_secret" in form:
            raise invalid_request("use one client authentication method, not two")
        client_id, secret = _basic(authorization)
        if form.get("client_id", client_id) != client_id:
            raise invalid_request("client_id differs from the Basic credentials")
    else:
        if "client_id" not in form or "client_secret" not in form:
            raise invalid_client("no client authentication was included")
        client_id, secret = form["client_id"], form["client_secret"]
    scope: tuple[str, ...] | None = None
    if "scope" in form:
        scope = tuple(dict.fromkeys(form["scope"].split(" ")))
        if any(not _SCOPE.fullmatch(s) for s in scope):
            raise invalid_scope("the scope is malformed")
    return ClientCredentialsGrant(client_id=client_id, client_secret=secret, scope=scope)
