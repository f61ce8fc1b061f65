"""Events and due timers in -> domain -> events out, for one lead at a time.

Order for every change (so a crash anywhere loses nothing and repeats only with the same ids):
read the state, decide (pure), reserve a rep if routing was asked for (atomic across replicas),
publish the outputs (deterministic event and notification ids), then compare-and-set the state
(its version) and append it to the state topic. A lost race re-reads and decides again.

Overflow: when no rep has room, the team's ``least_loaded`` policy reserves its least-loaded rep
past capacity; otherwise the decision queues the lead (its queue entry is saved with its state).
``serve_queue`` (the scheduler calls it at once after capacity was released here, and every
``NURTURE_CHECK_INTERVAL_S`` for releases elsewhere and new days) routes queued leads hottest first.

``Wake`` is the scheduler's alarm (``scheduler.py``): every due time this worker saves and every
capacity it releases rings it when that is sooner than the scheduler meant to look again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from leadpipe.runtime.erasure import erasure_receipt
from leadpipe.runtime.keystore import prepare_keys, shred_item, shredded_remaining
from leadpipe.runtime.publish import Publisher, SharedAcks
from leadpipe.runtime.stream import TRANSIENT, HandlerError, NotYet
from schemas.assignment_response.v1 import AssignmentResponse
from schemas.envelope import Envelope, new_event
from schemas.lead_assigned.v1 import LeadAssigned
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from schemas.lead_scored.v1 import LeadScored
from schemas.lead_stage_changed.v1 import LeadStageChanged
from schemas.links import assignment_token
from schemas.notification_outcome.v1 import NotificationOutcome
from schemas.notification_requested.v1 import NotificationRequested, Recipient, TouchRef
from schemas.person_erasure_requested.v1 import PersonErasureRequested
from schemas.pii import lead_ref, refs_for
from services.nurture.adapters.metrics import NurtureMetrics
from services.nurture.domain.engine import Decision, Notify, Nurture
from services.nurture.domain.erasure import is_subject_of_erasure
from services.nurture.domain.routing import NO_LIMIT, Candidate, Load, least_loaded, rank, serve_next
from services.nurture.domain.state import LeadState
from services.nurture.ports import NurtureStore, StateAppender

log = logging.getLogger(__name__)

#: Publishes a decision's events and returns once they are acknowledged.
Publish = Callable[[Sequence[Envelope[Any]]], Awaitable[None]]
SOURCE = "/leadpipe/nurture"
_NS = uuid.UUID("9d7a3c8e-51f4-4b7a-8d6e-0c2b1e4f7a90")
MAX_RACES = 20


def inert(event: Envelope[Any]) -> bool:
    """An event that changes no lead, whatever the lead's state: nurture neither reads its lead's
    state nor parks it (most outcomes: a message sent, failed or expired). Two of a grade-A
    lead's three inputs are outcomes of this kind."""
    return isinstance(event.data, NotificationOutcome) and not Nurture.outcome_can_change(event.data)


def event_id(*parts: object) -> str:
    """Deterministic, so a repeated decision republishes the same event ids."""
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


class Known:
    """The state this worker last read or wrote for one lead, so the lead's next event in a batch
    skips the Redis read. Used once: a stale state loses the compare-and-set and is read again."""

    __slots__ = ("state", "valid")

    def __init__(self, state: LeadState | None = None, valid: bool = False):
        self.state, self.valid = state, valid

    def take(self) -> tuple[bool, LeadState | None]:
        valid, self.valid = self.valid, False
        return valid, self.state

    def keep(self, state: LeadState | None) -> None:
        self.state, self.valid = state, True


