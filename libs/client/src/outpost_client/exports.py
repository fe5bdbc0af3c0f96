"""Export jobs (docs/api.md, "Exports"; decision 65): create one, follow it until READY or
FAILED, download its file. Plain-JSON helpers for the CLI, written against docs/api.md before the
exports routes were merged (decision 68) and checked against the service since
(``tests/e2e/test_cli_exports.py``); the generated ``create_export`` & co. are the typed
calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from outpost_client.base import SyncBase
from outpost_client.errors import OutpostError

EXPORTS = "/api/v1/exports"
DONE = frozenset({"READY", "FAILED", "CANCELLED", "EXPIRED"})


class ExportFailed(OutpostError):
    def __init__(self, export: dict[str, Any]) -> None:
        self.export = export
        reason = export.get("failureReason") or export.get("reason") or export.get("error") or ""
        super().__init__(f"export {export.get('id')} {export.get('status')}: {reason}".strip())


@dataclass(frozen=True)
class Progress:
    """How far a job is: rows written so far and, when the service knows it, of how many
    (at least the rows written: the service's figure is an estimate)."""

    status: str
    rows: int
    total: int | None

    @classmethod
    def of(cls, export: dict[str, Any]) -> Progress:
        progress = export.get("progress")
        rows: Any = None
        total: Any = None
        if isinstance(progress, dict):
            rows = _first(progress, "rowsWritten", "rows", "written", "readingCount")
            total = _first(
                progress, "rowsEstimated", "totalRows", "estimatedRows", "total", "expectedRows"
            )
        if rows is None:
            rows = _first(export, "rowsWritten", "readingCount")
        if total is None:
            total = _first(export, "totalRows", "estimatedRows")
        if isinstance(progress, int | float) and total is None and rows is None:
            # a percentage: show it as rows of 100
            rows, total = progress if progress > 1 else progress * 100, 100
        rows = int(rows or 0)
        total = None if total is None else int(total)
        if total is not None and rows > total:
            # ``rowsEstimated`` is the planner's estimate (decision 65): rows may pass it
            total = rows
        return cls(str(export.get("status", "")), rows, total)


def _first(obj: dict[str, Any], *names: str) -> Any:
    for name in names:
        if obj.get(name) is not None:
            return obj[name]
    return None


def create_export(api: SyncBase, body: dict[str, Any]) -> dict[str, Any]:
    return dict(api.json("POST", EXPORTS, json=body))


def get_export(api: SyncBase, export_id: str) -> dict[str, Any]:
    return dict(api.json("GET", f"{EXPORTS}/{export_id}"))


def wait_for_export(
    api: SyncBase,
    export_id: str,
    *,
    on_progress: Callable[[Progress], None] = lambda _: None,
    interval: float = 0.5,
    timeout: float = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the job until it is done; its READY view (with ``downloadUrl``), or
    ``ExportFailed``."""
    deadline = clock() + timeout
    while True:
        export = get_export(api, export_id)
        on_progress(Progress.of(export))
        status = export.get("status")
        if status == "READY":
            return export
        if status in DONE:
            raise ExportFailed(export)
        if clock() > deadline:
            raise OutpostError(f"export {export_id} still {status} after {timeout:.0f} s")
        sleep(interval)


def download(
    api: SyncBase,
    export: dict[str, Any],
    target: Path,
    *,
    on_chunk: Callable[[int, int | None], None] = lambda done, total: None,
) -> int:
    """Stream the file of a READY export to ``target``; bytes written. The credential goes
    with the request only when ``downloadUrl`` is on the gateway itself (a signed URL of
    another host carries its own authorization)."""
    url = urljoin(api.settings.base_url + "/", str(export["downloadUrl"]))
    same_host = urlsplit(url).netloc == urlsplit(api.settings.base_url).netloc
    headers = api.settings.headers("GET", None) if same_host else {}
    headers.pop("Accept", None)
    total = export.get("sizeBytes")
    written = 0
    tmp = target.with_name(target.name + ".part")
    with api.http.stream("GET", url, headers=headers) as resp:
        if resp.status_code >= 400:
            resp.read()
            from outpost_client.base import raise_for

            raise_for(resp)
        if total is None and resp.headers.get("content-length"):
            total = int(resp.headers["content-length"])
        with tmp.open("wb") as out:
            for chunk in resp.iter_bytes():
                out.write(chunk)
                written += len(chunk)
                on_chunk(written, total)
    tmp.replace(target)
    return written
