"""The API's error model (docs/api.md, "Errors") as exceptions: one class per ``type``, each
carrying the status, message, the fields named and the ``request_id`` to quote to support."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    name: str
    message: str


class OutpostError(Exception):
    """Anything the client raises on purpose."""


class TransportError(OutpostError):
    """The gateway could not be reached (connection refused, timeout, TLS)."""


@dataclass(eq=False)
class ApiError(OutpostError):
    """A non-2xx answer in the error model."""

    status: int
    type: str
    message: str
    request_id: str = ""
    fields: tuple[FieldError, ...] = field(default_factory=tuple)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        named = "; ".join(f"{f.name}: {f.message}" for f in self.fields)
        tail = f" ({named})" if named else ""
        rid = f" [request_id {self.request_id}]" if self.request_id else ""
        return f"{self.status} {self.type}: {self.message}{tail}{rid}"


class BadRequest(ApiError):
    pass


class ValidationError(BadRequest):
    pass


class Unauthorized(ApiError):
    """``invalid_auth``, ``invalid_token`` or ``invalid_apikey``."""


class AccessDenied(ApiError):
    pass


class NotFound(ApiError):
    """``not_found`` or ``unrecognized_request``."""


class MethodNotSupported(ApiError):
    pass


class Conflict(ApiError):
    pass


class Gone(ApiError):
    pass


class PreconditionFailed(ApiError):
    pass


class PayloadTooLarge(ApiError):
    pass


class UnsupportedMediaType(ApiError):
    pass


class Throttled(ApiError):
    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class ServerError(ApiError):
    pass


class ServiceUnavailable(ServerError):
    pass


BY_TYPE: dict[str, type[ApiError]] = {
    "bad_request": BadRequest,
    "validation_error": ValidationError,
    "invalid_auth": Unauthorized,
    "invalid_token": Unauthorized,
    "invalid_apikey": Unauthorized,
    "access_denied": AccessDenied,
    "not_found": NotFound,
    "unrecognized_request": NotFound,
    "method_not_supported": MethodNotSupported,
    "conflict": Conflict,
    "gone": Gone,
    "precondition_failed": PreconditionFailed,
    "payload_too_large": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "throttled": Throttled,
    "internal_server_error": ServerError,
    "service_unavailable": ServiceUnavailable,
}
BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: AccessDenied,
    404: NotFound,
    405: MethodNotSupported,
    409: Conflict,
    410: Gone,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: Throttled,
    503: ServiceUnavailable,
}


def from_response(status: int, body: Any, headers: dict[str, str]) -> ApiError:
    """The exception for a non-2xx answer: its ``type`` decides the class; a body that is not
    the error model (a proxy's page, RFC 6749 errors) still gives a useful one."""
    headers = {k.lower(): v for k, v in headers.items()}
    request_id = headers.get("x-request-id", "")
    if isinstance(body, dict) and body.get("object") == "error":
        kind = str(body.get("type", ""))
        cls = BY_TYPE.get(kind) or BY_STATUS.get(status) or ApiError
        fields = tuple(
            FieldError(str(f.get("name", "")), str(f.get("message", "")))
            for f in body.get("fields") or ()
            if isinstance(f, dict)
        )
        return cls(
            status,
            kind,
            str(body.get("message", "")),
            str(body.get("request_id") or request_id),
            fields,
            headers,
        )
    cls = BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    if isinstance(body, dict) and "error" in body:  # RFC 6749 §5.2
        message = str(body.get("error_description") or body["error"])
        return cls(status, str(body["error"]), message, request_id, (), headers)
    text = body if isinstance(body, str) else ""
    return cls(status, f"http_{status}", text[:200] or "no error body", request_id, (), headers)
