"""``outpost exports``: create an export job, watch its rows being written, download it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from outpost_client import errors
from outpost_client import exports as jobs
from outpost_client.cli.context import OutputOpt, QuietOpt, device_id, state, window
from outpost_client.cli.resources import IfMatchOpt, _etag
from outpost_client.errors import OutpostError

app = typer.Typer(help="Export jobs: /api/v1/exports", no_args_is_help=True)
COLUMNS = ("id", "status", "scopeType", "format", "readingCount", "sizeBytes", "createdAt")
INCLUDES = ("READINGS", "ANNOTATIONS", "ALERTS", "EVENTS")


def wait_and_download(
    ctx: typer.Context, export: dict[str, Any], download: Path | None, interval: float
) -> dict[str, Any]:
    """Follow the job with a progress bar of rows written, then download with a bar of
    bytes (both drawn only on a terminal)."""
    st = state(ctx)
    console = st.errors  # progress goes to stderr; stdout stays the result
    with st.client() as api:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=st.quiet,
        ) as bar:
            task = bar.add_task(f"export {str(export['id'])[:8]} PENDING", total=None)

            def on_progress(p: jobs.Progress) -> None:
                total = p.total if p.total else (p.rows if p.status == "READY" else None)
                bar.update(
                    task,
                    completed=p.rows,
                    total=total,
                    description=f"export {str(export['id'])[:8]} {p.status}",
                )

            ready = jobs.wait_for_export(
                api, str(export["id"]), on_progress=on_progress, interval=interval
            )
        if download is None:
            return ready
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=st.quiet,
        ) as bar:
            task = bar.add_task(f"download → {download}", total=ready.get("sizeBytes"))

            def on_chunk(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            written = jobs.download(api, ready, download, on_chunk=on_chunk)
        st.note(f"wrote {written:,} bytes to {download}")
        return ready


@app.command(
    "create",
    help=(
        "Export readings, annotations, alerts (opened in the range) and timeline events of a"
        " device, group, site or the organization as a zip of CSV or NDJSON files; --wait"
        " shows the rows being written, --download saves the zip."
    ),
    epilog=(
        "Example: outpost exports create --device gw-1 --since 24h --include"
        " readings,annotations --format csv --download gw-1.zip"
    ),
)
def create(
    ctx: typer.Context,
    device: Annotated[str | None, typer.Option(help="Scope: a device (id or name)")] = None,
    group: Annotated[str | None, typer.Option(help="Scope: a device group id")] = None,
    site: Annotated[str | None, typer.Option(help="Scope: a site id")] = None,
    since: Annotated[str, typer.Option(help="How far back: 30m, 2h, 7d")] = "24h",
    start: Annotated[str | None, typer.Option("--from", help="RFC 3339 start")] = None,
    end: Annotated[str | None, typer.Option("--to", help="RFC 3339 end")] = None,
    include: Annotated[
        str, typer.Option(help="readings,annotations,alerts,events (comma-separated)")
    ] = "readings",
    fmt: Annotated[str, typer.Option("--format", help="csv or ndjson")] = "csv",
    wait: Annotated[bool, typer.Option(help="Follow the job until it is READY")] = False,
    download: Annotated[
        Path | None, typer.Option(help="Save the file here (implies --wait)")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls")] = 0.5,
    out: OutputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    st = state(ctx)
    includes = [i.strip().upper() for i in include.split(",") if i.strip()]
    bad = [i for i in includes if i not in INCLUDES]
    if bad:
        raise typer.BadParameter(f"unknown {', '.join(bad)}", param_hint="--include")
    frm, to = window(since, start, end)
    with st.client() as api:
        if device:
            scope: dict[str, Any] = {"scopeType": "DEVICE", "scopeId": device_id(api, device)}
        elif group:
            scope = {"scopeType": "GROUP", "scopeId": group}
        elif site:
            scope = {"scopeType": "SITE", "scopeId": site}
        else:
            scope = {"scopeType": "ORGANIZATION"}
        body = {**scope, "from": frm, "to": to, "includes": includes, "format": fmt.upper()}
        export = jobs.create_export(api, body)
    if wait or download is not None:
        export = wait_and_download(ctx, export, download, interval)
    st.show(export, COLUMNS, out, quiet)


@app.command("get", help="One export job.", epilog="Example: outpost exports get ID -o json")
def get(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="ID")],
    out: OutputOpt = None,
) -> None:
    st = state(ctx)
    with st.client() as api:
        found = jobs.get_export(api, ident)
    st.show(found, COLUMNS, out)


@app.command("list", help="Export jobs.", epilog="Example: outpost exports list -q")
def list_(ctx: typer.Context, out: OutputOpt = None, quiet: QuietOpt = False) -> None:
    st = state(ctx)
    with st.client() as api:
        found = list(api.iterate(jobs.EXPORTS))
    st.show(found, COLUMNS, out, quiet)


@app.command(
    "download",
    help="Wait for an export and save its file.",
    epilog="Example: outpost exports download ID gw-1.zip",
)
def download_(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="ID")],
    target: Annotated[Path, typer.Argument(help="The file to write")],
) -> None:
    st = state(ctx)
    with st.client() as api:
        export = jobs.get_export(api, ident)
    if export.get("status") in jobs.DONE and export.get("status") != "READY":
        raise jobs.ExportFailed(export)  # CANCELLED, FAILED, EXPIRED: no file to wait for
    wait_and_download(ctx, export, target, 0.5)


@app.command(
    "cancel",
    help=(
        "Cancel a PENDING or RUNNING export job. A job that has finished is left alone"
        " (exports delete removes it and its file)."
    ),
    epilog="Example: outpost exports cancel ID",
)
def cancel(ctx: typer.Context, ident: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    st = state(ctx)
    with st.client() as api:
        # DELETE of a finished job deletes it: If-Match keeps a job that finished since the
        # GET (its version moved on) from being deleted by a cancel. A job that only moved
        # on from PENDING to RUNNING is tried again at its new version.
        for _ in range(5):
            export = jobs.get_export(api, ident)
            if export.get("status") in jobs.DONE:
                raise OutpostError(
                    f"export {ident} is {export.get('status')}: nothing to cancel"
                    f" (outpost exports delete {ident} deletes it and its file)"
                )
            try:
                api.request(
                    "DELETE",
                    f"{jobs.EXPORTS}/{ident}",
                    headers={"If-Match": f'"{export.get("version")}"'},
                )
                break
            except errors.PreconditionFailed:
                continue
        else:
            raise OutpostError(f"export {ident} kept changing; not cancelled")
    st.note(f"cancelled {ident}")


@app.command(
    "delete",
    help="Delete a finished export job and its file (a PENDING or RUNNING one is cancelled).",
    epilog="Example: outpost exports delete ID",
)
def delete(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="ID")],
    if_match: IfMatchOpt = None,
) -> None:
    st = state(ctx)
    headers = {"If-Match": _etag(if_match)} if if_match else None
    with st.client() as api:
        api.request("DELETE", f"{jobs.EXPORTS}/{ident}", headers=headers)
    st.note(f"deleted {ident}")
