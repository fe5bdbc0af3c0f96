"""Deployment material for docker compose and Kubernetes (docs/operations.md).

``outpost-admin deploy init`` writes, under one directory, what ``make dev`` makes under
``.outpost/`` and a deployment must bring itself, all of it generated and none committed:

- ``broker/``: the broker CA, nats-server's certificate (naming the hosts clients reach it
  by), the services' client certificate, the platform device root and the auth-callout
  issuer seed (``outpost_kit.broker_pki``);
- ``secrets.json``: each service's database and broker password and the Fernet keys;
- ``nats/security.conf``: nats-server's TLS, users, auth callout and MQTT listener, included
  by the committed ``deploy/nats/nats.conf``;
- ``env/<service>.env``: each process's secret variables (``KEY=VALUE`` lines that both
  the image's entry point and ``kubectl create secret --from-env-file`` read literally), and
  ``env/admin.env`` for ``outpost-admin streams apply``;
- with ``--kubernetes-namespace``, ``kubernetes-secrets.yaml``: the Secrets the manifests
  under ``deploy/k8s`` name, holding the above.

It is idempotent: what exists is kept (a restarted deployment must still open what it
sealed), what is missing is made. ``outpost-admin deploy credentials`` is the compose
stack's last step: the operator key and a demo organization's API key, printed as
``make dev`` prints them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from outpost_kit.broker_pki import BrokerPki, ensure_broker_pki
from outpost_kit.db.provision import service_dsn
from outpost_kit.material import (
    ALL_SERVICES,
    CA_ENCRYPTION_KEY,
    DB_SERVICES,
    DEV_NATS_USER,
    DOWNLOAD_SIGNING_KEY,
    KEY_ENCRYPTION_KEY,
    SECRET_ENCRYPTION_KEY,
    SECRETS_NAME,
    SYSTEM_NATS_USER,
    _write_private,
    broker_config,
    ensure_secrets,
    nats_login,
)

# Where every container sees the material (compose volume, Kubernetes Secret mounts).
MOUNT = "/etc/outpost"
MQTT_PORT = 1883
# One line per variable, read literally by the image's entry point and by kubectl's
# --from-env-file: no quoting, so no line breaks and no surrounding blanks.
_PLAIN = re.compile(r"^[^\s](?:[^\r\n]*[^\s])?$|^$")
# The Secrets deploy/k8s names (tools/check_deploy.py checks each is referenced and made).
BROKER_SECRET = "outpost-broker-tls"
NATS_SECRET = "outpost-nats-security"
ADMIN_DATABASE_SECRET = "outpost-admin-database"


def env_secret(process: str) -> str:
    """The Kubernetes Secret holding ``env/<process>.env``."""
    return f"outpost-{process}-env"


def secret_names() -> tuple[str, ...]:
    """Every Secret ``kubernetes-secrets.yaml`` holds."""
    return (
        BROKER_SECRET,
        NATS_SECRET,
        ADMIN_DATABASE_SECRET,
        *(env_secret(p) for p in (*ALL_SERVICES, "admin")),
    )


def _host_of(url: str) -> str:
    match = re.match(r"^[a-z]+://(?:[^@/]*@)?([^:/]+)", url)
    if match is None:
        raise ValueError(f"not a URL with a host: {url!r}")
    return match.group(1)


def _nats_url(base: str, secrets: Mapping[str, str], user: str) -> str:
    """``base`` with the login of ``user``'s active credential slot (decision 74)."""
    slot, password = nats_login(secrets, user)
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{slot}:{password}@{rest.split('@')[-1]}"


def service_env(
    service: str,
    secrets: Mapping[str, str],
    *,
    nats_url: str,
    admin_dsn: str,
    issuer_seed: str,
    mount: str = MOUNT,
) -> dict[str, str]:
    """The generated variables of one process: its broker credentials and certificate, its
    database role's DSN (and the password ``migrate`` gives the role), its keys."""
    broker = BrokerPki(Path(mount) / "broker")
    prefix = f"OUTPOST_{service.upper()}_"
    env = {
        "OUTPOST_NATS_URL": _nats_url(nats_url, secrets, service),
        "OUTPOST_NATS_TLS_CA": str(broker.ca_file),
        "OUTPOST_NATS_TLS_CERT": str(broker.service_cert),
        "OUTPOST_NATS_TLS_KEY": str(broker.service_key),
    }
    if service in DB_SERVICES:
        env[prefix + "DATABASE_URL"] = service_dsn(admin_dsn, service, secrets[service])
        env[prefix + "DB_PASSWORD"] = secrets[service]
    if service == "identity":
        env[prefix + "KEY_ENCRYPTION_KEY"] = secrets[KEY_ENCRYPTION_KEY]
    if service == "devices":
        env[prefix + "CA_ENCRYPTION_KEY"] = secrets[CA_ENCRYPTION_KEY]
        env[prefix + "DEVICE_ROOT_CERT"] = str(broker.device_root_cert)
        env[prefix + "BROKER_CA_CHAIN_FILE"] = str(broker.ca_file)  # told to devices
        env[prefix + "DEVICE_ROOT_KEY"] = str(broker.device_root_key)
        env[prefix + "BROKER_ISSUER_SEED"] = issuer_seed
        env[prefix + "BROKER_SYSTEM_URL"] = _nats_url(nats_url, secrets, SYSTEM_NATS_USER)
    if service == "alerting":
        env[prefix + "SECRET_ENCRYPTION_KEY"] = secrets[SECRET_ENCRYPTION_KEY]
    if service == "gateway":
        # Export download links (decision 65): every gateway replica signs and checks them.
        env[prefix + "DOWNLOAD_SIGNING_KEYS"] = secrets[DOWNLOAD_SIGNING_KEY]
    return env


