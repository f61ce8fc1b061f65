"""Sums what ``bench/gc_hook/sitecustomize.py`` wrote: per process (by service name), collections
and seconds in the cycle collector, per generation and in total.

    .venv/bin/python bench/gc_hook/report.py /tmp/gc [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def name_of(argv: list[str]) -> str:
    script = argv[0] if argv else "?"
    parts = Path(script).parts
    if "services" in parts:
        return parts[parts.index("services") + 1]
    return Path(script).stem


def report(directory: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for f in sorted(directory.glob("*.json")):
        doc = json.loads(f.read_text())
        name = name_of(doc["argv"])
        if name in out:
            name = f"{name}-{f.stem}"
        out[name] = {
            "collections": doc["collections"],
            "seconds": [round(s, 3) for s in doc["seconds"]],
            "total_s": round(sum(doc["seconds"]), 3),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = report(args.directory)
    print(f"{'process':<20} {'young':>12} {'middle':>12} {'full':>14} {'total s':>8}")
    for name, r in rows.items():
        n, s = r["collections"], r["seconds"]
        cells = [f"{n[g]:>5} {s[g]:>6.2f}s" for g in range(3)]  # type: ignore[index]
        print(f"{name:<20} {cells[0]:>12} {cells[1]:>12} {cells[2]:>14} {r['total_s']:>8}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
