"""The chaos audit: after faults, read the topics from the start and check the pipeline's promises.

Usable from tests (``audit(...)`` over records in memory, so it is unit-tested with fakes) and
from a script (``read_observed(bootstrap, outbox_dir)`` reads a live stack, ``python -m
tests.chaos audit --bootstrap ... --accepted accepted.jsonl`` runs it standalone).

What is checked (each failure is a ``Problem`` with a kind and the ids involved):

``lost_capture`` / ``lost_engagement``
    An event ingest answered 202 for is not on ``lead.captured.v1`` / ``lead.engagement.v1``.
``unscored_capture``
    An accepted capture on the topic never triggered a ``lead.scored`` (no ``lead.scored``
    has ``trigger.event_id`` equal to the capture's event id). The chaos load makes every
    capture change what scoring publishes (a first capture, a new job title, or a merge), so
    scoring must emit for each one, with one exception: a capture that reached scoring after
    a *newer* capture of the same person under another record key (e.g. phone-only, then
    email+phone: two partitions, no order between them) only fills gaps (DOMAIN: an older
    capture never overwrites a newer one) and may change nothing. Such a capture is
    *absorbed*: it is checked against the lead of that newer capture instead.
``split_capture``
    One capture triggered ``lead.scored`` events for more than one lead.
``stale_current``
    The capture's *current* ``lead.scored`` does not reflect it (definition below).
``double_send``
    A notification id was handed to a channel (a line of the notifier's outbox, i.e. a provider
    call) more than once, or ended ``sent`` under more than one outcome event id.
``conflicting_outcomes``
    One notification id has outcomes with different statuses.
``missing_outcome``
    A request (not synthetic, already due) has no ``notification.outcome``: the request was lost.
``send_without_request``
    The outbox shows a send for a notification id that was never requested.
``dead_lettered``
    A record that decodes under its topic's schema (so it was valid) sits in a ``.dlq`` topic.
``undecodable``
    A record on a pipeline topic that does not decode.
``unrouted_sales_ready``
    A lead whose current ``lead.scored`` is grade A (sales-ready) has no nurture state with an
    assignment or a place in the queue (``wants_rep``): nurture lost the event, or dropped the
    lead between ``lead.scored`` and ``notification.requested``.
``missing_rep_alert``
    A nurture state holds an assignment, but no ``notification.requested`` to a rep (or, for an
    overflow, to a manager) names that assignment.
``overdue_touch``
    A lead's active cadence has a touch due more than ``TOUCH_SLACK`` ago that was never
    requested (the scheduler lost it).

Nurture's view is its compacted state topic (``nurture.state.v1``, the latest state per lead).

**"Exactly one current lead.scored" per accepted capture, precisely.** Let ``T(c)`` be the
``lead.scored`` records whose ``trigger.event_id`` is capture ``c``'s event id. Records with
the same CloudEvents id are one event delivered more than once (at-least-once: scoring
republishes with a deterministic id after a crash, and every consumer de-duplicates on the
id). ``T(c)`` must name exactly one lead ``L``. It may hold more than one event id for it: a batch
that lost a race with another worker (``BatchConflict``) has already published, and its re-run
publishes again, under a new id, from the lead as stored (the later record on ``L``'s partition). Following
merges (a later ``lead.scored`` whose ``merged_lead_ids`` names ``L`` means ``L`` was folded
into that record's lead, repeatedly) gives the surviving lead ``S``. The *current*
``lead.scored`` of ``S`` is its last record on the topic, not counting redeliveries of an
earlier event id (records are keyed by lead id, so all of a lead's records are on one
partition, in order; a consumer that de-duplicates on the id sees exactly this one last). It reflects ``c`` when its
``capture.first_captured_at <= c.captured_at <= capture.last_captured_at`` and its profile
carries ``c``'s email and phone. A lead whose state was lost (e.g. a Redis without the
earlier captures) fails this: its first_captured_at moves past the earlier captures.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from leadpipe.runtime.keystore import open_state
from schemas.codec import decode
from schemas.envelope import Envelope
from schemas.errors import DecodeError
from schemas.lead_captured.v1 import LeadCaptured
from schemas.lead_scored.v1 import LeadScored
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested

CAPTURED = "lead.captured.v1"
ENGAGEMENT = "lead.engagement.v1"
SCORED = "lead.scored.v1"
REQUESTED = "notification.requested.v1"
OUTCOME = "notification.outcome.v1"
RETRY = "notification.retry.v1"
PIPELINE_TOPICS = (CAPTURED, ENGAGEMENT, SCORED, REQUESTED, OUTCOME)
OUTBOX_FILE = "outbox.jsonl"
NURTURE_STATE = "nurture.state.v1"
#: How late a due touch may be before it counts as lost (the scheduler ticks every second; a
#: restarted nurture takes a few seconds to rebuild).
TOUCH_SLACK = timedelta(seconds=60)


@dataclass(frozen=True)
class Rec:
    """One record as read from a topic: decoded, or the reason it did not decode."""

    topic: str
    partition: int
    offset: int
    event: Envelope[Any] | None
    error: str | None = None
    dlq_topic: str | None = None  # for dead letters: the topic the record failed on
    dlq_error: str | None = None  # and why


@dataclass
class Observed:
    """Everything the audit looks at: records per topic (in partition/offset order) and sends."""

    records: dict[str, list[Rec]] = field(default_factory=dict)
    sends: list[dict[str, Any]] = field(default_factory=list)  # outbox.jsonl lines
    #: nurture's latest state per lead id (JSON objects from nurture.state.v1); None: not read
    nurture_states: dict[str, dict[str, Any]] | None = None

    def topic(self, name: str) -> list[Rec]:
        return self.records.get(name, [])


@dataclass
class Accepted:
    """What ingest answered 202 for: event ids of captures and of engagements."""

    captures: list[str] = field(default_factory=list)
    engagements: list[str] = field(default_factory=list)

    def dump(self, path: Path) -> None:
        lines = [orjson.dumps({"kind": "capture", "event_id": e}) for e in self.captures]
        lines += [orjson.dumps({"kind": "engagement", "event_id": e}) for e in self.engagements]
        path.write_bytes(b"".join(line + b"\n" for line in lines))

    @classmethod
    def load(cls, path: Path) -> Accepted:
        out = cls()
        for line in path.read_bytes().splitlines():
            if line.strip():
                row = orjson.loads(line)
                (out.captures if row["kind"] == "capture" else out.engagements).append(row["event_id"])
        return out


@dataclass(frozen=True)
class Problem:
    kind: str
    detail: str


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> Counter[str]:
        return Counter(p.kind for p in self.problems)

    def add(self, kind: str, detail: str) -> None:
        self.problems.append(Problem(kind, detail))

    def summary(self, limit: int = 5) -> str:
        stats = ", ".join(f"{k}={v}" for k, v in sorted(self.stats.items()))
        if self.ok:
            return f"audit OK ({stats})"
        lines = [f"audit FAILED: {dict(self.kinds())} ({stats})"]
        shown: Counter[str] = Counter()
        for p in self.problems:
            shown[p.kind] += 1
            if shown[p.kind] <= limit:
                lines.append(f"  {p.kind}: {p.detail}")
        return "\n".join(lines)


def _digits(phone: str | None) -> str:
    return re.sub(r"\D", "", phone or "")


def _first_by_id(recs: Iterable[Rec]) -> tuple[dict[str, Rec], Counter[str]]:
    first: dict[str, Rec] = {}
    count: Counter[str] = Counter()
    for r in recs:
        if r.event is None:
            continue
        count[r.event.id] += 1
        first.setdefault(r.event.id, r)
    return first, count


def audit(accepted: Accepted, seen: Observed, *, now: datetime | None = None) -> Report:
    """Check the pipeline's promises against what is on the topics (see the module docstring)."""
    report = Report()
    _check_decodable(seen, report)
    _check_dead_letters(seen, report)
    captured, cap_count = _first_by_id(seen.topic(CAPTURED))
    engaged, _ = _first_by_id(seen.topic(ENGAGEMENT))
    report.stats["accepted_captures"] = len(set(accepted.captures))
    report.stats["accepted_engagements"] = len(set(accepted.engagements))
    report.stats["capture_records_duplicated"] = sum(n - 1 for n in cap_count.values())
    for eid in sorted(set(accepted.captures) - set(captured)):
        report.add("lost_capture", f"capture event {eid} was accepted (202) but is not on {CAPTURED}")
    for eid in sorted(set(accepted.engagements) - set(engaged)):
        report.add("lost_engagement", f"engagement event {eid} was accepted (202) but is not on {ENGAGEMENT}")
    _check_scored(accepted, captured, seen, report)
    _check_notifications(seen, report, now)
    if seen.nurture_states is not None:
        _check_nurture(seen, report, now)
    return report


