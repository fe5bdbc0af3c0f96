"""The OpenAPI document's security and error responses, derived from the route policy table.

Litestar generates the operations from the handlers; ``document`` then adds, to every
operation, what the policy table (``domain/policy.py``) implies, so no route declares it:

- ``security``: the bearer scheme (API key ``sk_live_…`` or session JWT) or an OAuth2
  client-credentials token carrying the route's scope; the operator's routes take the
  operator's API key only; public routes say ``security: []``.
- ``responses``: the error model (``#/components/schemas/Error``) for each status that
  applies: 400 and 503 everywhere; 401, 403, 404 and 429 where a credential is needed (404:
  another organization's object, or an unknown ``X-Organization``); 404 where the path has a
  parameter; 409 and 413 for POST/PUT/PATCH; 412 for PUT/PATCH/DELETE (``If-Match``).
  Litestar's own 400 (its ``ValidationException`` shape, never sent: the gateway renders
  every error in the error model) is replaced.
- The OAuth2 token endpoint (``TOKEN_PATH``) answers RFC 6749: its form body, its token and,
  from its handler, §5.2 error bodies (``#/components/schemas/OAuthError``); the edge in
  front of it still answers in the error model (a header over the limit, a timeout), so its
  400, 401 and 503 are either.
- Request bodies: the schema of each handler's ``data`` struct is msgspec's own
  (``request_schemas``), the decoder that enforces it. Litestar's rendering loses what
  msgspec checks: that request structs forbid unknown fields (``additionalProperties:
  false``) and constraints inside containers (the pattern of each scope in a list).
- Response headers: OpenAPI 3.1 wants a ``schema`` (or ``content``) on each, which
  Litestar's ``ResponseHeader`` cannot carry; ``header_schemas`` adds it (an ``ETag`` is a
  quoted version, every other header a string). ``openapi-spec-validator`` checks the
  whole document in the unit tests (decision 77).
- ``links``, from two rules (``links``): a ``POST`` on a collection links its 201 to every
  operation on ``{collection}/{id}`` and below it, with ``id: $response.body#/id``; a
  ``GET`` whose 200 has an ``ETag`` links to the operations on its path that take
  ``If-Match``. Clients, and schemathesis' stateful tests, follow them.

The document describes ``/api/v1`` only; older versions are translations of it (decision 41).
"""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin

from outpost_contracts.base import whole
from outpost_contracts.errors import ErrorType
from outpost_gateway.domain.policy import (
    AUTHENTICATED,
    OPERATOR,
    PUBLIC,
    ROUTE_POLICIES,
    UNRECOGNIZED,
    policy_for,
    rate_category,
)
from outpost_gateway.domain.public_throttle import public_route

BEARER = "bearerAuth"
OAUTH2 = "oauth2ClientCredentials"
ERROR_REF = "#/components/schemas/Error"
OAUTH_ERROR_REF = "#/components/schemas/OAuthError"
TOKEN_PATH = "/auth/oauth/token"
OAUTH_STATUSES = (400, 401, 503)  # the statuses the token handler answers in RFC 6749 form
ITEM_PARAMETER = "id"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every non-2xx response (docs/api.md, Errors).",
    "required": ["object", "code", "type", "message", "fields", "request_id"],
    "properties": {
        "object": {"type": "string", "const": "error"},
        "code": {"type": "integer", "description": "The HTTP status"},
        "type": {"type": "string", "enum": [t.value for t in ErrorType]},
        "message": {"type": "string"},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "message"],
                "properties": {"name": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "request_id": {"type": "string", "pattern": whole("[0-9a-f]{32}")},
    },
}

OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error of the OAuth2 token endpoint (RFC 6749 §5.2).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "string",
            "enum": [
                "invalid_request",
                "invalid_client",
                "invalid_grant",
                "unauthorized_client",
                "unsupported_grant_type",
                "invalid_scope",
                "temporarily_unavailable",
                "server_error",
            ],
        },
        "error_description": {"type": "string"},
    },
}

TOKEN_REQUEST: dict[str, Any] = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "description": (
                    "The client-credentials grant (RFC 6749 §4.4); the client authenticates"
                    " with HTTP Basic or with `client_id` and `client_secret` here."
                ),
                "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "const": "client_credentials"},
                    "client_id": {"type": "string"},
                    "client_secret": {"type": "string"},
                    "scope": {"type": "string", "description": "Space-separated scopes"},
                },
            }
        }
    },
}

