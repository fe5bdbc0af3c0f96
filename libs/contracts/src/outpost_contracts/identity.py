"""Identity: organizations, API keys, users and memberships, signing keys and sessions."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from outpost_contracts.base import Contract, Empty, Event, Instant, Request, whole, wire_tag
from outpost_contracts.query import ListQuery, Page
from outpost_contracts.rpc import Operation
from outpost_contracts.tokens import Role

SERVICE = "identity"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[
    str, msgspec.Meta(min_length=3, max_length=254, pattern=whole(r"[^@\s]+@[^@\s]+\.[^@\s]+"))
]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=256)]
Scope = Annotated[
    str, msgspec.Meta(pattern=whole(r"[a-z][a-z-]*:(read|write|\*)|\*(:(read|write))?"))
]


class OrganizationStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


# --- events -----------------------------------------------------------------------------


class OrganizationCreated(
    Event, tag=wire_tag(SERVICE, "OrganizationCreated", 1), kw_only=True, frozen=True
):
    name: str


class OrganizationSuspended(
    Event, tag=wire_tag(SERVICE, "OrganizationSuspended", 1), kw_only=True, frozen=True
):
    reason: str = ""


class OrganizationReinstated(
    Event, tag=wire_tag(SERVICE, "OrganizationReinstated", 1), kw_only=True, frozen=True
):
    """The suspension is lifted: the organization's credentials, devices, telemetry and
    notifications work again (ADR 0076)."""


# What the services that act on a suspension follow (their ``*-organizations`` consumers).
SUSPENSION_EVENTS: tuple[type[Event], ...] = (OrganizationSuspended, OrganizationReinstated)


class ApiKeyCreated(Event, tag=wire_tag(SERVICE, "ApiKeyCreated", 1), kw_only=True, frozen=True):
    """Carries the key's lookup prefix and SHA-256 hash (never the key) so that gateways can
    verify it from their local cache."""

    name: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    operator: bool = False
    expires_at: datetime | None = None
    created_by: UUID | None = None


class ApiKeyRevoked(Event, tag=wire_tag(SERVICE, "ApiKeyRevoked", 1), kw_only=True, frozen=True):
    prefix: str


class UserCreated(Event, tag=wire_tag(SERVICE, "UserCreated", 1), kw_only=True, frozen=True):
    """A platform user (stream in the platform tenant). Carries no secret: the password hash
    is kept beside the event store, never in an event."""

    email: str


class MembershipGranted(
    Event, tag=wire_tag(SERVICE, "MembershipGranted", 1), kw_only=True, frozen=True
):
    """A user's membership of the event's organization, with a role."""

    user_id: UUID
    email: str
    role: Role


class SigningKeyPublished(
    Event, tag=wire_tag(SERVICE, "SigningKeyPublished", 1), kw_only=True, frozen=True
):
    """A public key that verifies access tokens whose header names ``kid``. The private key
    stays in identity, encrypted at rest."""

    kid: str
    algorithm: str
    public_key_pem: str
    not_before: datetime
    not_after: datetime


class SigningKeyRetired(
    Event, tag=wire_tag(SERVICE, "SigningKeyRetired", 1), kw_only=True, frozen=True
):
    """The key signs nothing more; tokens it signed verify until ``verify_until`` (the longest
    access-token lifetime after the rotation, or at once when the key is revoked)."""

    kid: str
    verify_until: datetime


class SessionStarted(Event, tag=wire_tag(SERVICE, "SessionStarted", 1), kw_only=True, frozen=True):
    """A login. ``refresh_token_hash`` is SHA-256 of a 256-bit random token (never the token)."""

    user_id: UUID
    role: Role
    refresh_token_hash: str
    expires_at: datetime


class SessionRefreshed(
    Event, tag=wire_tag(SERVICE, "SessionRefreshed", 1), kw_only=True, frozen=True
):
    """The refresh token was rotated: the previous one is spent."""

    refresh_token_hash: str


class SessionRevoked(Event, tag=wire_tag(SERVICE, "SessionRevoked", 1), kw_only=True, frozen=True):
    """Every token of the session (the refresh-token family) is dead. The gateway refuses its
    access tokens from this event on."""

    reason: str
    user_id: UUID | None = None


class OAuthClientCreated(
    Event, tag=wire_tag(SERVICE, "OAuthClientCreated", 1), kw_only=True, frozen=True
):
    """An OAuth2 client (client-credentials grant). Carries the SHA-256 of its secret, never
    the secret; only identity reads it (the token endpoint asks identity)."""

    name: str
    client_id: str
    secret_hash: str
    scopes: tuple[str, ...]
    created_by: UUID | None = None


class OAuthClientSecretRotated(
    Event, tag=wire_tag(SERVICE, "OAuthClientSecretRotated", 1), kw_only=True, frozen=True
):
    """A new secret replaces the old one, which stops working at once."""

    secret_hash: str


class OAuthClientDeleted(
    Event, tag=wire_tag(SERVICE, "OAuthClientDeleted", 1), kw_only=True, frozen=True
):
    """The client is gone: no more tokens, and the gateway refuses the ones it holds."""

    client_id: str


# --- integrations (issue 23, ADR 0097) ---------------------------------------------------


class DeliverPolicy(enum.StrEnum):
    """Where an integration's consumers start: every retained event, only new ones, or the
    first event at or after ``startTime``."""

    ALL = "ALL"
    NEW = "NEW"
    BY_START_TIME = "BY_START_TIME"


class IntegrationCreated(
    Event, tag=wire_tag(SERVICE, "IntegrationCreated", 1), kw_only=True, frozen=True
):
    """An organization's integration: broker credentials for its own service to read the
    organization's events. ``password_hash`` is SHA-256 of a 256-bit random password (never
    the password): the devices service's auth callout checks a connection against it.
    ``filters`` are the broker subjects its consumers are filtered to, ``consumers`` the
    durable consumers' names (one per group) on the ``PUBLIC`` stream."""

    name: str
    user: str
    password_hash: str
    subjects: tuple[str, ...]
    filters: tuple[str, ...]
    deliver_policy: DeliverPolicy
    start_time: datetime | None = None
    consumers: tuple[str, ...]
    created_by: UUID | None = None


