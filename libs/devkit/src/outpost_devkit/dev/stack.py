"""The whole platform on one machine: what ``make dev`` runs and the e2e tests start.

``DevStack(base_dir).start()`` takes ``base_dir/dev.lock``, starts (or reuses) nats-server and
PostgreSQL under ``base_dir``, migrates every service, applies the streams, starts every
service and the gateway as child processes, waits until all are ready, makes sure a demo
organization with an API key exists and writes ``base_dir/dev-credentials.json`` (docs/api.md,
"Development credentials"). ``stop()`` undoes all of it except the data, which the next run
reuses. Nothing depends on the current directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from outpost_devkit.infra import NatsServer, PostgresCluster, free_port
from outpost_devkit.infra._process import log_tail
from outpost_kit import deploy
from outpost_kit.broker_pki import BrokerPki, ensure_broker_pki
from outpost_kit.db.provision import service_dsn
from outpost_kit.deploy import CREDENTIALS_NAME
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

READY_TIMEOUT = 60.0
MIGRATE_TIMEOUT = 300.0
STOP_TIMEOUT = 10.0

LOCK_NAME = "dev.lock"
STATE_NAME = "dev-state.json"
_TAG_WIDTH = max(len(name) for name in (*ALL_SERVICES, "dev")) + 2
_COLOURS = {
    "identity": "36",
    "devices": "32",
    "readings": "34",
    "alerting": "35",
    "exports": "33",
    "fleet": "92",
    "gateway": "96",
    "dev": "1",
}
_MQTT_LISTEN = re.compile(r"^mqtt \{ listen: 127\.0\.0\.1:(\d+)\b", re.MULTILINE)


class DevStackError(RuntimeError):
    """The stack could not start, or a part of it failed."""


class AlreadyRunning(DevStackError):
    """Another supervisor holds ``base_dir/dev.lock``."""

    def __init__(self, base_dir: Path, pid: int | None) -> None:
        self.pid = pid
        who = f"PID {pid}" if pid else "another process"
        super().__init__(
            f"a dev stack is already running in {base_dir} ({who} holds {base_dir / LOCK_NAME}); "
            "stop it first (Ctrl-C there, or `outpost-dev down`)"
        )


class ServiceDied(DevStackError):
    """A service process exited while the stack was running."""

    def __init__(self, service: str, code: int | None, log_path: Path) -> None:
        self.service = service
        self.code = code
        super().__init__(
            f"{service} exited unexpectedly (code {code}); log tail ({log_path}):\n"
            f"{log_tail(log_path)}"
        )


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def choose_port(preferred: int | None, taken: Iterable[int] = ()) -> int:
    """``preferred`` if it is free, else a free port chosen by the kernel."""
    taken = set(taken)
    if preferred is not None and preferred not in taken and port_is_free(preferred):
        return preferred
    while True:
        port = free_port()
        if port not in taken:
            return port


def lock_holder(base_dir: Path) -> int | None:
    """The PID of the supervisor running in ``base_dir``, or None if none is."""
    path = Path(base_dir) / LOCK_NAME
    if not path.exists():
        return None
    with path.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(path) or -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: a ``preexec_fn`` so the child gets SIGTERM if the supervisor dies without
    cleaning up (e.g. SIGKILL). libc is loaded here, in the parent: nothing is imported
    between fork and exec."""
    if sys.platform != "linux":
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:
        prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG

    return set_pdeathsig


class _LogPrinter:
    """Writes prefixed lines to the sink (one at a time) and raw lines to per-service logs."""

    def __init__(self, sink: IO[str], log_dir: Path) -> None:
        self.sink = sink
        self.log_dir = log_dir
        self._lock = threading.Lock()
        try:
            self._colour = sink.isatty()
        except (AttributeError, ValueError):
            self._colour = False

    def tag(self, name: str) -> str:
        tag = f"[{name}]".ljust(_TAG_WIDTH)
        if self._colour:
            return f"\x1b[{_COLOURS.get(name, '37')}m{tag}\x1b[0m"
        return tag

    def line(self, name: str, text: str) -> None:
        with self._lock:
            try:
                self.sink.write(f"{self.tag(name)} {text}\n")
                self.sink.flush()
            except (OSError, ValueError):
                pass  # a closed terminal must not kill the pump

    def text(self, text: str) -> None:
        """Unprefixed output (the credentials banner), not interleaved with log lines."""
        with self._lock:
            self.sink.write(text if text.endswith("\n") else text + "\n")
            self.sink.flush()

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


