"""The export helpers over ``httpx.MockTransport``, with answers shaped like the exports
service's (decision 65; ``tests/e2e/test_cli_exports.py`` is the same against the
platform): a job followed PENDING → RUNNING → READY with its progress reported, FAILED
raised with its reason, the file streamed to disk with the credential only on the gateway's
own host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from outpost_client import Client
from outpost_client.exports import ExportFailed, Progress, download, wait_for_export

pytestmark = pytest.mark.unit

EXPORT_ID = "01900000-0000-7000-8000-00000000e001"
BODY = b"deviceId,sensor,ts,value\n" + b"d,temperature,2026-01-01T00:00:00Z,21.5\n" * 5000


def job(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": EXPORT_ID, "object": "export", "status": status, **fields}


def test_progress_reads_the_shapes_a_job_can_report() -> None:
    # the exports service's shape: rows written of the planner's estimate
    running = {"rowsWritten": 108000, "rowsEstimated": 999907, "updatedAt": "2026-12-02T17:47Z"}
    assert Progress.of(job("RUNNING", progress=running)) == Progress("RUNNING", 108000, 999907)
    # an estimate the rows have passed is no total: the rows are
    passed = {"rowsWritten": 1000000, "rowsEstimated": 999801}
    assert Progress.of(job("RUNNING", progress=passed)) == Progress("RUNNING", 1000000, 1000000)
    first = {"rowsWritten": 0, "rowsEstimated": None}
    assert Progress.of(job("RUNNING", progress=first)) == Progress("RUNNING", 0, None)
    assert Progress.of(job("READY", progress=None, readingCount=7)) == Progress("READY", 7, None)
    assert Progress.of(job("RUNNING", progress={"rowsWritten": 10, "totalRows": 40})) == Progress(
        "RUNNING", 10, 40
    )
    assert Progress.of(job("READY", readingCount=7)) == Progress("READY", 7, None)
    assert Progress.of(job("RUNNING", progress=0.25)) == Progress("RUNNING", 25, 100)
    assert Progress.of(job("PENDING")) == Progress("PENDING", 0, None)


def test_a_job_is_followed_to_ready_and_downloaded(tmp_path: Path) -> None:
    states = [
        job("PENDING"),
        job("RUNNING", progress={"rowsWritten": 2000, "rowsEstimated": 5000}),
        job("RUNNING", progress={"rowsWritten": 5000, "rowsEstimated": 5000}),
        job(
            "READY",
            readingCount=5000,
            sizeBytes=len(BODY),
            downloadUrl=f"/api/v1/exports/{EXPORT_ID}/download?sig=abc",
        ),
    ]
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/download"):
            return httpx.Response(200, content=BODY, headers={"Content-Length": str(len(BODY))})
        return httpx.Response(200, json=states.pop(0))

    api = Client("http://gw.test", "sk_live_x", transport=httpx.MockTransport(answer))
    progress: list[Progress] = []
    slept: list[float] = []
    ready = wait_for_export(api, EXPORT_ID, on_progress=progress.append, sleep=slept.append)
    assert ready["status"] == "READY"
    assert [(p.status, p.rows, p.total) for p in progress] == [
        ("PENDING", 0, None),
        ("RUNNING", 2000, 5000),
        ("RUNNING", 5000, 5000),
        ("READY", 5000, None),
    ]
    assert len(slept) == 3
    chunks: list[tuple[int, int | None]] = []
    target = tmp_path / "out.csv"
    written = download(api, ready, target, on_chunk=lambda d, t: chunks.append((d, t)))
    assert written == len(BODY) and target.read_bytes() == BODY
    assert chunks[-1] == (len(BODY), len(BODY))
    assert seen[-1].url.params["sig"] == "abc"
    assert seen[-1].headers["authorization"] == "Bearer sk_live_x"  # the gateway's own host
    assert not (tmp_path / "out.csv.part").exists()


def test_a_signed_url_elsewhere_gets_no_credential(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"x")

    api = Client("http://gw.test", "sk_live_x", transport=httpx.MockTransport(answer))
    ready = job("READY", downloadUrl="https://files.example.com/e.csv?sig=1", sizeBytes=1)
    download(api, ready, tmp_path / "e.csv")
    assert "authorization" not in seen[0].headers


def test_a_failed_job_raises_with_its_reason() -> None:
    answers = [job("RUNNING"), job("FAILED", reason="readings unavailable")]
    api = Client(
        "http://gw.test",
        "sk_live_x",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=answers.pop(0))),
    )
    with pytest.raises(ExportFailed, match="readings unavailable"):
        wait_for_export(api, EXPORT_ID, sleep=lambda s: None)
