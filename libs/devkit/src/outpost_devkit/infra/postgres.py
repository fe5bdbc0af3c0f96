"""A private PostgreSQL cluster, for tests and ``make dev`` on machines without Docker.

It uses the PostgreSQL binaries already on the machine (or those bundled by the ``pgserver``
package), keeps everything under one data directory, listens on 127.0.0.1 only, and can be
found again by a later run through the data directory's ``postmaster.pid``.

Postgres refuses to run as root, so when we are root the server runs as the ``postgres``
system user (or ``nobody``) and the data directory is handed to that user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
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

log = logging.getLogger(__name__)

DATABASE = "outpost"
SUPERUSER = "postgres"
CONF_NAME = "outpost.conf"
LOG_NAME = "postgres.log"
START_TIMEOUT = 30
SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


def _has_server(bindir: Path) -> bool:
    return (bindir / "postgres").is_file() and (bindir / "initdb").is_file()


def find_pg_bindir() -> Path:
    """Where ``postgres``, ``initdb`` and ``pg_ctl`` live.

    Order: ``OUTPOST_PG_BINDIR``; ``pg_config --bindir`` (Debian's ``/usr/bin/pg_config`` is
    only a wrapper, hence the check that the server is really there); the newest Debian
    ``/usr/lib/postgresql/<v>/bin``; the binaries bundled in the ``pgserver`` package.
    """
    override = os.environ.get("OUTPOST_PG_BINDIR")
    if override:
        if not _has_server(Path(override)):
            raise FileNotFoundError(f"OUTPOST_PG_BINDIR={override} has no postgres/initdb")
        return Path(override)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_server(Path(out)):
            return Path(out)
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if _has_server(p)]
    if debian:
        return max(debian, key=lambda p: _version_key(p.parent.name))
    spec = importlib.util.find_spec("pgserver")  # located, not imported: no side effects
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if _has_server(bundled):
            return bundled
    raise FileNotFoundError(
        "No PostgreSQL server binaries found: set OUTPOST_PG_BINDIR, install the "
        "postgresql package, or install the 'pgserver' package (uv sync does in dev); "
        "or point DATABASE_URL at an existing server."
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


@dataclass(frozen=True)
class _RunAs:
    """The account the server processes run under; None fields mean "as the caller"."""

    uid: int | None = None
    gid: int | None = None
    name: str | None = None

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        # An existing cluster keeps its owner: postgres insists on owning its data dir.
        if (data_dir / "PG_VERSION").exists():
            owner = data_dir.stat().st_uid
            if owner != 0:
                entry = pwd.getpwuid(owner)
                return cls(entry.pw_uid, entry.pw_gid, entry.pw_name)
        for name in ("postgres", "nobody"):
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return cls(entry.pw_uid, entry.pw_gid, entry.pw_name)
        raise RuntimeError("Running as root and neither a 'postgres' nor 'nobody' user exists")

    def run(
        self, args: list[str], *, new_session: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool as this account, with a clean, predictable environment."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            cwd="/",  # the caller's cwd may not be readable by the server account
            user=self.uid,
            group=self.gid,
            extra_groups=[] if self.uid is not None else None,
            start_new_session=new_session,
        )

    def give(self, path: Path) -> None:
        """Hand ``path`` over to this account (no-op when running as the caller)."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    def ensure_traversable(self, path: Path) -> None:
        """Let this account reach ``path``: add the search bit (never read) where missing.

        e.g. ``mkdtemp`` directories and ``/root`` are 0700 and would otherwise stop the
        ``postgres`` user from reaching a data directory inside them.
        """
        if self.uid is None:
            return
        for parent in reversed(path.parents):
            st = parent.stat()
            if st.st_uid == self.uid or st.st_mode & stat.S_IXOTH:
                continue
            log.warning("adding o+x to %s so %s can reach %s", parent, self.name, path)
            os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _password_file(data_dir: Path) -> Path:
    return data_dir.parent / f"{data_dir.name}.password"


