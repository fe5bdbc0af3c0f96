"""Limits on the public routes (decision 75), as pure data: which routes, the keys they are
counted under (the client's address and the account a request names), the backoff that
slows an account down after repeated failures, and how the client's address is taken
behind trusted proxies.

Counts come from the gateway's shared rate-limit store (decisions 19, 46); nothing here
reads a clock or does I/O: callers pass ``now`` as UTC epoch seconds.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from outpost_contracts.errors import ErrorType
from outpost_gateway.domain.ratelimit import Decision, Window

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PublicRoute(enum.StrEnum):
    LOGIN = "login"
    REFRESH = "refresh"
    OAUTH_TOKEN = "oauth-token"
    PROVISION = "provision"
    RENEW = "renew"


# Every public route whose credential is in the request (method, path template): the only
# routes limited by address and account. Health, metrics, documents and signed download
# links are not (they verify nothing costly and name no account).
PUBLIC_ROUTES: dict[tuple[str, str], PublicRoute] = {
    ("POST", "/api/v1/auth/login"): PublicRoute.LOGIN,
    ("POST", "/api/v1/auth/refresh"): PublicRoute.REFRESH,
    ("POST", "/console/session/login"): PublicRoute.LOGIN,  # the console's (decision 99)
    ("POST", "/console/session/refresh"): PublicRoute.REFRESH,
    ("POST", "/auth/oauth/token"): PublicRoute.OAUTH_TOKEN,
    ("POST", "/api/v1/devices/provision"): PublicRoute.PROVISION,
    ("POST", "/api/v1/devices/certificates/renew"): PublicRoute.RENEW,
}


def public_route(method: str, path_template: str) -> PublicRoute | None:
    return PUBLIC_ROUTES.get((method.upper(), path_template))


# Answers that mean "this credential is wrong": they count as an account's failure.
# (403 and 400 are not: the credential was right, or never checked.)
FAILURES = frozenset(
    {ErrorType.INVALID_AUTH, ErrorType.INVALID_TOKEN, ErrorType.INVALID_APIKEY, ErrorType.GONE}
)


def is_failure(error_type: ErrorType) -> bool:
    return error_type in FAILURES


@dataclass(frozen=True, slots=True)
class PublicLimits:
    """Requests per minute on each public route: per client address and per account."""

    per_address: int = 60
    per_account: int = 10


@dataclass(frozen=True, slots=True)
class Backoff:
    """Repeated failures of one account slow it down: after ``free_failures`` failures
    within ``window_seconds``, the account may try once per period, the period doubling
    with every further failure from ``base_seconds`` up to ``max_seconds``."""

    free_failures: int = 5
    base_seconds: int = 2
    max_seconds: int = 900
    window_seconds: int = 3600

    def period(self, failures: int) -> int:
        """Seconds between the account's attempts after ``failures`` failures; 0: no
        backoff."""
        if failures < self.free_failures:
            return 0
        doublings = failures - self.free_failures
        if doublings >= 32 or self.base_seconds << doublings >= self.max_seconds:
            return self.max_seconds
        return int(self.base_seconds << doublings)


def period_window(now: float, seconds: int) -> Window:
    """The fixed window of ``seconds`` containing ``now``."""
    start = int(now // seconds) * seconds
    return Window(start=start, end=start + seconds)


def store_key(window: Window) -> int:
    """The number a window is stored under in ``gateway.rate_limit_windows.window_start``.
    The purge drops rows whose number is two minutes in the past, so a window longer than
    a minute (failure counts, backoff periods) is stored under its end: it lives until two
    minutes after it closes, like a one-minute window stored under its start."""
    return window.end if window.end - window.start > 60 else window.start


# Keys are UUIDs derived from what they count, so they fit the store's credential column
# and the store never holds an email, a token or an address in the clear.
def key_id(route: PublicRoute, kind: str, value: str) -> UUID:
    digest = hashlib.sha256(f"outpost-public\x00{route}\x00{kind}\x00{value}".encode()).digest()
    return UUID(bytes=digest[:16])


def account_of(route: PublicRoute, value: str) -> str:
    """The account a request names, as it is counted: unknown and known accounts alike (the
    gateway cannot tell them apart, so the limits reveal nothing).

    login: the email, case-folded and trimmed (as identity compares it); refresh: the
    session the token names (``rt_<org><session>_<secret>``: the secret part is what a
    guesser varies); oauth-token: the client id; provision: the registration token;
    renew: the current certificate."""
    text = value.strip()
    if route is PublicRoute.LOGIN:
        return text.lower()
    if route is PublicRoute.REFRESH:  # the secret may hold "_" too: split at the first
        prefix, _, rest = text.partition("_")
        session, sep, _secret = rest.partition("_")
        return f"{prefix}_{session}" if sep else text
    if route is PublicRoute.RENEW:
        return "".join(text.split())  # the PEM's base64, whatever its line breaks
    return text


def tighter(first: Decision | None, second: Decision) -> Decision:
    """The decision a response reports when two limits counted it: a refusal, else the
    one with less room left."""
    if first is None or not second.admitted:
        return second
    if not first.admitted:
        return first
    return second if second.remaining < first.remaining else first


def parse_networks(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The trusted proxies' networks; a bad entry raises ``ValueError`` (at start)."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


IPV6_PREFIX = 64  # an IPv6 client is one /64 (what one subscriber is usually given)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Sequence[IPNetwork]
) -> bool:
    return any(address.version == n.version and address in n for n in nets)


def _client_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> str:
    """The client's address as limits count it.

    The TCP peer, unless the peer is a trusted proxy: then ``X-Forwarded-For`` (every such
    header, in order) is read from the right, each hop a trusted proxy appended, and the
    first hop that is not a trusted proxy is the client. Hops left of it were written by
    the client and are ignored, so no client can choose its address by sending the header.
    When every hop is trusted, the leftmost is the client. An IPv6 client counts as its /64."""
    peer_address = _address(peer or "")
    if peer_address is None:
        return peer or "unknown"
    if not trusted or not _trusted(peer_address, trusted):
        return _client_key(peer_address)
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # not an address: keep the nearest hop a trusted proxy vouched for
            break
        client = address
        if not _trusted(address, trusted):
            break
    return _client_key(client)