def _check_decodable(seen: Observed, report: Report) -> None:
    for topic in PIPELINE_TOPICS:
        for r in seen.topic(topic):
            if r.event is None:
                report.add("undecodable", f"{topic}[{r.partition}]@{r.offset}: {r.error}")


def _check_dead_letters(seen: Observed, report: Report) -> None:
    dead = 0
    for topic, recs in seen.records.items():
        if not topic.endswith(".dlq"):
            continue
        for r in recs:
            dead += 1
            if r.event is not None:  # it decodes: a valid event was dead-lettered
                report.add(
                    "dead_lettered",
                    f"{topic}[{r.partition}]@{r.offset}: valid {r.event.type} {r.event.id} ({r.dlq_error})",
                )
    report.stats["dead_letters"] = dead


def _check_scored(accepted: Accepted, captured: Mapping[str, Rec], seen: Observed, report: Report) -> None:
    triggered: dict[str, set[tuple[str, str]]] = defaultdict(set)  # capture event id -> {(scored id, lead)}
    merged_into: dict[str, str] = {}
    current: dict[str, tuple[tuple[int, int], LeadScored]] = {}
    scored_ids: Counter[str] = Counter()
    for r in seen.topic(SCORED):
        if r.event is None or not isinstance(r.event.data, LeadScored):
            continue
        data: LeadScored = r.event.data
        scored_ids[r.event.id] += 1
        if scored_ids[r.event.id] > 1:
            continue  # a redelivery: consumers drop it (they de-duplicate on the event id)
        triggered[data.trigger.event_id].add((r.event.id, data.lead_id))
        for gone in data.merged_lead_ids:
            if gone != data.lead_id:
                merged_into[gone] = data.lead_id
        pos = (r.partition, r.offset)
        if data.lead_id not in current or current[data.lead_id][0] < pos:
            current[data.lead_id] = (pos, data)
    report.stats["scored_events"] = len(scored_ids)
    report.stats["scored_records_duplicated"] = sum(n - 1 for n in scored_ids.values())

    def survivor(lead: str) -> str:
        hops = 0
        while lead in merged_into and hops < 100:
            lead, hops = merged_into[lead], hops + 1
        return lead

    absorbed = 0
    for eid in sorted(set(accepted.captures)):
        rec = captured.get(eid)
        if rec is None or rec.event is None:
            continue  # already reported as lost
        cap: LeadCaptured = rec.event.data
        outs = triggered.get(eid, set())
        if not outs:
            newer = _newer_scored_elsewhere(rec, captured, triggered)
            if newer is None:
                report.add("unscored_capture", f"capture {eid} ({cap.capture_id}) never produced a lead.scored")
                continue
            absorbed += 1
            outs = triggered[newer]
        leads = {lead for _, lead in outs}
        if len(leads) > 1:
            report.add("split_capture", f"capture {eid} produced lead.scored for {len(leads)} leads: {sorted(outs)}")
            continue
        (lead,) = leads
        final = survivor(lead)
        if final not in current:
            report.add("stale_current", f"capture {eid}: survivor lead {final} (of {lead}) has no lead.scored")
            continue
        cur = current[final][1]
        why = _not_reflected(cap, cur)
        if why:
            report.add("stale_current", f"capture {eid} in lead {final}: current lead.scored {why}")
    report.stats["leads_current"] = len({survivor(lead) for lead in current})
    report.stats["captures_absorbed"] = absorbed


