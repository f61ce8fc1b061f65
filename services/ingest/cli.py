"""``leadpipe scans upload FILE --show S --booth B``: send a scanner export to ingest.

The export is read as booth staff have it (CSV in UTF-8 or GBK, Excel .xlsx, vCard; English or
Chinese column names; the show's local time) and turned into scans by the rules in
``domain/booth.py``. Batches of up to 500 scans each carry an Idempotency-Key hashed from the
batch's own content, so a re-run after a network failure resumes from the progress file, an
identical repeat is recognised as already uploaded, and a corrected file goes through.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHOWS_DIR = Path(__file__).with_name("shows")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scans = sub.add_parser("scans", help="booth-scanner exports")
    ssub = scans.add_subparsers(dest="scans_command", required=True)
    up = ssub.add_parser(
        "upload",
        help="upload a CSV, Excel (.xlsx) or vCard export (resumable)",
        description="Column names are recognised (English and Chinese); --dry-run shows what would be sent.",
    )
    up.add_argument("file", type=Path)
    up.add_argument("--show", required=True, help="show id (its settings: services/ingest/shows/SHOW.yaml)")
    up.add_argument("--booth", required=True)
    up.add_argument("--device", default="cli-upload", help="device id (default: cli-upload)")
    up.add_argument("--staff", default=None)
    up.add_argument("--show-name", default=None)
    up.add_argument(
        "--map", default=None, help='override recognised columns, e.g. "Badge=badge_id,Scanned=scanned_at,Fax=ignore"'
    )
    up.add_argument("--timezone", default=None, help="IANA zone of times without an offset (default: the show's)")
    up.add_argument("--date-order", choices=("dmy", "mdy"), default=None, help="for 03/11/2026-style dates")
    up.add_argument(
        "--consent", default=None, help="what visitors agreed to: none, email, sms, email+sms (default: the show's)"
    )
    up.add_argument("--consent-text", default=None, help="the consent text shown at the booth")
    up.add_argument("--consent-version", default=None)
    up.add_argument(
        "--dry-run", action="store_true", help="show the mapping, the first scans and the problems; send nothing"
    )
    up.add_argument("--rows", type=int, default=3, help="scans shown by --dry-run (default 3)")
    up.add_argument("--shows-dir", type=Path, default=Path(os.environ.get("LEADPIPE_SHOWS_DIR", SHOWS_DIR)))
    up.add_argument("--url", default=os.environ.get("LEADPIPE_PUBLIC_URL", "http://127.0.0.1:8080"))
    up.add_argument("--api-key", default=os.environ.get("INGEST_API_KEY", "dev-scanner-key"))
    up.add_argument("--batch-size", type=int, default=500)
    up.add_argument("--progress-file", type=Path, default=None, help="default: FILE.progress.json")
    up.add_argument("--retries", type=int, default=5)
    up.add_argument("--no-progress", action="store_true", help="no progress bar")
    up.set_defaults(func=_upload)
    key = ssub.add_parser("hash-key", help="print the hash to store for a scanner API key")
    key.add_argument("key")
    key.set_defaults(func=_hash_key)


def _hash_key(args: argparse.Namespace) -> int:
    from services.ingest.config import hash_api_key

    print(hash_api_key(args.key))
    return 0


_ENCODING_NAMES = {"utf-8-sig": "UTF-8", "gb18030": "GBK/GB18030", "utf-16": "UTF-16"}


@dataclass
class Loaded:
    scans: list[Any]  # PreparedScan
    problems: list[Any]  # RowProblem
    notes: list[str]
    mapping: Any = None  # HeaderMapping, None for vCards


def load_show(shows_dir: Path, show_id: str) -> Any:
    """The show's settings, or None when the show has no file."""
    import yaml

    from services.ingest.domain.booth import ShowConfig
    from services.ingest.domain.errors import FieldProblem, InvalidInput

    path = shows_dir / f"{show_id}.yaml"
    if not path.exists():
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidInput([FieldProblem("show", f"not readable YAML ({exc})")]) from None
    return ShowConfig.from_mapping(raw or {})


