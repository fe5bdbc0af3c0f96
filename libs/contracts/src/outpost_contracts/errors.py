"""Typed errors that cross the request/reply boundary, and their HTTP mapping (docs/api.md,
"Errors").

A service raises ``OutpostError`` (or a subclass); the kit's responder turns it into a
``ServiceError`` in the reply; the gateway raises it again and renders docs/api.md's error body
with ``HTTP_STATUS[type]``.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from outpost_contracts.base import Contract


class ErrorType(enum.StrEnum):
    BAD_REQUEST = "bad_request"
    VALIDATION_ERROR = "validation_error"
    INVALID_AUTH = "invalid_auth"
    INVALID_TOKEN = "invalid_token"
    INVALID_APIKEY = "invalid_apikey"
    ACCESS_DENIED = "access_denied"
    NOT_FOUND = "not_found"
    UNRECOGNIZED_REQUEST = "unrecognized_request"
    METHOD_NOT_SUPPORTED = "method_not_supported"
    CONFLICT = "conflict"
    GONE = "gone"
    PRECONDITION_FAILED = "precondition_failed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    THROTTLED = "throttled"
    INTERNAL_SERVER_ERROR = "internal_server_error"
    SERVICE_UNAVAILABLE = "service_unavailable"


HTTP_STATUS: dict[ErrorType, int] = {
    ErrorType.BAD_REQUEST: 400,
    ErrorType.VALIDATION_ERROR: 400,
    ErrorType.INVALID_AUTH: 401,
    ErrorType.INVALID_TOKEN: 401,
    ErrorType.INVALID_APIKEY: 401,
    ErrorType.ACCESS_DENIED: 403,
    ErrorType.NOT_FOUND: 404,
    ErrorType.UNRECOGNIZED_REQUEST: 404,
    ErrorType.METHOD_NOT_SUPPORTED: 405,
    ErrorType.CONFLICT: 409,
    ErrorType.GONE: 410,
    ErrorType.PRECONDITION_FAILED: 412,
    ErrorType.PAYLOAD_TOO_LARGE: 413,
    ErrorType.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorType.THROTTLED: 429,
    ErrorType.INTERNAL_SERVER_ERROR: 500,
    ErrorType.SERVICE_UNAVAILABLE: 503,
}


class FieldError(Contract, kw_only=True, frozen=True):
    name: str
    message: str


class ServiceError(Contract, kw_only=True, frozen=True):
    """The error half of a reply."""

    type: ErrorType
    message: str
    fields: list[FieldError] = msgspec.field(default_factory=list)
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class OutpostError(Exception):
    """An error with a type from docs/api.md's list. Raise a subclass where one fits."""

    type: ErrorType = ErrorType.INTERNAL_SERVER_ERROR

    def __init__(
        self,
        message: str,
        *,
        fields: list[FieldError] | None = None,
        details: dict[str, Any] | None = None,
        type: ErrorType | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        self.details = details or {}
        if type is not None:
            self.type = type

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.type]

    def to_contract(self) -> ServiceError:
        return ServiceError(
            type=self.type, message=self.message, fields=self.fields, details=self.details
        )

    @classmethod
    def from_contract(cls, error: ServiceError) -> OutpostError:
        subclass = _BY_TYPE.get(error.type, OutpostError)
        exc = subclass(error.message, fields=error.fields, details=error.details)
        exc.type = error.type
        return exc


class ValidationFailed(OutpostError):
    type = ErrorType.VALIDATION_ERROR


class BadRequest(OutpostError):
    type = ErrorType.BAD_REQUEST


class AccessDenied(OutpostError):
    type = ErrorType.ACCESS_DENIED


class NotFound(OutpostError):
    type = ErrorType.NOT_FOUND


class Conflict(OutpostError):
    type = ErrorType.CONFLICT


class Gone(OutpostError):
    type = ErrorType.GONE


class PreconditionFailed(OutpostError):
    type = ErrorType.PRECONDITION_FAILED


class ServiceUnavailable(OutpostError):
    type = ErrorType.SERVICE_UNAVAILABLE


_BY_TYPE: dict[ErrorType, type[OutpostError]] = {
    c.type: c
    for c in (
        ValidationFailed,
        BadRequest,
        AccessDenied,
        NotFound,
        Conflict,
        Gone,
        PreconditionFailed,
        ServiceUnavailable,
    )
}


def validation_error(field: str, message: str) -> ValidationFailed:
    """A ``validation_error`` naming one field."""
    return ValidationFailed(f"{field}: {message}", fields=[FieldError(name=field, message=message)])
