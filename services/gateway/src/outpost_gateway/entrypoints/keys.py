"""OData key URLs (``/api/v1/devices(name='…')``) routed to the documented by-key route.

Litestar routes whole path segments, so a key in parentheses cannot be a path parameter.
This wrapper rewrites the path before routing; the route, its policy entry, its metrics label
and the OpenAPI document all use the plain ``/api/v1/<resource>/by-key/{key}`` template.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from litestar.types import ASGIApp, Receive, Scope, Send

KEYED_RESOURCES = ("devices",)
_KEYED = re.compile(r"^/api/v1/(" + "|".join(KEYED_RESOURCES) + r")\((.*)\)/?$", re.DOTALL)


class KeyedPaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            m = _KEYED.match(scope["path"])
            if m is not None:
                resource, key = m.groups()
                path = f"/api/v1/{resource}/by-key/{key}"
                scope = {  # type: ignore[assignment]
                    **scope,
                    "path": path,
                    "raw_path": quote(path, safe="/:@!$&'()*+,;=").encode(),
                }
        await self.app(scope, receive, send)
