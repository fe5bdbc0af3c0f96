"""Reading an export archive from the NATS JetStream object store chunk by chunk (one
direct read of the bucket's stream per chunk, so at most one chunk is in memory, whatever
the archive's size and however slowly the client reads)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError, ObjectNotFoundError

from outpost_contracts.errors import NotFound


class NatsArtifacts:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def open(self, bucket: str, name: str) -> AsyncIterator[bytes]:
        """The archive's chunks; ``NotFound`` before the first one if there is no such object."""
        try:
            obs = await self._js.object_store(bucket)
            info = await obs.get_info(name)
        except (NotFoundError, ObjectNotFoundError):
            raise NotFound("the export's archive is gone") from None
        stream = f"OBJ_{bucket}"
        subject = f"$O.{bucket}.C.{info.nuid}"
        size = int(info.size or 0)
        return self._chunks(stream, subject, size)

    async def _chunks(self, stream: str, subject: str, size: int) -> AsyncIterator[bytes]:
        sent = 0
        seq = 1
        while sent < size:
            msg = await self._js.get_msg(stream, seq=seq, subject=subject, next=True)
            data = msg.data or b""
            sent += len(data)
            seq = (msg.seq or seq) + 1
            yield data