class IntegrationCredentialRotated(
    Event, tag=wire_tag(SERVICE, "IntegrationCredentialRotated", 1), kw_only=True, frozen=True
):
    """A new password; the previous one is refused from now on and its connections closed."""

    user: str
    password_hash: str


class IntegrationRevoked(
    Event, tag=wire_tag(SERVICE, "IntegrationRevoked", 1), kw_only=True, frozen=True
):
    """The integration's credentials are refused and its connections closed."""

    user: str


# What the broker's auth callout (devices) follows to know integrations' credentials.
INTEGRATION_EVENTS: tuple[type[Event], ...] = (
    IntegrationCreated,
    IntegrationCredentialRotated,
    IntegrationRevoked,
)


# --- requests ---------------------------------------------------------------------------


class CreateOrganization(Request, kw_only=True, frozen=True):
    name: Name


class ListOrganizations(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class GetOrganization(Request, kw_only=True, frozen=True):
    id: UUID


class SuspendOrganizationById(Request, kw_only=True, frozen=True):
    """``POST /admin/organizations/{id}/suspend`` (operator). Every credential of the
    organization is refused from then on; repeating it changes nothing."""

    id: UUID
    reason: Annotated[str, msgspec.Meta(max_length=512)] = ""


class ReinstateOrganizationById(Request, kw_only=True, frozen=True):
    """``POST /admin/organizations/{id}/reinstate`` (operator): the suspension is lifted;
    repeating it, or reinstating an active organization, changes nothing."""

    id: UUID


class CreateApiKey(Request, kw_only=True, frozen=True):
    name: Name
    scopes: list[Scope] | None = None
    expires_at: Instant | None = None


class ListApiKeys(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class RevokeApiKey(Request, kw_only=True, frozen=True):
    id: UUID


class CreateOAuthClient(Request, kw_only=True, frozen=True):
    name: Name
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=50)]