class RoutingView:
    """The reps' loads and the company domains' owners as one batch sees them: read in one round
    trip when the batch routes its first lead, then kept current with this worker's own
    reservations, releases and owner claims. Each further lead the batch routes costs one round
    trip (its reservation) instead of two. Leads are still routed one at a time (the handler's
    lock), so a batch's leads spread over the reps as before.

    What another replica reserves meanwhile shows at the next batch (or when a lead needs a day
    or a domain the view lacks: it is read again): for that long, leads may spread a little less
    evenly, never past a rep's capacity, which each reservation checks atomically in Redis (a rep
    found full is marked full here)."""

    def __init__(self, domains: Iterable[str] = ()):
        self.domains = {d.lower() for d in domains if d}
        self.days: dict[str, str] | None = None
        self.loads: dict[str, Load] = {}
        self.owners: dict[str, str | None] = {}

    def covers(self, days: dict[str, str], domain: str | None) -> bool:
        return self.days == days and (domain is None or domain in self.owners)

    async def read(self, store: NurtureStore, days: dict[str, str], domain: str | None) -> None:
        if domain is not None:
            self.domains.add(domain)
        self.loads, self.owners = await store.routing_view(days.items(), sorted(self.domains))
        self.days = dict(days)

    def reserved(self, rep_id: str) -> None:
        load = self.loads.get(rep_id, Load())
        self.loads[rep_id] = Load(load.used + 1, time.time())

    def full(self, rep_id: str, capacity: int) -> None:
        load = self.loads.get(rep_id, Load())
        self.loads[rep_id] = Load(max(load.used, capacity), load.last_assigned_at)

    def released(self, rep_id: str, day: str) -> None:
        load = self.loads.get(rep_id)
        if load is not None and self.days is not None and self.days.get(rep_id) == day:
            self.loads[rep_id] = Load(max(0, load.used - 1), load.last_assigned_at)

    def claimed(self, domain: str, rep_id: str) -> None:
        if domain in self.owners and self.owners[domain] is None:  # the first owner stays (HSETNX)
            self.owners[domain] = rep_id


class Wake:
    """When the scheduler means to look for due work next (``at``, epoch seconds), and the bell
    that wakes it sooner: a due time saved before ``at``, or capacity released (the queue waits)."""

    def __init__(self) -> None:
        self.at = math.inf
        self.bell = asyncio.Event()

    def scheduled(self, due: datetime | None) -> None:
        if due is not None and due.timestamp() < self.at:
            self.bell.set()

    def ring(self) -> None:
        self.bell.set()


class Links:
    def __init__(self, secret: str, public_url: str, ttl_s: float):
        self.secret, self.base, self.ttl_s = secret, public_url.rstrip("/"), ttl_s

    def for_assignment(self, assignment_id: str, lead_id: str, rep_id: str) -> tuple[str, str]:
        token = assignment_token(self.secret, assignment_id=assignment_id, lead_id=lead_id, rep_id=rep_id,
                                 ttl_s=self.ttl_s)  # fmt: skip
        return f"{self.base}/v1/assignments/{token}/accept", f"{self.base}/v1/assignments/{token}/decline"


