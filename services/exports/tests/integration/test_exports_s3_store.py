"""The optional S3 artifact store against an S3 API on loopback (moto's server): an archive
uploaded, listed, downloaded through its presigned URL with no other credential (the
``downloadUrl`` the gateway hands out when the store is S3), and deleted by name.

moto is a stand-in for S3 (and MinIO, R2...), not Postgres or NATS: it speaks the S3 REST
API, which is what this adapter is for. It does not check signatures, so a tampered link's
refusal is S3's to prove; the presigned query itself is checked in
``tests/unit/test_exports_s3_presign.py``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer

from outpost_devkit.infra._process import free_port
from outpost_exports.adapters.artifacts import S3ArtifactStore

pytestmark = pytest.mark.integration

KEY_ID, SECRET = "AKIAOUTPOSTTEST", "outpost-test-secret-key-0123456789"


@pytest.fixture
def s3_url() -> Iterator[str]:
    # moto reads AWS credentials from the environment for its own account bookkeeping only.
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def store(url: str, bucket: str, seconds: int = 600) -> S3ArtifactStore:
    return S3ArtifactStore(
        bucket=bucket,
        endpoint_url=url,
        region="eu-west-1",
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        url_seconds=seconds,
    )


async def test_an_archive_uploaded_listed_downloaded_by_its_link_and_deleted(
    s3_url: str, tmp_path: Path
) -> None:
    archives = store(s3_url, "outpost-exports")
    async with archives._client() as s3:
        await s3.create_bucket(
            Bucket="outpost-exports",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
        )
    payload = os.urandom(3 * 1024 * 1024 + 17)  # several MiB, not a round size
    archive = tmp_path / "1.zip"
    archive.write_bytes(payload)

    size = await archives.put("org-a/export-1/1.zip", archive)
    await archives.put("org-a/export-2/1.zip", archive)
    assert size == len(payload)
    assert await archives.names("org-a/export-1/") == ["org-a/export-1/1.zip"]
    assert await archives.names("org-a/") == ["org-a/export-1/1.zip", "org-a/export-2/1.zip"]

    link = await archives.presign("org-a/export-1/1.zip", "export-1.zip")
    assert link is not None
    async with httpx.AsyncClient() as http:
        got = await http.get(link)  # no Authorization header: the link is the credential
        assert got.status_code == 200
        assert got.content == payload
        assert 'filename="export-1.zip"' in got.headers["content-disposition"]

    await archives.delete("org-a/export-1/1.zip")
    assert await archives.names("org-a/") == ["org-a/export-2/1.zip"]
    async with httpx.AsyncClient() as http:
        # S3 answers 403 rather than 404 for a missing key to a caller who may not list.
        assert (await http.get(link)).status_code in (403, 404)
