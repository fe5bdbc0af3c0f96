"""The Outpost API client: ``Client`` (blocking) and ``AsyncClient`` (asyncio), one typed
method per operation of the public API, models in ``outpost_client.models``, errors in
``outpost_client.errors``; the ``outpost`` command line in ``outpost_client.cli``.

    from outpost_client import Client

    with Client("http://127.0.0.1:8080", "sk_live_…") as api:
        device = api.create_device(body={"name": "gw-1"})
        for d in api.paginate(api.list_devices, limit=100):
            print(d.name, d.status)
"""

from __future__ import annotations

from outpost_client import errors
from outpost_client._generated import AsyncOperations, SyncOperations
from outpost_client.base import Operation, Page
from outpost_client.errors import ApiError, OutpostError
from outpost_client.retry import RetryPolicy

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "Operation",
    "OutpostError",
    "Page",
    "RetryPolicy",
    "errors",
]


class Client(SyncOperations):
    """A blocking client of the public API."""

    def __enter__(self) -> Client:
        return self


class AsyncClient(AsyncOperations):
    """An asyncio client of the public API."""

    async def __aenter__(self) -> AsyncClient:
        return self
