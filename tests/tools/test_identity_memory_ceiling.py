"""Identity's Kubernetes memory limit respects its stated ceiling (docs/design/reliability.md
``public-throttle``, decision 75): at most N password hashes at once, each holding the
argon2 memory, over the baseline docs/operations.md states."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from outpost_identity.settings import IdentitySettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
UNITS = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB}


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMG]i)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def _stated_baseline_mib() -> int:
    text = (ROOT / "docs" / "operations.md").read_text()
    found = re.search(r"baseline of (\d+) MiB", text)
    assert found, "docs/operations.md states identity's baseline ('baseline of N MiB')"
    return int(found.group(1))


def test_identitys_memory_limit_is_above_its_ceiling() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/k8s/base/identity.yaml").read_text()))
    deployment: dict[str, Any] = next(d for d in docs if d and d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    defaults = IdentitySettings()
    n = int(env.get("OUTPOST_IDENTITY_MAX_CONCURRENT_HASHES") or defaults.max_concurrent_hashes)
    kib = int(env.get("OUTPOST_IDENTITY_ARGON2_MEMORY_KIB") or defaults.argon2_memory_kib)
    ceiling = n * kib * 1024 + _stated_baseline_mib() * MIB
    limit = _bytes(container["resources"]["limits"]["memory"])
    assert limit >= ceiling, (limit / MIB, ceiling / MIB)
    assert _bytes(container["resources"]["requests"]["memory"]) <= limit