TOKEN_RESPONSE: dict[str, Any] = {
    "description": "An access token (RFC 6749 §5.1)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["access_token", "token_type", "expires_in", "scope"],
                "properties": {
                    "access_token": {"type": "string"},
                    "token_type": {"type": "string"},
                    "expires_in": {"type": "integer"},
                    "scope": {"type": "string"},
                },
            }
        }
    },
}

DESCRIPTIONS: dict[int, str] = {
    400: "`validation_error` (a field named in `fields`) or `bad_request`",
    401: "`invalid_auth`, `invalid_token` or `invalid_apikey`: no valid credential",
    403: "`access_denied`: the credential may not do this",
    404: "`not_found`: no such object in this organization (or no such organization)",
    409: "`conflict`: a uniqueness rule, or an Idempotency-Key used with another request",
    412: "`precondition_failed`: `If-Match` or `X-Expected-Count` did not match",
    413: "`payload_too_large`",
    429: (
        "`throttled`: over the rate limit (public routes: per client address and per account,"
        " slower after repeated failures); `Retry-After` says when to retry"
    ),
    503: "`service_unavailable`: a service did not answer in time",
}


def security_schemes(scopes: list[str]) -> dict[str, Any]:
    return {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key (`sk_live_…`), a session access token (a JWT from"
                " `POST /api/v1/auth/login`) or an OAuth2 access token."
            ),
        },
        OAUTH2: {
            "type": "oauth2",
            "description": "Client credentials (HTTP Basic or form) for an access token.",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/auth/oauth/token",
                    "scopes": {s: f"the `{s}` scope" for s in scopes},
                }
            },
        },
    }


# Public routes whose credential is a signed link in the query (decision 65).
SIGNED_LINK_ROUTES = frozenset({("GET", "/api/v1/exports/{id}/download")})


def security_for(policy: str) -> list[dict[str, list[str]]]:
    if policy in (PUBLIC, UNRECOGNIZED):
        return []
    if policy == OPERATOR:
        return [{BEARER: []}]
    if policy == AUTHENTICATED:
        return [{BEARER: []}, {OAUTH2: []}]
    return [{BEARER: []}, {OAUTH2: [policy]}]


def error_statuses(method: str, path: str, policy: str) -> list[int]:
    method = method.upper()
    statuses = {400, 503}
    if policy not in (PUBLIC, UNRECOGNIZED):
        statuses |= {401, 403, 404}
    if rate_category(method, path) is not None or public_route(method, path) is not None:
        statuses.add(429)
    if "{" in path:
        statuses.add(404)
    if (method, path) in SIGNED_LINK_ROUTES:  # the link is the credential: 403 when it is bad
        statuses.add(403)
    if method in ("POST", "PUT", "PATCH"):
        statuses |= {401, 409, 413}
    if method in ("PUT", "PATCH", "DELETE"):
        statuses.add(412)
    return sorted(statuses)


def _error_response(status: int, oauth: bool = False) -> dict[str, Any]:
    if not oauth:
        return {
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
        }
    either = {"anyOf": [{"$ref": OAUTH_ERROR_REF}, {"$ref": ERROR_REF}]}
    return {
        "description": "An RFC 6749 §5.2 error from the token endpoint, or from the edge: "
        + DESCRIPTIONS[status],
        "content": {"application/json": {"schema": either}},
    }


def _token_operation(operation: dict[str, Any]) -> None:
    """The token endpoint's handler reads its body and writes its answer itself, so Litestar
    documents neither; they are RFC 6749's."""
    operation["requestBody"] = TOKEN_REQUEST
    operation.setdefault("responses", {})["200"] = TOKEN_RESPONSE
    for status in OAUTH_STATUSES:
        operation["responses"][str(status)] = _error_response(status, oauth=True)


LinkedResponse = tuple[str, str, str]  # (path, method, status) of a response that has links


