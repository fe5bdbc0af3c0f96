"""The resolver port's adapter: every address (A and AAAA) a host name resolves to, through
the system resolver, with a time limit. Tests pass their own resolver (a name that resolves
differently at creation and at delivery: DNS rebinding)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Protocol

from outpost_alerting.domain.ssrf import IPAddress


class Resolver(Protocol):
    async def resolve(self, host: str) -> list[IPAddress]: ...


class UnresolvableHost(Exception):
    """The host does not resolve (or not in time)."""


class SystemResolver:
    def __init__(self, timeout: float = 1.0) -> None:
        self.timeout = timeout

    async def resolve(self, host: str) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), self.timeout
            )
        except (TimeoutError, OSError) as exc:
            raise UnresolvableHost(f"{host} does not resolve ({exc or 'timed out'})") from None
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in found:
                found.append(address)
        return found


class StaticResolver:
    """Names resolved from a table (tests, and hosts pinned by an operator)."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table: dict[str, list[str]] = dict(table or {})

    async def resolve(self, host: str) -> list[IPAddress]:
        if host not in self.table:
            raise UnresolvableHost(f"{host} does not resolve")
        return [ipaddress.ip_address(a) for a in self.table[host]]
