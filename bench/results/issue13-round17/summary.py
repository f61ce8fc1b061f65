"""Round 17's quick runs, per interpreter: min, median, max of each figure.

python3 bench/results/issue13-round17/summary.py [DIR]
"""

import glob
import json
import statistics
import sys
from pathlib import Path

WORKERS = ("ingest", "scoring", "nurture", "notifier")


def figures(d: dict) -> dict[str, float]:
    c, e = d["phases"]["c1_http_1_replica"], d["phases"]["e_sweep"]
    r = {
        "plain chain ev/s": d["raw"]["max_plain"]["events_per_s"],
        "sealed chain ev/s": d["raw"]["max"]["events_per_s"],
        "c1 leads/s": c["throughput"]["leads_per_s"],
        "c1 stack CPU ms/lead": c["cpu"]["total_cpu_ms_per_lead"],
        "c1 workers CPU ms/lead": sum(c["cpu"]["cpu_ms_per_lead"][k] for k in WORKERS),
        "100/s workers CPU ms/lead": sum(e["100"]["cpu"]["cpu_ms_per_lead"][k] for k in WORKERS),
        "p99 ms at 20/s": e["20"]["latency_ms"]["post_to_sent"]["p99"],
        "p99 ms at 100/s": e["100"]["latency_ms"]["post_to_sent"]["p99"],
    }
    r["c1 / plain"] = r["c1 leads/s"] / r["plain chain ev/s"]
    r["c1 / sealed"] = r["c1 leads/s"] / r["sealed chain ev/s"]
    return r


def number(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def main() -> None:
    here = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    runs: dict[str, list[dict[str, float]]] = {}
    for f in sorted(glob.glob(str(here / "q-*-[0-9].json"))):
        runs.setdefault(Path(f).name.split("-")[1], []).append(figures(json.loads(Path(f).read_text())))
    print(f"{'figure':28}" + "".join(f"{v + f' ({len(rs)} runs): min / median / max':>44}" for v, rs in runs.items()))
    for k in next(iter(runs.values()))[0]:
        cells = []
        for rs in runs.values():
            xs = [x[k] for x in rs]
            cells.append(" / ".join(number(x) for x in (min(xs), statistics.median(xs), max(xs))))
        print(f"{k:28}" + "".join(f"{c:>44}" for c in cells))


if __name__ == "__main__":
    main()