def links(
    paths: Mapping[str, Mapping[str, Any]], schemas: Mapping[str, Any] | None = None
) -> dict[LinkedResponse, dict[str, Any]]:
    """The OpenAPI links of the document, by response, from two rules; each link is named
    by its target's operationId.

    - Created objects: a ``POST`` on a collection (a path without parameters) that answers
      201 creates an object whose ``id`` is the ``{id}`` of every operation on
      ``{collection}/{id}`` and on the paths below it that take no other parameter. Under an
      object (``/devices/{id}/commands``), the member's parameter is read from the created
      body's ``id``, or from its field of the parameter's own name when it has one
      (``/config-artefacts/{id}/versions/{version}``: ``version``; ``schemas`` are the
      document's components).
    - Versions: a ``GET`` whose 200 has an ``ETag`` links to the operations on the same path
      that take ``If-Match``, with the same path parameters and that ETag.
    """
    found: dict[LinkedResponse, dict[str, Any]] = {}
    for collection, item in paths.items():
        create = item.get("post")
        if not isinstance(create, dict) or "201" not in create.get("responses", {}):
            continue
        if "{" not in collection:
            created = _created_links(paths, collection, ITEM_PARAMETER, {})
        else:
            created = _sub_collection_links(paths, collection, create, schemas or {})
        if created:
            found[(collection, "post", "201")] = created
    for path, item in paths.items():
        read = item.get("get")
        if not isinstance(read, dict):
            continue
        if "ETag" not in read.get("responses", {}).get("200", {}).get("headers", {}):
            continue
        same = {f"path.{name}": f"$request.path.{name}" for name in _path_parameters(path)}
        versioned: dict[str, Any] = {}
        for method, target in _operations(item):
            takes = {(p.get("in"), p.get("name")) for p in target.get("parameters", [])}
            if ("header", "If-Match") in takes:
                versioned[target["operationId"]] = {
                    "operationId": target["operationId"],
                    "parameters": {**same, "header.If-Match": "$response.header.ETag"},
                    "description": f"`{method.upper()} {path}` on the version just read",
                }
        if versioned:
            found[(path, "get", "200")] = versioned
    return found


def _created_links(
    paths: Mapping[str, Mapping[str, Any]],
    collection: str,
    parameter: str,
    outer: Mapping[str, str],
    field: str = "id",
) -> dict[str, Any]:
    """Links from a 201 on ``collection`` to the operations on ``{collection}/{parameter}``
    and below that take no other parameter than ``outer``'s and ``parameter`` (read from the
    created body's ``field``)."""
    member = f"{collection}/{{{parameter}}}"
    created: dict[str, Any] = {}
    for path, target_item in paths.items():
        if path != member and not path.startswith(f"{member}/"):
            continue
        if path.count("{") != len(outer) + 1:
            continue
        for method, target in _operations(target_item):
            created[target["operationId"]] = {
                "operationId": target["operationId"],
                "parameters": {**outer, f"path.{parameter}": f"$response.body#/{field}"},
                "description": f"`{method.upper()} {path}` on the object just created",
            }
    return created


def _sub_collection_links(
    paths: Mapping[str, Mapping[str, Any]],
    collection: str,
    create: Mapping[str, Any],
    schemas: Mapping[str, Any],
) -> dict[str, Any]:
    """A collection under an object (``/devices/{id}/commands``): its member's parameter is
    the one ``{collection}/{…}`` adds; the outer ones are the request's."""
    outer = {f"path.{name}": f"$request.path.{name}" for name in _path_parameters(collection)}
    prefix = f"{collection}/{{"
    for path in paths:
        if path.startswith(prefix) and path.endswith("}") and path.count("{") == len(outer) + 1:
            parameter = path[len(prefix) : -1]
            field = parameter if parameter in _created_fields(create, schemas) else "id"
            return _created_links(paths, collection, parameter, outer, field)
    return {}