def admin_env(secrets: Mapping[str, str], *, nats_url: str, mount: str = MOUNT) -> dict[str, str]:
    """``outpost-admin streams apply``'s variables (the tooling user)."""
    broker = BrokerPki(Path(mount) / "broker")
    return {
        "OUTPOST_NATS_URL": _nats_url(nats_url, secrets, DEV_NATS_USER),
        "OUTPOST_NATS_TLS_CA": str(broker.ca_file),
        "OUTPOST_NATS_TLS_CERT": str(broker.service_cert),
        "OUTPOST_NATS_TLS_KEY": str(broker.service_key),
    }


def render_env(env: Mapping[str, str]) -> str:
    for key, value in env.items():
        if not _PLAIN.fullmatch(value):
            raise ValueError(f"{key}'s value cannot be one line of an env file as it is")
    return "".join(f"{key}={value}\n" for key, value in sorted(env.items()))


def init(
    out: Path,
    *,
    broker_hosts: Sequence[str],
    nats_url: str,
    admin_dsn: str,
    mount: str = MOUNT,
    kubernetes_namespace: str | None = None,
    stream_replicas: int = 1,
) -> dict[str, dict[str, str]]:
    """Write (or complete) the material under ``out``; returns each process's variables.
    ``stream_replicas``: of nats-server's MQTT streams (3 on a three-node cluster)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hosts = [*broker_hosts, _host_of(nats_url)]
    broker = ensure_broker_pki(out / "broker", server_names=hosts)
    secrets = ensure_secrets(out / SECRETS_NAME)
    conf = broker_config(
        broker,
        MQTT_PORT,
        secrets,
        listen_host="0.0.0.0",
        files_at=Path(mount) / "broker",
        mqtt_stream_replicas=stream_replicas,
    )
    (out / "nats").mkdir(exist_ok=True)
    _write_private(out / "nats" / "security.conf", conf)
    (out / "env").mkdir(exist_ok=True)
    envs = {
        s: service_env(
            s,
            secrets,
            nats_url=nats_url,
            admin_dsn=admin_dsn,
            issuer_seed=broker.issuer_seed,
            mount=mount,
        )
        for s in ALL_SERVICES
    }
    envs["admin"] = admin_env(secrets, nats_url=nats_url, mount=mount)
    for process, env in envs.items():
        _write_private(out / "env" / f"{process}.env", render_env(env))
    if kubernetes_namespace is not None:
        _write_private(
            out / "kubernetes-secrets.yaml",
            kubernetes_secrets(out, envs, kubernetes_namespace, admin_dsn),
        )
    return envs


def kubernetes_secrets(
    out: Path, envs: Mapping[str, Mapping[str, str]], namespace: str, admin_dsn: str
) -> str:
    """The Secrets of ``deploy/k8s`` as one multi-document YAML (JSON documents, which YAML
    reads as they are)."""
    broker = BrokerPki(out / "broker")
    files = [
        broker.ca_file,
        broker.server_cert,
        broker.server_key,
        broker.service_cert,
        broker.service_key,
        broker.device_root_cert,
        broker.device_root_key,
        broker.client_ca_file,
    ]

    def secret(name: str, data: Mapping[str, str], component: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {
                    "app.kubernetes.io/part-of": "outpost",
                    "app.kubernetes.io/component": component,
                },
            },
            "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }

    docs = [
        secret(BROKER_SECRET, {f.name: f.read_text() for f in files}, "nats"),
        secret(
            NATS_SECRET, {"security.conf": (out / "nats" / "security.conf").read_text()}, "nats"
        ),
        # The migrations Job's administrator DSN (managed PostgreSQL's, in production).
        secret(ADMIN_DATABASE_SECRET, {"OUTPOST_ADMIN_DATABASE_URL": admin_dsn}, "migrations"),
        *(secret(env_secret(p), env, p) for p, env in envs.items()),
    ]
    return "".join("---\n" + json.dumps(d, indent=2, sort_keys=True) + "\n" for d in docs)


def credentials(state_dir: Path, gateway_url: str, public: Mapping[str, str]) -> dict[str, Any]:
    """The platform operator key and the demo organization's API key, made once and reused
    (kept in ``state_dir/dev-credentials.json``): what ``make dev`` prints. Runs where
    ``outpost-identity`` and identity's environment are (the compose ``credentials`` job)."""
    identity = str(Path(sys.executable).parent / "outpost-identity")
    key = operator_key(identity, os.environ, state_dir)
    org = demo_organization(gateway_url, key, state_dir, print)
    creds: dict[str, Any] = {
        "gatewayUrl": public.get("gatewayUrl", gateway_url),
        "natsUrl": public.get("natsUrl", ""),
        "mqttUrl": public.get("mqttUrl", ""),
        "brokerCaFile": public.get("brokerCaFile", ""),
        "operatorKey": key,
        "organization": org,
    }
    _write_private(state_dir / CREDENTIALS_NAME, json.dumps(creds, indent=2) + "\n")
    return creds


