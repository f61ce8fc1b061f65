"""Child processes of the embedded stack, and a private redis-server.

Used by ``make run`` and by the test fixtures. Every process is started in its own process
group, so a stop (or Ctrl-C) leaves nothing behind, and (on Linux) with a parent-death signal:
when whatever started it dies, even by SIGKILL, the kernel kills it too, so no broker or worker
outlives its stack and joins the next one's consumer groups. The parent is the *thread* that
started it: start processes from a thread that lives as long as they should.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: Every port ``free_port`` handed out in this process.
_handed_out: set[int] = set()
#: ``free_port`` takes ports from here, below the kernel's ephemeral range, so that no
#: ``bind(0)`` and no outgoing connection's local port can land on a port it handed out.
_FIRST_PORT = 20_000
#: One byte of this file per port, locked (POSIX record lock) by the process that handed the port
#: out: other processes (parallel test lanes, a bench beside them) skip it. The kernel drops the
#: locks when that process exits, however it exits; nothing is left to clean up.
_PORT_LOCKS = Path(tempfile.gettempdir()) / "leadpipe-port-locks"
_lock_fd: int | None = None


def _ephemeral_low() -> int | None:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _lock_port(port: int) -> bool:
    """Whether this process now holds ``port`` against every other process using ``free_port``."""
    global _lock_fd
    if _lock_fd is None:
        _lock_fd = os.open(_PORT_LOCKS, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        fcntl.lockf(_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, port)
    except OSError:
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free on ``host`` now, that this process has not been given before, and that
    no other process has been given by ``free_port`` while it runs.

    Taken below the kernel's ephemeral range (``ip_local_port_range``): a port the kernel offers
    for ``bind(0)`` can also become some outgoing connection's local port, or another test lane's
    ``bind(0)`` answer, before the server it was meant for binds it (a console test's PostgreSQL
    once found its port taken by another lane's listener). Where that range leaves no room below
    it, the kernel's ``bind(0)`` answer is used, as before."""
    low = _ephemeral_low()
    if low is not None and low - _FIRST_PORT >= 1000:
        span = low - _FIRST_PORT
        start = random.randrange(span)
        for i in range(span):
            port = _FIRST_PORT + (start + i) % span
            if port in _handed_out or not port_is_free(port, host) or not _lock_port(port):
                continue
            _handed_out.add(port)
            return port
        raise RuntimeError(f"free_port: no free port on {host} in {_FIRST_PORT}-{low - 1}")
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"free_port: the kernel offered no port on {host} this process was not given before")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(
    port: int, host: str = "127.0.0.1", timeout_s: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL me when my parent dies (kept across exec)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class ManagedProcess:
    """A child process in its own process group, with its output in a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    die_with_parent: bool = True
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = dict(os.environ) | dict(self.env or {})
        self.proc = subprocess.Popen(
            list(self.argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group (a crash, for chaos tests)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """SIGTERM the process group without waiting (``stop`` waits)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
        # Children that outlived the leader (same group) must not be orphaned.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


def stop_all(procs: Sequence[ManagedProcess], timeout_s: float) -> None:
    """SIGTERM every process at once, wait up to ``timeout_s`` in all, then SIGKILL the rest."""
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        proc.stop(timeout_s=max(0.1, deadline - time.monotonic()))


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("redis-server not found: install it (Debian: apt-get install redis-server)")
    return found


#: Redis's ``serverCron`` runs ``hz`` times a second (default 10): ten wake-ups a second of an idle
#: server, each reading /proc for its memory stats. What it does there, and why once a second is
#: enough for this stack:
#: - active expiry of keys with a TTL: only reclaims memory sooner. A read never sees an expired
#:   key at any hz (it is expired on access, ``SET NX`` included), and the cached clock is
#:   refreshed before each command, so TTLs and leases keep their exact length. Its work per
#:   second is the same; at hz 1 it runs in one slice a second (at most 250 ms, and only while over
#:   10 % of the sampled keys are already expired: a mass expiry this stack never makes).
#: - idle-client timeouts: ``timeout`` is 0 (none), and no service uses a blocking command
#:   (BLPOP, XREAD BLOCK, WAIT) whose timeout the cron would check.
#: - the append-only file's ``everysec`` fsync of the last writes before a quiet spell comes at
#:   the next wake-up, about a second later (its write(2) is immediate: a crash of the process
#:   loses nothing; a power loss could lose up to ~2 s of writes instead of ~1 s).
#: ``dynamic-hz`` (on) still raises it with the number of clients (one more per 200).
REDIS_IDLE_ARGS = ("--hz", "1", "--dynamic-hz", "yes")


def start_redis(
    port: int, data_dir: Path, log_path: Path, host: str = "127.0.0.1", appendonly: bool = True
) -> ManagedProcess:
    """A private redis-server on host:port with its own data dir (never the machine's 6379)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = ManagedProcess(
        "redis",
        [
            redis_binary(),
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes" if appendonly else "no",
            "--save",
            "",
            "--daemonize",
            "no",
            *REDIS_IDLE_ARGS,
        ],
        log_path,
    ).start()
    wait_for_port(port, host, 15.0, proc.proc)
    return proc


def postgres_bindir() -> Path:
    """Debian's PostgreSQL binaries (``/usr/lib/postgresql/<version>/bin``), the newest installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        on_path = shutil.which("postgres")
        if on_path:
            return Path(on_path).parent
        raise RuntimeError("PostgreSQL not found: install it (Debian: apt-get install postgresql)")
    return found[-1].parent


def _as_postgres_user() -> list[str]:
    # PostgreSQL refuses to run as root: as root, run it (and initdb) as Debian's `postgres` user.
    if os.geteuid() != 0:
        return []
    # --pdeathsig: a change of user clears the parent-death signal; setpriv sets it again after.
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--pdeathsig", "KILL"]


_OUTSIDE_PREFIX = "leadpipe-postgres-"


def _collect_orphaned_postgres_dirs() -> None:
    """Remove data dirs kept under /tmp for state dirs that no longer exist (a test's tmp dir,
    removed by pytest), unless a server still runs on one."""
    for outside in Path(tempfile.gettempdir()).glob(f"{_OUTSIDE_PREFIX}*"):
        try:
            owner = Path((outside / "owner").read_text())
        except OSError:
            continue
        if owner.is_symlink() or owner.exists():
            continue
        pid_file = outside / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().split()[0]), 0)
            continue  # still running
        shutil.rmtree(outside, ignore_errors=True)


