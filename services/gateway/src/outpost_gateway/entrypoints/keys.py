"""OData key URLs (``/api/v1/devices(name='…')``) routed to the documented by-key route.

Litestar routes whole path segments, so a key in parentheses cannot be a path parameter.
``rewrite_keyed`` (called by the edge, ``edge.py``) rewrites the path before routing, in
place so that the edge sees what the route records (its template, the rate-limit decision).
The route, its policy entry, its metrics label and the OpenAPI document all use the plain
``/api/v1/<resource>/by-key/{key}`` template.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from litestar.types import Scope

KEYED_RESOURCES = ("devices",)
_KEYED = re.compile(r"^/api/v1/(" + "|".join(KEYED_RESOURCES) + r")\((.*)\)/?$", re.DOTALL)


def rewrite_keyed(scope: Scope) -> None:
    m = _KEYED.match(scope["path"])
    if m is not None:
        resource, key = m.groups()
        path = f"/api/v1/{resource}/by-key/{key}"
        scope["path"] = path
        scope["raw_path"] = quote(path, safe="/:@!$&'()*+,;=").encode()