def _read_or_create_password(data_dir: Path, initialized: bool) -> str:
    """The superuser password, generated once and kept 0600 beside the data directory."""
    path = _password_file(data_dir)
    if path.exists():
        return path.read_text().strip()
    if initialized:
        raise RuntimeError(
            f"{data_dir} is an initialized cluster but its password file {path} is missing; "
            "delete the data directory to start over."
        )
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def _postmaster_info(data_dir: Path) -> tuple[int, int] | None:
    """(pid, port) from ``postmaster.pid`` if it names a live postmaster."""
    pid_file = data_dir / "postmaster.pid"
    pid = read_pid(pid_file)
    if pid is None or not process_alive(pid, "postgres"):
        return None
    try:
        lines = pid_file.read_text().splitlines()
        return pid, int(lines[3])  # line 4 is the port
    except (OSError, IndexError, ValueError):
        return None


class PostgresCluster:
    """A PostgreSQL cluster in ``data_dir``, on 127.0.0.1, with an ``outpost`` database."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        password: str,
        *,
        bindir: Path,
        run_as: _RunAs,
    ) -> None:
        self.data_dir = data_dir
        self._port = port
        self._password = password
        self._bindir = bindir
        self._run_as = run_as

    # -- construction ---------------------------------------------------------------

    @classmethod
    def start(
        cls, data_dir: Path, *, port: int | None = None, fast: bool = False
    ) -> PostgresCluster:
        """Start (initializing if needed) the cluster, or attach to the one running there.

        ``fast`` turns off fsync and full_page_writes: only for throwaway clusters, since
        a crash of the machine can then corrupt the data. ``synchronous_commit`` stays on
        even then: a commit returns once its WAL is written to the kernel, so a committed
        transaction survives the server process being killed (``kill()``, an immediate
        stop), which the chaos tests rely on; without fsync that write is cheap.
        """
        data_dir = Path(data_dir).resolve()
        running = cls.attach(data_dir)
        if running is not None:
            if port is not None and port != running.port:
                log.warning("reusing %s on port %s, not %s", data_dir, running.port, port)
            return running
        bindir = find_pg_bindir()
        initialized = (data_dir / "PG_VERSION").exists()
        data_dir.mkdir(parents=True, exist_ok=True)
        run_as = _RunAs.for_data_dir(data_dir)
        run_as.ensure_traversable(data_dir)
        password = _read_or_create_password(data_dir, initialized)
        cluster = cls(data_dir, port or free_port(), password, bindir=bindir, run_as=run_as)
        if not initialized:
            cluster._initdb()
        cluster._write_conf(fast=fast)
        cluster._pg_ctl_start()
        cluster._ensure_database()
        return cluster

    @classmethod
    def attach(cls, data_dir: Path) -> PostgresCluster | None:
        """The live cluster whose ``postmaster.pid`` is in ``data_dir``, or None."""
        data_dir = Path(data_dir).resolve()
        info = _postmaster_info(data_dir)
        if info is None:
            return None
        password = _read_or_create_password(data_dir, initialized=True)
        return cls(
            data_dir,
            info[1],
            password,
            bindir=find_pg_bindir(),
            run_as=_RunAs.for_data_dir(data_dir),
        )

    # -- properties -----------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        """The postmaster's PID, or None when it is not running."""
        info = _postmaster_info(self.data_dir)
        return info[0] if info else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def admin_dsn(self) -> str:
        """Superuser DSN for the ``outpost`` database over TCP."""
        password = urllib.parse.quote(self._password, safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self._port}/{DATABASE}"

    def dsn(self, database: str = DATABASE) -> str:
        """Superuser DSN for another database on this cluster."""
        return self.admin_dsn.rsplit("/", 1)[0] + f"/{database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    # -- lifecycle ------------------------------------------------------------------

    def stop(self) -> None:
        """Fast shutdown (roll back sessions, checkpoint); SIGKILL if that hangs."""
        self._pg_ctl_stop("fast")

    def kill(self) -> None:
        """Immediate shutdown, no checkpoint (crash recovery on next start): for chaos."""
        self._pg_ctl_stop("immediate")

    def restart(self) -> None:
        """Stop if running and start again on the same port with the same settings."""
        self.stop()
        self._pg_ctl_start()

    def __enter__(self) -> PostgresCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PostgresCluster(port={self._port}, data_dir={str(self.data_dir)!r})"

    # -- internals ------------------------------------------------------------------

    def _tool(self, name: str) -> str:
        return str(self._bindir / name)

    def _initdb(self) -> None:
        self.data_dir.chmod(0o700)
        self._run_as.give(self.data_dir)
        # initdb reads the password from a file; it must be readable by the server account
        # (a pipe via /dev/stdin is not, after the switch from root).
        fd, pwfile = tempfile.mkstemp(prefix="outpost-pg-pw-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(self._password + "\n")
            self._run_as.give(Path(pwfile))
            result = self._run_as.run(
                [
                    self._tool("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                timeout=120,
            )
        finally:
            os.unlink(pwfile)
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stderr}")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# Outpost settings, rewritten on every start\ninclude = '{CONF_NAME}'\n")

    def _write_conf(self, *, fast: bool) -> None:
        socket_dir = str(self.data_dir)
        if len(f"{socket_dir}/.s.PGSQL.{self._port}") > SOCKET_PATH_MAX:
            socket_dir = ""  # path too long for a unix socket: TCP only
        durable = "off" if fast else "on"
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self._port),
            "unix_socket_directories": f"'{socket_dir}'",
            "max_connections": "300",
            "shared_buffers": "'256MB'",
            "fsync": durable,
            "synchronous_commit": "on",  # see start(): a commit survives a killed server
            "full_page_writes": durable,
        }
        path = self.data_dir / CONF_NAME
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._run_as.give(path)

    def _pg_ctl_start(self) -> None:
        log_file = self.log_path
        log_file.touch()
        self._run_as.give(log_file)
        # A new session keeps the postmaster out of the terminal's process group, so
        # Ctrl-C reaches the dev supervisor, which then stops things in order.
        result = self._run_as.run(
            [
                self._tool("pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(log_file),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-s",
            ],
            new_session=True,
            timeout=START_TIMEOUT + 10,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({result.returncode}): {result.stderr.strip()}\n"
                f"log tail ({log_file}):\n{log_tail(log_file)}"
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """pg_ctl -w waits for the postmaster; also wait until TCP connections work."""
        deadline = time.monotonic() + START_TIMEOUT
        args = [self._tool("pg_isready"), "-h", "127.0.0.1", "-p", str(self._port), "-q"]
        while time.monotonic() < deadline:
            if subprocess.run(args, check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(
            f"postgres on port {self._port} not ready after {START_TIMEOUT}s; "
            f"log tail ({self.log_path}):\n{log_tail(self.log_path)}"
        )

    def _psql(self, sql: str, database: str = "postgres") -> str:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGPASSWORD": self._password,
            "PGCONNECT_TIMEOUT": "10",
        }
        args = [self._tool("psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        args += ["-h", "127.0.0.1", "-p", str(self._port), "-U", SUPERUSER, "-d", database]
        result = subprocess.run(
            [*args, "-c", sql], capture_output=True, text=True, env=env, timeout=30, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {sql!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    def _ensure_database(self) -> None:
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
            self._psql(f"CREATE DATABASE {DATABASE}")

    def _pg_ctl_stop(self, mode: str) -> None:
        pid = self.pid
        if pid is None:
            return
        result = self._run_as.run(
            [self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30"],
            timeout=40,
        )
        if result.returncode != 0 or not wait_for_exit(pid, 5.0):
            log.warning("pg_ctl stop -m %s failed (%s); killing %s", mode, result.stderr, pid)
            _kill_group(pid)
            wait_for_exit(pid, 5.0)


def _kill_group(pid: int) -> None:
    """SIGKILL the postmaster and, since pg_ctl makes it a session leader, its backends."""
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return
    if group == pid:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    else:
        send_signal(pid, signal.SIGKILL)