#: The console's read model is small and mostly idle; PostgreSQL's background processes wake on
#: timers meant for a busy server (measured: the background writer and WAL writer five times a
#: second each, and an autovacuum worker forked every 30 s, one per database each naptime).
POSTGRES_IDLE_SETTINGS = {
    # The background writer only pre-cleans dirty buffers so that a backend rarely has to write
    # one out itself; the checkpointer writes them all anyway. 10 s is its longest delay.
    "bgwriter_delay": "10s",
    # The WAL writer flushes *asynchronous* commits; every commit here is synchronous (it
    # flushes its own WAL before it returns), so a slower WAL writer adds no commit latency.
    "wal_writer_delay": "10s",
    # Autovacuum looks at each database once per naptime (a worker process forked each time).
    # The projection's updates make dead rows at the pace of leads, and the tables are small:
    # vacuumed within 5 min rather than 1 min bloats nothing that matters (a fast catch-up of
    # the projection is one transaction per batch, not per row).
    "autovacuum_naptime": "5min",
}


def start_postgres(
    port: int, data_dir: Path, log_path: Path, host: str = "127.0.0.1", durable: bool = True
) -> ManagedProcess:
    """A private PostgreSQL on host:port with its own data dir (initialised on first use; trust
    auth on loopback only, user ``leadpipe``). ``durable=False`` turns fsync off (tests).
    The URL: ``postgresql://leadpipe@host:port/postgres``."""
    bindir = postgres_bindir()
    prefix = _as_postgres_user()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if prefix and not data_dir.exists() and subprocess.run([*prefix, "test", "-x", str(data_dir.parent)]).returncode:
        # The postgres user cannot enter root's private dirs (pytest's tmp): the data lives under
        # /tmp, linked from the state dir, so a restart of the same stack finds it again.
        _collect_orphaned_postgres_dirs()
        digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:12]
        outside = Path(tempfile.gettempdir()) / f"{_OUTSIDE_PREFIX}{digest}"
        (outside / "data").mkdir(parents=True, exist_ok=True)
        (outside / "owner").write_text(str(data_dir.resolve()))
        data_dir.symlink_to(outside / "data")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if prefix:
        shutil.chown(data_dir, "postgres", "postgres")
        os.chmod(data_dir, 0o700)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data_dir), "-U", "leadpipe", "--auth=trust", "-E", "UTF8"]
            + ([] if durable else ["--no-sync"]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    settings = ["-c", "unix_socket_directories=", "-c", "listen_addresses=" + host, "-p", str(port)]
    settings += [arg for name, value in POSTGRES_IDLE_SETTINGS.items() for arg in ("-c", f"{name}={value}")]
    if not durable:
        settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    proc = ManagedProcess(
        "postgres", [*prefix, str(bindir / "postgres"), "-D", str(data_dir), *settings], log_path
    ).start()
    wait_for_port(port, host, 30.0, proc.proc)
    # Listening is not accepting: until recovery ends it answers "the database system is starting up".
    deadline = time.monotonic() + 30.0
    while subprocess.run([str(bindir / "pg_isready"), "-q", "-h", host, "-p", str(port)], check=False).returncode:
        if time.monotonic() > deadline or not proc.alive():
            proc.stop()
            raise RuntimeError(f"PostgreSQL on {host}:{port} did not become ready; log: {log_path}")
        time.sleep(0.1)
    return proc
