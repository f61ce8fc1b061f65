"""The nurture rules applied to one lead: events and the passing of time in, decisions out.

Every entry point takes the lead's state and ``now`` (an injected clock: tests never sleep) and
returns a ``Decision``: the new state plus what should happen (stage changes, notifications,
a routing request). Nothing here does I/O; ids are deterministic so a replay repeats itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from schemas.assignment_response.v1 import AssignmentResponse
from schemas.base import EngagementKind, Grade, MarketingBasis, Stage
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from schemas.lead_scored.v1 import LeadScored
from schemas.notification_outcome.v1 import NO_CONSENT_ERROR, NotificationOutcome
from services.nurture.domain import lifecycle
from services.nurture.domain.calendar import at_local, first_working_day_after, next_open, zone
from services.nurture.domain.consent import WAITING_FOR_CONSENT, basis_for, consented_channels, not_started
from services.nurture.domain.errors import IllegalTransition
from services.nurture.domain.playbooks import Playbook, PlaybookSet
from services.nurture.domain.routing import (
    Candidate,
    Directory,
    LeadFacts,
    QueueEntry,
    Rep,
    Team,
    overflow_recipient,
    overflow_team,
)
from services.nurture.domain.state import (
    CONSENT_NOTES_KEEP,
    TOUCH_LOG_KEEP,
    Assignment,
    ConsentNote,
    LeadState,
    LeadView,
    Queued,
    ScheduledTouch,
)

S = Stage
ANSWERS = frozenset(
    {EngagementKind.EMAIL_REPLIED, EngagementKind.MEETING_BOOKED, EngagementKind.EMAIL_CLICKED,
     EngagementKind.PAGE_VISIT, EngagementKind.PURCHASED}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StageChange:
    from_stage: Stage | None
    to_stage: Stage
    reason: str
    at: datetime
    trigger_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Notify:
    """A message to request. ``notification_id`` is stable (the touch or assignment it is for)."""

    notification_id: str
    audience: Literal["lead", "rep", "manager"]
    channel: str
    address: str
    template: str
    variables: dict[str, Any]
    recipient_name: str | None = None
    rep_id: str | None = None
    timezone: str | None = None
    locale: str = "en"
    priority: Literal["high", "normal", "low"] = "normal"
    assignment_id: str | None = None
    touch_step: int | None = None
    playbook: str | None = None
    playbook_version: str | None = None
    #: rep alerts and call tasks carry signed accept/decline links (made by the handler)
    links: bool = False
    #: the basis a marketing touch rests on (None: transactional, or not lead-facing)
    consent: MarketingBasis | None = None


@dataclass(frozen=True, slots=True)
class RouteRequest:
    exclude: tuple[str, ...]
    reason: str
    breach_of: Assignment | None = None


@dataclass
class Decision:
    state: LeadState
    stage_changes: list[StageChange] = field(default_factory=list)
    notifications: list[Notify] = field(default_factory=list)
    assigned: list[Assignment] = field(default_factory=list)
    route: RouteRequest | None = None
    illegal: list[IllegalTransition] = field(default_factory=list)
    released: list[tuple[str, str]] = field(default_factory=list)
    owner_claim: tuple[str, str] | None = None
    #: teams whose overflow queue the lead entered
    queued: list[str] = field(default_factory=list)
    duplicate: bool = False
    #: the event changes nothing (so the state is neither saved nor appended to the state topic)
    unchanged: bool = False
    sla_breaches: int = 0
    touches_scheduled: int = 0
    deferred: int = 0
    stale: bool = False
    #: channels newly put on the timeline as "cadence not started: no marketing consent"
    consent_blocked: list[str] = field(default_factory=list)

    def absorb(self, other: Decision) -> Decision:
        self.state = other.state
        self.stage_changes += other.stage_changes
        self.notifications += other.notifications
        self.assigned += other.assigned
        self.route = other.route or self.route
        self.illegal += other.illegal
        self.released += other.released
        self.owner_claim = other.owner_claim or self.owner_claim
        self.queued += other.queued
        self.sla_breaches += other.sla_breaches
        self.touches_scheduled += other.touches_scheduled
        self.deferred += other.deferred
        self.consent_blocked += other.consent_blocked
        return self


def _first_name(full: str | None) -> str:
    return full.split()[0] if full and full.split() else "there"


def locale_for(language: str | None) -> str:
    return "zh-CN" if language and language.lower().startswith("zh") else "en"


def lead_card(v: LeadView) -> dict[str, Any]:
    """The ``lead`` variable of rep-facing templates (docs/contracts.md)."""
    return {
        "name": v.name or "(no name)",
        "company": v.company,
        "title": v.title,
        "grade": v.grade.value,
        "score": v.score,
        "reasons": v.reasons[:3],
        "source": v.source_kind.value,
    }


class Nurture:
    """The rules, configured by a playbook set and a sales directory."""

    def __init__(self, playbooks: PlaybookSet, directory: Directory):
        self.playbooks = playbooks
        self.directory = directory
        self.policy = playbooks.policy
        self.consent = playbooks.consent

    # -- stage -------------------------------------------------------------------------------
    def _move(self, d: Decision, to: Stage, reason: str, at: datetime, trigger: str | None) -> bool:
        st = d.state
        if st.stage is to:
            return False
        try:
            lifecycle.move(st.stage, to, reason, at)
        except IllegalTransition as exc:
            d.illegal.append(exc)
            st.illegal_transitions += 1
            return False
        d.stage_changes.append(StageChange(st.stage, to, reason, at, trigger))
        st.stage = to
        return True

    # -- cadence ------------------------------------------------------------------------------
    def _start_cadence(self, d: Decision, pb: Playbook, now: datetime) -> None:
        st = d.state
        st.playbook, st.playbook_version = pb.id, self.playbooks.version
        st.cadence_started_at, st.cadence_active, st.cadence_stop_reason = now, True, None
        st.unanswered, st.first_unanswered_at = 0, None
        self._schedule(d, 0, now)

    def _schedule(self, d: Decision, index: int, now: datetime) -> None:
        st = d.state
        pb = self.playbooks.get(st.playbook or "")
        step = pb.touch(index) if pb else None
        if pb is None or step is None or st.cadence_started_at is None:
            st.next_touch = None
            if st.cadence_active:
                self._stop(d, "cadence complete")
            return
        due = st.cadence_started_at + timedelta(days=step.day)
        touch_id = f"touch:{st.lead_id}:{st.cycle}:{pb.id}:{index}"
        st.next_touch = ScheduledTouch(
            touch_id=touch_id, step=index, template=step.template, topic=step.topic, due_at=due,
            respect_window=step.respect_window,
        )  # fmt: skip
        d.touches_scheduled += 1
        if self.consent.is_marketing(step.template) and self._reachable(st):
            # Said now rather than when the touch falls due, so the timeline explains the silence.
            self._note_unconsented(d, now)
            if self.marketing_channel(st) is None:
                self._wait_for_consent(d)

    def _stop(self, d: Decision, reason: str) -> None:
        d.state.cadence_active = False
        d.state.cadence_stop_reason = reason
        d.state.next_touch = None

    def _reachable(self, st: LeadState) -> list[tuple[str, str]]:
        """(channel, address) of the lead, in order of preference, minus suppressed and invalid ones."""
        v, out = st.lead, []
        if v.email and "email" not in st.suppressed_channels and v.email not in st.invalid_addresses:
            out.append(("email", v.email))
        if v.phone and "sms" not in st.suppressed_channels and v.phone not in st.invalid_addresses:
            out.append(("sms", v.phone))
        return out

    def lead_channel(self, st: LeadState) -> tuple[str, str] | None:
        """The channel and address a transactional touch may use, or None when none is left."""
        reachable = self._reachable(st)
        return reachable[0] if reachable else None

    # -- consent ------------------------------------------------------------------------------
    def basis(self, st: LeadState, channel: str) -> MarketingBasis | None:
        v = st.lead
        proof = {"given_at": v.consent_given_at, "source_kind": v.consent_source_kind,
                 "capture_id": v.consent_capture_id}  # fmt: skip
        return basis_for(channel, consented=v.consent_channels, country=v.country, policy=self.consent, proof=proof)

    def marketing_channel(self, st: LeadState) -> tuple[str, str, MarketingBasis] | None:
        """The first reachable channel with a marketing basis, its address and the basis."""
        for channel, address in self._reachable(st):
            basis = self.basis(st, channel)
            if basis is not None:
                return channel, address, basis
        return None

    def _note_unconsented(self, d: Decision, now: datetime) -> None:
        """Each reachable channel without a marketing basis goes on the timeline, once a cycle."""
        st = d.state
        for channel, _ in self._reachable(st):
            if self.basis(st, channel) is not None:
                continue
            if any(n.channel == channel and n.cycle == st.cycle for n in st.consent_notes):
                continue
            note = ConsentNote(at=now, channel=channel, reason=not_started(channel), cycle=st.cycle)
            st.consent_notes = [*st.consent_notes, note][-CONSENT_NOTES_KEEP:]
            d.consent_blocked.append(channel)

    def _next_is_marketing(self, st: LeadState) -> bool:
        return st.next_touch is not None and self.consent.is_marketing(st.next_touch.template)

    def _wait_for_consent(self, d: Decision) -> None:
        """The cadence holds its next touch until a channel gets a basis (see ``_qualify``)."""
        d.state.cadence_active = False
        d.state.cadence_stop_reason = WAITING_FOR_CONSENT

    def _window_and_cap(self, st: LeadState, touch: ScheduledTouch, now: datetime) -> datetime:
        """The earliest moment from ``now`` the touch may go: inside the lead's sending window and
        under the frequency cap (at most ``frequency_cap`` lead touches per rolling period)."""
        p = self.policy
        tz = zone(st.lead.timezone, p.default_timezone)
        when = now
        for _ in range(8):
            before = when
            if touch.respect_window:
                when = next_open(when, tz, p.sending_window)
            recent = sorted(t for t in st.touch_log if t > when - p.frequency_period)
            if len(recent) >= p.frequency_cap:
                when = max(when, recent[len(recent) - p.frequency_cap] + p.frequency_period)
            if when == before:
                break
        return when

    def _variables(self, st: LeadState, touch: ScheduledTouch) -> dict[str, Any]:
        first = st.lead.first_name or _first_name(st.lead.name)
        if touch.template == "lead_reply":
            rep = st.assignment.rep_name if st.assignment and st.assignment.status != "declined" else None
            return {"first_name": first, "rep_name": rep}
        if touch.template == "nurture_content":
            return {"first_name": first, "step": touch.step + 1, "topic": touch.topic or "our product"}
        if touch.template == "onboarding":
            return {"first_name": first, "step": touch.step + 1}
        return {"first_name": first}

    def _fire_touch(self, d: Decision, now: datetime) -> None:
        st = d.state
        touch = st.next_touch
        if touch is None or not st.cadence_active or touch.due_at > now:
            return
        p = self.policy
        if st.unanswered >= p.give_up_after_touches and st.first_unanswered_at is not None:
            # The last touch of the effort has gone: send no more, give the lead the rest of the
            # effort's period (default 6 touches over 8 weeks) to answer, then recycle it.
            give_up_at = st.first_unanswered_at + p.give_up_after
            if now < give_up_at:
                st.next_touch = touch.model_copy(update={"due_at": give_up_at})
                return
            reason = f"{st.unanswered} touches unanswered over {(now - st.first_unanswered_at).days} days"
            self._stop(d, "gave up: " + reason)
            if self._move(d, S.RECYCLED, "gave up: " + reason, now, None):
                st.recycled_at = now
            return
        channel = self.lead_channel(st)
        if channel is None:
            self._stop(d, "no reachable channel (suppressed or invalid)")
            return
        basis = None
        if self.consent.is_marketing(touch.template):
            pick = self.marketing_channel(st)
            if pick is None:
                self._note_unconsented(d, now)
                self._wait_for_consent(d)
                return
            channel, basis = (pick[0], pick[1]), pick[2]
        when = self._window_and_cap(st, touch, now)
        if when > now:
            st.next_touch = touch.model_copy(update={"due_at": when, "deferrals": touch.deferrals + 1})
            d.deferred += 1
            return
        d.notifications.append(
            Notify(
                notification_id=touch.touch_id, audience="lead", channel=channel[0], address=channel[1],
                template=touch.template, variables=self._variables(st, touch), recipient_name=st.lead.name,
                timezone=st.lead.timezone, locale=locale_for(st.lead.language), touch_step=touch.step,
                playbook=st.playbook, playbook_version=st.playbook_version,
                priority="high" if touch.template == "lead_reply" else "normal", consent=basis,
            )
        )  # fmt: skip
        st.touch_log = [*st.touch_log, now][-TOUCH_LOG_KEEP:]
        st.touches_sent += 1
        st.unanswered += 1
        if st.first_unanswered_at is None:
            st.first_unanswered_at = now
        self._schedule(d, touch.step + 1, now)

    # -- events -------------------------------------------------------------------------------
    def on_scored(
        self, state: LeadState | None, event_id: str, data: LeadScored, now: datetime, *, synthetic: bool = False
    ) -> Decision:
        if state is not None and event_id in state.seen:
            return Decision(state, duplicate=True)
        new = state is None
        st = state.copied() if state else LeadState(lead_id=data.lead_id, synthetic=synthetic)
        d = Decision(st)
        if new:
            d.stage_changes.append(StageChange(None, S.CAPTURED, "first scored", now, event_id))
        st.remember(event_id)
        # Scoring may publish for one engagement more than once under different ids (a batch re-run
        # after another replica changed the lead, a model switched mid-batch): the newer lead.scored
        # is the lead, but what the engagement does (a purchase counted, a reply stopping the
        # cadence) happens once per engagement event.
        trigger = f"trigger:{data.trigger.event_id}"
        engaged_before = data.trigger.engagement_kind is not None and trigger in st.seen
        if data.trigger.engagement_kind is not None and not engaged_before:
            st.remember(trigger)
        p, c = data.profile, data.capture
        st.lead = LeadView(
            name=p.full_name, first_name=_first_name(p.full_name) if p.full_name else None, company=p.company,
            company_domain=p.company_domain, title=p.job_title, email=p.email, phone=p.phone, timezone=p.timezone,
            language=p.language, country=p.country, grade=data.grade, score=data.score,
            reasons=[r.description for r in sorted(data.reasons, key=lambda r: -abs(r.points))],
            source_kind=c.source_kind, show_id=c.show_id, show_ends_on=c.show_ends_on, booth_rating=c.booth_rating,
            product_interest=list(c.product_interest), core_account=data.core_account,
            first_captured_at=c.first_captured_at, consent_channels=consented_channels(data),
            consent_given_at=data.consent.given_at if data.consent else None,
            consent_source_kind=data.consent.source_kind if data.consent else None,
            consent_capture_id=data.consent.capture_id if data.consent else None,
        )  # fmt: skip
        for ch in data.suppressed_channels:
            if ch.value not in st.suppressed_channels:
                st.suppressed_channels.append(ch.value)
        for addr in data.invalid_addresses:
            if addr not in st.invalid_addresses:
                st.invalid_addresses.append(addr)
        if st.queued is not None:  # a lead that heats up while it waits moves up the queue
            st.queued = st.queued.model_copy(update={"grade": data.grade, "score": data.score})
        if not engaged_before:
            self._engagement(d, data, event_id, now)
        if st.queued is not None and (st.stage in lifecycle.CUSTOMER or st.stage is S.DISQUALIFIED):
            st.queued, st.wants_rep = None, False  # bought (or ruled out) while waiting: no rep needed now
        self._qualify(d, data, event_id, now)
        return d

    def _engagement(self, d: Decision, data: LeadScored, event_id: str, now: datetime) -> None:
        st, t = d.state, data.trigger
        kind = t.engagement_kind
        if kind is None:
            return
        if kind in ANSWERS:
            st.unanswered, st.first_unanswered_at = 0, None
        if kind in (EngagementKind.UNSUBSCRIBED, EngagementKind.COMPLAINED):
            channel = (t.channel.value if t.channel else "email").replace("phone", "sms")
            if channel not in st.suppressed_channels:
                st.suppressed_channels.append(channel)
            if self.lead_channel(st) is None and st.cadence_active:
                self._stop(d, f"{kind.value} on every reachable channel")
            elif st.cadence_active and self._next_is_marketing(st) and self.marketing_channel(st) is None:
                # The channel left has no consent: hold now rather than when the touch falls due.
                self._note_unconsented(d, now)
                self._wait_for_consent(d)
        elif kind is EngagementKind.EMAIL_BOUNCED and t.bounce_type == "hard":
            if st.lead.email and st.lead.email not in st.invalid_addresses:
                st.invalid_addresses.append(st.lead.email)
        elif kind is EngagementKind.EMAIL_REPLIED:
            if st.stage in lifecycle.PRE_CUSTOMER or st.stage in (S.RECYCLED, S.DISQUALIFIED):
                self._stop(d, "lead replied")
                target = S.SALES_QUALIFIED if lifecycle.rank(st.stage) >= lifecycle.rank(S.ENGAGED) else S.ENGAGED
                if lifecycle.rank(st.stage) < lifecycle.rank(target):
                    self._move(d, target, "lead replied", now, event_id)
        elif kind is EngagementKind.MEETING_BOOKED:
            self._stop(d, "meeting booked")
            target = S.OPPORTUNITY if st.stage is S.SALES_QUALIFIED else S.SALES_QUALIFIED
            if st.stage not in lifecycle.CUSTOMER and lifecycle.rank(st.stage) < lifecycle.rank(target):
                self._move(d, target, "meeting booked", now, event_id)
        elif kind is EngagementKind.PURCHASED:
            st.purchases += 1
            if st.stage is S.NEW_CUSTOMER:
                self._move(d, S.REPEAT_CUSTOMER, "bought again", now, event_id)
            elif st.stage is S.REPEAT_CUSTOMER:
                if st.purchases >= self.policy.loyal_after_purchases:
                    self._move(d, S.LOYAL_CUSTOMER, f"{st.purchases} purchases", now, event_id)
            elif st.stage is not S.LOYAL_CUSTOMER and self._move(d, S.NEW_CUSTOMER, "first purchase", now, event_id):
                onboarding = self.playbooks.get(self.playbooks.onboarding)
                if onboarding is not None:
                    st.cycle += 1
                    self._start_cadence(d, onboarding, now)

    def _qualify(self, d: Decision, data: LeadScored, event_id: str, now: datetime) -> None:
        st = d.state
        if st.stage is S.CAPTURED and data.grade in (Grade.A, Grade.B):
            self._move(d, S.ENGAGED, f"grade {data.grade.value}: marketing-qualified", now, event_id)
        if st.stage in (S.RECYCLED, S.DISQUALIFIED, *lifecycle.CUSTOMER):
            return
        waiting = st.cadence_stop_reason == WAITING_FOR_CONSENT
        if waiting and st.next_touch is not None and self.marketing_channel(st) is not None:
            # Consent arrived (a later form, a booth opt-in): the held touch goes now or when due.
            st.cadence_active, st.cadence_stop_reason = True, None
        elif st.cadence_stop_reason and not waiting:
            return
        if st.playbook is None:
            pb = self.playbooks.choose(data.grade, data.capture.source_kind, data.capture.booth_rating, st.stage)
            if pb is None:
                return
            self._start_cadence(d, pb, now)
        pb = self.playbooks.get(st.playbook or "")
        wants_sales = (pb is not None and pb.assign != "none") or data.grade is Grade.A
        if wants_sales and st.assignment is None and not st.wants_rep:
            d.route = RouteRequest(tuple(st.tried_reps), f"grade {data.grade.value} lead is sales-ready")

    @staticmethod
    def outcome_can_change(data: NotificationOutcome) -> bool:
        """Whether this outcome can change its lead at all, whatever the lead's state: a lead's
        channel suppressed by the provider (not a refusal for want of consent, which nurture
        already knows of). Such an outcome is remembered once applied; no other one ever is."""
        no_consent = (data.error or "").startswith(NO_CONSENT_ERROR)
        return data.audience == "lead" and data.status == "suppressed" and not no_consent

    def on_outcome(self, state: LeadState, event_id: str, data: NotificationOutcome, now: datetime) -> Decision:
        """Only a lead's channel suppressed by the provider (not a refusal for want of consent,
        which nurture already knows of) changes the lead. Any other outcome (sent, failed, expired;
        a rep's or a manager's message) changes nothing, so it is not remembered or written: most
        outcomes are of this kind, and applying one again changes nothing either."""
        if event_id in state.seen:
            return Decision(state, duplicate=True)
        if not self.outcome_can_change(data):
            return Decision(state, unchanged=True)
        st = state.copied()
        st.remember(event_id)
        d = Decision(st)
        ch = data.channel.value
        if ch not in st.suppressed_channels:
            st.suppressed_channels.append(ch)
        if self.lead_channel(st) is None and st.cadence_active:
            self._stop(d, "every reachable channel is suppressed")
        return d

    def on_response(self, state: LeadState, event_id: str, data: AssignmentResponse, now: datetime) -> Decision:
        if event_id in state.seen:
            return Decision(state, duplicate=True)
        st = state.copied()
        st.remember(event_id)
        d = Decision(st)
        a = st.assignment
        if a is None or a.assignment_id != data.assignment_id or a.rep_id != data.rep_id or a.status != "pending":
            d.stale = True
            return d
        if data.response == "accepted":
            a.status = "accepted"
            if lifecycle.rank(st.stage) < lifecycle.rank(S.SALES_QUALIFIED):
                self._move(d, S.SALES_QUALIFIED, f"accepted by {a.rep_id}", now, event_id)
            if st.lead.company_domain:
                d.owner_claim = (st.lead.company_domain.lower(), a.rep_id)
            return d
        a.status = "declined"
        if a.capacity_day:
            d.released.append((a.rep_id, a.capacity_day))
        d.route = RouteRequest(tuple(st.tried_reps), f"declined by {a.rep_id}")
        return d

    def on_rep_outcome(self, state: LeadState, event_id: str, data: LeadOutcomeLogged, now: datetime) -> Decision:
        """A rep's verdict: *not interested* disqualifies the lead, *lost* recycles it (nurtured
        again later); either way the cadence stops. Only the rep the lead is assigned to decides."""
        if event_id in state.seen:
            return Decision(state, duplicate=True)
        st = state.copied()
        st.remember(event_id)
        d = Decision(st)
        a = st.assignment
        if a is None or a.rep_id != data.rep_id or a.status == "declined":
            d.stale = True
            return d
        reason = f"{data.outcome.replace('_', ' ')} (logged by {data.rep_id})"
        self._stop(d, reason)
        if data.outcome == "not_interested":
            self._move(d, S.DISQUALIFIED, reason, now, event_id)
        elif self._move(d, S.RECYCLED, reason, now, event_id):
            st.recycled_at = now
        return d

    def on_capacity(self, state: LeadState, now: datetime) -> Decision:
        """A rep has room again and this queued lead is next: route it (the queue is served in
        ``routing.queue_order``). A lead no longer waiting is left as it is."""
        st = state.copied()
        d = Decision(st)
        if st.queued is not None and (st.assignment is None or st.assignment.status != "pending"):
            d.route = RouteRequest(tuple(st.tried_reps), f"a rep has room: next in the {st.queued.team} overflow queue")
        return d

    # -- time ---------------------------------------------------------------------------------
    def on_tick(self, state: LeadState, now: datetime) -> Decision:
        st = state.copied()
        d = Decision(st)
        a = st.assignment
        if a is not None and a.status == "pending" and now >= a.accept_by:
            a.status = "expired"
            d.sla_breaches += 1
            if a.capacity_day:
                d.released.append((a.rep_id, a.capacity_day))
            d.route = RouteRequest(tuple(st.tried_reps), f"{a.rep_id} did not accept in time", breach_of=a)
        elif st.wants_rep and st.assign_retry_at is not None and now >= st.assign_retry_at:
            d.route = RouteRequest(tuple(st.tried_reps), "retry: no rep had capacity")
        renurture = st.stage is S.RECYCLED and st.recycled_at and now >= st.recycled_at + self.policy.renurture_after
        if renurture and self._move(d, S.ENGAGED, "re-nurture after the recycle period", now, None):
            st.recycled_at, st.cycle, st.playbook = None, st.cycle + 1, None
            pb = self.playbooks.choose(st.lead.grade, st.lead.source_kind, st.lead.booth_rating, st.stage)
            if pb is not None:
                self._start_cadence(d, pb, now)
        self._fire_touch(d, now)
        return d

    def next_due(self, st: LeadState) -> datetime | None:
        """When this lead next needs ``on_tick`` (the scheduler's index holds it)."""
        times = []
        if st.cadence_active and st.next_touch is not None:
            times.append(st.next_touch.due_at)
        if st.assignment is not None and st.assignment.status == "pending":
            times.append(st.assignment.accept_by)
        if st.wants_rep and st.assign_retry_at is not None:
            times.append(st.assign_retry_at)
        if st.stage is S.RECYCLED and st.recycled_at is not None:
            times.append(st.recycled_at + self.policy.renurture_after)
        return min(times) if times else None

    # -- routing ------------------------------------------------------------------------------
    def lead_facts(self, st: LeadState) -> LeadFacts:
        v = st.lead
        return LeadFacts(v.country, v.language, v.company_domain, tuple(v.product_interest), v.core_account)

    def overflow_team(self, st: LeadState, exclude: tuple[str, ...] = ()) -> Team | None:
        return overflow_team(self.lead_facts(st), self.directory, exclude=exclude)

    @staticmethod
    def queue_entry(st: LeadState) -> QueueEntry | None:
        """The lead's place in its team's overflow queue (the store indexes it with the state)."""
        q = st.queued
        if q is None:
            return None
        return QueueEntry(st.lead_id, q.team, q.grade, q.score, q.since, tuple(st.tried_reps))

    def call_at(self, st: LeadState, rep: Rep, now: datetime) -> datetime:
        """09:00 (the playbook's ``call_at``) in the lead's zone on the first working day after the show."""
        pb = self.playbooks.get(st.playbook or "")
        clock = pb.call_at if pb else self.playbooks.policy.sending_window.start
        tz = zone(st.lead.timezone, rep.timezone)
        ended = st.lead.show_ends_on or (st.lead.first_captured_at or now).date().isoformat()
        day = first_working_day_after(datetime.fromisoformat(ended).date(), self.policy.sending_window)
        return max(at_local(day, clock, tz), now)

    def assign(self, d: Decision, candidate: Candidate | None, now: datetime, capacity_day: str | None) -> Decision:
        """Completes ``d.route`` with the rep whose capacity was reserved (None: nobody had room)."""
        st, req = d.state, d.route
        d.route = None
        if req is None:
            return d
        if candidate is None:
            st.wants_rep = True
            if st.assignment is not None and st.assignment.status != "accepted":
                st.assignment = None
            team = self.overflow_team(st, req.exclude)
            if team is None:  # no reps at all: nothing to queue for, look again later
                st.assign_retry_at = now + self.policy.unassigned_retry
            else:
                st.assign_retry_at = None
                self._enqueue(d, team, now)
            self._breach_alert(d, req, None, now)
            return d
        rep = candidate.rep
        st.attempts += 1
        st.wants_rep, st.assign_retry_at, st.queued = False, None, None
        previous = st.assignment.rep_id if st.assignment else None
        a = Assignment(
            assignment_id=f"{st.lead_id}.a{st.attempts}", rep_id=rep.id, rep_name=rep.name, manager_id=rep.manager,
            team=rep.team, rule=candidate.rule, reason=candidate.reason, attempt=st.attempts,
            previous_rep_id=previous, assigned_at=now, accept_by=rep.accept_by(now, self.policy.sla),
            capacity_day=capacity_day, over_capacity=candidate.over_capacity,
        )  # fmt: skip
        st.assignment = a
        st.tried_reps = [*st.tried_reps, rep.id]
        d.assigned.append(a)
        pb = self.playbooks.get(st.playbook or "")
        card = lead_card(st.lead)
        if pb is not None and pb.assign == "call_task":
            call_at = self.call_at(st, rep, now)
            template, nid = "rep_call_task", f"call:{a.assignment_id}"
            variables = {"lead": card, "show_name": st.lead.show_id or "the show", "call_at": call_at.isoformat()}
        else:
            template, nid = "rep_alert", f"alert:{a.assignment_id}"
            variables = {"lead": card, "accept_by": a.accept_by.isoformat()}
        d.notifications.append(
            Notify(
                nid, audience="rep", channel=rep.alert.channel, address=rep.alert.address, template=template,
                variables=variables, recipient_name=rep.name, rep_id=rep.id, timezone=rep.timezone, priority="high",
                assignment_id=a.assignment_id, links=True,
            )
        )  # fmt: skip
        if lifecycle.rank(st.stage) < lifecycle.rank(S.SALES_QUALIFIED) and st.stage not in (
            S.RECYCLED,
            S.DISQUALIFIED,
        ):
            self._move(d, S.SALES_QUALIFIED, f"handed to sales ({candidate.rule})", now, None)
        self._breach_alert(d, req, rep, now)
        return d

    def _enqueue(self, d: Decision, team: Team, now: datetime) -> None:
        """Nobody has room: the lead waits in its team's queue, and the team's overflow channel (or
        manager) hears at once, once per entry into the queue. Already waiting: nothing new."""
        st = d.state
        if st.queued is not None:
            return
        st.overflows += 1
        st.queued = Queued(team=team.id, since=now, grade=st.lead.grade, score=st.lead.score)
        d.queued.append(team.id)
        to = overflow_recipient(team, self.directory)
        if to is None:  # parse_directory refuses such a team; a hand-built directory may not
            return
        d.notifications.append(
            Notify(
                f"overflow:{st.lead_id}:{st.overflows}", audience="manager", channel=to.alert.channel,
                address=to.alert.address, recipient_name=to.name, template="manager_overflow",
                variables={"lead": lead_card(st.lead), "team": team.id, "queued_at": now.isoformat()},
                locale=to.locale, priority="high",
            )
        )  # fmt: skip

    def _breach_alert(self, d: Decision, req: RouteRequest, next_rep: Rep | None, now: datetime) -> None:
        breached = req.breach_of
        if breached is None:
            return
        manager = self.directory.manager(breached.manager_id)
        if manager is None:
            return
        d.notifications.append(
            Notify(
                f"sla:{breached.assignment_id}", audience="manager", channel=manager.alert.channel,
                address=manager.alert.address, recipient_name=manager.name, template="manager_sla_breach",
                variables={"lead": lead_card(d.state.lead), "rep_name": breached.rep_name or breached.rep_id,
                           "next_rep_name": next_rep.name if next_rep else None,
                           "assigned_at": breached.assigned_at.isoformat()},
                locale=manager.locale, priority="high", assignment_id=breached.assignment_id,
            )
        )  # fmt: skip
