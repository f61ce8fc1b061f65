"""``leadpipe privacy basis``: on what basis did we message this person on this date."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date

from leadpipe.commands.ops import _bootstrap_arg, _guard


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("privacy", help="what we hold on a person and why we contacted them")
    s = p.add_subparsers(dest="privacy_command", required=True)
    basis = s.add_parser(
        "basis",
        help="the messages that went to a person (on a date) and the consent or other basis each went on",
    )
    basis.add_argument("--email", default=None, help="the person's email address")
    basis.add_argument("--phone", default=None, help="the person's phone number (SMS and calls)")
    basis.add_argument("--date", default=None, help="YYYY-MM-DD (UTC); default: every day")
    basis.add_argument("--json", action="store_true")
    _bootstrap_arg(basis)
    basis.set_defaults(func=_basis)

    erase = s.add_parser(
        "erase",
        help="erase a person everywhere (publishes person.erasure_requested; services honour it)",
    )
    erase.add_argument("--email", default=None, help="the person's email address")
    erase.add_argument("--phone", default=None, help="the person's phone number")
    erase.add_argument("--lead-id", action="append", default=[], dest="lead_ids", help="a lead id (repeatable)")
    erase.add_argument("--wait", type=float, default=60.0, help="seconds to wait for every service's receipt (0: none)")
    erase.add_argument("--json", action="store_true")
    _bootstrap_arg(erase)
    erase.set_defaults(func=_erase)

    export = s.add_parser("export", help="one JSON document of everything the topics hold on a person")
    export.add_argument("--email", default=None, help="the person's email address")
    export.add_argument("--phone", default=None, help="the person's phone number")
    export.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    _bootstrap_arg(export)
    export.set_defaults(func=_export)


@_guard
def _basis(args: argparse.Namespace) -> int:
    from leadpipe.ops.consent import messages_sent, read_events
    from leadpipe.ops.settings import settings_for

    if not args.email and not args.phone:
        print("leadpipe: error: --email or --phone: give the person's address", file=sys.stderr)
        return 2
    try:
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError:
        print(f"leadpipe: error: --date: {args.date!r} is not a YYYY-MM-DD date", file=sys.stderr)
        return 2
    events = asyncio.run(read_events(settings_for(args.bootstrap)))
    sent = messages_sent(events, email=args.email, phone=args.phone, day=day)
    if args.json:
        print(json.dumps([m.as_dict() for m in sent], indent=2, ensure_ascii=False))
        return 0
    for m in sent:
        print(f"{m.sent_at.isoformat()} {m.channel} {m.template} ({m.notification_id}): basis {m.basis}"
              + (f" on {', '.join(m.basis_channels)}" if m.basis_channels else ""))  # fmt: skip
        if m.consent_capture_id:
            print(f"    consent given {m.consent_given_at.isoformat() if m.consent_given_at else '?'}"
                  f" in capture {m.consent_capture_id}")  # fmt: skip
        if m.proof:
            version = f", wording {m.proof['text_version']}" if m.proof.get("text_version") else ""
            print(f"    shown: {m.proof['text_shown']!r} ({m.proof['source_kind']}"
                  f" {m.proof['form_id'] or m.proof['show_id'] or ''}{version}, ip sha256 {m.proof['ip_sha256']})")  # fmt: skip
    print(f"{len(sent)} message(s)", file=sys.stderr)
    return 0


@_guard
def _erase(args: argparse.Namespace) -> int:
    import getpass

    from leadpipe.ops.privacy import SERVICES, request_erasure
    from leadpipe.ops.settings import settings_for

    if not args.email and not args.phone and not args.lead_ids:
        print("leadpipe: error: --email, --phone or --lead-id: name the person to erase", file=sys.stderr)
        return 2
    req, receipts = asyncio.run(
        request_erasure(
            settings_for(args.bootstrap),
            email=args.email,
            phone=args.phone,
            lead_ids=args.lead_ids,
            requested_by=f"cli:{getpass.getuser()}",
            wait_s=args.wait,
        )
    )
    missing = sorted(set(SERVICES) - {r.service for r in receipts}) if args.wait > 0 else []
    if args.json:
        doc = {
            "request_id": req.request_id,
            "subject_hash": req.subject_hash,
            "receipts": [r.model_dump(mode="json") for r in receipts],
            "missing": missing,
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"erasure {req.request_id} requested (subject {req.subject_hash[:16]}…)")
        for r in receipts:
            done = ", ".join(f"{i.store} {i.action} {i.count}" for i in r.items)
            print(f"  {r.service}: {done}")
        if missing:
            print(f"  no receipt yet from: {', '.join(missing)}", file=sys.stderr)
        print("  not erased by this request: ingest spools (use POST /v1/privacy/erasure), append-only topics"
              " (retention; docs/privacy.md)", file=sys.stderr)  # fmt: skip
    return 1 if missing else 0


@_guard
def _export(args: argparse.Namespace) -> int:
    from leadpipe.ops.privacy import export_person
    from leadpipe.ops.settings import settings_for

    if not args.email and not args.phone:
        print("leadpipe: error: --email or --phone: give the person's address", file=sys.stderr)
        return 2
    doc = asyncio.run(export_person(settings_for(args.bootstrap), email=args.email, phone=args.phone))
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if args.output == "-":
        print(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    counts = ", ".join(f"{k} {len(v)}" for k, v in doc.items() if isinstance(v, list) and k != "limits")
    print(counts, file=sys.stderr)
    return 0
