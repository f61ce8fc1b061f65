"""``make run``: the whole pipeline on the embedded Apache Kafka and a private Redis.

Starts (unless ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` point elsewhere) Kafka (one KRaft node,
or ``--brokers 3``) and a redis-server with state under ``.leadpipe/``, creates every topic of the
registry, starts each service, waits until every one is ready, prints where things are, and on
Ctrl-C or SIGTERM stops everything within 15 s. Its children die with it even when it is killed
with SIGKILL (parent-death signal), and a second stack on the same state dir refuses to start.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO

from leadpipe.devstack.stack import SERVICES, ServiceSpec, Stack, available_services

__all__ = ["SERVICES", "ServiceSpec", "StackAlreadyRunning", "available_services", "run"]


class StackAlreadyRunning(RuntimeError):
    """Another ``dev up`` holds this state dir."""


def _lock(state_dir: Path) -> IO[str]:
    """An exclusive lock on the state dir, held for the stack's life (the kernel drops it when the
    supervisor dies, however it dies)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "stack.lock", "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "?"
        handle.close()
        raise StackAlreadyRunning(
            f"a leadpipe stack is already running on {state_dir} (supervisor pid {owner}); stop it first"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def run(state_dir: Path, *, ready_file: Path | None = None, brokers: int = 1) -> int:
    try:
        lock = _lock(state_dir.resolve())
    except StackAlreadyRunning as exc:
        print(f"leadpipe: {exc}", file=sys.stderr, flush=True)
        return 3
    stack = Stack(
        state_dir,
        ports="fixed",
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        redis_url=os.environ.get("REDIS_URL"),
        brokers=brokers,
    )

    def on_term(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C must stop the stack even when SIGINT came in ignored: a shell without job control
    # starts background commands with SIGINT ignored (CI does), and Python then installs no
    # KeyboardInterrupt handler of its own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    try:
        print(
            f"leadpipe: starting Kafka ({brokers} node{'s' if brokers > 1 else ''}), Redis and the services ...",
            flush=True,
        )
        stack.start()
        t_ready = time.monotonic()
        stack.wait_ready([s.name for s in stack.specs], timeout_s=120.0)
        stack.timings["services ready"] = time.monotonic() - t_ready
        (stack.state_dir / "pids").write_text("".join(f"{p.name} {p.pid}\n" for p in stack.all_processes()))
        lines = [
            f"leadpipe is up in {time.monotonic() - t0:.1f}s (every service ready; "
            + ", ".join(f"{k} {v:.1f}s" for k, v in stack.timings.items())
            + ")",
            f"  kafka        {stack.bootstrap}  ({stack.brokers} node(s), {len(stack.created_topics)} topics created)",
            f"  redis        {stack.redis_url}",
        ]
        if stack.database_url:
            lines.append(f"  postgres     {stack.database_url}  (the console's read model)")
        lines += [f"  {s.name:<12} {stack.url(s.name)}/  ({s.what})" for s in stack.specs]
        missing = [s.name for s in SERVICES if s not in stack.specs]
        if missing:
            lines.append(f"  not built yet: {', '.join(missing)}")
        lines += [f"  outbox       {stack.outbox}", f"  logs         {stack.logs}", "Press Ctrl-C to stop."]
        print("\n".join(lines), flush=True)
        if ready_file is not None:
            ready_file.write_text("\n".join(lines))
        while True:
            dead = stack.first_dead()
            if dead is not None:
                code = dead.proc.returncode if dead.proc else "?"
                print(f"leadpipe: {dead.name} exited ({code}); see {dead.log_path}", flush=True)
                return 1
            time.sleep(0.5)
    except (KeyboardInterrupt, SystemExit):
        return 0
    except Exception as exc:
        print(f"leadpipe: could not start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C while stopping must not leave half the stack running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        t_stop = time.monotonic()
        print("\nleadpipe: stopping ...", flush=True)
        stack.stop(timeout_s=6.0)
        print(f"leadpipe: stopped in {time.monotonic() - t_stop:.1f}s, no process left behind.", flush=True)
        lock.close()
