"""Webhook deliveries over HTTP, through the SSRF guard, to the address that was checked.

The host is resolved here, at delivery, every address is checked (``domain/ssrf.py``), and
the request goes to a checked address itself (the URL carries the IP; ``Host`` and the TLS
server name carry the host name), so a second resolution cannot switch it (DNS rebinding);
when an address refuses the connection, the next checked one is tried. Each host name has
its own connection pool: over TLS, so that a connection verified for one name never carries
a request for another name at the same address; over plain HTTP too, because httpcore
checks every idle connection of a pool (a ``poll`` each) before every request, and one pool
for every receiver cost each delivery a check of all of them (decision 70). Redirects are
not followed; the environment's proxies are not used (a proxy would resolve the name
again); the answer's body is not read beyond a few KiB (a short one is read to keep the
connection)."""

from __future__ import annotations

import asyncio
import collections
import ssl
import time

import httpx

from outpost_alerting.adapters.resolver import Resolver, UnresolvableHost
from outpost_alerting.domain import deliveries, ssrf

USER_AGENT = "Outpost-Webhook/1"


MAX_CLIENTS = 256  # host names with a connection pool of their own (least recent closed)
MAX_ANSWER_BYTES = 64 * 1024  # an answer read (and dropped) to keep its connection


async def _drain(response: httpx.Response) -> None:
    """Read a short answer to its end, so the connection goes back to the pool; a longer
    one is not read further (its connection is closed instead)."""
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read > MAX_ANSWER_BYTES:
            return


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
        self._verify = verify
        # httpx pools connections by scheme, IP and port. Over TLS the connection also
        # carries the name it was verified for (SNI), so one pool per host name: a
        # connection verified for one name is never reused for another at the same address.
        # Plain HTTP gets a pool per host name too: httpcore checks each idle connection of
        # a pool before every request, so a pool stays as small as one receiver's share.
        self._clients: collections.OrderedDict[tuple[str, str], httpx.AsyncClient] = (
            collections.OrderedDict()
        )

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            verify=self._verify,
            timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
        )

    async def _client_for(self, target: ssrf.Target) -> httpx.AsyncClient:
        key = (target.scheme, target.host)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._client()
            if len(self._clients) > MAX_CLIENTS:
                _name, oldest = self._clients.popitem(last=False)
                await oldest.aclose()
        else:
            self._clients.move_to_end(key)
        return client

    async def addresses_of(self, target: ssrf.Target) -> list[ssrf.IPAddress]:
        """The checked addresses to connect to, in the resolver's order; ``ssrf.Refused``
        or ``UnresolvableHost``."""
        if target.literal is not None:
            ssrf.check_address(target.literal, self.policy)
            return [target.literal]
        return ssrf.check_addresses(await self.resolver.resolve(target.host), self.policy)

    async def address_of(self, target: ssrf.Target) -> ssrf.IPAddress:
        return (await self.addresses_of(target))[0]

    async def send(
        self, url: str, secret: str, event_id: str, event_type: str, body: bytes
    ) -> deliveries.Result:
        started = time.perf_counter()

        def ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            target = ssrf.parse(url)
            addresses = await self.addresses_of(target)
        except ssrf.Refused as exc:
            return deliveries.failed(f"the url {exc}", ms(), permanent=True)
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
        client = await self._client_for(target)
        try:
            # httpx's time-out bounds each phase; this bounds the whole attempt (a receiver
            # dribbling its answer's headers cannot hold a worker longer).
            async with asyncio.timeout(self.timeout):
                for i, address in enumerate(addresses):
                    try:
                        async with client.stream(
                            "POST",
                            target.url_for(address),
                            content=body,
                            headers=headers,
                            extensions=extensions,
                        ) as response:
                            result = deliveries.http_result(response.status_code, ms())
                            await _drain(response)
                            return result
                    except httpx.ConnectError:
                        # Nothing was sent: the next checked address, if there is one.
                        if i == len(addresses) - 1:
                            raise
            raise AssertionError("unreachable")  # pragma: no cover
        except (httpx.TimeoutException, TimeoutError):
            return deliveries.failed(f"timed out after {self.timeout:g} s", ms())
        except httpx.HTTPError as exc:
            return deliveries.failed(f"{type(exc).__name__}: {exc}", ms())

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