class _Child:
    def __init__(self, name: str, process: subprocess.Popen[bytes], ready_url: str) -> None:
        self.name = name
        self.process = process
        self.ready_url = ready_url
        self.pump: threading.Thread | None = None


class DevStack:
    """nats-server, PostgreSQL and every Outpost service, supervised, under ``base_dir``.

    A port of None, or a preferred port that is taken, means "pick a free one". ``services``
    narrows what runs (default: all six; the gateway is needed for the demo credentials).
    ``database_url``, when given, is an administrator DSN of an existing PostgreSQL used
    instead of a private cluster.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        gateway_port: int | None = 8080,
        nats_port: int | None = 4222,
        pg_port: int | None = 5432,
        mqtt_port: int | None = 1883,
        log_sink: IO[str] | None = None,
        services: Sequence[str] = ALL_SERVICES,
        database_url: str | None = None,
    ) -> None:
        unknown = set(services) - set(ALL_SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {ALL_SERVICES}")
        if "gateway" not in services or "identity" not in services:
            raise ValueError("the dev stack needs at least identity and gateway")
        self.base_dir = Path(base_dir).resolve()
        self.services = tuple(s for s in ALL_SERVICES if s in services)
        self._want = {
            "gateway": gateway_port,
            "nats": nats_port,
            "pg": pg_port,
            "mqtt": mqtt_port,
        }
        self._database_url = database_url
        self._printer = _LogPrinter(log_sink or sys.stdout, self.base_dir / "logs")
        self._lock_file: IO[str] | None = None
        self.nats: NatsServer | None = None
        self.pg: PostgresCluster | None = None
        self.admin_dsn = ""  # set by start(): tests start extra replicas against it
        self._children: dict[str, _Child] = {}
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._died: ServiceDied | None = None
        self.credentials: dict[str, Any] | None = None
        self.gateway_url = ""
        self.mqtt_port = 0
        self.broker = BrokerPki(self.base_dir / "broker")

    # -- public -----------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "logs"

    @property
    def credentials_path(self) -> Path:
        return self.base_dir / CREDENTIALS_NAME

    def start(self) -> dict[str, Any]:
        """Bring everything up; returns the development credentials. On failure, everything
        this call started is stopped again before the error propagates."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def wait(self, timeout: float | None = None) -> None:
        """Block until ``request_stop()`` (returns) or a service dies (raises ``ServiceDied``).

        Waits in short slices so the main thread's signal handlers keep running.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._wake.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            self._wake.wait(0.25)
        if self._died is not None:
            raise self._died

    def nats_service_url(self, user: str = DEV_NATS_USER) -> str:
        """The broker URL with a process's credentials (``outpost-dev``, the stream
        administrator and tooling user, by default): its active slot (``nats_login``)."""
        assert self.nats is not None
        slot, password = nats_login(self._passwords(), user)
        return f"tls://{slot}:{password}@127.0.0.1:{self.nats.port}"

    def nats_tls_env(self) -> dict[str, str]:
        """The ``OUTPOST_NATS_*`` variables a service process (or a replica) needs."""
        return {
            "OUTPOST_NATS_TLS_CA": str(self.broker.ca_file),
            "OUTPOST_NATS_TLS_CERT": str(self.broker.service_cert),
            "OUTPOST_NATS_TLS_KEY": str(self.broker.service_key),
        }

    def nats_tls(self) -> ssl.SSLContext:
        """A service's TLS context for the broker (tests connect with it as ``outpost-dev``)."""
        from outpost_kit.messaging import client_tls

        context = client_tls(
            str(self.broker.ca_file), str(self.broker.service_cert), str(self.broker.service_key)
        )
        assert context is not None
        return context

    def pid(self, service: str) -> int:
        """The PID of a running service (tests pause one to see the gateway answer 503)."""
        return self._children[service].process.pid

    def readiness(self) -> dict[str, int]:
        """Each service's ``/readyz`` answer now (0: no answer, or its process has exited):
        chaos tests check that every service recovered from a broker or database restart
        on its own, without being restarted."""
        return {
            name: 0 if child.process.poll() is not None else _http_status(child.ready_url, 1.0)
            for name, child in self._children.items()
        }

    def metrics_urls(self) -> dict[str, str]:
        """Each running service's Prometheus endpoint (the gateway's on its HTTP port, the
        others' beside their ``/readyz``)."""
        return {
            name: child.ready_url.removesuffix("/readyz") + "/metrics"
            for name, child in self._children.items()
        }

    def echo(self, text: str) -> None:
        """Print unprefixed text to the sink without interleaving it with service logs."""
        self._printer.text(text)

    def request_stop(self) -> None:
        """Make ``wait()`` return (safe from a signal handler); call ``stop()`` afterwards."""
        self._wake.set()

    def stop(self) -> None:
        """Stop every child (SIGTERM, SIGKILL after 10 s), then nats-server and PostgreSQL.
        Their data stays for the next run. Idempotent."""
        self._stopping.set()
        self._wake.set()
        children = list(reversed(self._children.values()))
        for child in children:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in children:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._printer.line("dev", f"{child.name} did not stop in time; killing it")
                child.process.kill()
                child.process.wait()
        for child in children:
            if child.pump is not None:
                child.pump.join(timeout=5.0)
        self._children.clear()
        if self.nats is not None:
            self.nats.stop()
            self.nats = None
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        with contextlib.suppress(FileNotFoundError):
            (self.base_dir / STATE_NAME).unlink()
        self._release_lock()

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start-up steps ---------------------------------------------------------------

    def _start(self) -> dict[str, Any]:
        say = self._say
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._start_nats()
        assert self.nats is not None
        say(f"nats-server at {self.nats.url} (MQTT on 127.0.0.1:{self.mqtt_port})")
        admin_dsn = self.admin_dsn = self._start_postgres()
        passwords = self._passwords()
        self._migrate(admin_dsn, passwords)
        _run_coroutine(self._apply_streams(self.nats_service_url()))
        say("streams and consumers applied")
        env = self._service_envs(admin_dsn, passwords)
        for name in self.services:
            self._spawn(name, env[name])
        self._write_state()
        self._wait_ready()
        say("every service is ready")
        operator_key = self._operator_key(env["identity"])
        org = self._demo_org(operator_key)
        creds: dict[str, Any] = {
            "gatewayUrl": self.gateway_url,
            "natsUrl": self.nats.url,
            "mqttUrl": f"mqtts://127.0.0.1:{self.mqtt_port}",
            "brokerCaFile": str(self.broker.ca_file),
            "operatorKey": operator_key,
            "organization": org,
        }
        _write_private(self.credentials_path, json.dumps(creds, indent=2) + "\n")
        self.credentials = creds
        return creds

    def _say(self, text: str) -> None:
        self._printer.line("dev", text)

    def _acquire_lock(self) -> None:
        path = self.base_dir / LOCK_NAME
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise AlreadyRunning(self.base_dir, _pid_in(path)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def _release_lock(self) -> None:
        if self._lock_file is None:
            return
        with contextlib.suppress(OSError):
            self._lock_file.seek(0)
            self._lock_file.truncate()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()
        self._lock_file = None

    def _start_nats(self) -> None:
        store = self.base_dir / "nats"
        running = NatsServer.attach(store)
        if running is not None:
            config = (store / "nats.conf").read_text()
            match = _MQTT_LISTEN.search(config)
            wanted = (
                broker_config(self.broker, int(match.group(1)), self._passwords())
                if match is not None
                else ""
            )
            if match is None or wanted not in config:
                # started without MQTT, or with other users or permissions: start afresh
                running.stop()
            else:
                self.nats, self.mqtt_port = running, int(match.group(1))
                self._say(f"reusing nats-server (PID {running.pid})")
                return
        nats_port = choose_port(self._want["nats"])
        self.mqtt_port = choose_port(self._want["mqtt"], taken=[nats_port])
        monitor = choose_port(None, taken=[nats_port, self.mqtt_port])
        self.broker = ensure_broker_pki(self.base_dir / "broker")
        self.nats = NatsServer.start(
            store,
            port=nats_port,
            monitor_port=monitor,
            server_name="outpost-dev",
            extra_config=broker_config(self.broker, self.mqtt_port, self._passwords()),
        )

    def _start_postgres(self) -> str:
        if self._database_url:
            self._say("using the PostgreSQL given by DATABASE_URL")
            return self._database_url
        self.pg = PostgresCluster.start(
            self.base_dir / "pg", port=choose_port(self._want["pg"]), fast=False
        )
        self._say(f"postgres on 127.0.0.1:{self.pg.port} (data in {self.pg.data_dir})")
        return self.pg.admin_dsn

    def _passwords(self) -> dict[str, str]:
        return ensure_secrets(self.base_dir / SECRETS_NAME)

    def _executable(self, service: str) -> str:
        path = Path(sys.executable).parent / f"outpost-{service}"
        if not path.exists():
            raise DevStackError(
                f"{path} not found: is the outpost-{service} package installed (uv sync)?"
            )
        return str(path)

    def _base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _migrate(self, admin_dsn: str, passwords: Mapping[str, str]) -> None:
        db_services = [s for s in self.services if s in DB_SERVICES]
        self._say(f"migrating {', '.join(db_services)}")

        def run(service: str) -> tuple[str, int, str]:
            env = self._base_env()
            env["OUTPOST_ADMIN_DATABASE_URL"] = admin_dsn
            env[f"OUTPOST_{service.upper()}_DB_PASSWORD"] = passwords[service]
            try:
                result = subprocess.run(
                    [self._executable(service), "migrate"],
                    env=env,
                    cwd=self.base_dir,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=MIGRATE_TIMEOUT,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                return service, -1, f"timed out after {MIGRATE_TIMEOUT:.0f}s\n{exc.output or ''}"
            output = (result.stdout or "") + (result.stderr or "")
            with self._printer.log_path(service).open("a") as log:
                log.write(output)
            return service, result.returncode, output

        with ThreadPoolExecutor(max_workers=len(db_services)) as pool:
            results = list(pool.map(run, db_services))
        failed = [r for r in results if r[1] != 0]
        if failed:
            details = "\n".join(
                f"--- outpost-{s} migrate exited {code}:\n{out.strip()}" for s, code, out in failed
            )
            raise DevStackError(f"migrations failed:\n{details}")

    async def _apply_streams(self, nats_url: str) -> None:
        from outpost_contracts.streams import CONSUMERS, STREAMS
        from outpost_kit.messaging import apply_streams, connect

        nc = await connect(nats_url, "outpost-dev", tls=self.nats_tls())
        try:
            await apply_streams(nc.jetstream(), STREAMS, CONSUMERS)
        finally:
            await nc.close()

    def _service_envs(
        self, admin_dsn: str, passwords: Mapping[str, str]
    ) -> dict[str, dict[str, str]]:
        assert self.nats is not None
        taken: list[int] = [self.nats.port, self.nats.monitor_port, self.mqtt_port]
        if self.pg is not None:
            taken.append(self.pg.port)
        gateway_port = choose_port(self._want["gateway"], taken)
        taken.append(gateway_port)
        self.gateway_url = f"http://127.0.0.1:{gateway_port}"
        envs: dict[str, dict[str, str]] = {}
        for service in self.services:
            prefix = f"OUTPOST_{service.upper()}_"
            env = self._base_env()
            env["OUTPOST_NATS_URL"] = self.nats_service_url(service)
            env.update(self.nats_tls_env())
            health = choose_port(None, taken)
            taken.append(health)
            env[prefix + "HEALTH_PORT"] = str(health)
            env[prefix + "HEALTH_HOST"] = "127.0.0.1"
            if service in DB_SERVICES:
                env[prefix + "DATABASE_URL"] = service_dsn(admin_dsn, service, passwords[service])
            if service == "identity":
                env[prefix + "KEY_ENCRYPTION_KEY"] = passwords[KEY_ENCRYPTION_KEY]
            if service == "devices":
                env[prefix + "CA_ENCRYPTION_KEY"] = passwords[CA_ENCRYPTION_KEY]
                env[prefix + "PUBLIC_API_URL"] = self.gateway_url
                env[prefix + "PUBLIC_NATS_URL"] = self.nats.url
                env[prefix + "PUBLIC_MQTT_URL"] = f"mqtts://127.0.0.1:{self.mqtt_port}"
                env[prefix + "DEVICE_ROOT_CERT"] = str(self.broker.device_root_cert)
                env[prefix + "BROKER_CA_CHAIN_FILE"] = str(self.broker.ca_file)
                env[prefix + "DEVICE_ROOT_KEY"] = str(self.broker.device_root_key)
                env[prefix + "BROKER_ISSUER_SEED"] = self.broker.issuer_seed
                env[prefix + "BROKER_SYSTEM_URL"] = self.nats_service_url(SYSTEM_NATS_USER)
            if service == "alerting":
                env[prefix + "SECRET_ENCRYPTION_KEY"] = passwords[SECRET_ENCRYPTION_KEY]
                # Webhooks to this machine, so they can be tried on one machine (docs/api.md);
                # an operator's own setting wins.
                env.setdefault(prefix + "WEBHOOK_ALLOW_LOOPBACK", "true")
            if service == "gateway":
                env[prefix + "HOST"] = "127.0.0.1"
                env[prefix + "PORT"] = str(gateway_port)
                env.setdefault(prefix + "DOWNLOAD_SIGNING_KEYS", passwords[DOWNLOAD_SIGNING_KEY])
            if service == "exports":
                # Archives are written here before upload (not the machine's /tmp).
                env.setdefault(prefix + "SPOOL_DIR", str(self.base_dir / "exports-spool"))
            envs[service] = env
        return envs

    def _spawn(self, name: str, env: dict[str, str]) -> None:
        if name == "gateway":
            ready_url = f"{self.gateway_url}/readyz"
        else:
            ready_url = f"http://127.0.0.1:{env[f'OUTPOST_{name.upper()}_HEALTH_PORT']}/readyz"
        in_main = threading.current_thread() is threading.main_thread()
        # Own session: Ctrl-C reaches only the supervisor, which stops children in order.
        process = subprocess.Popen(
            [self._executable(name), "serve"],
            env=env,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # The death signal fires when the spawning *thread* exits: only from the main one.
            preexec_fn=_parent_death_signal() if in_main else None,
        )
        child = _Child(name, process, ready_url)
        child.pump = threading.Thread(
            target=self._pump, args=(child,), name=f"dev-log-{name}", daemon=True
        )
        self._children[name] = child
        child.pump.start()
        self._say(f"started {name} (PID {process.pid})")

    def _pump(self, child: _Child) -> None:
        assert child.process.stdout is not None
        with self._printer.log_path(child.name).open("ab") as log:
            for raw in iter(child.process.stdout.readline, b""):
                log.write(raw)
                log.flush()
                self._printer.line(child.name, raw.decode(errors="replace").rstrip("\r\n"))
        code = child.process.wait()
        if not self._stopping.is_set():
            self._printer.line(child.name, f"*** exited unexpectedly with code {code} ***")
            if self._died is None:
                self._died = ServiceDied(child.name, code, self._printer.log_path(child.name))
            self._wake.set()

    def _write_state(self) -> None:
        assert self.nats is not None
        state = {
            "pid": os.getpid(),
            "gatewayUrl": self.gateway_url,
            "natsUrl": self.nats.url,
            "mqttUrl": f"mqtts://127.0.0.1:{self.mqtt_port}",
            "postgresPort": self.pg.port if self.pg else None,
            "services": {
                name: {"pid": c.process.pid, "readyz": c.ready_url}
                for name, c in self._children.items()
            },
        }
        _write_private(self.base_dir / STATE_NAME, json.dumps(state, indent=2) + "\n")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        pending = dict(self._children)
        while pending:
            if self._died is not None:
                raise self._died
            for name, child in list(pending.items()):
                if _http_status(child.ready_url, timeout=1.0) == 200:
                    del pending[name]
            if not pending:
                return
            if time.monotonic() >= deadline:
                tails = "\n".join(
                    f"--- {name} ({child.ready_url}), log tail:\n"
                    f"{log_tail(self._printer.log_path(name), 20)}"
                    for name, child in pending.items()
                )
                raise DevStackError(
                    f"not ready after {READY_TIMEOUT:.0f}s: {', '.join(pending)}\n{tails}"
                )
            time.sleep(0.25)

    def _operator_key(self, identity_env: dict[str, str]) -> str:
        try:
            return deploy.operator_key(self._executable("identity"), identity_env, self.base_dir)
        except deploy.CredentialsError as exc:
            raise DevStackError(str(exc)) from exc

    def _demo_org(self, operator_key: str) -> dict[str, str]:
        try:
            return deploy.demo_organization(
                self.gateway_url, operator_key, self.base_dir, self._say
            )
        except deploy.CredentialsError as exc:
            raise DevStackError(str(exc)) from exc


def _run_coroutine(coro: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` on a helper thread, so ``start()`` works inside a running loop too."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="dev-async")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _http_status(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0
