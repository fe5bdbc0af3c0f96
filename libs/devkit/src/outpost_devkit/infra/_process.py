"""Small process and socket helpers shared by the nats-server and Postgres launchers."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10_000
_handed_out: set[int] = set()


def ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes outgoing connections' local ports from (Linux's default
    where it cannot be read)."""
    try:
        low, high = (int(v) for v in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago, for a server to bind.

    Chosen at random below the kernel's ephemeral range, never from it: a port the kernel
    hands out (bind to port 0) can be handed out again at once as the local port of any
    outgoing connection on the machine, and on a busy machine one did take it before
    Postgres bound it ("could not bind ... Address already in use"). A port below the
    range is only ever taken by a server that chose it, and one this process handed out
    already is never handed out again.
    """
    low, _ = ephemeral_ports()
    rng = random.SystemRandom()
    if low - 1 > _LOWEST_PORT:
        for _ in range(200):
            port = rng.randint(_LOWEST_PORT, low - 1)
            if port in _handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # an odd kernel range
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker_available(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers within ``timeout`` seconds.

    Having the ``docker`` CLI is not enough (these machines have the client but no
    engine), so ask the engine itself and treat any failure or slowness as "no".
    """
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def process_alive(pid: int, name: str | None = None) -> bool:
    """Whether ``pid`` is a live (non-zombie) process, optionally whose name is ``name``.

    Checking the name guards against a stale PID file whose number was reused by an
    unrelated process after a crash or reboot.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else (e.g. the postgres user)
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return True  # no procfs (e.g. macOS): the signal check is all we have
    try:
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
    except OSError:
        return False
    if fields.get("State", "").strip().startswith("Z"):
        return False
    return name is None or fields.get("Name", "").strip() == name[:15]


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone; True if it exited within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return not process_alive(pid)


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to ``pid``, ignoring a process that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def read_pid(path: Path) -> int | None:
    """The PID on the first line of ``path``, or None if missing or garbled."""
    try:
        first = path.read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None
