"""From an event (type, id, time, payload as plain data) to the console's ``Fact``: the lead it
belongs to (when the payload names it) and one line for the lead's timeline saying why."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.console.domain.projection import Fact

#: The event types the console projects (their topics are ``<type>.v1``).
PROJECTED = (
    "lead.captured",
    "lead.scored",
    "lead.stage_changed",
    "lead.assigned",
    "assignment.response",
    "notification.requested",
    "notification.outcome",
    "lead.engagement",
    "lead.outcome_logged",
)


#: Of a request, only what the console shows: not the recipient's address nor the message's
#: variables (personal data the console has no use for, kept out of its store).
_REQUEST_KEPT = ("notification_id", "lead_id", "audience", "channel", "template", "requested_at", "touch",
                 "assignment_id", "next_touch_at")  # fmt: skip


def to_fact(event_type: str, event_id: str, time: datetime, data: Mapping[str, Any]) -> Fact:
    """Captures and engagements carry no lead id (they are keyed by identity): scoring's
    ``lead.scored`` names them as its trigger, and the store links them then."""
    if event_type == "notification.requested":
        data = {k: data[k] for k in _REQUEST_KEPT if k in data}
    return Fact(event_id, event_type, time, data.get("lead_id"), describe(event_type, data), data)


def trigger_of(fact: Fact) -> str | None:
    """The capture or engagement a ``lead.scored`` event was computed from."""
    if fact.type != "lead.scored":
        return None
    trigger = fact.data.get("trigger") or {}
    return trigger.get("event_id")


def describe(event_type: str, d: Mapping[str, Any]) -> str:
    if event_type == "lead.captured":
        ctx = d.get("context") or {}
        where = ctx.get("form_id") or ctx.get("show_name") or ctx.get("show_id") or ""
        return f"captured from {d.get('source_kind')}" + (f" ({where})" if where else "")
    if event_type == "lead.scored":
        trigger = (d.get("trigger") or {}).get("engagement_kind") or (d.get("trigger") or {}).get("event_type")
        return f"scored {d.get('score'):g}, grade {d.get('grade')} (model {d.get('model_version')}, after {trigger})"
    if event_type == "lead.stage_changed":
        return f"stage {d.get('from_stage') or '-'} -> {d.get('to_stage')}: {d.get('reason')}"
    if event_type == "lead.assigned":
        return f"assigned to {d.get('rep_name') or d.get('rep_id')} by {d.get('rule')}: {d.get('reason')}"
    if event_type == "assignment.response":
        note = f" ({d['note']})" if d.get("note") else ""
        return f"{d.get('rep_id')} {d.get('response')} the assignment{note}"
    if event_type == "notification.requested":
        step = (d.get("touch") or {}).get("step")
        touch = f" (cadence step {step + 1})" if isinstance(step, int) else ""
        return f"{d.get('template')} to {d.get('audience')} by {d.get('channel')} requested{touch}"
    if event_type == "notification.outcome":
        error = f": {d['error']}" if d.get("error") else ""
        template = d.get("template") or "message"
        return f"{template} to {d.get('audience')} by {d.get('channel')} {d.get('status')}{error}"
    if event_type == "lead.engagement":
        detail = f": {d['detail']}" if d.get("detail") else ""
        return f"{d.get('kind')} via {d.get('channel')}{detail}"
    if event_type == "lead.outcome_logged":
        note = f": {d['note']}" if d.get("note") else ""
        return f"{d.get('rep_id')} logged {str(d.get('outcome')).replace('_', ' ')}{note}"
    return event_type
