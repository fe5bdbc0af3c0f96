"""The image's entry point (deploy/docker/entrypoint.sh), run by /bin/sh as the image runs
it, with stand-ins for the console scripts: the env file's values arrive literally, the
command line passes through, ``outpost-admin`` is reachable, a bad file stops it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "entrypoint.sh"


def _bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("outpost-service", "outpost-admin"):
        stub = bin_dir / name
        stub.write_text(
            "#!/usr/bin/env python3\n"
            "import json, os, sys\n"
            f"print(json.dumps({{'argv0': {name!r}, 'args': sys.argv[1:], "
            "'env': {k: v for k, v in os.environ.items() if k.startswith('OUTPOST_')}}))\n"
        )
        stub.chmod(0o755)
    return bin_dir


def _run(tmp_path: Path, args: list[str], env_file: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{_bin(tmp_path)}:{os.environ['PATH']}"}
    if env_file is not None:
        path = tmp_path / "svc.env"
        path.write_text(env_file)
        env["OUTPOST_ENV_FILE"] = str(path)
    return subprocess.run(
        ["/bin/sh", str(_SCRIPT), *args], env=env, capture_output=True, text=True, check=False
    )


def test_values_arrive_literally_and_arguments_pass_through(tmp_path: Path) -> None:
    dsn = (
        "postgresql://outpost_x:p$HOME`id`@db:5432/outpost?sslmode=verify-full&sslrootcert=/ca.pem"
    )
    result = _run(
        tmp_path,
        ["migrate", "--flag"],
        f"# generated\nOUTPOST_X_DATABASE_URL={dsn}\n\nOUTPOST_NATS_URL=tls://x:y=z@nats:4222",
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["argv0"] == "outpost-service" and seen["args"] == ["migrate", "--flag"]
    assert seen["env"]["OUTPOST_X_DATABASE_URL"] == dsn
    assert seen["env"]["OUTPOST_NATS_URL"] == "tls://x:y=z@nats:4222"


def test_outpost_admin_runs_the_operator_tool(tmp_path: Path) -> None:
    result = _run(tmp_path, ["outpost-admin", "streams", "apply"], None)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["argv0"] == "outpost-admin" and seen["args"] == ["streams", "apply"]


def test_a_line_that_is_not_a_variable_stops_it(tmp_path: Path) -> None:
    result = _run(tmp_path, ["serve"], "OUTPOST_A=1\nrm -rf /\n")
    assert result.returncode == 78 and "not KEY=VALUE" in result.stderr
    assert result.stdout == ""


def test_an_unreadable_env_file_stops_it(tmp_path: Path) -> None:
    env = {"PATH": f"{_bin(tmp_path)}:{os.environ['PATH']}", "OUTPOST_ENV_FILE": "/nonexistent"}
    result = subprocess.run(
        ["/bin/sh", str(_SCRIPT), "serve"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 78 and "not readable" in result.stderr