def _identifiers(cap: LeadCaptured) -> set[str]:
    found = set()
    if cap.identity.email:
        found.add("e:" + cap.identity.email.strip().lower())
    if cap.identity.phone:
        found.add("p:" + _digits(cap.identity.phone)[-9:])
    return found


def _newer_scored_elsewhere(rec: Rec, captured: Mapping[str, Rec], triggered: Mapping[str, Any]) -> str | None:
    """A scored capture sharing an identifier with ``rec``'s but under another record key (so
    another partition, no order between them) and captured later: the event id of the latest."""
    assert rec.event is not None
    cap: LeadCaptured = rec.event.data
    ids = _identifiers(cap)
    best: tuple[datetime, str] | None = None
    for other in captured.values():
        if other.event is None or other.event.subject == rec.event.subject or other.event.id not in triggered:
            continue
        o: LeadCaptured = other.event.data
        if o.captured_at > cap.captured_at and ids & _identifiers(o) and (best is None or o.captured_at > best[0]):
            best = (o.captured_at, other.event.id)
    return best[1] if best else None


def _not_reflected(cap: LeadCaptured, cur: LeadScored) -> str | None:
    summary = cur.capture
    if summary.first_captured_at > cap.captured_at:
        return f"starts at {summary.first_captured_at.isoformat()}, after the capture ({cap.captured_at.isoformat()})"
    if summary.last_captured_at < cap.captured_at:
        return f"ends at {summary.last_captured_at.isoformat()}, before the capture ({cap.captured_at.isoformat()})"
    email = (cap.identity.email or "").strip().lower()
    if email and (cur.profile.email or "").lower() != email:
        return f"has email {cur.profile.email!r}, not the capture's {email!r}"
    phone = _digits(cap.identity.phone)
    if phone and not _digits(cur.profile.phone).endswith(phone[-9:]):
        return f"has phone {cur.profile.phone!r}, not the capture's {cap.identity.phone!r}"
    return None


