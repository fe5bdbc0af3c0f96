"""Ports for throwaway servers (Postgres, nats-server, the dev stack's processes)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from outpost_devkit.infra import free_port

pytestmark = pytest.mark.integration


def test_free_ports_are_never_from_the_ephemeral_range_nor_handed_out_twice() -> None:
    """A port from the kernel's ephemeral range can become an outgoing
    connection's local port before the server binds it (a CI run's Postgres failed with
    "Address already in use"); free ports come from below that range, bindable, distinct."""
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not ranges.exists():
        pytest.skip("no Linux ephemeral port range to stay out of")
    low, high = (int(v) for v in ranges.read_text().split())
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        assert not low <= port <= high, (port, low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
