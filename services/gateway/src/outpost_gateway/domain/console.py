"""The web console's session in the browser (decision 99), as pure functions.

The access token (a session JWT of a few minutes) lives only in the page's memory; the
refresh token lives only in an ``HttpOnly`` cookie that script cannot read, sent only to the
console's session routes (``Path=/console/session``), never cross-site (``SameSite=Strict``),
and ``Secure`` except on plain HTTP to a loopback address (``make dev``). The cookie routes
also want the console's own header and, when the browser names one, an ``Origin`` of this
host: a cross-site form cannot set the header, and a cross-site ``fetch`` that does is a CORS
preflight the gateway never grants.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

REFRESH_COOKIE = "outpost_console_refresh"
SESSION_PATH = "/console/session"
CSRF_HEADER = "X-Outpost-Console"

# The page and its assets: only this origin's scripts, styles and API; no frames, no plugins,
# no inline script (uPlot styles elements through the DOM, which style-src does not govern).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)
PAGE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def _host_name(host_header: str) -> str:
    """``Host`` without its port (IPv6 literals in brackets)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host_header: str) -> bool:
    name = _host_name(host_header)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def cookie_is_secure(scheme: str, host_header: str) -> bool:
    """``Secure`` everywhere but plain HTTP to a loopback host, where a browser would drop
    a Secure cookie set over HTTP (Chromium keeps it only for ``localhost``)."""
    return not (scheme == "http" and is_loopback(host_header))


def refresh_cookie(token: str, *, secure: bool) -> str:
    """The ``Set-Cookie`` value holding a refresh token: a session cookie (gone when the
    browser closes; identity bounds the session's life on its side)."""
    attributes = [
        f"{REFRESH_COOKIE}={token}",
        f"Path={SESSION_PATH}",
        "HttpOnly",
        "SameSite=Strict",
    ]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def cleared_cookie(*, secure: bool) -> str:
    attributes = [
        f"{REFRESH_COOKIE}=",
        f"Path={SESSION_PATH}",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=0",
    ]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def csrf_refusal(headers: Mapping[str, str], host_header: str) -> str | None:
    """Why a cookie-authenticated request is refused as possibly cross-site, or None.
    ``headers`` are looked up by lower-case name."""
    if headers.get(CSRF_HEADER.lower()) != "1":
        return f"the console's session routes want the header {CSRF_HEADER}: 1"
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        netloc = urlsplit(origin).netloc.lower()
        if netloc != host_header.strip().lower():
            return "the request's Origin is not this site"
    elif origin == "null":
        return "the request's Origin is not this site"
    return None