class ListOAuthClients(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class RotateOAuthClientSecret(Request, kw_only=True, frozen=True):
    id: UUID


class DeleteOAuthClient(Request, kw_only=True, frozen=True):
    id: UUID


class IssueClientToken(Request, kw_only=True, frozen=True):
    """The client-credentials grant (RFC 6749 §4.4), already parsed by the gateway. ``scope``
    None: every scope of the client."""

    client_id: Annotated[str, msgspec.Meta(max_length=256)]
    client_secret: Annotated[str, msgspec.Meta(max_length=256)]
    scope: tuple[str, ...] | None = None


# A subscription filter of the API: ``<area>.>`` or ``<area>.<EventName>`` (the areas and
# what each maps to on the broker: ``outpost_contracts.integrations``).
SubjectFilter = Annotated[
    str, msgspec.Meta(min_length=3, max_length=100, pattern=whole(r"[a-z]+\.(>|[A-Z][A-Za-z0-9]*)"))
]
GroupName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=32, pattern=whole(r"[a-z0-9][a-z0-9-]*"))
]


class CreateIntegration(Request, kw_only=True, frozen=True):
    name: Name
    subjects: Annotated[list[SubjectFilter], msgspec.Meta(min_length=1, max_length=20)]
    deliver_policy: DeliverPolicy = DeliverPolicy.NEW
    start_time: Instant | None = None
    # Named consumer groups: one durable consumer each; replicas of a subscriber that use
    # the same group share its messages. One group, ``default``, when not given.
    groups: Annotated[list[GroupName], msgspec.Meta(min_length=1, max_length=10)] | None = None


class ListIntegrations(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class GetIntegration(Request, kw_only=True, frozen=True):
    id: UUID


class RotateIntegrationCredential(Request, kw_only=True, frozen=True):
    id: UUID


class RevokeIntegration(Request, kw_only=True, frozen=True):
    id: UUID


class CreateUser(Request, kw_only=True, frozen=True):
    email: Email
    password: Password
    role: Role


class ListUsers(Request, kw_only=True, frozen=True):
    query: ListQuery = msgspec.field(default_factory=ListQuery)


class GetUser(Request, kw_only=True, frozen=True):
    id: UUID


class Login(Request, kw_only=True, frozen=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=256)]
    organization: UUID | None = None


class Refresh(Request, kw_only=True, frozen=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=512)]


class Logout(Request, kw_only=True, frozen=True):
    pass


# --- replies ----------------------------------------------------------------------------


class OrganizationView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    status: OrganizationStatus
    created_at: datetime
    version: int


class ApiKeyView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    # When a gateway last accepted the key, reported in batches (within about 30 s).
    last_used_at: datetime | None = None
    version: int = 1


class KeyUse(Contract, kw_only=True, frozen=True):
    id: UUID
    org_id: UUID
    at: datetime


class RecordKeyUsage(Request, kw_only=True, frozen=True):
    """Internal, from the gateways (no HTTP route): the keys they accepted since their last
    report and when each was last used."""

    uses: list[KeyUse]


class ApiKeyIssued(Contract, kw_only=True, frozen=True):
    """The one time a key is shown."""

    id: UUID
    name: str
    key: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None = None


class OAuthClientView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    client_id: str
    scopes: list[str]
    created_at: datetime
    version: int = 1


class OAuthClientIssued(Contract, kw_only=True, frozen=True):
    """The one time a client's secret is shown (creation, rotation)."""

    id: UUID
    name: str
    client_id: str
    client_secret: str
    scopes: list[str]
    created_at: datetime


class IntegrationView(Contract, kw_only=True, frozen=True):
    id: UUID
    name: str
    user: str  # the broker user name it connects with
    subjects: list[str]
    deliver_policy: DeliverPolicy
    start_time: datetime | None = None
    stream: str  # the stream its consumers read
    consumers: dict[str, str]  # group -> durable consumer name
    inbox_prefix: str  # the only inboxes it may use (nats-py's ``inbox_prefix``)
    created_at: datetime
    revoked_at: datetime | None = None
    # When the broker last admitted a connection with its credentials, reported by the auth
    # callout in batches (within about 30 s; ADR 0097).
    last_connected_at: datetime | None = None
    version: int = 1


class IntegrationConnection(Contract, kw_only=True, frozen=True):
    id: UUID
    org_id: UUID
    at: datetime


class RecordIntegrationConnections(Request, kw_only=True, frozen=True):
    """Internal, from the devices service's auth callout (no HTTP route): the integrations
    it admitted since its last report and when each was last admitted (``lastConnectedAt``)."""

    connections: list[IntegrationConnection]


