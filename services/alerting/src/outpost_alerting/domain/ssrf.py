"""The SSRF guard of webhook URLs: pure, no I/O (the resolver is a port, given the host).

A webhook URL must be ``http`` or ``https`` with a host and no credentials. Every address
its host resolves to (A and AAAA alike) must be a public unicast address: loopback, private
(RFC 1918, ULA, CGNAT), link-local, multicast, unspecified, reserved, documentation and
benchmarking ranges, and the IPv6 forms that embed an IPv4 address (IPv4-mapped,
IPv4-compatible, 6to4, NAT64, Teredo) are refused, the embedded address judged as itself.
Loopback and private addresses may be allowed by the deployment (``Policy``); the others
never are (link-local holds the cloud metadata service, 169.254.169.254).

IPv4 literals are read as ``inet_aton`` reads them (and so as the resolver and every C
library would connect to them): ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` are
all 127.0.0.1. Such a spelling is refused outright, whatever it names: a URL that does not
say plainly where it goes is not a webhook anyone needs.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048


class Category(enum.StrEnum):
    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"  # RFC 1918, IPv6 unique-local, CGNAT (RFC 6598)
    LINK_LOCAL = "link-local"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"  # everything else that is not public unicast


@dataclass(frozen=True)
class Policy:
    """What the deployment allows beyond public addresses."""

    allow_loopback: bool = False
    allow_private: bool = False

    def allows(self, category: Category) -> bool:
        if category is Category.PUBLIC:
            return True
        if category is Category.LOOPBACK:
            return self.allow_loopback
        if category is Category.PRIVATE:
            return self.allow_private
        return False


class Refused(ValueError):
    """The URL is not allowed; ``str()`` says why (safe to show the caller: it only speaks
    of what the caller wrote)."""


# What the caller is told when the URL leads somewhere not allowed, whatever the address,
# its class, or whether the host resolved at all (decision 78): naming the address a host
# resolves to, or that it does not resolve, would answer questions about the platform's
# network (which internal names exist, where they point) to anyone who may create a channel.
ADDRESS_REFUSED = "is refused: webhooks are sent only to public internet addresses"


class AddressRefused(Refused):
    """An address the URL leads to is not allowed. ``str()`` is ``ADDRESS_REFUSED`` and
    nothing more; ``category`` and ``address`` are for the platform's own logs and tests,
    never for the caller (``address`` is None when the host resolved to nothing)."""

    def __init__(self, category: Category | None, address: IPAddress | None) -> None:
        super().__init__(ADDRESS_REFUSED)
        self.category = category
        self.address = address


@dataclass(frozen=True)
class Target:
    """A parsed webhook URL: where to connect and what to say in ``Host`` and SNI."""

    scheme: str
    host: str  # as written (lowercased), without brackets; the TLS server name
    port: int
    path: str  # path and query, at least "/"
    literal: IPAddress | None  # the host when it is an IP literal

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The URL with ``address`` in place of the host: connect there and nowhere else."""
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.path}"


_V4 = [
    (Category.UNSPECIFIED, "0.0.0.0/8"),  # "this network"
    (Category.LOOPBACK, "127.0.0.0/8"),
    (Category.PRIVATE, "10.0.0.0/8"),
    (Category.PRIVATE, "172.16.0.0/12"),
    (Category.PRIVATE, "192.168.0.0/16"),
    (Category.PRIVATE, "100.64.0.0/10"),  # CGNAT
    (Category.LINK_LOCAL, "169.254.0.0/16"),
    (Category.RESERVED, "192.0.0.0/24"),  # IETF protocol assignments
    (Category.RESERVED, "192.0.2.0/24"),  # TEST-NET-1
    (Category.RESERVED, "192.88.99.0/24"),  # 6to4 relay anycast
    (Category.RESERVED, "198.18.0.0/15"),  # benchmarking
    (Category.RESERVED, "198.51.100.0/24"),  # TEST-NET-2
    (Category.RESERVED, "203.0.113.0/24"),  # TEST-NET-3
    (Category.MULTICAST, "224.0.0.0/4"),
    (Category.RESERVED, "240.0.0.0/4"),  # reserved, and 255.255.255.255 broadcast
]
_V6 = [
    (Category.UNSPECIFIED, "::/128"),
    (Category.LOOPBACK, "::1/128"),
    (Category.RESERVED, "100::/64"),  # discard-only
    (Category.RESERVED, "64:ff9b:1::/48"),  # local-use NAT64: what it maps to is unknown
    (Category.RESERVED, "2001::/23"),  # IETF protocol assignments (Teredo's 2001::/32 too)
    (Category.RESERVED, "2001:db8::/32"),  # documentation
    (Category.RESERVED, "3fff::/20"),  # documentation (RFC 9637)
    (Category.PRIVATE, "fc00::/7"),  # unique local
    (Category.LINK_LOCAL, "fe80::/10"),
    (Category.RESERVED, "fec0::/10"),  # site-local, deprecated
    (Category.MULTICAST, "ff00::/8"),
]
_V4_NETS = [(c, ipaddress.IPv4Network(n)) for c, n in _V4]
_V6_NETS = [(c, ipaddress.IPv6Network(n)) for c, n in _V6]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPAT = ipaddress.IPv6Network("::/96")  # IPv4-compatible (deprecated), and :: and ::1
_GLOBAL_V6 = ipaddress.IPv6Network("2000::/3")


def embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped (``::ffff:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``) or 6to4 (``2002:AABB:CCDD::``)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPAT and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> Category:
    """The category of one address; IPv6 forms of an IPv4 address take that address's."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return Category.LINK_LOCAL  # a zone only makes sense on a local link
        inner = embedded_v4(address)
        if inner is not None:
            return classify(inner)
        for category, net6 in _V6_NETS:
            if address in net6:
                return category
        # Only global unicast (2000::/3) is public; the rest of the space is unassigned.
        return Category.PUBLIC if address in _GLOBAL_V6 else Category.RESERVED
    for category, net in _V4_NETS:
        if address in net:
            return category
    return Category.PUBLIC


def check_address(address: IPAddress, policy: Policy) -> None:
    category = classify(address)
    if not policy.allows(category):
        raise AddressRefused(category, address)


def check_addresses(addresses: Iterable[IPAddress], policy: Policy) -> list[IPAddress]:
    """Every address must be allowed (one bad address refuses all: the connection could go
    to any of them); the addresses, in order, when they are."""
    found = list(addresses)
    if not found:
        raise AddressRefused(None, None)
    for address in found:
        check_address(address, policy)
    return found


_NUMERIC_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``host`` denotes as ``inet_aton(3)`` reads it (one to four parts,
    each decimal, octal with a leading 0 or hexadecimal with 0x; the last part fills the
    remaining bytes), or None if it is not such a literal."""
    parts = host.split(".")
    if host.endswith("."):  # "127.0.0.1." is the same address to a resolver
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.fullmatch(p) for p in parts):
        return None
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0") and len(part) > 1:
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << 8 * (4 - len(head)) | last
    return ipaddress.IPv4Address(number)


def parse(url: str) -> Target:
    """Check a webhook URL's form (not where it goes); ``Refused`` naming what is wrong."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or c == "\x7f" for c in url):
        raise Refused("contains spaces or control characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("must be an http or https URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused("may not carry credentials (user:password@); sign with the secret")
    host = (parts.hostname or "").lower()
    if not host:
        raise Refused("has no host")
    if port == 0:
        raise Refused("port 0 is not a port")
    literal: IPAddress | None = None
    if parts.netloc.split("@")[-1].startswith("["):
        try:
            literal = ipaddress.IPv6Address(host)
        except ValueError:
            raise Refused("has a bracketed host that is not an IPv6 address") from None
        if literal.scope_id:
            raise Refused("names an IPv6 zone, which only means something on a local link")
    else:
        try:
            literal = ipaddress.IPv4Address(host)
        except ValueError:
            loose = inet_aton(host)
            if loose is not None:
                raise Refused(
                    f"spells an IPv4 address unusually ({host} is {loose}): write it as"
                    " four decimal numbers, or use a host name"
                ) from None
        if literal is None and not _hostname(host):
            raise Refused("has a host that is neither a host name nor an IP address")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        path=path,
        literal=literal,
    )


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def _hostname(host: str) -> bool:
    """A DNS name: letters, digits, hyphens (and underscores, which some names carry) in
    labels of 1 to 63, and a last label that is not all digits (that would be an address)."""
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not labels[-1].isdigit()
