"""docker compose's last job, ``outpost-admin deploy credentials``, against the running
platform: with identity's environment (as the job has it from its env file) it prints an
operator key and a demo organization's API key that the gateway accepts, and a second run
prints the same keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from outpost_devkit.dev.stack import DevStack
from outpost_kit.db.provision import service_dsn
from outpost_kit.material import KEY_ENCRYPTION_KEY

pytestmark = pytest.mark.e2e


def _identity_env(stack: DevStack) -> dict[str, str]:
    passwords = stack._passwords()
    return {
        "PATH": str(Path(sys.executable).parent),
        "OUTPOST_NATS_URL": stack.nats_service_url("identity"),
        **stack.nats_tls_env(),
        "OUTPOST_IDENTITY_DATABASE_URL": service_dsn(
            stack.admin_dsn, "identity", passwords["identity"]
        ),
        "OUTPOST_IDENTITY_KEY_ENCRYPTION_KEY": passwords[KEY_ENCRYPTION_KEY],
    }


def _run(stack: DevStack, state: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "outpost-admin"),
            "deploy",
            "credentials",
            str(state),
            "--gateway-url",
            stack.gateway_url,
            "--public-gateway-url",
            "https://api.example.com",
        ],
        env=_identity_env(stack),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Outpost is running. Development credentials:" in result.stdout
    assert "curl -H" in result.stdout and "https://api.example.com/api/v1/devices" in result.stdout
    return dict(json.loads((state / "dev-credentials.json").read_text()))


def test_the_credentials_job_prints_keys_the_gateway_accepts(
    stack: DevStack, tmp_path: Path
) -> None:
    first = _run(stack, tmp_path)
    assert first["gatewayUrl"] == "https://api.example.com"
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as http:
        operator = {"Authorization": f"Bearer {first['operatorKey']}"}
        listed = http.get("/api/v1/admin/organizations?name=demo", headers=operator)
        assert listed.status_code == 200, listed.text
        assert first["organization"]["id"] in {o["id"] for o in listed.json()["data"]}
        member = {"Authorization": f"Bearer {first['organization']['apiKey']}"}
        assert http.get("/api/v1/devices", headers=member).status_code == 200

    again = _run(stack, tmp_path)
    assert again["operatorKey"] == first["operatorKey"]
    assert again["organization"] == first["organization"]