class IntegrationIssued(Contract, kw_only=True, frozen=True):
    """The one time an integration's password is shown (creation, rotation), with what a
    subscriber needs to connect."""

    id: UUID
    name: str
    user: str
    password: str
    subjects: list[str]
    deliver_policy: DeliverPolicy
    start_time: datetime | None = None
    stream: str
    consumers: dict[str, str]
    inbox_prefix: str
    created_at: datetime


class ClientTokenIssued(Contract, kw_only=True, frozen=True):
    """An access token of the client-credentials grant. Field names are RFC 6749's."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str


CREATE_ORGANIZATION = Operation(SERVICE, "CreateOrganization", CreateOrganization, OrganizationView)
LIST_ORGANIZATIONS = Operation(
    SERVICE, "ListOrganizations", ListOrganizations, Page[OrganizationView]
)
GET_ORGANIZATION = Operation(SERVICE, "GetOrganization", GetOrganization, OrganizationView)
SUSPEND_ORGANIZATION = Operation(
    SERVICE, "SuspendOrganization", SuspendOrganizationById, OrganizationView
)
REINSTATE_ORGANIZATION = Operation(
    SERVICE, "ReinstateOrganization", ReinstateOrganizationById, OrganizationView
)
CREATE_API_KEY = Operation(SERVICE, "CreateApiKey", CreateApiKey, ApiKeyIssued)
LIST_API_KEYS = Operation(SERVICE, "ListApiKeys", ListApiKeys, Page[ApiKeyView])
REVOKE_API_KEY = Operation(SERVICE, "RevokeApiKey", RevokeApiKey, Empty)
RECORD_KEY_USAGE = Operation(SERVICE, "RecordKeyUsage", RecordKeyUsage, Empty)


class UserView(Contract, kw_only=True, frozen=True):
    """A user as a member of the caller's organization. Never carries the password hash."""

    id: UUID
    email: str
    role: Role
    created_at: datetime
    version: int = 1


class TokenIssued(Contract, kw_only=True, frozen=True):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


CREATE_USER = Operation(SERVICE, "CreateUser", CreateUser, UserView)
LIST_USERS = Operation(SERVICE, "ListUsers", ListUsers, Page[UserView])
GET_USER = Operation(SERVICE, "GetUser", GetUser, UserView)
LOGIN = Operation(SERVICE, "Login", Login, TokenIssued)
REFRESH = Operation(SERVICE, "Refresh", Refresh, TokenIssued)
LOGOUT = Operation(SERVICE, "Logout", Logout, Empty)
CREATE_OAUTH_CLIENT = Operation(SERVICE, "CreateOAuthClient", CreateOAuthClient, OAuthClientIssued)
LIST_OAUTH_CLIENTS = Operation(SERVICE, "ListOAuthClients", ListOAuthClients, Page[OAuthClientView])
ROTATE_OAUTH_CLIENT_SECRET = Operation(
    SERVICE, "RotateOAuthClientSecret", RotateOAuthClientSecret, OAuthClientIssued
)
DELETE_OAUTH_CLIENT = Operation(SERVICE, "DeleteOAuthClient", DeleteOAuthClient, Empty)
ISSUE_CLIENT_TOKEN = Operation(SERVICE, "IssueClientToken", IssueClientToken, ClientTokenIssued)
CREATE_INTEGRATION = Operation(SERVICE, "CreateIntegration", CreateIntegration, IntegrationIssued)
LIST_INTEGRATIONS = Operation(SERVICE, "ListIntegrations", ListIntegrations, Page[IntegrationView])
GET_INTEGRATION = Operation(SERVICE, "GetIntegration", GetIntegration, IntegrationView)
ROTATE_INTEGRATION_CREDENTIAL = Operation(
    SERVICE, "RotateIntegrationCredential", RotateIntegrationCredential, IntegrationIssued
)
REVOKE_INTEGRATION = Operation(SERVICE, "RevokeIntegration", RevokeIntegration, Empty)
RECORD_INTEGRATION_CONNECTIONS = Operation(
    SERVICE, "RecordIntegrationConnections", RecordIntegrationConnections, Empty
)
