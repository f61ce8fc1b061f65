"""Sums what ``bench/cpu_hook/sitecustomize.py`` wrote: per service, the share of its main
thread's CPU in each layer of the stack (the Kafka client, Faust, the Redis client, the HTTP
server, pydantic, the event loop, sealing personal fields, the codec, the runtime, the service's
own code, ...). A function's own time, less the profiler's calibrated cost per call, counts for
the layer of the file it is in; a built-in (C) function's counts for the layer of each caller,
in proportion to what each call took.

    .venv/bin/python bench/cpu_hook/report.py /tmp/cpuprof [--json out.json]
        [--ms-per-lead bench.json --rate 100]   # also ms per lead, from an unprofiled sweep
"""

from __future__ import annotations

import argparse
import json
import pstats
from collections import Counter
from pathlib import Path
from typing import Any

from bench.gc_hook.report import name_of

#: (layer, path fragments): the first layer one of whose fragments is in a file's path.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kafka client", ("/aiokafka/", "/kafka/")),
    ("faust", ("/faust/", "/mode/", "/venusian/", "/croniter/")),
    ("redis client", ("/redis/", "/hiredis/")),
    ("http server", ("/fastapi/", "/starlette/", "/uvicorn/", "/httptools/", "/h11/", "/anyio/", "/opentelemetry/")),
    ("pydantic", ("/pydantic/", "/pydantic_core/", "/pydantic_settings/")),
    ("templates", ("/jinja2/", "/markupsafe/")),
    ("metrics", ("/prometheus_client/",)),
    ("sealing", ("/schemas/pii.py", "/cryptography/", "/leadpipe/runtime/keystore.py")),
    ("codec", ("/schemas/", "/orjson/")),
    ("runtime", ("/leadpipe/",)),
    ("service", ("/services/",)),
    ("event loop", ("/asyncio/", "/uvloop/", "/selectors.py", "/socket.py", "/ssl.py")),
    ("logging", ("/logging/", "/pythonjsonlogger/")),
)
OTHER = "other"


def layer_of(filename: str) -> str:
    for layer, fragments in LAYERS:
        if any(fragment in filename for fragment in fragments):
            return layer
    return OTHER


def by_layer(stats: pstats.Stats, callee_bias_s: float = 0.0, caller_bias_s: float = 0.0) -> Counter[str]:
    """CPU seconds per layer: own time by file; a built-in's split over its callers' layers. The
    profiler's own cost is taken off first: ``callee_bias_s`` per call a function received,
    ``caller_bias_s`` per call it made (never below zero)."""
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats keeps it untyped
    made: Counter[Any] = Counter()
    for _, (_, _, _, _, callers) in table.items():
        for caller, c in callers.items():
            made[caller] += c[0]
    out: Counter[str] = Counter()
    for key, (_, calls, own, _, callers) in table.items():
        own = max(0.0, own - calls * callee_bias_s - made[key] * caller_bias_s)
        filename = key[0]
        if filename != "~":
            out[layer_of(filename)] += own
            continue
        spread = sum(c[2] for c in callers.values())
        if not spread:
            out[OTHER] += own
            continue
        for (caller_file, _, _), c in callers.items():
            out[layer_of(caller_file) if caller_file != "~" else OTHER] += own * c[2] / spread
    return out


def report(directory: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for meta in sorted(directory.glob("*.json")):
        prof = meta.with_suffix(".prof")
        if not prof.exists():
            continue
        doc = json.loads(meta.read_text())
        name = name_of(doc["argv"])
        if name in rows:
            name = f"{name}-{meta.stem}"
        stats = pstats.Stats(str(prof))
        layers = by_layer(stats, doc.get("callee_bias_s", 0.0), doc.get("caller_bias_s", 0.0))
        total = sum(layers.values())
        rows[name] = {
            "main_thread_cpu_s": round(doc["main_thread_cpu_s"], 3),
            "process_cpu_s": round(doc["process_cpu_s"], 3),
            "wall_s": round(doc["wall_s"], 1),
            "profiled_s": round(sum(row[2] for row in stats.stats.values()), 3),  # type: ignore[attr-defined]
            "less_profiler_s": round(total, 3),
            "share_pct": {k: round(100 * v / total, 1) for k, v in layers.most_common()} if total else {},
        }
    return rows


def with_ms(rows: dict[str, dict[str, Any]], bench_json: Path, rate: str) -> dict[str, dict[str, Any]]:
    """Each service's layers in CPU ms per lead, from an unprofiled sweep's CPU per lead at ``rate``."""
    per_lead = json.loads(bench_json.read_text())["phases"]["e_sweep"][rate]["cpu"]["cpu_ms_per_lead"]
    for name, row in rows.items():
        ms = per_lead.get(name)
        if ms is not None:
            row["cpu_ms_per_lead"] = ms
            row["ms_per_lead"] = {k: round(ms * pct / 100, 2) for k, pct in row["share_pct"].items()}
    return rows


def table(rows: dict[str, dict[str, Any]]) -> str:
    layers = [layer for layer, _ in LAYERS] + [OTHER]
    unit = "ms_per_lead" if all("ms_per_lead" in r for r in rows.values()) else "share_pct"
    lines = [f"{'layer (' + ('CPU ms per lead' if unit == 'ms_per_lead' else '% of main-thread CPU') + ')':<36}"
             + "".join(f"{n:>12}" for n in rows)]  # fmt: skip
    for layer in layers:
        cells = [r[unit].get(layer) for r in rows.values()]
        if any(cells):
            lines.append(f"{layer:<36}" + "".join(f"{c if c is not None else '-':>12}" for c in cells))
    if unit == "ms_per_lead":
        lines.append(f"{'total':<36}" + "".join(f"{r['cpu_ms_per_lead']:>12}" for r in rows.values()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--ms-per-lead", type=Path, help="an unprofiled pipeline_bench.py --json file")
    parser.add_argument("--rate", default="100", help="its sweep rate to take CPU per lead from")
    args = parser.parse_args()
    rows = report(args.directory)
    if args.ms_per_lead:
        rows = with_ms(rows, args.ms_per_lead, args.rate)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
