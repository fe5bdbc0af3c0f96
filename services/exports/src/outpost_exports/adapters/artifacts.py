"""Where archives are kept: the ``ArtifactStore`` protocol, the default NATS JetStream object
store, and an optional S3-compatible store (aiobotocore), chosen by settings.

With the object store, downloads go through the gateway (a signed URL it verifies, then it
streams the object chunk by chunk); with S3, the store presigns its own URLs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

from nats.js.api import ObjectStoreConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError


class ArtifactStore(Protocol):
    bucket: str

    async def start(self) -> None: ...

    async def put(self, name: str, path: Path) -> int:
        """Upload the file at ``path`` as ``name`` (replacing one of that name); its size."""
        ...

    async def delete(self, name: str) -> None:
        """Delete ``name``; nothing if there is no such object."""
        ...

    async def names(self, prefix: str = "") -> list[str]: ...

    async def presign(self, name: str, file_name: str) -> str | None:
        """A time-limited URL of the store itself, or None (the gateway signs its own)."""
        ...


class NatsArtifactStore:
    def __init__(self, js: JetStreamContext, bucket: str, replicas: int = 1) -> None:
        self._js = js
        self.bucket = bucket
        self.replicas = replicas
        self._store: Any = None

    async def start(self) -> None:
        try:
            self._store = await self._js.object_store(self.bucket)
        except (BucketNotFoundError, NotFoundError):
            self._store = await self._js.create_object_store(
                self.bucket,
                config=ObjectStoreConfig(
                    description="Export archives (decision 65)",
                    replicas=self.replicas,
                ),
            )

    async def _obs(self) -> Any:
        if self._store is None:
            await self.start()
        return self._store

    async def put(self, name: str, path: Path) -> int:
        obs = await self._obs()
        with path.open("rb") as handle:
            info = await obs.put(name, handle)
        return int(info.size)

    async def delete(self, name: str) -> None:
        obs = await self._obs()
        with contextlib.suppress(ObjectNotFoundError, NotFoundError):
            await obs.delete(name)

    async def names(self, prefix: str = "") -> list[str]:
        obs = await self._obs()
        try:
            infos = await obs.list()
        except (NotFoundError, ObjectNotFoundError):
            return []
        return sorted(i.name for i in infos if i.name.startswith(prefix) and not i.deleted)

    async def presign(self, name: str, file_name: str) -> str | None:
        return None


class S3ArtifactStore:
    """Any S3-compatible store. Tested against moto's S3 server on loopback
    (``tests/integration/test_exports_s3_store.py``) and its presigning in a unit test."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        url_seconds: int,
    ) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        self.bucket = bucket
        self._session = get_session()
        self._config = {
            "endpoint_url": endpoint_url or None,
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            # SigV4 presigned URLs (X-Amz-Signature), which every S3-compatible store takes.
            "config": AioConfig(signature_version="s3v4"),
        }
        self.url_seconds = url_seconds

    def _client(self) -> Any:
        return self._session.create_client("s3", **self._config)

    async def start(self) -> None:
        return None

    async def put(self, name: str, path: Path) -> int:
        async with self._client() as s3:
            with path.open("rb") as handle:
                await s3.put_object(Bucket=self.bucket, Key=name, Body=handle)
                return handle.tell()

    async def delete(self, name: str) -> None:
        async with self._client() as s3:
            await s3.delete_object(Bucket=self.bucket, Key=name)

    async def names(self, prefix: str = "") -> list[str]:
        found: list[str] = []
        async with self._client() as s3:
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(found)

    async def presign(self, name: str, file_name: str) -> str | None:
        async with self._client() as s3:
            url: str = await s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": name,
                    "ResponseContentDisposition": f'attachment; filename="{file_name}"',
                },
                ExpiresIn=self.url_seconds,
            )
        return url
