"""``leadpipe schemas export|check``: the committed JSON Schemas."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schemas", help="exported JSON Schemas of the event models")
    s = p.add_subparsers(dest="schemas_command", required=True)
    s.add_parser("export", help="write schemas/json/*.json from the models").set_defaults(func=_export)
    s.add_parser("check", help="fail if schemas/json differs from the models").set_defaults(func=_check)


def _export(_: argparse.Namespace) -> int:
    from schemas.export import write

    for path in write():
        print(path)
    return 0


def _check(_: argparse.Namespace) -> int:
    from schemas.export import stale

    bad = stale()
    for name in bad:
        print(f"schemas/json/{name} is out of date: run `leadpipe schemas export`")
    return 1 if bad else 0