def _check_notifications(seen: Observed, report: Report, now: datetime | None) -> None:
    requested: dict[str, NotificationRequested] = {}
    synthetic: set[str] = set()
    for r in seen.topic(REQUESTED):
        if r.event is not None and isinstance(r.event.data, NotificationRequested):
            requested.setdefault(r.event.data.notification_id, r.event.data)
            if r.event.synthetic:
                synthetic.add(r.event.data.notification_id)
    statuses: dict[str, set[str]] = defaultdict(set)
    sent_ids: dict[str, set[str]] = defaultdict(set)
    for r in seen.topic(OUTCOME):
        if r.event is not None and isinstance(r.event.data, NotificationOutcome):
            nid = r.event.data.notification_id
            statuses[nid].add(r.event.data.status)
            if r.event.data.status == "sent":
                sent_ids[nid].add(r.event.id)
    sends = Counter(str(s.get("notification_id")) for s in seen.sends)
    report.stats["notifications_requested"] = len(requested)
    report.stats["notifications_sent"] = len(sends)
    report.stats["notifications_pending"] = 0
    for nid, n in sorted(sends.items()):
        if n > 1:
            report.add("double_send", f"notification {nid} was handed to a channel {n} times (outbox)")
        if nid not in requested:
            report.add("send_without_request", f"notification {nid} was sent but never requested")
    for nid, ids in sorted(sent_ids.items()):
        if len(ids) > 1:
            report.add("double_send", f"notification {nid} ended sent under {len(ids)} outcome ids {sorted(ids)}")
    for nid, st in sorted(statuses.items()):
        if len(st) > 1:
            report.add("conflicting_outcomes", f"notification {nid} has outcomes {sorted(st)}")
    for nid, req in sorted(requested.items()):
        if nid in statuses or nid in synthetic:
            continue
        if now is not None and req.not_before is not None and req.not_before > now:
            report.stats["notifications_pending"] += 1
            continue
        report.add("missing_outcome", f"notification {nid} ({req.template}) has no outcome")


