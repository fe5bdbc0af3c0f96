"""The device simulator's pure helpers (``outpost_client.simulate``): what a simulated
device sends is what the platform expects — a CSR the provisioning endpoint accepts,
telemetry the readings contract decodes, and MQTT packets as MQTT 3.1.1 frames them."""

from __future__ import annotations

import dataclasses
import json
import struct
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from outpost_client import simulate as sim
from outpost_client.cli.simulate import parse_drift
from outpost_contracts.readings import TelemetryMessage

pytestmark = pytest.mark.unit


def test_the_csr_is_signed_by_a_p256_key_that_is_kept() -> None:
    key_pem, csr_pem = sim.key_and_csr()
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert csr.is_signature_valid
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    assert csr.public_key() == key.public_key()


def test_telemetry_is_what_the_readings_contract_decodes() -> None:
    ts = sim.rfc3339(1_700_000_000.25)
    assert ts == "2023-11-14T22:13:20.250Z"
    message = msgspec.json.decode(sim.telemetry_payload(7, ts, 21.5), type=TelemetryMessage)
    assert message.seq == 7
    [reading] = message.readings
    assert reading.sensor == "temperature"
    assert reading.value == 21.5
    assert reading.ts == datetime.fromisoformat("2023-11-14T22:13:20.250+00:00")


def _remaining(packet: bytes) -> tuple[int, int]:
    """MQTT's variable-length remaining length: (value, bytes it took)."""
    value = 0
    for used, byte in enumerate(packet[1:5], start=1):
        value |= (byte & 0x7F) << (7 * (used - 1))
        if not byte & 0x80:
            return value, used
    raise AssertionError("unterminated length")


def test_mqtt_connect_carries_the_client_id_and_credentials() -> None:
    packet = sim.mqtt_connect_packet("dev-1", username="svc", password="pw", keepalive=60)
    length, used = _remaining(packet)
    body = packet[1 + used :]
    assert packet[0] == 0x10 and length == len(body)
    assert body[:6] == b"\x00\x04MQTT" and body[6] == 4  # protocol 3.1.1
    assert body[7] == 0x80 | 0x40 | 0x02  # username, password, clean session
    assert struct.unpack("!H", body[8:10]) == (60,)
    assert body[10:] == b"\x00\x05dev-1\x00\x03svc\x00\x02pw"
    device = sim.mqtt_connect_packet("dev-1")  # a device: its certificate, no credentials
    assert device[1 + _remaining(device)[1] + 7] == 0x02


@pytest.mark.parametrize("qos", [0, 1])
def test_mqtt_publish_frames_topic_packet_id_and_payload(qos: int) -> None:
    payload = b"x" * 300  # a remaining length over 127 takes two bytes
    packet = sim.mqtt_publish_packet("outpost/tel/o/d", payload, qos, packet_id=513)
    length, used = _remaining(packet)
    body = packet[1 + used :]
    assert packet[0] == 0x30 | (qos << 1) and length == len(body) and used == 2
    assert body[:17] == b"\x00\x0foutpost/tel/o/d"
    rest = body[17:]
    if qos:
        assert struct.unpack("!H", rest[:2]) == (513,)
        rest = rest[2:]
    assert rest == payload


# --- desired state (ADR 0091) -------------------------------------------------------------


def test_a_report_patch_turns_the_previous_report_into_the_new_one() -> None:
    previous = {"led": True, "fan": {"speed": 2, "mode": "eco"}, "old": 1}
    new = {"led": True, "fan": {"speed": 3, "mode": "eco"}, "rate": 5}
    patch = sim.report_patch(previous, new)
    assert patch == {"old": None, "fan": {"speed": 3}, "rate": 5}
    assert sim.report_patch(new, new) == {}


def test_drift_sets_dotted_keys_over_the_desired_state() -> None:
    desired = {"sampling": {"interval": 10}, "led": True}
    assert sim.with_drift(desired, {"sampling.interval": 5, "debug.on": True}) == {
        "sampling": {"interval": 5},
        "led": True,
        "debug": {"on": True},
    }
    assert desired == {"sampling": {"interval": 10}, "led": True}  # not changed in place


def test_drift_options_parse_json_values_or_text() -> None:
    assert parse_drift("led=false") == ("led", False)
    assert parse_drift("mode=eco") == ("mode", "eco")
    assert parse_drift('a.b={"c": 1}') == ("a.b", {"c": 1})
    with pytest.raises(typer.BadParameter):
        parse_drift("nothing")


def test_kept_credentials_are_read_back(tmp_path: Path) -> None:
    device = sim.SimDevice(
        device_id="d1",
        name="gw-1",
        key_file="k",
        chain_file="c",
        telemetry_subject="outpost.tel.org1.d1",
    )
    (tmp_path / "d1.json").write_text(json.dumps(dataclasses.asdict(device)))
    assert sim.kept(tmp_path) == [device]
    assert sim.command_subject(device) == "outpost.cmd.org1.d1"
