"""Real database engines for tests: a throw-away PostgreSQL cluster and ``redis-server`` on loopback.

Both run from Debian's packages (``postgresql``, ``redis-server``; ``scripts/test`` installs them when
missing) in a fresh temporary folder, listen on ``127.0.0.1`` on a free port, and are stopped and deleted
on exit. Nothing is started through the system's service manager, so the tests never touch a database
someone else uses.

PostgreSQL refuses to run as root: when the tests run as root, the cluster runs as the system user
:data:`TEST_USER` (created if missing, without a home or login shell) through ``setpriv``, in a folder
owned by that user. ``fsync`` stays on, so durability tests test what production gets. The superuser
``postgres`` has a random password (loopback TCP uses ``scram-sha-256``), so URLs carry a real secret
and tests can check it is never logged.

Every start is bounded (``start_timeout``); a missing binary raises :class:`EngineUnavailable`, which the
pytest fixtures turn into a skip with the install command, or into a failure when ``CI`` is set (CI must
not silently skip the engine tests).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from signal import SIGINT, SIGTERM
from typing import Protocol, TypeVar
from urllib.parse import quote

import attrs

__all__ = [
    "TEST_USER",
    "EngineUnavailable",
    "PostgresEngine",
    "RedisEngine",
    "free_port",
    "run_postgres",
    "run_redis",
]

#: The unprivileged system user that runs PostgreSQL when the tests run as root.
TEST_USER = "voicebot-test"


class EngineUnavailable(RuntimeError):
    """The engine's binaries are not installed (the message says how to install them)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the engine retries if it was taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bindir() -> Path:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]),
                            reverse=True):
        if os.access(os.path.join(candidate, "postgres"), os.X_OK):
            return Path(candidate)
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise EngineUnavailable("PostgreSQL server binaries not found (install with: apt-get install postgresql)")


def _run_as() -> tuple[list[str], int, int] | None:
    """``(command prefix, uid, gid)`` to drop root for PostgreSQL, or None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True, capture_output=True, timeout=30)
        entry = pwd.getpwnam(TEST_USER)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise EngineUnavailable("setpriv not found (util-linux); needed to run PostgreSQL as a non-root user")
    prefix = [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"]
    return prefix, entry.pw_uid, entry.pw_gid


def _launch(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class _Engine(Protocol):
    """What :func:`_start_on_free_port` and :func:`_restart` need of an engine."""

    process: subprocess.Popen[bytes]
    argv: list[str]


_E = TypeVar("_E", bound=_Engine)


def _start_on_free_port(
    argv_for: Callable[[int], list[str]], engine_for: Callable[[int, list[str], subprocess.Popen[bytes]], _E],
    ready: Callable[[_E, float], bool], log: Path, deadline: float,
) -> _E | None:
    """Launch the server on a free port until it answers ``ready`` (3 tries: the free port may be taken between
    probing and binding); None when it never did before ``deadline``."""
    for _ in range(3):
        port = free_port()
        argv = argv_for(port)
        candidate = engine_for(port, argv, _launch(argv, log))
        if ready(candidate, deadline):
            return candidate
        _stop(candidate.process, signal.SIGKILL, 10)
        if time.monotonic() >= deadline:
            break
    return None


def _restart(engine: _E, ready: Callable[[_E, float], bool], log: Path, what: str, timeout: float) -> None:
    """Start a stopped engine again with its own command line (same port and data)."""
    if engine.process.poll() is None:
        raise RuntimeError(f"{what} is still running")
    engine.process = _launch(engine.argv, log)
    if not ready(engine, time.monotonic() + timeout):
        _stop(engine.process, signal.SIGKILL, 10)
        raise RuntimeError(f"{what} did not come back within {timeout} s")


@attrs.define
class PostgresEngine:
    """A running PostgreSQL cluster (superuser ``postgres``/``password`` on ``host:port``)."""

    host: str
    port: int
    password: str
    directory: Path
    process: subprocess.Popen[bytes]
    argv: list[str]
    _databases: int = 0

    def url(self, database: str = "postgres") -> str:
        """``postgresql://postgres:PASSWORD@127.0.0.1:PORT/database``."""
        return f"postgresql://postgres:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
        """Run one statement in autocommit mode through a new connection; returns its rows (if any)."""
        import psycopg  # noqa: PLC0415 - the engines are optional test tooling

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql.encode())
            return list(cur.fetchall()) if cur.description is not None else []

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database with a fresh name and return its URL (tests never share one)."""
        self._databases += 1
        name = f"{prefix}_{self._databases}_{secrets.token_hex(3)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def new_schema(self, prefix: str = "s") -> str:
        """Create an empty schema and return a URL whose connections use it (``search_path``).

        Much faster than :meth:`new_database` (no file copy and checkpoint), so per-test isolation is cheap.
        """
        self._databases += 1
        name = f"{prefix}_{self._databases}_{secrets.token_hex(3)}"
        self.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?options=-c%20search_path%3D{name}"

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the postmaster (``SIGKILL`` simulates a crash)."""
        self.process.send_signal(sig)

    def stop(self, sig: int = SIGINT, timeout: float = 30.0) -> None:
        """Stop the server (default: fast shutdown; ``SIGKILL`` for a crash) for an outage test."""
        _stop(self.process, sig, timeout)

    def start(self, timeout: float = 60.0) -> None:
        """Start the stopped server again on the same port and data (after :meth:`stop`)."""
        _restart(self, _wait_postgres, self.directory / "postgres.log", "PostgreSQL", timeout)


