"""``/healthz``, ``/readyz`` and ``/metrics`` for processes that serve no other HTTP.

A few lines of asyncio rather than a web framework: three fixed GET paths."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

_log = logging.getLogger(__name__)

ReadyCheck = Callable[[], bool]


class HealthServer:
    def __init__(self, host: str, port: int, ready: ReadyCheck) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?", 1)[0] if len(parts) >= 2 else ""
            if path == "/healthz":
                status, body, ctype = 200, b'{"status":"ok"}', "application/json"
            elif path == "/readyz":
                ready = self._ready()
                status = 200 if ready else 503
                body = b'{"status":"ready"}' if ready else b'{"status":"not ready"}'
                ctype = "application/json"
            elif path == "/metrics":
                status, body, ctype = 200, generate_latest(), CONTENT_TYPE_LATEST
            else:
                status, body, ctype = 404, b'{"status":"not found"}', "application/json"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
