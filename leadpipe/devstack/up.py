"""``make run``: the whole pipeline on the embedded broker and a private Redis.

Starts (unless ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` point elsewhere) a Tansu broker and
a redis-server with state under ``.leadpipe/``, creates every topic of the registry, starts
each service that exists, prints where things are, and on Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from leadpipe.devstack.stack import SERVICES, ServiceSpec, Stack, available_services

__all__ = ["SERVICES", "ServiceSpec", "available_services", "run"]


def run(state_dir: Path, *, ready_file: Path | None = None) -> int:
    stack = Stack(
        state_dir,
        ports="fixed",
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        redis_url=os.environ.get("REDIS_URL"),
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    t0 = time.monotonic()
    try:
        stack.start()
        (stack.state_dir / "pids").write_text("".join(f"{p.name} {p.pid}\n" for p in stack.all_processes()))
        lines = [
            f"leadpipe is up in {time.monotonic() - t0:.1f}s",
            f"  broker       {stack.bootstrap}  ({len(stack.created_topics)} topics created)",
            f"  redis        {stack.redis_url}",
        ]
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
    finally:
        print("\nleadpipe: stopping ...", flush=True)
        stack.stop()
        print("leadpipe: stopped, no process left behind.", flush=True)