# -- the demo credentials (``make dev`` and the compose ``credentials`` job) ---------------

CREDENTIALS_NAME = "dev-credentials.json"
OPERATOR_ACCEPT_TIMEOUT = 15.0
DEMO_ORG = "demo"
DEMO_KEY_NAME = "demo"


class CredentialsError(RuntimeError):
    """The operator key or the demo organization could not be made."""


def operator_key(identity: str, identity_env: Mapping[str, str], state_dir: Path) -> str:
    """The platform operator's key from ``identity bootstrap-operator`` (the executable
    ``identity``, run in ``state_dir`` with identity's environment), reusing the one kept in
    ``state_dir``'s credentials file when identity still knows it."""
    previous = _read_json(state_dir / CREDENTIALS_NAME).get("operatorKey")
    args = [identity, "bootstrap-operator"]
    if isinstance(previous, str) and previous:
        args += ["--reuse", previous]
    result = subprocess.run(
        args,
        env=dict(identity_env),
        cwd=state_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    keys = [ln.strip() for ln in result.stdout.splitlines() if ln.strip().startswith("sk_")]
    if result.returncode != 0 or not keys:
        raise CredentialsError(
            f"outpost-identity bootstrap-operator failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return keys[-1]


def demo_organization(
    gateway_url: str, operator_key: str, state_dir: Path, say: Callable[[str], None]
) -> dict[str, str]:
    """The demo organization and its API key, made through the gateway at ``gateway_url``
    (the ones kept in ``state_dir``'s credentials file when the gateway still accepts them)."""
    api = _Api(gateway_url)
    # The gateway learns the operator key from an identity event: wait until it does.
    deadline = time.monotonic() + OPERATOR_ACCEPT_TIMEOUT
    while True:
        status, body = api.call("GET", f"/api/v1/admin/organizations?name={DEMO_ORG}", operator_key)
        if status == 200:
            break
        if time.monotonic() >= deadline:
            raise CredentialsError(
                f"the gateway did not accept the operator key within "
                f"{OPERATOR_ACCEPT_TIMEOUT:.0f}s (last answer {status}: {body})"
            )
        time.sleep(0.25)
    previous = _read_json(state_dir / CREDENTIALS_NAME).get("organization")
    if isinstance(previous, dict) and previous.get("apiKey") and previous.get("id"):
        status, _ = api.call("GET", "/api/v1/devices?limit=1", previous["apiKey"])
        # 200 is the plain yes. Any answer but 401/403 means the gateway accepted the
        # key and something behind it failed (e.g. devices not started): still valid.
        if status not in (401, 403):
            if status != 200:
                say(f"demo key check answered {status}; reusing the key anyway")
            return {"id": previous["id"], "name": DEMO_ORG, "apiKey": previous["apiKey"]}
    status, body = api.call("POST", "/api/v1/admin/organizations", operator_key, {"name": DEMO_ORG})
    if status == 201:
        org_id = body["id"]
    elif status == 409:
        status, body = api.call("GET", f"/api/v1/admin/organizations?name={DEMO_ORG}", operator_key)
        found = (
            [o for o in body.get("data", []) if o.get("name") == DEMO_ORG] if status == 200 else []
        )
        if not found:
            raise CredentialsError(
                f"organization {DEMO_ORG!r} exists but lookup gave {status}: {body}"
            )
        org_id = found[0]["id"]
    else:
        raise CredentialsError(f"creating organization {DEMO_ORG!r} failed ({status}): {body}")
    # The gateway learns of the new organization from identity's events (decision 10):
    # until its cache has caught up, X-Organization names an unknown organization (404).
    deadline = time.monotonic() + 15
    while True:
        status, body = api.call(
            "POST",
            "/api/v1/api-keys",
            operator_key,
            {"name": DEMO_KEY_NAME},
            headers={"X-Organization": org_id},
        )
        if status != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if status != 201:
        raise CredentialsError(f"creating the demo API key failed ({status}): {body}")
    say(f"created organization {DEMO_ORG!r} ({org_id}) and its API key")
    return {"id": org_id, "name": DEMO_ORG, "apiKey": body["key"]}


class _Api:
    """A few JSON calls to the gateway, with the standard library only."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(
        self,
        method: str,
        path: str,
        key: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {key}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())
        except OSError as error:
            return 0, str(error)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw.decode(errors="replace")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
