"""``make check-deploy``: the committed deployment files pass, and a copy broken in each way
the check promises to catch is refused, naming the problem.

Integration: it runs kubectl (kustomize), nats-server -t and hadolint as subprocesses."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

_ROOT = Path(__file__).resolve().parents[2]
_TOOL = _ROOT / "tools" / "check_deploy.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_deploy", _TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cd = _load()


@pytest.fixture(scope="module")
def committed() -> list[str]:
    problems = cd.Problems()
    cd.check_dockerfile(_ROOT, problems)
    cd.check_compose(_ROOT, problems)
    cd.check_generated_env(problems)
    cd.check_nats_conf(_ROOT, problems)
    cd.check_kubernetes(_ROOT, problems)
    return list(problems)


def test_the_committed_files_pass(committed: list[str]) -> None:
    assert committed == []


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name in ("Dockerfile", ".dockerignore", "docker-compose.yml", "pyproject.toml", "uv.lock"):
        shutil.copy2(_ROOT / name, root / name if root.exists() else _mkdir(root) / name)
    shutil.copytree(_ROOT / "deploy", root / "deploy")
    # COPY sources must exist; their content does not matter to the check.
    for directory in ("libs", "services"):
        (root / directory).mkdir()
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


def _run(check: Callable[[Path, list[str]], None], root: Path) -> list[str]:
    problems = cd.Problems()
    check(root, problems)
    return list(problems)


def test_a_copy_unchanged_passes(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert _run(cd.check_compose, root) == []
    assert _run(cd.check_dockerfile, root) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # a key the compose specification does not have
        (
            "    restart: unless-stopped\n    environment:\n      POSTGRES_DB",
            "    restart: unless-stopped\n    restrat: always\n    environment:\n      POSTGRES_DB",
            "compose schema: Unevaluated properties are not allowed ('restrat'",
        ),
        # a variable no settings struct has (a typo of a real one)
        (
            '      OUTPOST_READINGS_HEALTH_PORT: "9090"',
            '      OUTPOST_READINGS_HEALTH_PORT: "9090"\n      OUTPOST_READINGS_INGEST_BATCH: "5"',
            "OUTPOST_READINGS_INGEST_BATCH is not a variable outpost-readings reads",
        ),
        # another service's variable
        (
            "      OUTPOST_EXPORTS_HEALTH_HOST: 0.0.0.0",
            '      OUTPOST_EXPORTS_HEALTH_HOST: 0.0.0.0\n      OUTPOST_GATEWAY_PORT: "8080"',
            "OUTPOST_GATEWAY_PORT is not a variable outpost-exports reads",
        ),
        # a dependency on a service that does not exist
        (
            "      migrate-readings:\n        condition: service_completed_successfully",
            "      migrate-reading:\n        condition: service_completed_successfully",
            "depends_on names 'migrate-reading'",
        ),
        # a health check on a port the process does not listen on
        (
            "urlopen('http://127.0.0.1:8080/readyz'",
            "urlopen('http://127.0.0.1:9090/readyz'",
            "health check asks port 9090",
        ),
        # a service's metrics port published to the world
        (
            '      OUTPOST_IDENTITY_HEALTH_PORT: "9090"',
            '      OUTPOST_IDENTITY_HEALTH_PORT: "9090"\n    ports:\n      - "9090:9090"',
            "publishes port 9090",
        ),
        # an image of ours without its build: compose would try to pull it
        (
            '    command: ["outpost-admin", "streams", "apply"]\n',
            '    command: ["outpost-admin", "streams", "apply"]\n    build: null\n',
            "without build:",
        ),
        # a variable without a default: the file must work as committed
        (
            "${POSTGRES_IMAGE:-postgres:15-bookworm}",
            "${POSTGRES_IMAGE}",
            "${POSTGRES_IMAGE} has no default",
        ),
    ],
)
def test_a_broken_compose_file_is_refused(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    root = _copy(tmp_path)
    _edit(root, "docker-compose.yml", old, new)
    problems = _run(cd.check_compose, root)
    assert any(expected in p for p in problems), problems


def test_a_missing_service_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    text = (root / "docker-compose.yml").read_text()
    start = text.index("  exports:\n")
    end = text.index("  gateway:\n")
    (root / "docker-compose.yml").write_text(
        text[:start]
        + text[end:].replace("      exports:\n        condition: service_healthy\n", "")
    )
    problems = _run(cd.check_compose, root)
    assert "docker-compose.yml: no compose service runs outpost-exports" in problems, problems


@pytest.mark.parametrize(
    ("relative", "old", "new", "expected"),
    [
        # a field Kubernetes does not have (strict schema)
        (
            "deploy/k8s/base/exports.yaml",
            "  revisionHistoryLimit: 5\n",
            "  revisionHistoryLimit: 5\n  minReadySecond: 5\n",
            "Deployment/exports: schema: spec: Additional properties are not allowed",
        ),
        # a wrong type
        (
            "deploy/k8s/base/gateway.yaml",
            "  replicas: 2\n",
            "  replicas: two\n",
            "Deployment/gateway: schema: spec.replicas",
        ),
        # a Secret nothing makes
        (
            "deploy/k8s/base/readings.yaml",
            "name: outpost-readings-env",
            "name: outpost-reading-env",
            "reads Secret 'outpost-reading-env', which nothing makes",
        ),
        # a probe on an undeclared port
        (
            "deploy/k8s/base/alerting.yaml",
            "            port: health\n          periodSeconds: 10",
            "            port: metrics\n          periodSeconds: 10",
            "livenessProbe asks port metrics",
        ),
        # a variable no settings struct has
        (
            "deploy/k8s/base/kustomization.yaml",
            "      - OUTPOST_LOG_LEVEL=INFO",
            "      - OUTPOST_LOG_LEVEL=INFO\n      - OUTPOST_LOGLEVEL=DEBUG",
            "OUTPOST_LOGLEVEL is not a variable",
        ),
        # a service's health port opened to every source
        (
            "deploy/k8s/base/networkpolicies.yaml",
            "        - port: 8080\n",
            "        - port: 8080\n        - port: 9090\n",
            "NetworkPolicy/gateway-public: opens [8080, 9090]",
        ),
        # an internal Service made public
        (
            "deploy/k8s/base/readings.yaml",
            "  selector:\n    app.kubernetes.io/name: readings\n  ports:",
            "  type: LoadBalancer\n  selector:\n    app.kubernetes.io/name: readings\n  ports:",
            "Service/readings: exposes port 9090 of readings outside the cluster",
        ),
        # a container that keeps its capabilities (Pod Security restricted refuses it)
        (
            "deploy/k8s/base/migrate-job.yaml",
            "            - ALL\n",
            "            - NET_RAW\n",
            "must drop ALL capabilities",
        ),
        # an autoscaler of nothing
        (
            "deploy/k8s/base/devices.yaml",
            "    kind: Deployment\n    name: devices",
            "    kind: Deployment\n    name: device",
            "HorizontalPodAutoscaler/devices: scales",
        ),
        # a Service whose selector matches no pod
        (
            "deploy/k8s/base/nats.yaml",
            "  clusterIP: None\n  selector:\n    app.kubernetes.io/name: nats",
            "  clusterIP: None\n  selector:\n    app.kubernetes.io/name: natz",
            "Service/nats-headless: selector",
        ),
    ],
)
def test_a_broken_manifest_is_refused(
    tmp_path: Path, relative: str, old: str, new: str, expected: str
) -> None:
    root = _copy(tmp_path)
    _edit(root, relative, old, new)
    problems = cd.Problems()
    cd.check_kubernetes(root, problems, overlays=("prod",))
    assert any(expected in p for p in problems), problems


def test_prod_streams_have_as_many_replicas_as_the_broker_has_nodes(tmp_path: Path) -> None:
    """Decision 82: the streams Job's OUTPOST_NATS_STREAM_REPLICAS (every stream, nats-server's
    $MQTT_msgs among them) says what compose's cluster file says: one per node, three."""
    root = _copy(tmp_path)
    _edit(
        root,
        "deploy/k8s/overlays/prod/kustomization.yaml",
        "OUTPOST_NATS_STREAM_REPLICAS=3",
        "OUTPOST_NATS_STREAM_REPLICAS=1",
    )
    problems = cd.Problems()
    cd.check_kubernetes(root, problems, overlays=("prod",))
    assert any("OUTPOST_NATS_STREAM_REPLICAS is 1" in p for p in problems), problems


