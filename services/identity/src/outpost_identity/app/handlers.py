"""Identity's handler table: each operation to its use case. The use cases live one
aggregate per module (ADR 0086): ``organizations``, ``api_keys``, ``users``,
``memberships``, ``sessions``, ``signing_keys``, ``oauth_clients``, ``integrations``;
what they share is in
``deps``; what they need of storage is ``ports``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from outpost_contracts import identity as api
from outpost_contracts.envelope import RequestContext
from outpost_contracts.rpc import Operation
from outpost_identity.app.api_keys import (
    create_api_key,
    issue_operator_key,
    list_api_keys,
    operator_key_valid,
    record_key_usage,
    revoke_api_key,
)
from outpost_identity.app.deps import Deps
from outpost_identity.app.integrations import (
    create_integration,
    get_integration,
    list_integrations,
    record_integration_connections,
    revoke_integration,
    rotate_integration_credential,
)
from outpost_identity.app.memberships import get_user, list_users
from outpost_identity.app.oauth_clients import (
    create_oauth_client,
    delete_oauth_client,
    issue_client_token,
    list_oauth_clients,
    rotate_oauth_client_secret,
)
from outpost_identity.app.organizations import (
    create_organization,
    get_organization,
    list_organizations,
    reinstate_organization,
    suspend_organization,
)
from outpost_identity.app.sessions import login, logout, refresh
from outpost_identity.app.signing_keys import ensure_signing_key
from outpost_identity.app.users import create_user

__all__ = [
    "HANDLERS",
    "Deps",
    "create_api_key",
    "create_integration",
    "create_oauth_client",
    "create_organization",
    "create_user",
    "delete_oauth_client",
    "ensure_signing_key",
    "get_integration",
    "get_organization",
    "get_user",
    "issue_client_token",
    "issue_operator_key",
    "list_api_keys",
    "list_integrations",
    "list_oauth_clients",
    "list_organizations",
    "list_users",
    "login",
    "logout",
    "operator_key_valid",
    "record_integration_connections",
    "record_key_usage",
    "refresh",
    "reinstate_organization",
    "revoke_api_key",
    "revoke_integration",
    "rotate_integration_credential",
    "rotate_oauth_client_secret",
    "suspend_organization",
]

Handler = Callable[[Deps, RequestContext, Any], Awaitable[Any]]

HANDLERS: dict[Operation[Any, Any], Handler] = {
    api.CREATE_ORGANIZATION: create_organization,
    api.GET_ORGANIZATION: get_organization,
    api.LIST_ORGANIZATIONS: list_organizations,
    api.SUSPEND_ORGANIZATION: suspend_organization,
    api.REINSTATE_ORGANIZATION: reinstate_organization,
    api.CREATE_API_KEY: create_api_key,
    api.LIST_API_KEYS: list_api_keys,
    api.REVOKE_API_KEY: revoke_api_key,
    api.RECORD_KEY_USAGE: record_key_usage,
    api.CREATE_USER: create_user,
    api.LIST_USERS: list_users,
    api.GET_USER: get_user,
    api.LOGIN: login,
    api.REFRESH: refresh,
    api.LOGOUT: logout,
    api.CREATE_OAUTH_CLIENT: create_oauth_client,
    api.LIST_OAUTH_CLIENTS: list_oauth_clients,
    api.ROTATE_OAUTH_CLIENT_SECRET: rotate_oauth_client_secret,
    api.DELETE_OAUTH_CLIENT: delete_oauth_client,
    api.ISSUE_CLIENT_TOKEN: issue_client_token,
    api.CREATE_INTEGRATION: create_integration,
    api.LIST_INTEGRATIONS: list_integrations,
    api.GET_INTEGRATION: get_integration,
    api.ROTATE_INTEGRATION_CREDENTIAL: rotate_integration_credential,
    api.REVOKE_INTEGRATION: revoke_integration,
    api.RECORD_INTEGRATION_CONNECTIONS: record_integration_connections,
}
