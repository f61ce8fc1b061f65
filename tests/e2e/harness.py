"""What the journey tests stand on: one real stack, a real SMTP server, a tail of every topic,
and small independent re-computations of the calendar rules they check.

Everything here observes the pipeline from outside, through the outputs a person or an
operator would see: mail that reached the SMTP server, the notifier's outbox, records on the
topics (read without joining a consumer group), the services' ``/metrics``.

Compressed time: a cadence "week" is ``WEEK_S`` seconds in the test playbooks (the playbook
format takes fractional day offsets), so six weekly touches take seconds, not six weeks. The
sending window and the working days stay real clock times in each lead's own time zone.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx
import orjson
import phonenumbers
import yaml
from aiosmtpd.controller import Controller
from phonenumbers import timezone as phone_timezone

from leadpipe.devstack.stack import Stack
from leadpipe.ops.reader import plain_consumer
from leadpipe.runtime.kafka import topic_partitions
from leadpipe.runtime.keystore import open_state
from leadpipe.runtime.settings import ServiceSettings
from schemas.codec import Record, decode_record
from schemas.envelope import Envelope
from schemas.topics import TOPICS

T = TypeVar("T")

#: One cadence "week" (and the unit of every lead-facing cadence offset) in the test playbooks.
WEEK_S = 2.0
#: The rep's acceptance window (NURTURE_SLA_SECONDS). Long enough that a rep who clicks at once
#: (journey 1) always beats it on a loaded 2-core machine, short enough to watch it lapse.
SLA_S = 15.0
WEBHOOK_SECRET = "dev-webhook-secret"  # ingest's dev default for provider "demo"
SCANNER_KEY = "dev-scanner-key"
STATE_TOPIC = "nurture.state.v1"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WINDOW_START, WINDOW_END = clock(9, 0), clock(18, 0)
CALL_AT = clock(9, 0)


# -- the calendar, computed independently of services/nurture ------------------------------------
@dataclass(frozen=True)
class Window:
    """The test playbooks' sending window: ``days`` are ISO weekdays (0 = Monday)."""

    days: frozenset[int]
    start: clock = WINDOW_START
    end: clock = WINDOW_END

    def contains(self, at: datetime, zone: str) -> bool:
        local = at.astimezone(ZoneInfo(zone))
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, at: datetime, zone: str) -> datetime:
        """When the window next opens after ``at`` (``at`` itself must be outside it)."""
        tz = ZoneInfo(zone)
        day = at.astimezone(tz).date()
        for _ in range(15):
            opening = datetime.combine(day, self.start, tz)
            if day.weekday() in self.days and opening > at:
                return opening.astimezone(UTC)
            day += timedelta(days=1)
        raise AssertionError("the test window never opens")

    def next_working_day(self, after: date) -> date:
        day = after + timedelta(days=1)
        while day.weekday() not in self.days:
            day += timedelta(days=1)
        return day

    def open_for(self, at: datetime, zone: str, *, margin: timedelta) -> bool:
        """Open at ``at`` and still open ``margin`` later (the same local day)."""
        return self.contains(at, zone) and self.contains(at + margin, zone)


@dataclass(frozen=True)
class Place:
    """A time zone a lead can be in: a phone number plan whose numbers map to it, a served country."""

    zone: str
    country: str
    phone_prefix: str  # + digits; four more digits make a valid number

    def phone(self, n: int) -> str:
        return f"{self.phone_prefix}{n % 10000:04d}"


# Served countries only (scoring's served_area.yaml): a lead outside it loses points and grade.
PLACES = (
    Place("Pacific/Honolulu", "US", "+1808555"),
    Place("America/Los_Angeles", "US", "+1415555"),
    Place("America/Phoenix", "US", "+1480555"),
    Place("America/Chicago", "US", "+1312555"),
    Place("America/New_York", "US", "+1212555"),
    Place("America/Halifax", "CA", "+1902555"),
    Place("Europe/London", "GB", "+44207946"),
    Place("Europe/Paris", "FR", "+3317036"),
    Place("Europe/Berlin", "DE", "+4930901"),
    Place("Asia/Shanghai", "CN", "+86106552"),
    Place("Asia/Tokyo", "JP", "+8131234"),
)


