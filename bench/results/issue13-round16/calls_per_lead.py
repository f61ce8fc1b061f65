"""Python function calls per lead, by layer, from a ``bench/cpu_hook/run.py`` profile directory
(cProfile's call counts are exact, unlike its times)::

    .venv/bin/python bench/cpu_hook/run.py --rate 20 --seconds 20 --out /tmp/cp20
    .venv/bin/python bench/results/issue13-round16/calls_per_lead.py /tmp/cp20 --leads 400

``--leads``: the leads posted while the profiles ran (rate x seconds). Builtins (C functions
called from Python: ``len``, ``isinstance``, ``dict.get``...) are a row of their own.
"""

from __future__ import annotations

import argparse
import collections
import json
import pstats
from pathlib import Path

LAYERS = (
    ("aiokafka/", "aiokafka"), ("leadpipe/runtime/aiokafka_compat", "aiokafka"),
    ("/faust/", "faust"), ("leadpipe/runtime/faust_compat", "faust"), ("/mode/", "mode (Faust's)"),
    ("/redis/", "redis-py"), ("leadpipe/runtime/redis_client", "redis-py"),
    ("/asyncio/", "asyncio"), ("/logging/", "logging"), ("pydantic", "pydantic"),
    ("prometheus_client", "prometheus-client"), ("jinja2", "jinja2"),
    ("uvicorn", "http server"), ("starlette", "http server"), ("fastapi", "http server"),
    ("schemas/", "schemas (codec, sealing)"), ("leadpipe/", "leadpipe runtime"), ("services/", "service"),
)  # fmt: skip


def layer(filename: str) -> str:
    if filename == "~":
        return "builtins (C)"
    return next((name for key, name in LAYERS if key in filename), "other")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--leads", type=int, required=True)
    a = p.parse_args()
    rows: dict[str, dict[str, float]] = {}
    for doc in sorted(a.dir.glob("*.json")):
        meta = json.loads(doc.read_text())
        if "argv" not in meta:
            continue
        service = Path(meta["argv"][0]).parent.name
        counts: collections.Counter[str] = collections.Counter()
        for (filename, _line, _fn), (_cc, ncalls, *_rest) in pstats.Stats(str(doc.with_suffix(".prof"))).stats.items():  # type: ignore[attr-defined]
            counts[layer(filename)] += ncalls
        rows[service] = {k: v / a.leads for k, v in counts.items()} | {"total": sum(counts.values()) / a.leads}
    names = sorted({k for r in rows.values() for k in r}, key=lambda k: -sum(r.get(k, 0.0) for r in rows.values()))
    print(f"{'Python calls per lead':28}" + "".join(f"{s:>10}" for s in rows))
    for k in names:
        print(f"{k:28}" + "".join(f"{rows[s].get(k, 0.0):10.0f}" for s in rows))


if __name__ == "__main__":
    main()