def load_scans(path: Path, mapping_spec: str | None, zone: Any, date_order: Any = None) -> Loaded:
    from services.ingest.adapters import export_files
    from services.ingest.domain.booth import PreparedScan, detect_mapping, prepare_scans
    from services.ingest.domain.uploads import parse_mapping, scans_from_vcard

    if export_files.is_vcard(path):
        cards = scans_from_vcard(export_files.read_vcard_text(path), export_files.vcard_default_time(path))
        return Loaded([PreparedScan(i + 1, c) for i, c in enumerate(cards)], [], [f"{len(cards)} vCards"])
    table = export_files.read_table(path)
    mapping = detect_mapping(table.columns, parse_mapping(mapping_spec))
    prepared = prepare_scans(table.rows, mapping, zone, first_row=table.first_row, date_order=date_order)
    notes = [
        f"encoding {_ENCODING_NAMES.get(table.encoding, table.encoding)}"
        if table.encoding
        else f"sheet {table.sheet!r}"
    ]
    if prepared.guessed_day_first:
        notes.append("dates like 03/11/2026 read day first (3 November); --date-order mdy if they are month first")
    return Loaded(prepared.scans, prepared.problems, notes, mapping)


def _upload(args: argparse.Namespace) -> int:
    from services.ingest.adapters.export_files import UnreadableExport
    from services.ingest.domain.booth import BoothConsent, load_zone, parse_consent_basis
    from services.ingest.domain.errors import InvalidInput

    show = None
    try:
        try:
            show = load_show(args.shows_dir, args.show)
        except InvalidInput as exc:
            for p in exc.problems:
                print(f"error: {args.shows_dir / (args.show + '.yaml')}: {p.field}: {p.problem}", file=sys.stderr)
            return 2
        zone = load_zone(args.timezone) if args.timezone else (load_zone(show.timezone) if show else None)
        if args.consent is not None:
            consent = parse_consent_basis(args.consent, args.consent_text, args.consent_version)
        else:
            consent = show.consent if show else BoothConsent()
        loaded = load_scans(args.file, args.map, zone, args.date_order)
    except UnreadableExport as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InvalidInput as exc:
        for p in exc.problems:
            hint = ""
            if p.field == "--timezone" and show is None:
                hint = f" (no settings for show {args.show!r} in {args.shows_dir})"
            print(f"error: {p.field}: {p.problem}{hint}", file=sys.stderr)
        return 2
    envelope = {
        "device_id": args.device,
        "show_id": args.show,
        "booth": args.booth,
        "staff": args.staff,
        "show_name": args.show_name or (show.name if show else None),
        "show_ends_on": show.ends_on if show else None,
        "consent": consent.as_dict() if (args.consent is not None or show is not None) else None,
    }
    envelope = {k: v for k, v in envelope.items() if v is not None}
    _print_plan(args, loaded, consent, zone, show, envelope)
    if args.dry_run:
        _print_problems("problems (nothing sent: dry run)", loaded.problems)
        return 0
    if not loaded.scans:
        _print_problems("problems", loaded.problems)
        print("nothing to send")
        return 1
    return _send_all(args, loaded, envelope)


def _print_plan(args: argparse.Namespace, loaded: Loaded, consent: Any, zone: Any, show: Any, envelope: Any) -> None:
    print(f"{args.file.name}: {len(loaded.scans) + len({p.row for p in loaded.problems if not p.sent})} rows, "
          + "; ".join(loaded.notes))  # fmt: skip
    m = loaded.mapping
    if m is not None:
        print("columns:")
        first_time = next((c for c, t in m.fields.items() if t == "scanned_at"), None)
        for column, target in m.fields.items():
            how = (
                "recognised"
                if column in m.recognised
                else ("--map" if column not in m.unrecognised else "not recognised, kept as an answer")
            )
            if target == "scanned_at" and column != first_time:
                how += f"; the time of day when {first_time!r} holds only a date"
            print(f"  {column!r:<24} -> {target:<22} ({how})")  # fmt: skip
        for column, why in m.ignored.items():
            print(f"  {column!r:<24} -> ignored ({why})")
        if m.unrecognised:
            print("  (use --map COLUMN=field to send an unrecognised column as a scan field, or COLUMN=ignore)")
    source = "--timezone" if args.timezone else ("show settings" if show else "")
    print(f"time zone: {zone.key} ({source})" if zone else "time zone: none (every time carries its offset)")
    if consent.channels:
        print(f"consent: {consent.basis} ({'--consent' if args.consent else 'show settings'})")
    else:
        why = "--consent none" if args.consent else ("show settings" if show else "no --consent and no show settings")
        print(f"consent: none ({why}): the scans carry no marketing consent")
    if args.dry_run:
        print(f"first {min(args.rows, len(loaded.scans))} of {len(loaded.scans)} scans as they would be sent:")
        for p in loaded.scans[: args.rows]:
            print(f"  row {p.row}: " + json.dumps(p.scan, ensure_ascii=False, sort_keys=True))
        print("batch: " + json.dumps(envelope, ensure_ascii=False, sort_keys=True))


