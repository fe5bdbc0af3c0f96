"""Request bodies as the gateway reads them: Litestar's request with one difference.

A JSON body nested deeper than the decoder follows (msgspec stops at the interpreter's
recursion limit, about a thousand levels, with a ``RecursionError``) is 400 ``bad_request``
like any other body that cannot be read, never a 500 (decision 77)."""

from __future__ import annotations

from typing import Any

from litestar import Request

from outpost_contracts.errors import BadRequest

TOO_DEEP = "the JSON body is nested too deeply"


class GatewayRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise BadRequest(TOO_DEEP) from None
