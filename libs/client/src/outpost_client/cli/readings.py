"""``outpost readings``: aggregated values of a device's sensors as a sparkline, a chart
and a table; raw readings; the latest reading of each sensor."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import typer
from rich.table import Table

from outpost_client import output
from outpost_client.cli.context import OutputOpt, device_id, state, window

FUNCTIONS = ("avg", "min", "max", "sum", "count", "first", "last")


def series(rows: list[dict[str, Any]], fn: str) -> dict[tuple[str, str], list[float | None]]:
    """The values of ``fn`` per (device, sensor), in the order of the rows (bucket order)."""
    out: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    for row in rows:
        value = row.get(fn)
        out[(str(row.get("deviceId")), str(row.get("sensor")))].append(
            float(value) if isinstance(value, int | float) else None
        )
    return dict(out)


def summary(
    key: tuple[str, str], values: list[float | None], fn: str, width: int, device: bool = False
) -> Table:
    known = [v for v in values if v is not None]
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold")
    grid.add_column()
    line = output.sparkline(output.resample(values, width))
    last = f"{known[-1]:.4g}" if known else "-"
    low = f"{min(known):.4g}" if known else "-"
    high = f"{max(known):.4g}" if known else "-"
    label = f"{key[0][:13]} {key[1]} {fn}" if device else f"{key[1]} {fn}"
    grid.add_row(label, f"[cyan]{line}[/cyan]  last {last}  min {low}  max {high}")
    return grid


def register(app: typer.Typer) -> None:
    @app.command(
        "readings",
        help=(
            "A device's readings: per sensor a sparkline (or --chart) of an aggregate over"
            " time, then the table of buckets. --raw for the readings themselves, --latest"
            " for the newest of each sensor."
        ),
        epilog=(
            "Example: outpost readings gw-1 --sensor temperature --since 2h --interval 5m"
            " --fn avg,max --chart"
        ),
    )
    def readings(
        ctx: typer.Context,
        device: Annotated[str | None, typer.Argument(help="Device id or name")] = None,
        group: Annotated[str | None, typer.Option(help="A device group's devices")] = None,
        site: Annotated[str | None, typer.Option(help="A site's devices")] = None,
        sensor: Annotated[str | None, typer.Option(help="One sensor (default all)")] = None,
        since: Annotated[str, typer.Option(help="How far back: 30m, 2h, 7d")] = "1h",
        start: Annotated[str | None, typer.Option("--from", help="RFC 3339 start")] = None,
        end: Annotated[str | None, typer.Option("--to", help="RFC 3339 end")] = None,
        interval: Annotated[str, typer.Option(help="1m, 5m, 15m, 1h or 1d")] = "1m",
        fn: Annotated[str, typer.Option(help="Functions: avg,min,max,sum,count,first,last")] = (
            "avg,min,max,count"
        ),
        chart: Annotated[bool, typer.Option(help="A chart instead of a sparkline")] = False,
        height: Annotated[int, typer.Option(help="Chart rows")] = 8,
        rows: Annotated[int, typer.Option(help="Table rows shown (the latest)")] = 15,
        raw: Annotated[bool, typer.Option(help="Raw readings, not aggregates")] = False,
        latest: Annotated[bool, typer.Option(help="The newest reading per sensor")] = False,
        out: OutputOpt = None,
    ) -> None:
        st = state(ctx)
        fmt = (out or st.output).lower()
        functions = [f.strip() for f in fn.split(",") if f.strip()]
        bad = [f for f in functions if f not in FUNCTIONS]
        if bad:
            raise typer.BadParameter(f"unknown function(s) {', '.join(bad)}", param_hint="--fn")
        frm, to = window(since, start, end)
        chosen = [
            name for name, v in (("DEVICE", device), ("--group", group), ("--site", site)) if v
        ]
        if len(chosen) != 1:
            raise typer.BadParameter("name one device, or --group, or --site")
        with st.client() as api:
            if device:
                params: dict[str, Any] = {"deviceId": device_id(api, device)}
            elif group:
                params = {"groupId": group}
            else:
                params = {"siteId": site}
            if sensor:
                params["sensor"] = sensor
            if latest:
                found = list(api.iterate("/api/v1/readings/latest", params))
                st.show(found, ("sensor", "ts", "value"), out)
                return
            params.update({"from": frm, "to": to})
            if raw:
                found = list(api.iterate("/api/v1/readings", {**params, "limit": 1000}))
                columns: tuple[str, ...] = ("ts", "sensor", "value")
                shown, per = "value", "reading"
            else:
                params.update({"interval": interval, "fn": ",".join(functions), "limit": 10080})
                found = list(api.iterate("/api/v1/readings/aggregated", params))
                columns = ("ts", "sensor", *functions)
                shown, per = functions[0], interval
        if fmt != "table" or st.quiet:
            st.show(found, columns, out)
            return
        if not found:
            st.note(f"no readings of {device or group or site} between {frm} and {to}")
            return
        width = max(10, min(st.console.width - 30, 120))
        for key, values in series(found, shown).items():
            if chart:
                who = "" if device else f" of {key[0]}"
                st.console.print(f"[bold]{key[1]}[/bold]{who} {shown} per {per}, {frm} → {to}")
                for line in output.chart(values, height=height, width=width):
                    st.console.print(line, highlight=False, markup=False)
            else:
                st.console.print(summary(key, values, shown, width, device=not device))
        if not device:
            columns = ("deviceId", *columns)
        st.console.print(output.table(found[-rows:], columns))