def _survivors(scored: Iterable[Rec]) -> dict[str, LeadScored]:
    """The current lead.scored of every lead still standing (merged-away leads left out)."""
    current: dict[str, LeadScored] = {}
    merged: set[str] = set()
    for r in scored:
        if r.event is None or r.event.synthetic or not isinstance(r.event.data, LeadScored):
            continue
        current[str(r.event.data.lead_id)] = r.event.data
        merged.update(str(m) for m in r.event.data.merged_lead_ids)
    return {lead: sc for lead, sc in current.items() if lead not in merged}


def _check_nurture(seen: Observed, report: Report, now: datetime | None) -> None:
    states = seen.nurture_states or {}
    alerts: dict[str, list[str]] = defaultdict(list)
    for r in seen.topic(REQUESTED):
        if r.event is not None and isinstance(r.event.data, NotificationRequested):
            req = r.event.data
            if req.audience in ("rep", "manager"):
                alerts[str(req.lead_id)].append(req.notification_id)
    sales_ready = [lead for lead, sc in _survivors(seen.topic(SCORED)).items() if sc.grade == "A"]
    report.stats["sales_ready_leads"] = len(sales_ready)
    for lead in sorted(sales_ready):
        st = states.get(lead)
        if st is None or (st.get("assignment") is None and not st.get("wants_rep")):
            what = "no nurture state" if st is None else f"stage {st.get('stage')}, neither assigned nor queued"
            report.add("unrouted_sales_ready", f"grade-A lead {lead}: {what}")
    for lead, st in sorted(states.items()):
        if st.get("synthetic"):
            continue
        assignment = st.get("assignment")
        if assignment is not None:
            aid = str(assignment.get("assignment_id"))
            if not any(nid.endswith(aid) for nid in alerts.get(lead, [])):
                report.add("missing_rep_alert", f"lead {lead}: assignment {aid} has no rep alert requested")
        touch = st.get("next_touch")
        if now is not None and st.get("cadence_active") and touch is not None:
            due = datetime.fromisoformat(str(touch["due_at"]))
            if due < now - TOUCH_SLACK:
                report.add(
                    "overdue_touch", f"lead {lead}: touch {touch.get('touch_id')} due {due.isoformat()} never requested"
                )


# -- reading a live stack ---------------------------------------------------------------------


def decode_rec(topic: str, partition: int, offset: int, value: bytes | None, headers: Sequence[Any]) -> Rec:
    hdrs = [(k, bytes(v)) for k, v in headers]
    dlq = {k: v.decode(errors="replace") for k, v in hdrs if k in ("dlq_topic", "dlq_error")}
    where = {"dlq_topic": dlq.get("dlq_topic"), "dlq_error": dlq.get("dlq_error")}
    try:
        return Rec(topic, partition, offset, decode(value, hdrs), **where)
    except DecodeError as exc:
        return Rec(topic, partition, offset, None, str(exc), **where)


