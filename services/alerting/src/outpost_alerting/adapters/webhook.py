"""Webhook deliveries over HTTP, through the SSRF guard, to the address that was checked.

The host is resolved here, at delivery, every address is checked (``domain/ssrf.py``), and
the request goes to the first address itself (the URL carries the IP; ``Host`` and the TLS
server name carry the host name), so a second resolution cannot switch it (DNS rebinding).
Redirects are not followed; the environment's proxies are not used (a proxy would resolve
the name again); the answer's body is not read."""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx

from outpost_alerting.adapters.resolver import Resolver, UnresolvableHost
from outpost_alerting.domain import deliveries, ssrf

USER_AGENT = "Outpost-Webhook/1"


class WebhookSender:
    def __init__(
        self,
        resolver: Resolver,
        policy: ssrf.Policy,
        timeout: float = 3.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``verify``: how https receivers are verified (the system's CAs by default; tests
        pass a context trusting their own CA)."""
        self.resolver = resolver
        self.policy = policy
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            verify=verify,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
        )

    async def address_of(self, target: ssrf.Target) -> ssrf.IPAddress:
        """The checked address to connect to; ``ssrf.Refused`` or ``UnresolvableHost``."""
        if target.literal is not None:
            ssrf.check_address(target.literal, self.policy)
            return target.literal
        addresses = await self.resolver.resolve(target.host)
        return ssrf.check_addresses(addresses, self.policy)[0]

    async def send(
        self, url: str, secret: str, event_id: str, event_type: str, body: bytes
    ) -> deliveries.Result:
        started = time.perf_counter()

        def ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            target = ssrf.parse(url)
            address = await self.address_of(target)
        except ssrf.Refused as exc:
            return deliveries.failed(f"refused: the url {exc}", ms(), permanent=True)
        except UnresolvableHost as exc:
            return deliveries.failed(str(exc), ms())
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            deliveries.SIGNATURE_HEADER: deliveries.signature(secret, body),
            deliveries.EVENT_ID_HEADER: event_id,
            deliveries.EVENT_TYPE_HEADER: event_type,
        }
        extensions = {}
        if target.scheme == "https" and target.literal is None:
            extensions["sni_hostname"] = target.host
        try:
            # httpx's time-out bounds each phase; this bounds the whole attempt (a receiver
            # dribbling its answer's headers cannot hold a worker longer).
            async with asyncio.timeout(self.timeout):
                async with self._client.stream(
                    "POST",
                    target.url_for(address),
                    content=body,
                    headers=headers,
                    extensions=extensions,
                ) as response:
                    return deliveries.http_result(response.status_code, ms())
        except (httpx.TimeoutException, TimeoutError):
            return deliveries.failed(f"timed out after {self.timeout:g} s", ms())
        except httpx.HTTPError as exc:
            return deliveries.failed(f"{type(exc).__name__}: {exc}", ms())

    async def close(self) -> None:
        await self._client.aclose()
