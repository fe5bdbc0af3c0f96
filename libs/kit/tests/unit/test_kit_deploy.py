"""``outpost-admin deploy init``: the material docker compose and Kubernetes deployments use."""

from __future__ import annotations

import base64
import ipaddress
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from outpost_kit import deploy
from outpost_kit.admin import main
from outpost_kit.material import ALL_SERVICES, SECRETS_NAME

pytestmark = pytest.mark.unit

ADMIN = "postgresql://postgres:admin-pw@db.internal:5432/outpost"


def _init(out: Path, **kwargs: object) -> dict[str, dict[str, str]]:
    options: dict[str, object] = {
        "broker_hosts": ["nats.outpost.svc.cluster.local", "10.0.0.7"],
        "nats_url": "tls://nats:4222",
        "admin_dsn": ADMIN,
        **kwargs,
    }
    return deploy.init(out, **options)  # type: ignore[arg-type]


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_every_process_gets_its_own_credentials_and_paths_where_containers_see_them(
    tmp_path: Path,
) -> None:
    envs = _init(tmp_path)
    secrets = json.loads((tmp_path / SECRETS_NAME).read_text())
    assert set(envs) == {*ALL_SERVICES, "admin"}
    for service in ALL_SERVICES:
        env = _env_file(tmp_path / "env" / f"{service}.env")
        assert env == envs[service]
        prefix = f"OUTPOST_{service.upper()}_"
        assert env["OUTPOST_NATS_URL"] == f"tls://{service}:{secrets[f'nats_{service}']}@nats:4222"
        assert env["OUTPOST_NATS_TLS_CA"] == "/etc/outpost/broker/broker-ca.pem"
        assert env["OUTPOST_NATS_TLS_CERT"] == "/etc/outpost/broker/service.pem"
        # the service's role, on the administrator's host and database, never the admin
        dsn = env[prefix + "DATABASE_URL"]
        assert dsn.endswith("@db.internal:5432/outpost")
        assert f"outpost_{service}:{secrets[service]}@" in dsn and "admin-pw" not in dsn
        assert env[prefix + "DB_PASSWORD"] == secrets[service]
    assert (
        envs["identity"]["OUTPOST_IDENTITY_KEY_ENCRYPTION_KEY"]
        == secrets["identity_key_encryption_key"]
    )
    devices = envs["devices"]
    assert devices["OUTPOST_DEVICES_BROKER_ISSUER_SEED"] == (
        (tmp_path / "broker" / "issuer.nk").read_text().strip()
    )
    assert devices["OUTPOST_DEVICES_BROKER_SYSTEM_URL"].startswith("tls://outpost-system:")
    assert devices["OUTPOST_DEVICES_DEVICE_ROOT_KEY"] == "/etc/outpost/broker/device-root.key"
    # What devices are told to verify the broker with (brokerCaChain, decision 78).
    assert devices["OUTPOST_DEVICES_BROKER_CA_CHAIN_FILE"] == "/etc/outpost/broker/broker-ca.pem"
    assert "OUTPOST_ALERTING_SECRET_ENCRYPTION_KEY" in envs["alerting"]
    assert envs["admin"]["OUTPOST_NATS_URL"].startswith("tls://outpost-dev:")
    for path in [*tmp_path.rglob("*.env"), tmp_path / SECRETS_NAME]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_a_second_run_keeps_what_exists(tmp_path: Path) -> None:
    first = _init(tmp_path)
    cert = (tmp_path / "broker" / "server.pem").read_bytes()
    again = _init(tmp_path)
    assert again == first
    assert (tmp_path / "broker" / "server.pem").read_bytes() == cert


def test_the_broker_certificate_names_the_hosts_clients_use(tmp_path: Path) -> None:
    _init(tmp_path)
    cert = x509.load_pem_x509_certificate((tmp_path / "broker" / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "nats.outpost.svc.cluster.local",
        "nats",  # from the NATS URL
    }
    assert set(names.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.7"),
    }


def test_nats_security_points_at_the_mount_and_listens_for_devices_everywhere(
    tmp_path: Path,
) -> None:
    _init(tmp_path, mount="/etc/outpost")
    conf = (tmp_path / "nats" / "security.conf").read_text()
    assert 'cert_file: "/etc/outpost/broker/server.pem"' in conf
    assert 'ca_file: "/etc/outpost/broker/client-cas.pem"' in conf
    assert "mqtt { listen: 0.0.0.0:1883" in conf
    assert str(tmp_path) not in conf


def test_mqtt_streams_take_the_cluster_replicas_from_the_stream_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 82: nats-server's MQTT streams at OUTPOST_NATS_STREAM_REPLICAS on a cluster,
    not its guess from the routes that resolve when the first device connects; one node (and
    make dev) keeps nats-server's default."""
    monkeypatch.setenv("OUTPOST_NATS_STREAM_REPLICAS", "3")
    assert main(["deploy", "init", str(tmp_path / "m"), "--database-url", ADMIN]) == 0
    monkeypatch.delenv("OUTPOST_NATS_STREAM_REPLICAS")
    conf = (tmp_path / "m" / "nats" / "security.conf").read_text()
    mqtt = conf[conf.index("mqtt {") :]
    assert "stream_replicas: 3" in mqtt
    _init(tmp_path / "one")
    assert "stream_replicas" not in (tmp_path / "one" / "nats" / "security.conf").read_text()


def test_kubernetes_secrets_hold_every_secret_the_manifests_name(tmp_path: Path) -> None:
    envs = _init(tmp_path, kubernetes_namespace="outpost")
    docs = list(yaml.safe_load_all((tmp_path / "kubernetes-secrets.yaml").read_text()))
    by_name = {d["metadata"]["name"]: d for d in docs}
    assert set(by_name) == set(deploy.secret_names())
    assert all(d["kind"] == "Secret" and d["metadata"]["namespace"] == "outpost" for d in docs)

    def data(name: str) -> dict[str, str]:
        return {k: base64.b64decode(v).decode() for k, v in by_name[name]["data"].items()}

    assert data("outpost-readings-env") == envs["readings"]
    assert data("outpost-admin-database") == {"OUTPOST_ADMIN_DATABASE_URL": ADMIN}
    assert data("outpost-nats-security")["security.conf"] == (
        (tmp_path / "nats" / "security.conf").read_text()
    )
    assert set(data("outpost-broker-tls")) == {
        "broker-ca.pem",
        "server.pem",
        "server.key",
        "service.pem",
        "service.key",
        "device-root.pem",
        "device-root.key",
        "client-cas.pem",
    }


def test_a_value_an_env_file_cannot_carry_is_refused() -> None:
    with pytest.raises(ValueError, match="OUTPOST_X"):
        deploy.render_env({"OUTPOST_X": "two\nlines"})


def test_the_command_prints_where_not_what(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code = main(
        [
            "deploy",
            "init",
            str(tmp_path / "m"),
            "--database-url",
            ADMIN,
            "--kubernetes-namespace",
            "outpost",
        ],
    )
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert exit_code == 0, output
    assert "kubernetes-secrets.yaml" in output
    secrets = json.loads((tmp_path / "m" / SECRETS_NAME).read_text())
    for value in secrets.values():
        assert value not in output
    assert "admin-pw" not in output