@contextlib.contextmanager
def run_postgres(*, start_timeout: float = 60.0) -> Iterator[PostgresEngine]:
    """Start a fresh PostgreSQL cluster in a temporary folder; stop it (fast shutdown) and delete it on exit."""
    bindir = _postgres_bindir()
    run_as = _run_as()
    prefix = run_as[0] if run_as else []
    directory = Path(tempfile.mkdtemp(prefix="voicebot-pg-"))
    try:
        if run_as:
            os.chown(directory, run_as[1], run_as[2])
        password = secrets.token_urlsafe(12)
        pwfile = directory / "pw"
        pwfile.write_text(password + "\n")
        if run_as:
            os.chown(pwfile, run_as[1], run_as[2])
        data = directory / "data"
        deadline = time.monotonic() + start_timeout
        init = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions",
             "--no-sync"],  # a throw-away cluster: initdb's own fsyncs only cost start-up time
            capture_output=True, timeout=start_timeout, check=False,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')[-2000:]}")
        pwfile.unlink()
        engine = _start_on_free_port(
            lambda port: [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                          "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={directory}",
                          "-c", "fsync=on", "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
            lambda port, argv, proc: PostgresEngine("127.0.0.1", port, password, directory, proc, argv),
            _wait_postgres, directory / "postgres.log", deadline,
        )
        if engine is None:
            tail = (directory / "postgres.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not accept connections within {start_timeout} s:\n{tail}")
        try:
            yield engine
        finally:
            _stop(engine.process, signal.SIGINT, 30)  # SIGINT = fast shutdown
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_postgres(engine: PostgresEngine, deadline: float) -> bool:
    import psycopg  # noqa: PLC0415

    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            return False
        try:
            with psycopg.connect(engine.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False


@attrs.define
class RedisEngine:
    """A running ``redis-server`` (no persistence, no password) on ``host:port``."""

    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    argv: list[str]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """Send one command (RESP) on a new connection and return the raw reply (for readiness and resets)."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args
        )
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(payload)
            return sock.recv(65536)

    def stop(self, sig: int = SIGTERM, timeout: float = 10.0) -> None:
        """Stop the server (``SIGKILL`` for a crash); its data is gone (no persistence), as in a real outage."""
        _stop(self.process, sig, timeout)

    def start(self, timeout: float = 30.0) -> None:
        """Start the stopped server again on the same port (after :meth:`stop`), empty."""
        _restart(self, _wait_redis, self.directory / "redis.log", "redis-server", timeout)


@contextlib.contextmanager
def run_redis(*, start_timeout: float = 30.0) -> Iterator[RedisEngine]:
    """Start ``redis-server`` on a free loopback port in a temporary folder; stop and delete it on exit."""
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server")
                                              else None)
    if binary is None:
        raise EngineUnavailable("redis-server not found (install with: apt-get install redis-server)")
    directory = Path(tempfile.mkdtemp(prefix="voicebot-redis-"))
    try:
        deadline = time.monotonic() + start_timeout
        engine = _start_on_free_port(
            lambda port: [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", str(directory), "--daemonize", "no", "--protected-mode", "yes"],
            lambda port, argv, proc: RedisEngine("127.0.0.1", port, directory, proc, argv),
            _wait_redis, directory / "redis.log", deadline,
        )
        if engine is None:
            tail = (directory / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server did not answer PING within {start_timeout} s:\n{tail}")
        try:
            yield engine
        finally:
            _stop(engine.process, signal.SIGTERM, 10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_redis(engine: RedisEngine, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if engine.process.poll() is not None:
            return False
        try:
            if engine.command("PING", timeout=1.0).startswith(b"+PONG"):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False