def _created_fields(create: Mapping[str, Any], schemas: Mapping[str, Any]) -> set[str]:
    """The properties of the body a 201 answers (its schema's, when it is a reference)."""
    content = create.get("responses", {}).get("201", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref:
        schema = schemas.get(ref.rsplit("/", 1)[-1], {})
    return set(schema.get("properties", {}))


def _operations(item: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (method, op)
        for method in METHODS
        if isinstance(op := item.get(method), dict) and "operationId" in op
    ]


def _path_parameters(path: str) -> list[str]:
    return re.findall(r"\{([^}]+)\}", path)


def request_types(app: Litestar) -> list[type[msgspec.Struct]]:
    """The msgspec structs that the app's handlers decode request bodies into."""
    found: dict[str, type[msgspec.Struct]] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            data = handler.parsed_fn_signature.parameters.get("data")
            annotation = getattr(data, "annotation", None)
            # an optional body (``X | None``) is its struct too
            for candidate in typing.get_args(annotation) or (annotation,):
                if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                    found[candidate.__name__] = candidate
    return [found[name] for name in sorted(found)]


def request_schemas(types: Iterable[type[msgspec.Struct]]) -> dict[str, Any]:
    """msgspec's JSON Schema of request structs and of what they refer to, by name."""
    _, components = msgspec.json.schema_components(
        list(types), ref_template="#/components/schemas/{name}"
    )
    return components


# docs/api.md "Collections" and "Single resources": the OData options every collection GET and
# every single-resource GET accepts (the domain's parsers read them on every route).
LIST_OPTIONS: dict[str, str] = {
    "$filter": "OData filter, e.g. `name eq 'gw-1'`",
    "$select": "Comma-separated fields to return (id always)",
    "$expand": "Relations to expand, with nested `$select`",
    "$orderby": "e.g. `createdAt desc`; pages with $skip",
    "$top": "Page size, like limit",
    "$skip": "Items to skip (≥ 0)",
    "$count": "`true` to add totalCount",
}
SINGLE_OPTIONS = ("$select", "$expand")


def _query_options(path: str, operation: dict[str, Any]) -> None:
    """Document the OData options on every collection GET (it takes ``limit``) and every
    single-resource GET (its path ends in a parameter), where the route did not."""
    parameters = operation.setdefault("parameters", [])
    names = {p.get("name") for p in parameters if isinstance(p, dict)}
    if "limit" in names:
        wanted = list(LIST_OPTIONS)
    elif path.endswith("}"):
        wanted = list(SINGLE_OPTIONS)
    else:
        return
    for name in wanted:
        if name not in names:
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": LIST_OPTIONS[name],
                }
            )


# The schema of each documented response header by name; any other header is a string.
HEADER_SCHEMAS: dict[str, dict[str, Any]] = {
    "ETag": {"type": "string", "description": "The version, quoted", "examples": ['"3"']},
}


def header_schemas(responses: dict[str, Any]) -> None:
    """Give every response header without ``schema`` or ``content`` its schema."""
    for response in responses.values():
        headers = response.get("headers") if isinstance(response, dict) else None
        for name, header in (headers or {}).items():
            if isinstance(header, dict) and "schema" not in header and "content" not in header:
                header["schema"] = dict(HEADER_SCHEMAS.get(name, {"type": "string"}))


def document(
    generated: dict[str, Any], requests: Iterable[type[msgspec.Struct]] = ()
) -> dict[str, Any]:
    """The generated document with security and error responses on every operation, and
    links from each creating operation to the operations on what it created, and from each
    versioned read to the operations that take its version."""
    doc = copy.deepcopy(generated)
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(request_schemas(requests))
    components["schemas"]["Error"] = ERROR_SCHEMA
    components["schemas"]["OAuthError"] = OAUTH_ERROR_SCHEMA
    scopes = sorted(
        {p for p in ROUTE_POLICIES.values() if p not in (PUBLIC, UNRECOGNIZED, OPERATOR)}
        - {AUTHENTICATED}
    )
    components["securitySchemes"] = security_schemes(scopes)
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            policy = policy_for(method, path) or PUBLIC
            operation["security"] = security_for(policy)
            responses = operation.setdefault("responses", {})
            header_schemas(responses)
            for status in error_statuses(method, path, policy):
                responses[str(status)] = _error_response(status)
            if (method, path) == ("post", TOKEN_PATH):
                _token_operation(operation)
            if method == "get":
                _query_options(path, operation)
    for (path, method, answer), found in links(doc.get("paths", {}), components["schemas"]).items():
        doc["paths"][path][method]["responses"][answer]["links"] = found
    return doc


class DocumentRenderPlugin(JsonRenderPlugin):
    """Serves ``document(...)`` of Litestar's generated schema, computed once."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rendered: bytes | None = None

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:  # type: ignore[type-arg]
        if self._rendered is None:
            requests = request_types(request.app)
            self._rendered = self.render_json(request, document(openapi_schema, requests))
        return self._rendered
