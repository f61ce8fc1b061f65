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
            print(f"    shown: {m.proof['text_shown']!r} ({m.proof['source_kind']}"
                  f" {m.proof['form_id'] or m.proof['show_id'] or ''}, ip sha256 {m.proof['ip_sha256']})")  # fmt: skip
    print(f"{len(sent)} message(s)", file=sys.stderr)
    return 0
