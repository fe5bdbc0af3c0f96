"""The CLI's pure parts: output formats, sparkline and chart, ``--filter`` in both query
styles, ``--set`` pairs, alert conditions, durations, and the profile file's mode."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import typer
import yaml

from outpost_client import output
from outpost_client.cli.context import assignments, filters, parse_duration
from outpost_client.cli.extra import parse_condition
from outpost_client.config import Config, Profile

pytestmark = pytest.mark.unit

ITEMS = [
    {
        "id": "a",
        "name": "gw-1",
        "tags": [{"key": "env", "value": "prod"}],
        "trigger": {"value": 31.5},
    },
    {"id": "b", "name": "gw-2", "tags": [], "trigger": {"value": None}},
]


def test_json_yaml_csv_and_quiet() -> None:
    assert json.loads(output.render(ITEMS, "json", ("id",))) == ITEMS
    assert yaml.safe_load(output.render(ITEMS, "yaml", ("id",))) == ITEMS
    csv = output.render(ITEMS, "csv", ("id", "name", "tags", "trigger.value"))
    assert csv.splitlines() == ["id,name,tags,trigger.value", "a,gw-1,env=prod,31.5", "b,gw-2,,"]
    assert output.render(ITEMS, "table", ("id",), quiet=True) == "a\nb\n"
    with pytest.raises(ValueError, match="unknown output format"):
        output.render(ITEMS, "xml", ("id",))


def test_columns_left_out_by_select_are_not_shown() -> None:
    assert output.columns_of([{"id": "a", "name": "x"}], ("id", "name", "status")) == ["id", "name"]


def test_sparkline_spans_lowest_to_highest_with_gaps() -> None:
    assert output.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert output.sparkline([0, None, 10]) == "▁ █"
    assert output.sparkline([3, 3, 3]) == "▄▄▄"
    assert output.sparkline([]) == ""


def test_resample_averages_neighbours() -> None:
    assert output.resample([1, 3, 5, 7], 2) == [2, 6]
    assert output.resample([1, None, None, None], 2) == [1, None]


def test_chart_rows_axis_and_extremes() -> None:
    rows = output.chart([0, 5, 10], height=4, width=10)
    assert len(rows) == 4
    assert rows[0].startswith("10 ┤") and rows[-1].startswith(" 0 ┤")
    bars = [r.split("┤")[1] for r in rows]
    assert [b[2] for b in bars] == ["█", "█", "█", "█"]  # the maximum: full height
    assert [b[0] for b in bars] == [" ", " ", " ", "▁"]  # the minimum: one eighth
    assert output.chart([None]) == ["(no data)"]


def test_filters_in_both_query_styles() -> None:
    assert filters(["name__eq=gw-1", "status=ACTIVE"]) == {"name__eq": "gw-1", "status": "ACTIVE"}
    assert filters(["name eq 'gw-1'"]) == {"$filter": "name eq 'gw-1'"}
    assert filters(["name eq 'a'", "online eq true"]) == {
        "$filter": "(name eq 'a') and (online eq true)"
    }
    assert filters(["createdAt__gte=2026-01-01T00:00:00Z", "tags/any(t: t/key eq 'x')"]) == {
        "createdAt__gte": "2026-01-01T00:00:00Z",
        "$filter": "tags/any(t: t/key eq 'x')",
    }


def test_set_pairs_nest_and_parse_json() -> None:
    assert assignments(["a=1", "b.c=x", "d=true", "e=[1,2]", "f=null"]) == {
        "a": 1,
        "b": {"c": "x"},
        "d": True,
        "e": [1, 2],
        "f": None,
    }
    with pytest.raises(typer.BadParameter):
        assignments(["novalue"])


def test_conditions() -> None:
    assert parse_condition("> 30") == {"op": ">", "threshold": 30.0}
    assert parse_condition(">=-1.5") == {"op": ">=", "threshold": -1.5}
    assert parse_condition("outside 10 20") == {"op": "outside", "low": 10.0, "high": 20.0}
    assert parse_condition("nodata 300") == {"op": "nodata", "seconds": 300}
    with pytest.raises(typer.BadParameter):
        parse_condition("hot")


def test_durations() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("2h").total_seconds() == 7200
    with pytest.raises(typer.BadParameter):
        parse_duration("soon")


def test_the_config_file_is_0600_and_the_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outpost" / "config.yaml"
    cfg = Config(path, "dev", {"dev": Profile("dev", url="http://a", api_key="sk_live_a")})
    cfg.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = Config.load(path)
    assert loaded.profile().api_key == "sk_live_a"
    monkeypatch.setenv("OUTPOST_URL", "http://b")
    monkeypatch.setenv("OUTPOST_API_KEY", "sk_live_b")
    chosen = loaded.profile()
    assert (chosen.url, chosen.api_key) == ("http://b", "sk_live_b")
    assert Config.load(path).profiles["dev"].api_key == "sk_live_a"  # the file is untouched
