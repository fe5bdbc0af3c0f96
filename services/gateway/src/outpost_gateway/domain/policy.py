"""Authorization: the one route-policy table, scope matching and tenancy resolution.

Every route the gateway serves has exactly one entry in ``ROUTE_POLICIES`` keyed by method
and path template (as Litestar and the OpenAPI document spell it): the routes of the resource
groups (``domain/resources.py``) take theirs from their group's entry, the routes written by
hand have theirs in ``HANDWRITTEN_POLICIES``; a route declared in both is an error at import.
A route missing from the table is refused (fail closed), and a unit test walks the OpenAPI to
keep the table complete.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from outpost_contracts.credentials import scope_covers
from outpost_contracts.envelope import PLATFORM_ORG_ID, Principal, PrincipalKind
from outpost_contracts.errors import (
    AccessDenied,
    ErrorType,
    NotFound,
    OutpostError,
    validation_error,
)
from outpost_gateway.domain.credentials import CredentialCache
from outpost_gateway.domain.ratelimit import Category
from outpost_gateway.domain.resources import RESOURCE_GROUPS, ResourceGroup

PUBLIC = "public"  # no credential needed (health, metrics, documents)
AUTHENTICATED = "authenticated"  # any valid credential, no particular scope (logout)
OPERATOR = "operator"  # the platform operator only; requests run in the platform tenant
UNRECOGNIZED = "unrecognized"  # a framework route that must answer 404 unrecognized_request

ORGANIZATION_HEADER = "X-Organization"

# The routes written by hand in entrypoints/; each resource group's five are in its entry.
HANDWRITTEN_POLICIES: dict[tuple[str, str], str] = {
    # platform
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v3/api-docs"): PUBLIC,  # the OpenAPI document, and its aliases:
    ("GET", "/api/v3"): PUBLIC,
    ("GET", "/api/v3/openapi.json"): PUBLIC,
    ("GET", "/api/v3/{path}"): UNRECOGNIZED,  # Litestar's catch-all for other document names
    ("GET", "/api/schemas"): PUBLIC,
    ("GET", "/api/asyncapi"): PUBLIC,  # the event streams' AsyncAPI document (decision 95)
    ("GET", "/.well-known/jwks.json"): PUBLIC,  # the token signing keys (decision 78)
    # the web console (decision 99): its page and static assets; its session routes, where
    # the body's password or the HttpOnly cookie's refresh token is the credential
    ("GET", "/"): PUBLIC,
    ("GET", "/console/{path}"): PUBLIC,
    ("POST", "/console/session/login"): PUBLIC,
    ("POST", "/console/session/refresh"): PUBLIC,
    ("POST", "/console/session/logout"): AUTHENTICATED,
    # identity
    ("POST", "/api/v1/admin/organizations/{id}/suspend"): OPERATOR,
    ("POST", "/api/v1/admin/organizations/{id}/reinstate"): OPERATOR,
    ("GET", "/api/v1/admin/organizations/{id}/rate-limits"): OPERATOR,
    ("PUT", "/api/v1/admin/organizations/{id}/rate-limits"): OPERATOR,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/refresh"): PUBLIC,  # the refresh token in the body is the credential
    ("POST", "/api/v1/auth/logout"): AUTHENTICATED,
    ("POST", "/api/v1/oauth-clients"): "oauth-clients:write",
    ("GET", "/api/v1/oauth-clients"): "oauth-clients:read",
    ("POST", "/api/v1/oauth-clients/{id}/rotate-secret"): "oauth-clients:write",
    ("DELETE", "/api/v1/oauth-clients/{id}"): "oauth-clients:write",
    # an integration's five routes: the group /api/v1/integrations
    ("POST", "/api/v1/integrations/{id}/rotate"): "integrations:write",
    # the client's id and secret (Basic or form) are the credential; RFC 6749 errors
    ("POST", "/auth/oauth/token"): PUBLIC,
    # devices (their five routes: the group /api/v1/devices)
    ("GET", "/api/v1/devices/by-key/{key}"): "devices:read",  # also /api/v1/devices(…)
    ("PATCH", "/api/v1/devices"): "devices:write",  # guarded bulk change (X-Expected-Count)
    ("DELETE", "/api/v1/devices"): "devices:write",  # guarded bulk decommission
    # provisioning
    ("POST", "/api/v1/devices/provision"): PUBLIC,  # the registration token is the credential
    # the current certificate and a signature with its key are the credential
    ("POST", "/api/v1/devices/certificates/renew"): PUBLIC,
    ("GET", "/api/v1/devices/ca"): "devices:read",
    ("GET", "/api/v1/devices/{id}/certificates"): "devices:read",
    ("POST", "/api/v1/devices/{id}/certificates/{serial}/revoke"): "devices:write",
    # presence
    ("GET", "/api/v1/devices/{id}/health"): "devices:read",
    # commands and desired/reported state
    ("POST", "/api/v1/devices/{id}/commands"): "devices:write",
    ("GET", "/api/v1/devices/{id}/commands"): "devices:read",
    ("GET", "/api/v1/devices/{id}/commands/{command_id}"): "devices:read",
    ("GET", "/api/v1/devices/{id}/state"): "devices:read",
    ("PATCH", "/api/v1/devices/{id}/state"): "devices:write",
    ("PUT", "/api/v1/devices/{id}/state"): "devices:write",
    # readings
    ("GET", "/api/v1/readings"): "readings:read",
    ("GET", "/api/v1/readings/aggregated"): "readings:read",
    ("GET", "/api/v1/readings/stats"): "readings:read",
    ("GET", "/api/v1/readings/latest"): "readings:read",
    ("POST", "/api/v1/readings/batch"): "readings:write",
    # annotations (decision 61): the list takes the window from/to; the other four routes
    # and the classes' are their groups'
    ("GET", "/api/v1/annotations"): "readings:read",
    ("GET", "/api/v1/devices/{id}/annotations"): "readings:read",
    # reference pairs (ADR 0098): the comparison; the five routes are the group's
    ("GET", "/api/v1/reference-pairs/{id}/comparison"): "readings:read",
    # an organization's readings settings: their own scope, so members (readings:*) do not
    # turn auto-declare off or shorten retention; viewers (*:read) may read them
    ("GET", "/api/v1/readings/settings"): "readings-settings:read",
    ("PUT", "/api/v1/readings/settings"): "readings-settings:write",
    # an organization's quarantine: its own scope, so members (readings:*) do not manage it
    ("GET", "/api/v1/admin/quarantine"): "quarantine:read",
    ("POST", "/api/v1/admin/quarantine/replay"): "quarantine:write",
    ("POST", "/api/v1/admin/quarantine/discard"): "quarantine:write",
    # alerting (alert rules: their group)
    ("GET", "/api/v1/alerts"): "alerts:read",
    ("GET", "/api/v1/alerts/{id}"): "alerts:read",
    ("POST", "/api/v1/alerts/{id}/acknowledge"): "alerts:write",
    ("POST", "/api/v1/alerts/{id}/resolve"): "alerts:write",
    ("GET", "/api/v1/alerts/{id}/deliveries"): "alerts:read",
    ("GET", "/api/v1/events"): "events:read",
    ("GET", "/api/v1/events/stream"): "events:read",
    # every service's event store
    ("GET", "/api/v1/audit-log"): "audit-log:read",
    # alerting: notification channels' test and delivery logs (decision 64; the channels
    # themselves: their group)
    ("POST", "/api/v1/notification-channels/{id}/test"): "notification-channels:write",
    ("GET", "/api/v1/notification-channels/{id}/deliveries"): "notification-channels:read",
    # exports (decision 65); the download's signed link is its credential
    ("POST", "/api/v1/exports"): "exports:write",
    ("GET", "/api/v1/exports/{id}"): "exports:read",
    ("GET", "/api/v1/exports/{id}/download"): PUBLIC,
    # fleet (ADR 0090): config artefacts' versions (the artefacts and the bindings: their groups)
    ("POST", "/api/v1/config-artefacts/{id}/versions"): "fleet:write",
    ("GET", "/api/v1/config-artefacts/{id}/versions"): "fleet:read",
    ("GET", "/api/v1/config-artefacts/{id}/versions/{version}"): "fleet:read",
    ("DELETE", "/api/v1/config-artefacts/{id}/versions/{version}"): "fleet:write",
    # fleet's rollout (ADR 0093): compliance and a device profile's application
    ("GET", "/api/v1/desired-state-bindings/{id}/status"): "fleet:read",
    ("GET", "/api/v1/config-artefacts/{id}/versions/{version}/status"): "fleet:read",
    ("GET", "/api/v1/device-profiles/{id}/application"): "fleet:read",
    # packs beyond their group (ADR 0092)
    ("GET", "/api/v1/packs/{id}/export"): "fleet:read",
    ("POST", "/api/v1/packs/import"): "fleet:write",
}


def group_policies(groups: tuple[ResourceGroup, ...]) -> dict[tuple[str, str], str]:
    """The policy of every route of ``groups``: ``<scope>:read`` for its GETs and
    ``<scope>:write`` for the others, or ``OPERATOR`` for a group without a scope."""
    found: dict[tuple[str, str], str] = {}
    for group in groups:
        for route in group.routes():
            policy = OPERATOR if group.scope is None else f"{group.scope}:{route.access}"
            found = _one_policy_each(found, {(route.method, route.path): policy})
    return found


def _one_policy_each(*tables: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    merged: dict[tuple[str, str], str] = {}
    for table in tables:
        twice = merged.keys() & table.keys()
        if twice:
            raise ValueError(f"routes with two policies: {sorted(twice)}")
        merged |= table
    return merged


ROUTE_POLICIES = _one_policy_each(HANDWRITTEN_POLICIES, group_policies(RESOURCE_GROUPS))


def policy_for(method: str, path_template: str) -> str | None:
    """The policy of a route; None when it has none (the caller refuses the request).
    ``OPTIONS`` is answered by the framework with the allowed methods and needs no
    credential (CORS preflight requests carry none)."""
    if method.upper() == "OPTIONS":
        return PUBLIC
    return ROUTE_POLICIES.get((method.upper(), path_template))


# Hand-written GETs of one object whose path does not end in a path parameter (the rule below
# would call them lists). Rate categories are derived here and only here.
SINGLE_OBJECT_GETS: frozenset[str] = frozenset(
    {
        "/api/v1/organizations/current",
        "/api/v1/devices/ca",
        "/api/v1/devices/{id}/state",
        "/api/v1/readings/settings",
    }
)


# The routes of the resource groups declare theirs (by verb).
GROUP_CATEGORIES: dict[tuple[str, str], Category] = {
    (route.method, route.path): route.category
    for group in RESOURCE_GROUPS
    for route in group.routes()
}


def rate_category(method: str, path_template: str) -> Category | None:
    """The rate-limit category of a route (docs/api.md "Rate limits"); None for routes that are
    not limited (public and unrecognized ones). A resource group's route has its verb's; for
    the others, ``GET`` of a path ending in a path parameter (``/devices/{id}``) reads one
    object, any other ``GET`` is a paginated list, and every other method writes."""
    declared = GROUP_CATEGORIES.get((method.upper(), path_template))
    if declared is not None:
        return declared
    policy = policy_for(method, path_template)
    if policy is None or policy in (PUBLIC, UNRECOGNIZED):
        return None
    if method.upper() in ("GET", "HEAD"):
        if path_template.endswith("}") or path_template in SINGLE_OBJECT_GETS:
            return Category.SINGLE
        return Category.LIST
    return Category.WRITE


def grants(granted: Iterable[str], required: str) -> bool:
    """Whether any granted scope covers ``required`` (the shared scope grammar)."""
    return any(scope_covers(scope, required) for scope in granted)


def authorize(principal: Principal, required: str) -> None:
    """Raise ``access_denied`` unless ``principal`` may call a route with policy ``required``."""
    if required == PUBLIC:
        return
    if required == UNRECOGNIZED:
        raise OutpostError("no such resource path", type=ErrorType.UNRECOGNIZED_REQUEST)
    if required == AUTHENTICATED:
        return
    if required == OPERATOR:
        if principal.kind is not PrincipalKind.OPERATOR:
            raise AccessDenied("this route is for the platform operator")
        return
    if not grants(principal.scopes, required):
        raise AccessDenied(f"the credential lacks the scope {required!r}")


def resolve_organization(
    principal: Principal, required: str, header: str | None, cache: CredentialCache
) -> UUID:
    """The tenant a request runs in.

    An organization credential always acts in its own organization. The operator acts in the
    platform tenant on operator routes, and inside an organization named by ``X-Organization``
    elsewhere.
    """
    if principal.kind is not PrincipalKind.OPERATOR:
        if header is not None and _parse_org(header) != principal.org_id:
            raise AccessDenied("only the platform operator may act in another organization")
        return principal.org_id
    if required == OPERATOR:
        return PLATFORM_ORG_ID
    if header is None:
        raise validation_error(
            ORGANIZATION_HEADER, "the operator must name the organization to act in"
        )
    org_id = _parse_org(header)
    if not cache.organization_exists(org_id):
        raise UnknownOrganization(org_id)
    return org_id


class UnknownOrganization(NotFound):
    """The cache has not seen this organization: it may not exist, or its creation event may
    still be on its way (the caller asks identity before answering 404)."""

    def __init__(self, org_id: UUID) -> None:
        super().__init__(f"organization {org_id} not found")
        self.org_id = org_id


def _parse_org(header: str) -> UUID:
    try:
        return UUID(header.strip())
    except ValueError:
        raise validation_error(ORGANIZATION_HEADER, "must be an organization id (UUID)") from None
