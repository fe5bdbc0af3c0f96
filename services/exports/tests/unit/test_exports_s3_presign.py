"""The optional S3 store presigns its own download URLs (botocore's presigner needs no
network). Upload, list, download by link and delete run against moto's S3 server in
``tests/integration/test_exports_s3_store.py``."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from outpost_exports.adapters.artifacts import S3ArtifactStore

pytestmark = pytest.mark.unit


async def test_presigned_urls_name_the_object_and_expire() -> None:
    store = S3ArtifactStore(
        bucket="archives",
        endpoint_url="https://s3.example.test",
        region="eu-west-1",
        access_key_id="AKIAEXAMPLE",
        secret_access_key="secret" * 6,
        url_seconds=600,
    )
    url = await store.presign("org/export/1.zip", "export-1.zip")
    assert url is not None
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert parsed.netloc.startswith(("archives.s3.example.test", "s3.example.test"))
    assert parsed.path.endswith("org/export/1.zip")
    assert query["X-Amz-Expires"] == ["600"]
    assert query["X-Amz-Credential"][0].startswith("AKIAEXAMPLE/")
    assert "export-1.zip" in query["response-content-disposition"][0]
    assert len(query["X-Amz-Signature"][0]) == 64
    other = await store.presign("org/export/2.zip", "export-2.zip")
    assert (
        other is not None
        and parse_qs(urlparse(other).query)["X-Amz-Signature"] != query["X-Amz-Signature"]
    )
