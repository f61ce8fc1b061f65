"""``leadpipe scans upload FILE --show S --booth B``: send a scanner export to ingest.

Batches of up to 500 scans, each with an Idempotency-Key derived from the file and the batch
number, so re-running after a network failure resumes from the progress file and a batch
that did arrive is not counted twice. Device timestamps in the file are the capture times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scans = sub.add_parser("scans", help="booth-scanner exports")
    ssub = scans.add_subparsers(dest="scans_command", required=True)
    up = ssub.add_parser("upload", help="upload a CSV or vCard export (resumable)")
    up.add_argument("file", type=Path)
    up.add_argument("--show", required=True, help="show id")
    up.add_argument("--booth", required=True)
    up.add_argument("--device", default="cli-upload", help="device id (default: cli-upload)")
    up.add_argument("--staff", default=None)
    up.add_argument("--show-name", default=None)
    up.add_argument("--map", default=None, help='CSV header mapping, e.g. "Badge=badge_id,Scanned=scanned_at"')
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


def load_scans(path: Path, mapping_spec: str | None) -> list[dict[str, Any]]:
    from services.ingest.domain.uploads import parse_mapping, scans_from_csv, scans_from_vcard

    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".vcf", ".vcard") or text.lstrip().upper().startswith("BEGIN:VCARD"):
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
        return scans_from_vcard(text, mtime)
    return scans_from_csv(text, parse_mapping(mapping_spec))


def _upload(args: argparse.Namespace) -> int:
    import httpx
    from tqdm import tqdm

    scans = load_scans(args.file, args.map)
    digest = hashlib.sha256(
        args.file.read_bytes() + f"|{args.show}|{args.booth}|{args.batch_size}".encode()
    ).hexdigest()[:20]
    progress_path: Path = args.progress_file or args.file.with_name(args.file.name + ".progress.json")
    done: set[int] = set()
    if progress_path.exists():
        state = json.loads(progress_path.read_text())
        if state.get("digest") == digest:
            done = set(state.get("done", []))
    batches = [scans[i : i + args.batch_size] for i in range(0, len(scans), args.batch_size)]
    totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
    rejected: list[dict[str, Any]] = []
    bar = tqdm(total=len(scans), unit="scan", disable=args.no_progress, desc=args.file.name)
    bar.update(sum(len(b) for i, b in enumerate(batches) if i in done))
    with httpx.Client(base_url=args.url, timeout=60, headers={"authorization": f"Bearer {args.api_key}"}) as client:
        for index, items in enumerate(batches):
            if index in done:
                continue
            body = {"device_id": args.device, "show_id": args.show, "booth": args.booth, "staff": args.staff,
                    "show_name": args.show_name, "scans": items}  # fmt: skip
            result = _send(client, body, f"upload-{digest}-{index}", args.retries)
            if result is None:
                bar.close()
                print(f"upload interrupted at batch {index + 1}/{len(batches)}; run again to resume")
                return 2
            for k in totals:
                totals[k] += int(result.get(k, 0))
            rejected += [
                r | {"row": index * args.batch_size + r["index"] + 1}
                for r in result["results"]
                if r["status"] == "rejected"
            ]
            done.add(index)
            progress_path.write_text(json.dumps({"digest": digest, "done": sorted(done)}))
            bar.update(len(items))
    bar.close()
    print(f"accepted {totals['accepted']}, duplicate {totals['duplicate']}, rejected {totals['rejected']}")
    for r in rejected[:20]:
        print(f"  row {r['row']}: " + "; ".join(f"{e['field']}: {e['problem']}" for e in r["errors"]))
    progress_path.unlink(missing_ok=True)
    return 0 if not rejected else 1


def _send(client: Any, body: dict[str, Any], idem: str, retries: int) -> dict[str, Any] | None:
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
            return data
        raise SystemExit(f"upload refused ({resp.status_code}): {resp.text}")
    return None