async def read_topics(bootstrap: str, topics: Sequence[str], timeout_s: float = 60.0) -> dict[str, list[Rec]]:
    """Every record on ``topics`` from offset 0 until the partitions are read to their end.

    The end offsets only say where to read at least up to: Tansu (in memory) reports a
    partition's end as the last batch's base offset + 1 even when that batch holds several
    records, so reading stops only once the end offsets are passed and one more fetch of
    every partition came back empty.
    """
    from aiokafka import AIOKafkaConsumer

    from leadpipe.runtime.kafka import topic_partitions

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: dict[str, list[Rec]] = {t: [] for t in topics}
    try:
        found = await topic_partitions(consumer, topics)
        missing = [t for t in topics if not found[t]]
        if missing:
            # An audit that read nothing would pass: a topic it cannot find is an error.
            raise LookupError(f"the audit cannot read {missing}: not on the broker")
        tps = [tp for t in topics for tp in found[t]]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if loop.time() > deadline:
                raise TimeoutError(f"could not read {list(topics)} to their end in {timeout_s}s")
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, msgs in batches.items():
                for m in msgs:
                    out[tp.topic].append(decode_rec(tp.topic, tp.partition, m.offset, m.value, m.headers or []))
            if not batches and all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                break
    finally:
        await consumer.stop()
    for recs in out.values():
        recs.sort(key=lambda r: (r.partition, r.offset))
    return out


def read_sends(outbox_dir: Path) -> list[dict[str, Any]]:
    path = outbox_dir / OUTBOX_FILE
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


async def read_observed(bootstrap: str, outbox_dir: Path) -> Observed:
    from schemas.topics import registry

    dlqs = sorted(name for name, spec in registry().items() if spec.dead_letter_of)
    # Sends first: every send read then has its request on the topic by the time topics are read.
    sends = read_sends(outbox_dir)
    # The notifier's retry topic is not audited (its requests are on REQUESTED too) but read
    # so that a dump shows what waits there.
    records = await read_topics(bootstrap, [*PIPELINE_TOPICS, RETRY, *dlqs])
    states = await read_latest_json(bootstrap, NURTURE_STATE)
    return Observed(records, sends, states)


async def read_latest_json(bootstrap: str, topic: str, timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
    """The last JSON value per key of a (compacted) state topic; tombstones remove the key."""
    from aiokafka import AIOKafkaConsumer

    from leadpipe.runtime.kafka import read_to_end, topic_partitions

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    latest: dict[str, dict[str, Any]] = {}

    async def keep(records: list[Any]) -> None:
        for r in records:
            key = r.key.decode()
            opened = open_state(r.value) if r.value is not None else None  # sealed under the lead's key
            if opened is None:  # a tombstone, or a lead erased since
                latest.pop(key, None)
            else:
                latest[key] = orjson.loads(opened)

    try:
        tps = (await topic_partitions(consumer, [topic]))[topic]
        if not tps:
            raise LookupError(f"the audit cannot read {topic}: not on the broker")
        await asyncio.wait_for(read_to_end(consumer, tps, keep), timeout_s)
    finally:
        await consumer.stop()
    return latest


def dump(accepted: Accepted, seen: Observed, directory: Path) -> None:
    """Write what the audit saw (``<topic>.jsonl`` per topic, ``accepted.jsonl``, ``sends.jsonl``)
    so a failed run can be examined after its in-memory broker is gone."""
    directory.mkdir(parents=True, exist_ok=True)
    accepted.dump(directory / "accepted.jsonl")
    (directory / "sends.jsonl").write_bytes(b"".join(orjson.dumps(s) + b"\n" for s in seen.sends))
    for topic, recs in seen.records.items():
        rows = []
        for r in recs:
            row: dict[str, Any] = {"partition": r.partition, "offset": r.offset}
            if r.event is not None:
                row |= {"id": r.event.id, "subject": r.event.subject, "time": r.event.time,
                        "data": r.event.data.model_dump(mode="json")}  # fmt: skip
            else:
                row["error"] = r.error
            if r.dlq_topic:
                row |= {"dlq_topic": r.dlq_topic, "dlq_error": r.dlq_error}
            rows.append(orjson.dumps(row))
        (directory / f"{topic}.jsonl").write_bytes(b"".join(line + b"\n" for line in rows))
