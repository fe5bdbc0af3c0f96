"""docs/api.md's error model: every non-2xx answer, whatever raised it, has the same body."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.types import Scope

from outpost_contracts.errors import HTTP_STATUS, ErrorType, FieldError, OutpostError
from outpost_kit.ids import request_id

_log = logging.getLogger(__name__)

REQUEST_ID_KEY = "outpost.request_id"
_BY_STATUS: dict[int, ErrorType] = {}
for _type, _status in HTTP_STATUS.items():
    _BY_STATUS.setdefault(_status, _type)
_BY_STATUS[404] = ErrorType.UNRECOGNIZED_REQUEST  # Litestar's own 404 is "no such route"


class ErrorField(msgspec.Struct, kw_only=True):
    name: str
    message: str


class ErrorBody(msgspec.Struct, kw_only=True):
    object: str = "error"
    code: int
    type: str
    message: str
    fields: list[ErrorField] = msgspec.field(default_factory=list)
    request_id: str
    # Machine-readable facts of the error when the service gave some (e.g. a 412's actual
    # count or version); absent otherwise.
    details: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


def request_id_of(scope: Scope) -> str:
    """This request's id, assigned on first use (32 lowercase hex)."""
    rid = scope.get(REQUEST_ID_KEY)  # type: ignore[call-overload]
    if rid is None:
        rid = request_id()
        scope[REQUEST_ID_KEY] = rid  # type: ignore[literal-required]
    return str(rid)


def error_response(
    scope: Scope,
    type_: ErrorType,
    message: str,
    fields: list[FieldError] | list[ErrorField] | None = None,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> Response[bytes]:
    status = HTTP_STATUS[type_]
    body = ErrorBody(
        code=status,
        type=type_.value,
        message=message,
        fields=[ErrorField(name=f.name, message=f.message) for f in fields or []],
        request_id=request_id_of(scope),
        details=details if details else msgspec.UNSET,
    )
    out_headers = dict(headers or {})
    if status == 401:
        out_headers.setdefault("WWW-Authenticate", 'Bearer realm="outpost"')
    return Response(
        content=encode_error(body),
        status_code=status,
        media_type="application/json",
        headers=out_headers,
    )


def encode_error(body: ErrorBody) -> bytes:
    return msgspec.json.encode(body)


def on_outpost_error(request: Request[Any, Any, Any], exc: OutpostError) -> Response[bytes]:
    if exc.status >= 500:
        _log.warning("%s: %s", exc.type, exc.message)
    return error_response(request.scope, exc.type, exc.message, exc.fields, details=exc.details)


_FIELD_IN_MESSAGE = re.compile(r"field `([^`]+)`")
_MISSING_PARAMETER = re.compile(r"Missing required \w+ parameter '([^']+)'")


def _field_errors(extra: Any) -> list[ErrorField]:
    out: list[ErrorField] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        key = str(item.get("key") or "")
        named = _FIELD_IN_MESSAGE.search(message)
        if named and key in ("", "data"):
            name = named.group(1)
        elif named:
            name = f"{key}.{named.group(1)}"
        else:
            name = key or "body"
        out.append(ErrorField(name=name, message=message))
    return out


def on_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        fields = _field_errors(exc.extra)
        missing = _MISSING_PARAMETER.search(exc.detail or "")
        if not fields and missing:
            fields = [ErrorField(name=missing.group(1), message="required")]
        message = "; ".join(f"{f.name}: {f.message}" for f in fields) or "invalid request"
        return error_response(request.scope, ErrorType.VALIDATION_ERROR, message, fields)
    if isinstance(exc, NotFoundException):
        return error_response(
            request.scope, ErrorType.UNRECOGNIZED_REQUEST, "no such resource path", None, headers
        )
    if isinstance(exc, MethodNotAllowedException):
        return error_response(
            request.scope,
            ErrorType.METHOD_NOT_SUPPORTED,
            f"{request.method} is not supported on this path",
            None,
            headers,
        )
    type_ = _BY_STATUS.get(exc.status_code, ErrorType.BAD_REQUEST)
    if exc.status_code >= 500:
        _log.error("HTTP %d: %s", exc.status_code, exc.detail, exc_info=exc)
        type_, message = ErrorType.INTERNAL_SERVER_ERROR, "internal server error"
    else:
        message = exc.detail or type_.value
    return error_response(request.scope, type_, message, None, headers)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(request.scope, ErrorType.INTERNAL_SERVER_ERROR, "internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    OutpostError: on_outpost_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