def phone_zone(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    zones = phone_timezone.time_zones_for_number(parsed)
    return zones[0] if zones else None


def pick_place(window: Window, *, open_now: bool, n: int, margin: timedelta = timedelta(minutes=20)) -> Place:
    """A place whose window is open now (for ``margin`` more), or closed for at least ``margin``."""
    now = datetime.now(UTC)
    for place in PLACES:
        if phone_zone(place.phone(n)) != place.zone:
            continue
        if open_now and window.open_for(now, place.zone, margin=margin):
            return place
        if not open_now and not window.contains(now, place.zone) and not window.contains(now + margin, place.zone):
            return place
    state = "open" if open_now else "closed"
    raise AssertionError(f"no place in PLACES has its sending window {state} at {now:%Y-%m-%d %H:%M} UTC")


# -- configuration the stack runs with --------------------------------------------------------------
def _days(days: Iterable[int]) -> list[str]:
    return [DAYS[d] for d in sorted(days)]


def write_playbooks(path: Path, window: Window) -> Path:
    """The shipped playbooks with cadence offsets in compressed weeks (see module docstring)."""
    week = WEEK_S / 86400
    doc = {
        "version": "e2e-1",
        "onboarding_playbook": "new_customer",
        "policy": {
            "sending_window": {
                "days": _days(window.days),
                "start": f"{window.start:%H:%M}",
                "end": f"{window.end:%H:%M}",
            },
            "default_timezone": "UTC",
            "frequency_cap_per_week": 50,
            "give_up_after_touches": 6,
            # The shipped policy in compressed weeks: six touches go out at weeks 0..5, none after
            # the sixth, and the lead is recycled once eight weeks have passed unanswered.
            "give_up_after_days": 8 * week,
            "renurture_after_days": 90,
            "unassigned_retry_minutes": 15,
            "sla_seconds": 900,  # NURTURE_SLA_SECONDS overrides it
            "loyal_after_purchases": 3,
        },
        "playbooks": [
            {
                "id": "web_grade_a",
                "match": {"grades": ["A"], "sources": ["web_form", "api", "referral"]},
                "assign": "immediate",
                "steps": [
                    {"day": 0, "template": "lead_reply", "respect_window": False},
                    {"day": 3, "template": "nurture_content", "topic": "getting started"},
                ],
                "repeat": {"every_days": 7, "template": "weekly_checkin"},
            },
            {
                "id": "booth_hot",
                "match": {"sources": ["booth_scan"], "booth_ratings": ["hot"]},
                "assign": "call_task",
                "call_at": f"{CALL_AT:%H:%M}",
                "steps": [{"day": 1, "template": "nurture_content", "topic": "what we talked about at the show"}],
            },
            {"id": "grade_a_other", "match": {"grades": ["A"]}, "assign": "immediate"},
            {
                "id": "grade_b",
                "match": {"grades": ["B"]},
                "steps": [
                    {"day": 0, "template": "nurture_content", "topic": "getting started"},
                    {"day": week, "template": "nurture_content", "topic": "best practices"},
                    {"day": 2 * week, "template": "nurture_content", "topic": "customer stories"},
                ],
                "repeat": {"every_days": week, "template": "nurture_content", "topic": "news"},
            },
            {
                "id": "grade_c",
                "match": {"grades": ["C"]},
                "repeat": {"every_days": week, "template": "weekly_checkin", "start_day": 0},
            },
            {"id": "grade_d", "match": {"grades": ["D"]}},
            {
                "id": "new_customer",
                "match": {"stages": ["new_customer"]},
                "steps": [{"day": 0, "template": "onboarding"}],
            },
            {"id": "default", "match": {}, "repeat": {"every_days": 7, "template": "weekly_checkin", "start_day": 0}},
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


REPS = {
    # id: (name, territories, alert channel, alert address, manager, capacity, time zone)
    "rep-ana": ("Ana Silva", ["US", "CA"], "email", "ana.silva@sales.example.com", "mgr-amer", 20, "America/New_York"),
    "rep-ben": ("Ben Okafor", ["US", "CA"], "email", "ben.okafor@sales.example.com", "mgr-amer", 20, "America/Chicago"),
    "rep-chloe": ("Chloé Martin", ["FR", "DE", "GB"], "slack", "@chloe.martin", "mgr-emea", 15, "Europe/Paris"),
    "rep-wei": ("Wei Zhang", ["CN", "JP"], "slack", "@wei.zhang", "mgr-emea", 15, "Asia/Shanghai"),
}
MANAGERS = {
    "mgr-amer": ("Riley Chen", "email", "riley.chen@sales.example.com"),
    "mgr-emea": ("Morgan Hale", "slack", "#sales-emea-escalations"),
}


def write_sales_team(path: Path) -> Path:
    """A sales team on call round the clock, so the SLA clock (working time only) runs at any hour."""
    all_week = {"days": list(DAYS), "start": "00:00", "end": "23:59:59"}
    doc = {
        "version": "e2e-1",
        "managers": [
            {"id": mid, "name": name, "alert": {"channel": ch, "address": addr}}
            for mid, (name, ch, addr) in MANAGERS.items()
        ],
        "reps": [
            {
                "id": rid,
                "name": name,
                "territories": terr,
                "languages": ["en"],
                "products": ["platform"],
                "daily_capacity": cap,
                "timezone": tz,
                "working_hours": all_week,
                "alert": {"channel": ch, "address": addr},
                "manager": mgr,
            }
            for rid, (name, terr, ch, addr, mgr, cap, tz) in REPS.items()
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


# -- the SMTP server the notifier delivers to ---------------------------------------------------------
@dataclass(frozen=True)
class Mail:
    received_at: datetime
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def notification_id(self) -> str:
        return str(self.message.get("X-Leadpipe-Notification-Id", ""))

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""  # type: ignore[no-any-return]

    def link(self, label: str) -> str:
        found = re.search(rf"^\s*{label}:\s+(\S+)", self.text, re.M)
        if not found:
            raise AssertionError(f"no {label!r} link in mail {self.subject!r}:\n{self.text}")
        return found.group(1)


class Inbox:
    """aiosmtpd handler keeping every message with the moment it arrived."""

    def __init__(self) -> None:
        self._mails: list[Mail] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self._mails.append(Mail(datetime.now(UTC), tuple(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 2.0.0 queued"

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [m for m in self._mails if address in m.rcpt_tos]

    def all(self) -> list[Mail]:
        with self._lock:
            return list(self._mails)


@contextlib.contextmanager
def smtp_server(port: int) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


# -- every topic, tailed from the start -----------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    topic: str
    offset: int
    event: Envelope[Any] | None = None
    state: dict[str, Any] | None = None
    error: str | None = None

    @property
    def lead_id(self) -> str | None:
        if self.state is not None:
            return str(self.state.get("lead_id"))
        if self.event is not None:
            return getattr(self.event.data, "lead_id", None)
        return None

    def summary(self) -> str:
        if self.error:
            return f"{self.topic}@{self.offset}: undecodable ({self.error})"
        if self.state is not None:
            s = self.state
            nt = s.get("next_touch") or {}
            return (
                f"{self.topic}: v{s.get('version')} stage={s.get('stage')} playbook={s.get('playbook')} "
                f"active={s.get('cadence_active')} stop={s.get('cadence_stop_reason')!r} sent={s.get('touches_sent')} "
                f"unanswered={s.get('unanswered')} suppressed={s.get('suppressed_channels')} "
                f"next_touch={nt.get('touch_id')}@{nt.get('due_at')}"
            )
        assert self.event is not None
        d = self.event.data
        extra = ""
        for name in ("grade", "score", "kind", "to_stage", "reason", "rep_id", "attempt", "notification_id",
                     "template", "status", "response", "channel"):  # fmt: skip
            value = getattr(d, name, None)
            if value is not None:
                extra += f" {name}={getattr(value, 'value', value)}"
        trigger = getattr(d, "trigger", None)
        if trigger is not None and trigger.engagement_kind is not None:
            extra += f" trigger={trigger.engagement_kind.value}"
        if getattr(d, "reasons", None):
            extra += " rules=" + ",".join(f"{r.rule_id}:{r.points:g}" for r in d.reasons)
        return f"{self.event.time:%H:%M:%S.%f} {self.topic}:{extra}"


class TopicTail:
    """Reads every pipeline topic (and nurture's state topic) from offset 0 in a background thread."""

    def __init__(self, bootstrap: str, redis_url: str):
        self.settings = ServiceSettings(kafka_bootstrap_servers=bootstrap, redis_url=redis_url)
        self.topics = [*TOPICS, STATE_TOPIC]
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="topic-tail", daemon=True)

    def start(self, timeout_s: float = 60.0) -> TopicTail:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"topic tail not reading after {timeout_s}s: {self._error!r}")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        consumer = plain_consumer(self.settings)
        await consumer.start()
        try:
            # nurture creates its state topic when it starts: assign once every topic exists.
            deadline = time.monotonic() + 60
            while True:
                found = await topic_partitions(consumer, self.topics)
                missing = [t for t in self.topics if not found[t]]
                if not missing:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topics never appeared: {missing}")
                await asyncio.sleep(0.3)
            tps = [tp for t in self.topics for tp in found[t]]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            self._ready.set()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=1000)
                for tp, msgs in batch.items():
                    for msg in msgs:
                        self._add(tp.topic, msg.offset, msg.key or b"", msg.value or b"", msg.headers or ())
        finally:
            await consumer.stop()

    def _add(self, topic: str, offset: int, key: bytes, value: bytes, headers: Any) -> None:
        if topic == STATE_TOPIC:
            opened = open_state(value) if value else None  # sealed under the lead's data key
            if not opened:  # a tombstone, or a lead erased since (its key destroyed)
                return
            seen = Seen(topic, offset, state=orjson.loads(opened))
        else:
            try:
                record = Record(key=key, value=value, headers=[(k, bytes(v)) for k, v in headers])
                seen = Seen(topic, offset, event=decode_record(record))
            except Exception as exc:
                seen = Seen(topic, offset, error=f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._seen.append(seen)

    def all(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def events(self, topic: str, lead_id: str | None = None) -> list[Envelope[Any]]:
        return [s.event for s in self.all() if s.topic == topic and s.event is not None
                and (lead_id is None or s.lead_id == lead_id)]  # fmt: skip

    def states(self, lead_id: str) -> list[dict[str, Any]]:
        return [s.state for s in self.all() if s.state is not None and s.lead_id == lead_id]


# -- the journey: front doors, observations, and a diagnosis when a step does not happen --------------
@dataclass
class Journey:
    stack: Stack
    inbox: Inbox
    tail: TopicTail
    window: Window
    http: httpx.Client
    run: str  # makes this run's people unique
    used_pii: set[str] = field(default_factory=set)
    #: what one journey leaves for a later check (e.g. the accepted assignment of journey 1)
    notes: dict[str, Any] = field(default_factory=dict)

    # front doors
    def post_demo_form(self, fields: dict[str, str], *, accept_language: str | None = None) -> httpx.Response:
        """As a browser submits the landing page's form (url-encoded, same origin, 303 to /thanks)."""
        self.used_pii.update(v for k, v in fields.items() if k in ("email", "phone"))
        base = self.stack.url("ingest")
        headers = {"Origin": base, "Referer": base + "/"}
        if accept_language is not None:
            headers["Accept-Language"] = accept_language
        return self.http.post(base + "/v1/forms/demo", data=fields, headers=headers, follow_redirects=True)

    def post_scans(self, batch: dict[str, Any]) -> httpx.Response:
        for scan in batch["scans"]:
            self.used_pii.update(scan[k] for k in ("email", "phone") if scan.get(k))
        return self.http.post(
            self.stack.url("ingest") + "/v1/scans", json=batch, headers={"Authorization": f"Bearer {SCANNER_KEY}"}
        )

    def post_webhook(self, event: dict[str, Any], provider: str = "demo") -> httpx.Response:
        """As an email provider reports engagement: HMAC-SHA256 over ``<timestamp>.<body>``."""
        body = orjson.dumps(event)
        ts = int(time.time())
        mac = hmac.new(WEBHOOK_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        return self.http.post(
            self.stack.url("ingest") + f"/v1/webhooks/{provider}",
            content=body,
            headers={"Content-Type": "application/json", "X-Leadpipe-Timestamp": str(ts),
                     "X-Leadpipe-Signature": f"v1={mac}"},
        )  # fmt: skip

    # observations
    def outbox(self, lead_id: str | None = None) -> list[dict[str, Any]]:
        path = self.stack.outbox / "outbox.jsonl"
        if not path.exists():
            return []
        entries = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        return [e for e in entries if lead_id is None or e.get("lead_id") == lead_id]

    def metric(self, service: str, name: str, **labels: str) -> float:
        """The sum of a /metrics series' samples matching ``labels`` (0 when absent)."""
        text = self.http.get(self.stack.url(service) + "/metrics").text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def lead_id_for(self, *, email: str | None = None, phone: str | None = None, timeout_s: float = 60.0) -> str:
        def find() -> str | None:
            for ev in self.tail.events("lead.scored.v1"):
                p = ev.data.profile
                if (email and p.email == email) or (phone and p.phone == phone):
                    return str(ev.data.lead_id)
            return None

        return self.wait(f"lead.scored for {email or phone}", find, timeout_s, identity=email or phone)

    def scored(self, lead_id: str) -> Any:
        return self.tail.events("lead.scored.v1", lead_id)[-1].data

    def requested(self, lead_id: str, *, audience: str | None = None) -> list[Any]:
        return [e.data for e in self.tail.events("notification.requested.v1", lead_id)
                if audience is None or e.data.audience == audience]  # fmt: skip

    def wait(
        self,
        what: str,
        find: Callable[[], T | None],
        timeout_s: float = 30.0,
        *,
        lead_id: str | None = None,
        identity: str | None = None,
    ) -> T:
        """Polls ``find`` until it returns something truthy; else fails with what the pipeline did instead."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = find()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not seen within {timeout_s:.0f}s\n{self.diagnose(lead_id, identity)}")
            time.sleep(0.2)

    def diagnose(self, lead_id: str | None = None, identity: str | None = None) -> str:
        lines = []
        dead = self.stack.first_dead()
        if dead is not None:
            lines.append(f"!! {dead.name} is dead; log: {dead.log_path}")
        seen = self.tail.all()
        identities = {identity} if identity else set()
        for s in seen:  # the lead's captures and engagements carry its email or phone, not its id
            if lead_id is not None and s.lead_id == lead_id and s.topic == "lead.scored.v1" and s.event is not None:
                identities |= {x for x in (s.event.data.profile.email, s.event.data.profile.phone) if x}
        related = []
        for s in seen:
            mine = lead_id is not None and s.lead_id == lead_id
            dump = s.event.model_dump_json() if s.event is not None and s.lead_id is None else ""
            same_person = any(i in dump for i in identities)
            if mine or same_person or s.error or s.topic.endswith(".dlq"):
                related.append(s)
        lines.append(f"events for lead {lead_id or identity} ({len(related)} of {len(seen)} on the topics):")
        lines += [f"  {s.summary()}" for s in related[-60:]]
        inbox = self.inbox.all() if self.inbox is not None else []  # the privacy journey has no SMTP inbox
        mails = [m for m in inbox if lead_id and lead_id in m.notification_id]
        lines.append(f"mail received for it ({len(mails)} of {len(inbox)}):")
        lines += [f"  {m.received_at:%H:%M:%S.%f} to {m.rcpt_tos} {m.notification_id} {m.subject!r}" for m in mails]
        box = self.outbox(lead_id) if lead_id else []
        lines.append(f"outbox entries for it: {len(box)}")
        lines += [f"  {e.get('at')} {e.get('channel')} {e.get('notification_id')} {e.get('subject')!r}" for e in box]
        return "\n".join(lines)


def wait_ready(stack: Stack, http: httpx.Client, services: Iterable[str], timeout_s: float = 90.0) -> None:
    """Every service answers /readyz 200 (its agents started and its Redis and Kafka reachable)."""
    stack.wait_ready(list(services), timeout_s)


def scan_logs_for(logs: Path, needles: Iterable[str]) -> dict[str, list[str]]:
    """Which of ``needles`` appear in which log file (case-insensitive, also phone digits alone)."""
    variants: dict[str, str] = {}
    for n in needles:
        variants[n.lower()] = n
        digits = re.sub(r"\D", "", n)
        if n.startswith("+") and len(digits) >= 8:
            variants[digits] = n
    found: dict[str, list[str]] = {}
    for path in sorted(logs.glob("*.log")):
        text = path.read_text(errors="replace").lower()
        for variant, original in variants.items():
            if variant in text:
                found.setdefault(original, []).append(path.name)
    return found