def _print_problems(title: str, problems: Sequence[Any], verb: str | None = None) -> None:
    from services.ingest.domain.booth import group_problems

    lines = group_problems(problems)
    if not lines:
        print(f"{title}: none")
        return
    print(f"{title}:")
    for line in lines:
        print("  " + line.render(verb=verb))


def _send_all(args: argparse.Namespace, loaded: Loaded, envelope: dict[str, Any]) -> int:
    import httpx
    from tqdm import tqdm

    from services.ingest.domain.booth import RowProblem, batch_key

    batches = [loaded.scans[i : i + args.batch_size] for i in range(0, len(loaded.scans), args.batch_size)]
    bodies = [envelope | {"scans": [p.scan for p in batch]} for batch in batches]
    keys = [batch_key(body) for body in bodies]
    progress_path: Path = args.progress_file or args.file.with_name(args.file.name + ".progress.json")
    done: set[str] = set()
    if progress_path.exists():
        try:
            done = set(json.loads(progress_path.read_text()).get("done", []))
        except (ValueError, AttributeError):
            done = set()
    totals = {"accepted": 0, "already": 0, "rejected": 0}
    rejected: list[RowProblem] = []
    bar = tqdm(total=len(loaded.scans), unit="scan", disable=args.no_progress, desc=args.file.name)
    headers = {"authorization": f"Bearer {args.api_key}"}
    with httpx.Client(base_url=args.url, timeout=60, headers=headers) as client:
        for index, (batch, body, key) in enumerate(zip(batches, bodies, keys, strict=True)):
            if key in done:
                totals["already"] += len(batch)
                bar.update(len(batch))
                continue
            sent = _send(client, body, key, args.retries)
            if sent is None:
                bar.close()
                print(f"upload interrupted at batch {index + 1}/{len(batches)}; run again to resume")
                return 2
            result, replayed = sent
            if replayed:
                totals["already"] += len(batch)
            else:
                totals["accepted"] += int(result.get("accepted", 0))
                totals["already"] += int(result.get("duplicate", 0))
            for r in result["results"]:
                if r["status"] != "rejected":
                    continue
                row = batch[r["index"]].row
                totals["rejected"] += 1
                for e in r["errors"]:
                    field = e["field"].split(".", 1)[1] if e["field"].startswith("scans[") else e["field"]
                    rejected.append(RowProblem(row, field, e["problem"], sent=False))
            done.add(key)
            progress_path.write_text(json.dumps({"file": args.file.name, "done": sorted(done)}))
            bar.update(len(batch))
    bar.close()
    not_sent = len({p.row for p in loaded.problems if not p.sent})
    print(
        f"accepted {totals['accepted']}, already uploaded {totals['already']}, "
        f"rejected {totals['rejected']}, not sent {not_sent}"
    )
    if loaded.problems:
        _print_problems("problems found in the file", loaded.problems)
    if rejected:
        _print_problems("rejected by ingest", rejected, verb="rejected")
    progress_path.unlink(missing_ok=True)
    return 0 if not rejected and not not_sent else 1


def _send(client: Any, body: dict[str, Any], idem: str, retries: int) -> tuple[dict[str, Any], bool] | None:
    """The batch's result and whether ingest had already seen it; None when ingest stayed away."""
    import httpx

    delay = 0.5
    for _ in range(retries + 1):
        try:
            resp = client.post("/v1/scans", json=body, headers={"idempotency-key": idem})
        except httpx.TransportError:
            time.sleep(delay)
            delay = min(delay * 2, 10)
            continue
        if resp.status_code in (409, 429, 503):
            time.sleep(float(resp.headers.get("retry-after", delay)))
            continue
        if resp.status_code in (202, 422) and "results" in resp.json():
            data: dict[str, Any] = resp.json()
            return data, resp.headers.get("idempotent-replayed") == "true"
        raise SystemExit(f"upload refused ({resp.status_code}): {resp.text}")
    return None