def test_a_kustomization_that_does_not_build_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root, "deploy/k8s/base/kustomization.yaml", "  - exports.yaml\n", "  - export.yaml\n")
    problems = cd.Problems()
    cd.check_kubernetes(root, problems, overlays=("prod",))
    assert any("kubectl kustomize failed" in p for p in problems), problems


def test_without_kubectl_the_check_fails_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cd, "kubectl", lambda: None)
    problems = cd.Problems()
    cd.check_kubernetes(_ROOT, problems, overlays=("dev",))
    assert len(problems) == 1 and "kubectl not found" in problems[0], problems


def test_prod_nats_must_fsync_and_differ_only_there(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root, "deploy/k8s/overlays/prod/nats.conf", "  sync_interval: always\n", "")
    problems = _run(cd.check_nats_conf, root)
    assert any("needs `sync_interval: always`" in p for p in problems), problems

    root = _copy(tmp_path / "again")
    _edit(root, "deploy/k8s/overlays/prod/nats.conf", "max_payload: 1MB", "max_payload: 8MB")
    problems = _run(cd.check_nats_conf, root)
    assert any("must equal the base file" in p for p in problems), problems


def test_prod_nats_is_a_cluster_of_pods_named_after_themselves(tmp_path: Path) -> None:
    """Decision 80: the prod broker is three nodes; its nats.conf keeps the cluster block and
    each pod's own server_name, and differs from the base by nothing else."""
    root = _copy(tmp_path)
    conf = root / "deploy/k8s/overlays/prod/nats.conf"
    text = conf.read_text()
    start = text.index("cluster {")
    end = text.index("}\n", text.index("]", start)) + 2
    conf.write_text(text[:start] + text[end:])
    problems = _run(cd.check_nats_conf, root)
    assert any("needs a cluster block with routes" in p for p in problems), problems

    root = _copy(tmp_path / "again")
    _edit(root, "deploy/k8s/overlays/prod/nats.conf", "server_name: $POD_NAME", "server_name: x")
    problems = _run(cd.check_nats_conf, root)
    assert any("must equal the base file" in p for p in problems), problems


