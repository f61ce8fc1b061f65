"""CPU seconds of processes from /proc (Linux), for the benchmarks: no psutil needed.

A process's CPU here is its whole tree: the process, every live descendant (PostgreSQL's
checkpointer, walwriter, autovacuum ...), and the children it already reaped (cutime/cstime).

    before = snapshot({"broker": 1234, "redis": 1240})
    ...
    after = snapshot({"broker": 1234, "redis": 1240})
    used = delta(before, after)          # name -> CPU seconds in between
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(path: Path) -> list[str] | None:
    try:
        raw = path.read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    head, _, rest = raw.rpartition(")")
    return [head.split(" (", 1)[0], head.split(" (", 1)[1] if " (" in head else "", *rest.split()]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry / "stat")
        if fields is not None:
            kids[int(fields[3])].append(int(entry.name))  # fields: pid, comm, state, ppid, ...
    return kids


def tree(pid: int, kids: Mapping[int, list[int]] | None = None) -> list[int]:
    """``pid`` and every live descendant."""
    kids = kids if kids is not None else _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def process_cpu_s(pid: int, *, reaped: bool = True) -> float:
    """utime + stime of one process (+ its reaped children's when ``reaped``), seconds; 0 if gone."""
    fields = _stat(Path(f"/proc/{pid}/stat"))
    if fields is None:
        return 0.0
    # After pid and comm: state(2) ppid(3) ... utime(13) stime(14) cutime(15) cstime(16), 0-based.
    ticks = int(fields[13]) + int(fields[14])
    if reaped:
        ticks += int(fields[15]) + int(fields[16])
    return ticks / TICK


def tree_cpu_s(pid: int, kids: Mapping[int, list[int]] | None = None) -> float:
    kids = kids if kids is not None else _children()
    return sum(process_cpu_s(p) for p in tree(pid, kids))


def snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    """name -> CPU seconds so far of that process's tree."""
    kids = _children()
    return {name: tree_cpu_s(pid, kids) for name, pid in pids.items()}


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: max(0.0, after.get(name, 0.0) - before[name]) for name in before}


def threads(pid: int) -> dict[str, float]:
    """Thread name -> CPU seconds so far, summed over the threads of that name (Java names its
    native threads, truncated to 15 characters: "kafka-log-clea", "C1 CompilerThre" ...)."""
    out: dict[str, float] = defaultdict(float)
    for task in Path(f"/proc/{pid}/task").glob("*"):
        fields = _stat(task / "stat")
        if fields is None:
            continue
        name = fields[1].rstrip("0123456789-") or fields[1]
        out[name] += (int(fields[13]) + int(fields[14])) / TICK
    return dict(out)
