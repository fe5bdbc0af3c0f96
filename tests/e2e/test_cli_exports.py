"""The export part of the CLI story (issue 9) against the exports service (decision 65):
``outpost exports create --wait --download`` on a simulated device's readings, the job
followed to READY and its file downloaded with what was stored in it; then the other
``exports`` commands on the service's real answers (an include listed twice, refused; a job
with every include, ``list``,
``download`` of an existing job, ``cancel`` refusing a finished job and never deleting one,
``delete``)."""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._cli import Cli
from tests.e2e._poll import eventually
from tests.e2e.conftest import Tenants

pytestmark = pytest.mark.e2e


def rows_of(path: Path) -> list[str]:
    """The data lines of the downloaded file (plain, gzip or a zip of files)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            raw = b"\n".join(archive.read(n) for n in archive.namelist() if "reading" in n.lower())
    return [line for line in raw.decode().splitlines() if line.strip()]


def logged_in(tenants: Tenants, raise_limits: Any, platform: dict[str, Any], tmp_path: Path) -> Cli:
    """The CLI logged in to a fresh organization of its own."""
    org = tenants.org("cli-export")
    raise_limits(org["id"])
    cli = Cli(tmp_path / "config.yaml")
    cli.run(
        "login",
        "--url",
        platform["gatewayUrl"],
        "--api-key",
        tenants.key(org["id"])["key"],
        "--broker-ca",
        platform["brokerCaFile"],
    )
    return cli


def test_export_create_wait_download(
    tenants: Tenants,
    raise_limits: Any,
    platform: dict[str, Any],
    tmp_path: Path,
) -> None:
    cli = logged_in(tenants, raise_limits, platform, tmp_path)
    cli.run("devices", "create", "gw-export")
    simulated = cli.run(
        "device", "simulate", "--device", "gw-export", "--rate", "5", "--seconds", "3"
    )
    found = re.search(r"device\(s\) sent ([\d,]+) messages", simulated.output)
    assert found, simulated.output
    sent = int(found.group(1).replace(",", ""))

    def stored() -> bool:
        got = cli.json("readings", "gw-export", "--since", "10m", "--raw")
        return len(got) >= sent

    assert eventually(stored), "the simulated readings were not stored"

    target = tmp_path / "gw-export.csv"
    result = cli.run(
        "exports",
        "create",
        "--device",
        "gw-export",
        "--since",
        "10m",
        "--format",
        "csv",
        "--download",
        str(target),
        "-o",
        "json",
    )
    export = json.loads(result.stdout)
    assert export["status"] == "READY" and export["readingCount"] == sent, export
    assert "wrote" in result.output and target.exists()
    assert target.stat().st_size == export["sizeBytes"]
    lines = rows_of(target)
    assert len([line for line in lines if "temperature" in line]) == sent, lines[:5]
    again = cli.json("exports", "get", export["id"])  # docs/api.md: GET /exports/{id}
    assert again["status"] == "READY" and again["id"] == export["id"]


def test_export_commands_on_the_service_s_answers(
    tenants: Tenants,
    raise_limits: Any,
    platform: dict[str, Any],
    tmp_path: Path,
) -> None:
    cli = logged_in(tenants, raise_limits, platform, tmp_path)
    cli.run("devices", "create", "gw-jobs")

    refused = cli.run(
        "exports", "create", "--device", "gw-jobs", "--include", "readings,readings", ok=False
    )
    assert refused.exit_code == 1
    assert "validation_error" in refused.output and "includes" in refused.output
    assert cli.run("exports", "list", "-q").stdout.split() == []  # nothing was created

    made = cli.json(
        "exports", "create", "--device", "gw-jobs", "--since", "1h",
        "--include", "readings,annotations,alerts,events", "--wait",
    )  # fmt: skip
    ident = made["id"]
    assert made["status"] == "READY"
    assert made["includes"] == ["READINGS", "ANNOTATIONS", "ALERTS", "EVENTS"]
    assert cli.run("exports", "list", "-q").stdout.split() == [ident]

    target = tmp_path / "again.zip"
    saved = cli.run("exports", "download", ident, str(target))
    assert "wrote" in saved.output and target.stat().st_size == made["sizeBytes"]
    with zipfile.ZipFile(target) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["exportId"] == ident and manifest["counts"]["readings"] == 0
    assert [f["name"] for f in manifest["files"]] == [
        "readings.csv",
        "annotations.csv",
        "alerts.csv",
        "events.csv",
    ]
    assert manifest["counts"]["alerts"] == 0

    finished = cli.run("exports", "cancel", ident, ok=False)
    assert finished.exit_code == 1 and "nothing to cancel" in finished.output
    assert cli.json("exports", "get", ident)["status"] == "READY"  # not deleted

    # A job cancelled while it may already be done: cancelled, or refused and kept.
    other = cli.run("exports", "create", "--device", "gw-jobs", "-q").stdout.strip()
    cancelled = cli.run("exports", "cancel", other, ok=False)
    after = cli.json("exports", "get", other)
    if cancelled.exit_code == 0:
        assert after["status"] == "CANCELLED", after
    else:
        assert after["status"] == "READY", (cancelled.output, after)

    gone = cli.run("exports", "delete", ident)
    assert f"deleted {ident}" in gone.output
    missing = cli.run("exports", "get", ident, ok=False)
    assert missing.exit_code == 1 and "not_found" in missing.output