def test_nats_server_refuses_a_config_it_cannot_run(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    for relative in ("deploy/k8s/base/nats.conf", "deploy/k8s/overlays/prod/nats.conf"):
        _edit(root, relative, "max_file_store: 20GB", "max_file_store: twenty")
    problems = _run(cd.check_nats_conf, root)
    assert any("nats-server -t" in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("USER 10001:10001", "USER root", "the runtime stage runs as root"),
        (
            'ENTRYPOINT ["/usr/local/bin/outpost-entrypoint"]',
            "ENTRYPOINT /usr/local/bin/outpost-entrypoint",
            "exec-form ENTRYPOINT",
        ),
        (
            "identity|devices|readings|alerting|exports|fleet|gateway)",
            "identity|devices|readings|alerting|exports|gateway)",
            "ARG SERVICE accepts",
        ),
        ("COPY libs libs", "COPY lib lib", "COPY source lib does not exist"),
    ],
)
def test_a_broken_dockerfile_is_refused(tmp_path: Path, old: str, new: str, expected: str) -> None:
    root = _copy(tmp_path)
    _edit(root, "Dockerfile", old, new)
    problems = _run(cd.check_dockerfile, root)
    assert any(expected in p for p in problems), problems


def test_a_copy_source_the_dockerignore_excludes_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root, ".dockerignore", "!services/\n", "")
    problems = _run(cd.check_dockerfile, root)
    assert any("COPY source services is in .dockerignore" in p for p in problems), problems


def test_the_command_line_exits_non_zero_on_a_problem(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(
        root, "docker-compose.yml", "OUTPOST_GATEWAY_HOST: 0.0.0.0", "OUTPOST_GATEWAY_HOTS: 0.0.0.0"
    )
    result = subprocess.run(
        [sys.executable, str(_TOOL), str(root)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "OUTPOST_GATEWAY_HOTS is not a variable outpost-gateway reads" in result.stdout