class NurtureHandler:
    def __init__(
        self,
        engine: Nurture,
        store: NurtureStore,
        publisher: Publisher,
        state_log: StateAppender,
        metrics: NurtureMetrics,
        links: Links,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.engine = engine
        self.store = store
        self.publisher = publisher
        self.state_log = state_log
        self.metrics = metrics
        self.links = links
        self.clock = clock
        # Routing reads the reps' loads, then reserves: one lead at a time in this worker, so
        # leads handled concurrently are spread over the reps as they would be one by one.
        self._routing = asyncio.Lock()
        #: Set when this worker released capacity: the scheduler serves the overflow queue at once.
        self.capacity_freed = asyncio.Event()
        #: Rung when this worker schedules something sooner than the scheduler's next look.
        self.wake = Wake()

    # -- entry points ---------------------------------------------------------------------------
    async def erase(self, event: Envelope[Any]) -> None:
        """Deletes the person's lead states from Redis (with their due times, queue places and
        reservations) and tombstones them on the state topic; stage counts stay (aggregates)."""
        req: PersonErasureRequested = event.data
        found: list[str] = []
        refs = refs_for(email=req.email, phone=req.phone, lead_ids=req.lead_ids)
        async for chunk in self.store.states():
            for st in chunk:
                if is_subject_of_erasure(st, email=req.email, phone=req.phone, lead_ids=req.lead_ids):
                    found.append(st.lead_id)
                    # privacy hook: the data keys of the lead and of the addresses it held
                    refs |= refs_for(email=st.lead.email, phone=st.lead.phone, lead_ids=[st.lead_id])
        keys = 0
        for lead_id in found:
            keys += await self.store.erase(lead_id)
            await self.state_log.tombstone(lead_id)
        await self.state_log.flush()
        shredded = shred_item(refs)  # privacy hook: crypto-shredding
        log.info("erasure honoured: %d lead state(s)", len(found), extra={"request_id": req.request_id})
        receipt = erasure_receipt(
            event, service="nurture", erased_at=self.clock(),
            items=[("redis:nurture:lead", "deleted", len(found)),
                   ("redis:nurture (state, due, queue, reservations)", "keys deleted", keys),
                   ("kafka:nurture.state.v1", "tombstoned", len(found)),
                   *((i.store, i.action, i.count) for i in shredded)],
            remaining=shredded_remaining(shredded) or [
                "lead.stage_changed.v1 / lead.assigned.v1 / notification.requested.v1: append-only, until retention",
                "nurture.state.v1: older states until the log cleaner compacts the segment",
            ],
        )  # fmt: skip
        await self.publisher.publish([receipt])

    async def handle(
        self,
        event: Envelope[Any],
        known: Known | None = None,
        publish: Publish | None = None,
        view: RoutingView | None = None,
    ) -> None:
        """Publishes the decision's events (acked before the state write). The state-topic
        append is acknowledged by ``state_log.flush()`` (``NurtureBatch.commit`` calls it).

        ``known``: the lead's state as last read or written by this worker (see ``Known``).
        ``publish``: how the decision's events are published and acked (default the publisher's
        own ``publish``; a batch's leads share their acks, ``SharedAcks``).
        ``view``: the batch's routing view (``RoutingView``); None: routing reads Redis afresh."""
        data = event.data
        now = self.clock()
        if isinstance(data, LeadScored):
            await self._apply(
                data.lead_id,
                lambda st: self.engine.on_scored(st, event.id, data, now, synthetic=event.synthetic),
                now, event, create=True, known=known, publish=publish, view=view,
            )  # fmt: skip
        elif isinstance(data, NotificationOutcome):
            if not self.engine.outcome_can_change(data):
                return  # changes no lead whatever its state: no state read, nothing parked
            await self._apply(data.lead_id, lambda st: self.engine.on_outcome(st, event.id, data, now), now, event,  # type: ignore[arg-type]
                              known=known, publish=publish, view=view)  # fmt: skip
        elif isinstance(data, AssignmentResponse):
            await self._apply(data.lead_id, lambda st: self.engine.on_response(st, event.id, data, now), now, event,  # type: ignore[arg-type]
                              known=known, publish=publish, view=view)  # fmt: skip
        elif isinstance(data, LeadOutcomeLogged):
            await self._apply(data.lead_id, lambda st: self.engine.on_rep_outcome(st, event.id, data, now), now, event,  # type: ignore[arg-type]
                              known=known, publish=publish, view=view)  # fmt: skip
        else:
            raise HandlerError(f"data: nurture does not handle {type(data).__name__}", field="data")

    async def handle_one(self, event: Envelope[Any]) -> None:
        """``handle`` for an event outside a batch (a parked one): its state append acked too."""
        await self.handle(event)
        await self.state_log.flush()

    async def tick(self, lease_s: float, limit: int) -> int:
        """Fires whatever is due (touches, SLA timers, retries, re-nurture). Returns leads handled."""
        now = self.clock()
        ids = await self.store.claim_due(now.timestamp(), lease_s, limit)
        # privacy hook: their state keys read in one round trip (never created: they have states)
        await prepare_keys((), existing=[lead_ref(lead_id) for lead_id in ids])
        for lead_id in ids:
            await self._apply(lead_id, lambda st: self.engine.on_tick(st, now), now, None)  # type: ignore[arg-type]
        if ids:
            await self.state_log.flush()
        return len(ids)

    async def serve_queue(self, rounds: int = 5) -> int:
        """Routes queued leads, hottest first, while reps have room. Returns leads routed for.
        Planned again while the plan changes (a planned lead that vanished or lost a race leaves
        its place to the next), up to ``rounds`` times."""
        self.capacity_freed.clear()
        routed, planned = 0, None
        for _ in range(rounds):
            entries = await self.store.queue()
            if not entries:
                break
            now = self.clock()
            directory = self.engine.directory
            loads = await self.store.loads((r.id, r.local_day(now)) for r in directory.reps)
            chosen = serve_next(entries, directory, loads)
            if not chosen or chosen == planned:
                break  # no place free, or the same plan again: nothing more to do now
            planned = chosen
            for lead_id in chosen:
                try:
                    await self._apply(lead_id, lambda st, at=now: self.engine.on_capacity(st, at), now, None)  # type: ignore[misc]
                except HandlerError as exc:  # one lead's trouble never stops the queue behind it
                    log.warning(
                        "serving %s from the overflow queue failed: %s", lead_id, exc, extra={"lead_id": lead_id}
                    )
            routed += len(chosen)
            await self.state_log.flush()
        return routed

    # -- the read-decide-publish-write loop -------------------------------------------------------
    async def _apply(
        self,
        lead_id: str,
        decide: Callable[[LeadState | None], Decision],
        now: datetime,
        cause: Envelope[Any] | None,
        *,
        create: bool = False,
        known: Known | None = None,
        publish: Publish | None = None,
        view: RoutingView | None = None,
    ) -> None:
        for _ in range(MAX_RACES):
            cached, state = known.take() if known is not None else (False, None)
            if not cached or (state is None and not create):
                state = await self.store.load(lead_id)
            if state is None and not create:
                if cause is None:  # a due or queue entry for a lead that no longer exists
                    await self.store.forget(lead_id)
                    return
                # After a partition heals, an outcome (or a response) can arrive before the lead's
                # state on another partition: parked and tried again, dead-lettered only if the
                # lead still has not appeared by the park deadline.
                raise NotYet(f"data.lead_id: lead {lead_id!r} not seen yet (no lead.scored for it)",
                             field="data.lead_id")  # fmt: skip
            version = state.version if state else 0
            d = decide(state)
            if d.duplicate or d.unchanged:
                if known is not None:
                    known.keep(state)
                if d.duplicate and state is not None:
                    # Delivered again: the worker that applied it may have died after saving the
                    # state and before its state-topic append was acked (appends are acked per
                    # batch). The stored state is the lead's latest: append it again.
                    await self.state_log.append(state)
                return
            await self._settle(d, now, view)
            if state is not None and d.state == state and not (d.stage_changes or d.assigned or d.notifications):
                due = self.engine.next_due(state)
                await self.store.set_due(lead_id, due)  # a claim moved it: put it back
                self.wake.scheduled(due)
                return
            d.state.version = version + 1
            outputs = self._events(d, now, cause)
            await (publish or self.publisher.publish)(outputs)
            due = self.engine.next_due(d.state)
            moves = [] if d.state.synthetic else [(c.from_stage, c.to_stage) for c in d.stage_changes]
            if await self.store.save(d.state, version, due, self.engine.queue_entry(d.state),
                                     owner_claim=d.owner_claim, moves=moves):  # fmt: skip
                self.wake.scheduled(due)
                await self.state_log.append(d.state)
                if known is not None:
                    known.keep(d.state)
                if view is not None and d.owner_claim is not None:
                    view.claimed(*d.owner_claim)
                await self._after(d, now, cause)
                return
            self.metrics.conflicts.inc()
        raise HandlerError(f"lead {lead_id}: state kept changing under {MAX_RACES} attempts")

    async def _settle(self, d: Decision, now: datetime, view: RoutingView | None = None) -> None:
        """Completes routing requests (reserving capacity) and fires anything due right now."""
        for _ in range(8):
            if d.route is not None:
                for rep_id, held_day in d.released:
                    await self.store.release(rep_id, held_day)
                    if view is not None:
                        view.released(rep_id, held_day)
                    self.capacity_freed.set()
                    self.wake.ring()
                d.released = []
                candidate, day = await self._reserve(d, view)
                if candidate is None and not d.state.synthetic:
                    self.metrics.unassigned.inc()
                self.engine.assign(d, candidate, now, day)
            tick = self.engine.on_tick(d.state, now)
            if not tick.notifications and tick.route is None and tick.stage_changes == [] and not tick.sla_breaches:
                d.state = tick.state
                d.deferred += tick.deferred
                d.consent_blocked += tick.consent_blocked
                return
            d.absorb(tick)
            if d.route is None:
                return

    async def _reserve(self, d: Decision, view: RoutingView | None = None) -> tuple[Candidate | None, str | None]:
        async with self._routing:
            return await self._reserve_now(d, view)

    async def _reserve_now(self, d: Decision, view: RoutingView | None = None) -> tuple[Candidate | None, str | None]:
        st, req = d.state, d.route
        assert req is not None
        directory = self.engine.directory
        now = self.clock()
        days = {r.id: r.local_day(now) for r in directory.reps}
        domain = st.lead.company_domain.lower() if st.lead.company_domain else None
        if view is None:
            view = RoutingView()  # routing outside a batch (the scheduler's): read afresh
        if not view.covers(days, domain):
            await view.read(self.store, days, domain)
        loads, owner = view.loads, view.owners.get(domain) if domain is not None else None
        ranked = rank(self.engine.lead_facts(st), directory, loads, exclude=req.exclude, dynamic_owner=owner,
                      ignore_capacity=st.synthetic)  # fmt: skip
        attempt = st.attempts + 1
        for cand in ranked:
            held = await self.store.reserve(st.lead_id, attempt, cand.rep.id, days[cand.rep.id],
                                            cand.rep.daily_capacity, count=not st.synthetic)  # fmt: skip
            if held is None:
                view.full(cand.rep.id, cand.rep.daily_capacity)
                continue
            if held != cand.rep.id:  # another replica already assigned this attempt: keep its choice
                rep = directory.rep(held)
                if rep is None:
                    continue
                cand = Candidate(rep, cand.rule, cand.reason)
            elif not st.synthetic:
                view.reserved(held)
            return cand, None if st.synthetic else days[cand.rep.id]
        return await self._past_capacity(d, days, view)

    async def _past_capacity(
        self, d: Decision, days: dict[str, str], view: RoutingView
    ) -> tuple[Candidate | None, str | None]:
        """Nobody has room: a ``least_loaded`` team takes the lead anyway (its least-loaded rep,
        counted past capacity); a ``queue`` team leaves it to the engine to queue."""
        st, req = d.state, d.route
        assert req is not None
        team = self.engine.overflow_team(st, req.exclude)
        if team is None or team.overflow != "least_loaded":
            return None, None
        attempt = st.attempts + 1
        for rep in least_loaded(team, self.engine.directory, view.loads, exclude=req.exclude):
            held = await self.store.reserve(st.lead_id, attempt, rep.id, days[rep.id], NO_LIMIT, count=not st.synthetic)
            chosen = self.engine.directory.rep(held) if held else None
            if chosen is None:
                continue
            if held == rep.id and not st.synthetic:
                view.reserved(held)
            # lead.assigned's rule is a closed set: this is rotation (by load), the reason says more.
            reason = f"team {team.id} full: least-loaded rep, past capacity"
            cand = Candidate(chosen, "rotation", reason, over_capacity=True)
            return cand, None if st.synthetic else days[chosen.id]
        return None, None

    # -- outputs --------------------------------------------------------------------------------
    def _events(self, d: Decision, now: datetime, cause: Envelope[Any] | None) -> list[Envelope[Any]]:
        st = d.state
        synthetic = st.synthetic or bool(cause and cause.synthetic)
        kw: dict[str, Any] = {"source": SOURCE, "subject": st.lead_id, "synthetic": synthetic,
                              "correlationid": cause.correlationid if cause else None}  # fmt: skip
        out: list[Envelope[Any]] = []
        for c in d.stage_changes:
            payload = LeadStageChanged(lead_id=st.lead_id, from_stage=c.from_stage, to_stage=c.to_stage,
                                       reason=c.reason[:500], changed_at=c.at, trigger_event_id=c.trigger_event_id,
                                       next_touch_at=st.next_touch.due_at if st.cadence_active and st.next_touch else None)  # fmt: skip
            out.append(
                new_event(
                    payload,
                    id=event_id(st.lead_id, "stage", c.from_stage, c.to_stage, c.trigger_event_id or st.version),
                    **kw,
                )
            )
        for a in d.assigned:
            assigned = LeadAssigned(
                assignment_id=a.assignment_id, lead_id=st.lead_id, rep_id=a.rep_id, rep_name=a.rep_name, team=a.team,
                manager_id=a.manager_id, rule=a.rule, attempt=a.attempt, previous_rep_id=a.previous_rep_id,
                reason=a.reason[:500], assigned_at=a.assigned_at, accept_by=a.accept_by,
            )  # fmt: skip
            out.append(new_event(assigned, id=event_id("assigned", a.assignment_id), **kw))
        for n in d.notifications:
            out.append(new_event(self._request(st, n, now), id=event_id("notify", n.notification_id), **kw))
        return out

    def _request(self, st: LeadState, n: Notify, now: datetime) -> NotificationRequested:
        variables = dict(n.variables)
        if n.links and n.assignment_id and n.rep_id:
            accept, decline = self.links.for_assignment(n.assignment_id, st.lead_id, n.rep_id)
            variables |= {"accept_url": accept, "decline_url": decline}
        touch = None
        if n.touch_step is not None and n.playbook:
            touch = TouchRef(playbook=n.playbook, playbook_version=n.playbook_version or "", step=n.touch_step,
                             cadence=n.playbook)  # fmt: skip
        return NotificationRequested(
            notification_id=n.notification_id, lead_id=st.lead_id, audience=n.audience, channel=n.channel,
            recipient=Recipient(address=n.address, name=n.recipient_name, rep_id=n.rep_id, timezone=n.timezone),
            template=n.template, locale=n.locale, variables=variables, requested_at=now, priority=n.priority,
            touch=touch, assignment_id=n.assignment_id, lead_captured_at=st.lead.first_captured_at,
            consent=n.consent, next_touch_at=st.next_touch.due_at if st.cadence_active and st.next_touch else None,
        )  # fmt: skip

    async def _after(self, d: Decision, now: datetime, cause: Envelope[Any] | None) -> None:
        """Side effects that may only follow a committed decision: metrics and logs (the domain's
        owner and the stage counts moved with the state, in ``save``)."""
        st, m = d.state, self.metrics
        for n in d.notifications:
            m.sent.labels(n.audience).inc()
        if d.illegal:
            for exc in d.illegal:
                log.warning("rejected %s", exc, extra={"lead_id": st.lead_id})
        if st.synthetic:
            return
        for team in d.queued:
            m.overflow.labels(team, "queue").inc()
        for a in d.assigned:
            if a.over_capacity:
                m.overflow.labels(a.team or "", "least_loaded").inc()
        for c in d.stage_changes:
            m.transitions.labels(c.from_stage.value if c.from_stage else "none", c.to_stage.value).inc()
        m.illegal.inc(len(d.illegal))
        m.scheduled.inc(d.touches_scheduled)
        m.deferred.inc(d.deferred)
        m.sla_breaches.inc(d.sla_breaches)
        for channel in d.consent_blocked:
            m.cadence_not_started.labels(channel, "no_marketing_consent").inc()
            log.info("cadence not started on %s: no marketing consent", channel, extra={"lead_id": st.lead_id})
        if d.assigned and cause is not None and isinstance(cause.data, LeadScored):
            m.time_to_assignment.observe(max(0.0, (now - cause.time).total_seconds()))
        for a in d.assigned:
            log.info("lead assigned", extra={"lead_id": st.lead_id, "rep": a.rep_id, "rule": a.rule,
                                             "attempt": a.attempt})  # fmt: skip

    async def refresh_gauges(self) -> None:
        m, now, reps = self.metrics, self.clock(), self.engine.directory.reps
        # The four reads at once: one round trip to Redis instead of six in a row (every check_s).
        (due, overdue), stages, loads, queue = await asyncio.gather(
            self.store.due_counts(now.timestamp()),
            self.store.stage_counts(),
            self.store.loads((r.id, r.local_day(now)) for r in reps),
            self.store.queue(),
        )
        m.due.set(due)
        m.overdue.set(overdue)
        for stage, count in stages.items():
            m.leads.labels(stage).set(count)
        for r in reps:
            m.rep_load.labels(r.id).set(loads[r.id].used if r.id in loads else 0)
        waiting: dict[str, list[float]] = {t: [] for t in self.engine.directory.team_ids()}
        for e in queue:
            waiting.setdefault(e.team, []).append(max(0.0, (now - e.since).total_seconds()))
        for team, ages in waiting.items():
            m.queue_depth.labels(team).set(len(ages))
            m.queue_oldest.labels(team).set(max(ages, default=0.0))


class NurtureBatch:
    """The runtime's ``BatchHandler`` (``retry="event"``): the batch's lead states are read in one
    round trip (``begin``, which waits for a rebuild if Redis was wiped); a lead's events run in
    order, different leads concurrently; a lead's later events reuse the state its previous
    event wrote (``Known``; a stale one loses the compare-and-set and is read again); the leads
    running at once share their outputs' acks (``SharedAcks``: one flush where each lead waited
    for its own, each lead's state still written only after its outputs are acked); ``commit``
    waits for the batch's state appends. The batch routes its leads with one ``RoutingView``: the
    reps' loads and the owners of its leads' company domains read once, not once per lead."""

    def __init__(self, handler: NurtureHandler, ensure_built: Callable[[], Awaitable[None]]):
        self.handler = handler
        self.ensure_built = ensure_built
        self._known: dict[str, Known] = {}
        self._acks = SharedAcks(handler.publisher)
        self._view = RoutingView()

    def key(self, event: Envelope[Any]) -> str | None:
        lead_id = getattr(event.data, "lead_id", None)
        return lead_id if isinstance(lead_id, str) else None  # refused by the handler: no group

    @staticmethod
    def state_refs(events: Sequence[Envelope[Any]]) -> tuple[list[str], list[str]]:
        """The runtime's ``seal_refs`` (privacy hook): the state of a scored lead is written (its
        key created when new); another event's lead is written only if it has a state already,
        so its key is only read, never created ahead of the handler."""
        scored = {e.data.lead_id for e in events if isinstance(e.data, LeadScored)}
        others = {
            lid for e in events if isinstance(lid := getattr(e.data, "lead_id", None), str) and not inert(e)
        } - scored
        return [lead_ref(k) for k in sorted(scored)], [lead_ref(k) for k in sorted(others)]

    async def begin(self, events: Sequence[Envelope[Any]]) -> None:
        lead_ids = [k for k in dict.fromkeys(self.key(e) for e in events if not inert(e)) if k is not None]
        self._known = {}
        self._acks = SharedAcks(self.handler.publisher)
        self._view = RoutingView()
        if not lead_ids:
            return
        states, built = await self.handler.store.load_many_checked(lead_ids)
        if not built:  # Redis was wiped: nothing is decided before it is rebuilt
            await self.ensure_built()
            states, _ = await self.handler.store.load_many_checked(lead_ids)
        self._known = {lead_id: Known(state, True) for lead_id, state in states.items()}
        # The company domains the batch's leads may be routed by, read with the loads (lazily: a
        # batch that routes no lead reads neither).
        domains = [e.data.profile.company_domain for e in events if isinstance(e.data, LeadScored)]
        domains += [st.lead.company_domain for st in states.values() if st is not None]
        self._view = RoutingView(d for d in domains if d)

    async def handle(self, event: Envelope[Any]) -> None:
        key = self.key(event)
        known = self._known.get(key) if key is not None else None
        acks = self._acks
        acks.enter()
        try:
            await self.handler.handle(event, known, acks.publish, self._view)
        except TRANSIENT:
            if known is not None:
                known.valid = False  # read again on the retry
            raise
        finally:
            acks.leave()

    async def commit(self) -> None:
        await self.handler.state_log.flush()

    async def abandon(self) -> None:
        self._known = {}
        self._view = RoutingView()
