"""The user stories, end to end on one embedded stack (see conftest.py and harness.py).

Each journey enters through a real front door (the landing page's form, the scanner API, the
email provider's signed webhook, links in delivered messages) and checks only real outputs:
mail on the SMTP server, the notifier's outbox, records on the topics, /metrics. Cadences run
in compressed weeks (``WEEK_S`` seconds); sending windows and working days are real local
times in each person's own time zone. A journey that stalls fails with the events it saw.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import CALL_AT, MANAGERS, PLACES, REPS, SLA_S, WEEK_S, Journey, Mail, pick_place, scan_logs_for

pytestmark = pytest.mark.slow
US_REPS = {rid for rid, rep in REPS.items() if "US" in rep[1]}


def place(zone: str) -> Any:
    return next(p for p in PLACES if p.zone == zone)


def stage_changes(j: Journey, lead_id: str) -> list[Any]:
    return [e.data for e in j.tail.events("lead.stage_changed.v1", lead_id)]


def assignments(j: Journey, lead_id: str) -> list[Any]:
    return sorted((e.data for e in j.tail.events("lead.assigned.v1", lead_id)), key=lambda a: a.attempt)


def mail(j: Journey, address: str, notification_id: str, lead_id: str, timeout_s: float = 30.0) -> Mail:
    return j.wait(
        f"mail {notification_id} to {address}",
        lambda: next((m for m in j.inbox.to(address) if m.notification_id == notification_id), None),
        timeout_s,
        lead_id=lead_id,
    )


def touch_mails(j: Journey, address: str, lead_id: str) -> list[Mail]:
    return sorted((m for m in j.inbox.to(address) if m.notification_id.startswith(f"touch:{lead_id}:")),
                  key=lambda m: m.received_at)  # fmt: skip


def outcomes(j: Journey, lead_id: str) -> list[Any]:
    return [e.data for e in j.tail.events("notification.outcome.v1", lead_id)]


def consent_notes(j: Journey, lead_id: str) -> list[str]:
    states = j.tail.states(lead_id)
    return [n["reason"] for n in states[-1].get("consent_notes", [])] if states else []


def unsubscribe_and_time_the_stop(j: Journey, url: str) -> float:
    """One-click unsubscribe (RFC 8058 POST); seconds until the notifier holds the address suppressed."""
    metric = "leadpipe_notifier_suppressions_recorded_total"
    before = j.metric("notifier", metric, reason="unsubscribed")
    done = j.http.post(url, data={"List-Unsubscribe": "One-Click"})
    posted = time.monotonic()
    assert done.status_code == 200 and "Unsubscribed" in done.text, done.text
    while j.metric("notifier", metric, reason="unsubscribed") <= before:
        assert time.monotonic() - posted < 10, "the notifier never recorded the unsubscribe"
        time.sleep(0.02)
    return time.monotonic() - posted


def touch_requests(j: Journey, lead_id: str) -> list[Any]:
    return sorted((r for r in j.requested(lead_id, audience="lead") if r.touch is not None),
                  key=lambda r: r.touch.step)  # fmt: skip


# -- 1 -----------------------------------------------------------------------------------------------------
def test_a_directors_demo_request_becomes_grade_a_and_the_rep_accepts_from_the_alert_mail(journey: Journey):
    j = journey
    ny = place("America/New_York")
    email, phone = f"dana.whitfield.{j.run}@mapleanalytics.com", ny.phone(101)
    captured = datetime.now(UTC)
    page = j.post_demo_form(
        {"email": email, "phone": phone, "first_name": "Dana", "last_name": "Whitfield",
         "company": "Maple Analytics", "job_title": "Director of Operations", "country": "US", "seats": "40",
         "need": "Replace our spreadsheet lead tracking", "timeline": "this quarter",
         "marketing_consent": "on", "website": ""}
    )  # fmt: skip
    assert page.history and page.history[0].status_code == 303, page.text
    assert page.status_code == 200 and page.url.path == "/thanks"

    lead_id = j.lead_id_for(email=email)
    scored = j.scored(lead_id)
    rules = {r.rule_id for r in scored.reasons}
    assert scored.grade.value == "A", (scored.score, rules, j.diagnose(lead_id))
    assert {"seniority.director", "company.midsize"} <= rules, rules

    a = j.wait("the lead assigned to a rep", lambda: next(iter(assignments(j, lead_id)), None), lead_id=lead_id)
    assert a.rep_id in US_REPS and a.rule == "territory", a
    rep_address = REPS[a.rep_id][3]
    alert = mail(j, rep_address, f"alert:{a.assignment_id}", lead_id)
    assert alert.subject.startswith("New grade A lead: Dana Whitfield"), alert.subject
    assert "Maple Analytics" in alert.text and "Director-level" in alert.text, alert.text
    # The lead heard back at once, even if it is outside the sending window right now.
    reply = mail(j, email, f"touch:{lead_id}:0:web_grade_a:0", lead_id)
    assert reply.received_at - captured < timedelta(seconds=60)

    accept = alert.link("Accept")
    assert accept.startswith(j.stack.url("ingest") + "/v1/assignments/"), accept
    confirmation = j.http.get(accept)
    assert confirmation.status_code == 200 and "you accepted this lead" in confirmation.text, confirmation.text
    response = j.wait(
        "assignment.response for the click",
        lambda: next(iter(j.tail.events("assignment.response.v1", lead_id)), None),
        lead_id=lead_id,
    ).data
    assert (response.assignment_id, response.rep_id, response.response) == (a.assignment_id, a.rep_id, "accepted")
    again = j.http.get(accept)
    assert again.status_code == 200 and "your first answer stands" in again.text

    outcome = j.wait(
        "the alert's delivery outcome",
        lambda: next(
            (o for o in outcomes(j, lead_id) if o.notification_id == f"alert:{a.assignment_id}"),
            None,
        ),
        lead_id=lead_id,
    )
    assert outcome.status == "sent" and outcome.channel.value == "email" and outcome.provider_response.startswith("250")
    stages = j.wait("three stage changes", lambda: [c.to_stage.value for c in stage_changes(j, lead_id)][2:] and
                    [c.to_stage.value for c in stage_changes(j, lead_id)], lead_id=lead_id)  # fmt: skip
    assert stages[:3] == ["captured", "engaged", "sales_qualified"], stages
    assert j.metric("notifier", "leadpipe_capture_to_rep_alert_seconds_count") >= 1
    j.notes["accepted"] = (lead_id, a)


# -- 1b ----------------------------------------------------------------------------------------------------
def test_two_colleagues_who_type_the_switchboard_number_are_two_leads_with_two_rep_alerts(journey: Journey):
    # DOMAIN: "Two different email addresses are two people, whatever phone they share."
    j = journey
    switchboard = place("America/New_York").phone(150)
    people = [("Lena", "Okafor", "VP Engineering"), ("Marco", "Bianchi", "Director of Operations")]
    emails = []
    for first, last, title in people:
        email = f"{first.lower()}.{last.lower()}.{j.run}@northwind-logistics.com"
        emails.append(email)
        page = j.post_demo_form(
            {"email": email, "phone": switchboard, "first_name": first, "last_name": last,
             "company": "Northwind Logistics", "job_title": title, "country": "US", "seats": "60",
             "need": "One place for inbound leads", "timeline": "this quarter", "marketing_consent": "on",
             "website": ""}
        )  # fmt: skip
        assert page.status_code == 200 and page.url.path == "/thanks", page.text
    leads = [j.lead_id_for(email=e) for e in emails]
    assert leads[0] != leads[1], j.diagnose(leads[0])
    for lead_id, email in zip(leads, emails, strict=True):
        scored = j.scored(lead_id)
        assert scored.profile.email == email and not scored.merged_lead_ids, scored
        a = j.wait("the lead assigned to a rep", lambda lid=lead_id: next(iter(assignments(j, lid)), None),
                   lead_id=lead_id)  # fmt: skip
        mail(j, REPS[a.rep_id][3], f"alert:{a.assignment_id}", lead_id)


def test_a_visitor_whose_browser_asks_for_chinese_gets_the_reply_in_chinese(journey: Journey):
    j = journey
    shanghai = place("Asia/Shanghai")
    email = f"li.wei.{j.run}@huaxincloud.cn"
    captured = datetime.now(UTC)
    page = j.post_demo_form(
        {"email": email, "phone": shanghai.phone(111), "first_name": "伟", "last_name": "李",
         "company": "Huaxin Cloud", "job_title": "Director of Operations", "country": "CN", "seats": "40",
         "need": "替换表格管理线索", "timeline": "this quarter"},
        accept_language="zh-CN,zh;q=0.9,en;q=0.8",
    )  # fmt: skip
    assert page.status_code == 200 and page.url.path == "/thanks", page.text
    lead_id = j.lead_id_for(email=email)
    assert j.scored(lead_id).profile.language == "zh-CN", j.diagnose(lead_id)
    reply = mail(j, email, f"touch:{lead_id}:0:web_grade_a:0", lead_id)
    assert reply.subject == "伟，感谢您的联系", reply.subject
    assert reply.received_at - captured < timedelta(seconds=60)
    (request,) = [r for r in j.requested(lead_id, audience="lead") if r.template == "lead_reply"]
    assert request.locale == "zh-CN"


# -- 2 -----------------------------------------------------------------------------------------------------
def test_a_hot_booth_scan_uploaded_hours_late_gets_a_rep_call_task_for_the_next_working_morning(journey: Journey):
    j = journey
    paris = place("Europe/Paris")
    tz = ZoneInfo(paris.zone)
    email, phone = f"camille.roux.{j.run}@pioneercloud.fr", paris.phone(202)
    scanned_at = datetime.now(UTC) - timedelta(hours=3)
    show_ends_on = scanned_at.astimezone(tz).date()  # the scans were taken on the show's last day
    result = j.post_scans(
        {
            "device_id": f"ipad-{j.run}",
            "show_id": f"viva-{j.run}",
            "show_name": "VivaTech Paris",
            "show_ends_on": show_ends_on.isoformat(),
            "booth": "B12",
            "staff": "Hugo",
            "scans": [
                {"badge_id": f"VT-{j.run}", "scanned_at": scanned_at.isoformat(), "first_name": "Camille",
                 "last_name": "Roux", "email": email, "phone": phone, "company": "Pioneer Cloud",
                 "job_title": "Head of Sales Operations", "country": "FR", "rating": "hot",
                 "answers": {"need": "yes, replacing our CRM", "timeline": "next month"},
                 "notes": "wants a call first thing"}
            ],
        }
    )  # fmt: skip
    assert result.status_code == 202 and result.json()["accepted"] == 1, result.text

    lead_id = j.lead_id_for(email=email)
    scored = j.scored(lead_id)
    assert scored.capture.source_kind.value == "booth_scan" and scored.capture.booth_rating.value == "hot"
    # The scan carried no consent: the rep still calls (staff work), but no marketing cadence starts.
    assert scored.consent is not None and scored.consent.channels == (), scored.consent
    j.wait("the booth lead's timeline saying why no cadence started",
           lambda: consent_notes(j, lead_id) == [f"cadence not started on {ch}: no marketing consent"
                                                 for ch in ("email", "sms")], lead_id=lead_id)  # fmt: skip
    assert scored.profile.timezone == paris.zone, scored.profile
    # The next working morning after the show, in the lead's own time zone, computed here.
    call_day = j.window.next_working_day(show_ends_on)
    expected = datetime.combine(call_day, CALL_AT, tz)
    assert expected > datetime.now(UTC)

    task = j.wait(
        "the rep call task request",
        lambda: next((r for r in j.requested(lead_id, audience="rep") if r.template == "rep_call_task"), None),
        lead_id=lead_id,
    )
    call_at = datetime.fromisoformat(task.variables["call_at"])
    assert call_at == expected, (f"call at {call_at.astimezone(tz)}, expected {expected} "
                                 f"(show ended {show_ends_on}, working days {sorted(j.window.days)})")  # fmt: skip
    a = j.wait("the booth lead's assignment", lambda: next(iter(assignments(j, lead_id)), None), lead_id=lead_id)
    assert (a.rep_id, task.recipient.address) == ("rep-chloe", REPS["rep-chloe"][3])

    entry = j.wait(
        "the call task in the outbox",
        lambda: next((e for e in j.outbox(lead_id) if e["notification_id"] == task.notification_id), None),
        lead_id=lead_id,
    )
    assert (entry["channel"], entry["to"], entry["template"]) == ("slack", "@chloe.martin", "rep_call_task")
    assert task.variables["call_at"] in entry["text"], entry["text"]
    accept = re.search(r"Accept: (\S+)", entry["text"])
    assert accept, entry["text"]
    confirmation = j.http.get(accept.group(1))
    assert confirmation.status_code == 200 and "you accepted this lead" in confirmation.text
    j.wait(
        "assignment.response for the call task",
        lambda: [e for e in j.tail.events("assignment.response.v1", lead_id) if e.data.response == "accepted"],
        lead_id=lead_id,
    )


# -- 3 -----------------------------------------------------------------------------------------------------
def grade_b_form(first: str, last: str, email: str, phone: str, country: str, *, consent: tuple[str, ...] = ("email",)
                 ) -> dict[str, str]:  # fmt: skip
    """A manager at a small food company with a stated need for 25 seats: a grade-B lead (scored
    51 under model fit-2026.1 and 61 under fit-2026.2, well inside the B band of both). ``consent``:
    the boxes ticked (email news, text messages)."""
    boxes = {"email": "marketing_consent", "sms": "sms_consent"}
    return {"email": email, "phone": phone, "first_name": first, "last_name": last, "company": "Delta Foods",
            "job_title": "Operations Manager", "country": country, "seats": "25",
            "need": "Better follow-up on inbound leads"} | {boxes[c]: "on" for c in consent}  # fmt: skip


def test_a_grade_b_lead_gets_its_email_sequence_inside_its_sending_window_and_it_stops_on_reply(journey: Journey):
    j = journey
    here = pick_place(j.window, open_now=True, n=303)  # the window is open in this lead's zone now
    away = pick_place(j.window, open_now=False, n=304)  # and closed in this one
    email, phone = f"lee.park.{j.run}@deltafoods.com", here.phone(303)
    late_email = f"noor.haddad.{j.run}@deltafoods.com"
    captured = datetime.now(UTC)
    assert j.post_demo_form(grade_b_form("Lee", "Park", email, phone, here.country)).status_code == 200
    assert (
        j.post_demo_form(grade_b_form("Noor", "Haddad", late_email, away.phone(304), away.country)).status_code == 200
    )

    lead_id, late_id = j.lead_id_for(email=email), j.lead_id_for(email=late_email)
    for lid, where in ((lead_id, here), (late_id, away)):
        scored = j.scored(lid)
        assert scored.grade.value == "B", (scored.score, [r.rule_id for r in scored.reasons])
        assert scored.profile.timezone == where.zone, scored.profile

    # Three touches of the sequence, each delivered inside the window in the lead's zone.
    sent = j.wait("three touches of the grade-B sequence", lambda: (m := touch_mails(j, email, lead_id))[2:] and m,
                  timeout_s=6 * WEEK_S + 30, lead_id=lead_id)  # fmt: skip
    for m in sent:
        local = m.received_at.astimezone(ZoneInfo(here.zone))
        assert j.window.contains(m.received_at, here.zone), f"{m.notification_id} sent {local} outside the window"
    assert [m.notification_id for m in sent[:3]] == [f"touch:{lead_id}:0:grade_b:{k}" for k in range(3)]
    assert "part 2 of our series on best practices" in sent[1].text, sent[1].text
    for r in touch_requests(j, lead_id):
        assert j.window.contains(r.requested_at, here.zone), r

    # The lead replies (the email provider's signed webhook): the sequence stops.
    reply = j.post_webhook({"id": f"reply-{j.run}", "kind": "replied", "occurred_at": datetime.now(UTC).isoformat(),
                            "email": email, "notification_id": sent[-1].notification_id})  # fmt: skip
    assert reply.status_code == 202, reply.text
    stopped = j.wait(
        "nurture stopping the cadence on the reply",
        lambda: next((s for s in j.tail.states(lead_id) if s["cadence_stop_reason"] == "lead replied"), None),
        lead_id=lead_id,
    )
    assert not stopped["cadence_active"] and stopped["next_touch"] is None
    moved = j.wait("the stage change on the reply",
                   lambda: [c for c in stage_changes(j, lead_id) if c.reason == "lead replied"], lead_id=lead_id)  # fmt: skip
    assert moved[0].to_stage.value == "sales_qualified", moved
    touches = len(touch_requests(j, lead_id))
    mails = len(touch_mails(j, email, lead_id))
    deadline = datetime.now(UTC) + timedelta(seconds=2 * WEEK_S)
    while datetime.now(UTC) < deadline:  # two more cadence "weeks": nothing more goes out
        assert len(touch_requests(j, lead_id)) == touches, j.diagnose(lead_id)
        time.sleep(0.5)
    assert len(touch_mails(j, email, lead_id)) == mails

    # The lead whose window is closed got nothing yet: its first touch waits for the window to open.
    assert touch_mails(j, late_email, late_id) == [] and touch_requests(j, late_id) == []
    state = j.wait(
        "the late lead's deferred first touch",
        lambda: next(
            (s for s in reversed(j.tail.states(late_id)) if (s.get("next_touch") or {}).get("deferrals")), None
        ),
        lead_id=late_id,
    )
    due = datetime.fromisoformat(state["next_touch"]["due_at"])
    assert due == j.window.next_opening(captured, away.zone), (due, away.zone)


# -- 4 -----------------------------------------------------------------------------------------------------
def test_an_unsubscribe_stops_every_touch_on_that_channel_and_the_cadence_carries_on_elsewhere(journey: Journey):
    j = journey
    here = pick_place(j.window, open_now=True, n=404)
    email, phone = f"sam.okoro.{j.run}@deltafoods.com", here.phone(404)
    form = grade_b_form("Sam", "Okoro", email, phone, here.country, consent=("email", "sms"))
    assert j.post_demo_form(form).status_code == 200
    lead_id = j.lead_id_for(email=email)

    first = j.wait("the first touch by email", lambda: touch_mails(j, email, lead_id), lead_id=lead_id)[0]
    # The mail client's one-click unsubscribe (RFC 8058): POST to the List-Unsubscribe URL.
    assert first.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(first.message["List-Unsubscribe"]).strip("<>")
    assert url.startswith(j.stack.url("ingest") + "/v1/unsubscribe/") and url in first.text
    confirm = j.http.get(url)  # a prefetching scanner's GET changes nothing
    assert confirm.status_code == 200 and "Stop all messages" in confirm.text
    stopped_in = unsubscribe_and_time_the_stop(j, url)
    assert stopped_in < 1.0, f"the notifier took {stopped_in:.2f}s to stop the channel"
    suppressed = j.wait(
        "nurture recording the unsubscribe",
        lambda: next((s for s in j.tail.states(lead_id) if "email" in s["suppressed_channels"]), None),
        lead_id=lead_id,
    )
    mails_then = len(touch_mails(j, email, lead_id))
    sms = j.wait("two touches by SMS after the unsubscribe",
                 lambda: (e := [x for x in j.outbox(lead_id) if x["channel"] == "sms"])[1:] and e,
                 timeout_s=4 * WEEK_S + 30, lead_id=lead_id)  # fmt: skip
    assert all(x["to"] == phone and x["audience"] == "lead" for x in sms), sms
    assert len(touch_mails(j, email, lead_id)) == mails_then, "email touches went on after the unsubscribe"

    requests = touch_requests(j, lead_id)
    last_email = max(r.touch.step for r in requests if r.channel.value == "email")
    # Every touch nurture planned after the last email went by SMS, from the one it recorded on.
    assert all(r.channel.value == "sms" for r in requests if r.touch.step > last_email), requests
    assert last_email < suppressed["touches_sent"], (last_email, suppressed["touches_sent"])
    for o in outcomes(j, lead_id):
        if o.channel.value == "email" and o.status != "sent":
            assert o.status == "suppressed", o  # a touch already on its way when the unsubscribe landed


# -- 5 -----------------------------------------------------------------------------------------------------
def test_six_unanswered_touches_recycle_the_lead(journey: Journey):
    j = journey
    here = pick_place(j.window, open_now=True, n=505)
    email = f"kim.novak.{j.run}@lumencloud.com"  # an engineer at a small software firm: grade C (28 or 38)
    # The phone puts the lead in ``here``'s zone: by country alone a US lead is in New York's, whose
    # window may be shut while Honolulu's is open (23:00 UTC: the touches waited for Saturday).
    assert j.post_demo_form({"email": email, "phone": here.phone(505), "first_name": "Kim", "last_name": "Novak",
                             "company": "Lumen Cloud", "job_title": "Software Engineer", "country": here.country,
                             "marketing_consent": "on"}).status_code == 200  # fmt: skip
    lead_id = j.lead_id_for(email=email)
    scored = j.scored(lead_id)
    assert scored.grade.value == "C", (scored.score, [r.rule_id for r in scored.reasons])

    recycled = j.wait(
        "the lead recycled after six unanswered touches",
        lambda: next((c for c in stage_changes(j, lead_id) if c.to_stage.value == "recycled"), None),
        timeout_s=10 * WEEK_S + 30,
        lead_id=lead_id,
    )
    assert recycled.reason.startswith("gave up: 6 touches unanswered"), recycled.reason
    requests = touch_requests(j, lead_id)
    assert [r.touch.step for r in requests] == list(range(6)), j.diagnose(lead_id)
    assert all(r.template == "weekly_checkin" and r.channel.value == "email" for r in requests)
    # Touch k is due k (compressed) weeks after the cadence started with touch 0; never earlier.
    offsets = [(r.requested_at - requests[0].requested_at).total_seconds() for r in requests]
    assert all(off >= k * WEEK_S - 0.001 for k, off in enumerate(offsets)), f"a touch went early: {offsets}"
    assert recycled.changed_at > requests[-1].requested_at
    waited = (recycled.changed_at - requests[0].requested_at).total_seconds()
    assert waited >= 8 * WEEK_S - 0.001, f"recycled after {waited:.1f}s, before the eight (compressed) weeks"
    state = j.wait("the recycled state", lambda: [s for s in j.tail.states(lead_id) if s["stage"] == "recycled"],
                   lead_id=lead_id)[0]  # fmt: skip
    assert (state["cadence_active"], state["unanswered"], state["touches_sent"]) == (False, 6, 6), state

    j.wait("six touch mails delivered", lambda: len(touch_mails(j, email, lead_id)) == 6, lead_id=lead_id)
    time.sleep(2 * WEEK_S)  # two more cadence weeks: a recycled lead gets nothing
    assert len(touch_requests(j, lead_id)) == 6 and len(touch_mails(j, email, lead_id)) == 6, j.diagnose(lead_id)


# -- 6 -----------------------------------------------------------------------------------------------------
def test_a_rep_who_does_not_accept_within_the_sla_is_routed_around_and_the_manager_is_told(journey: Journey):
    j = journey
    la = place("America/Los_Angeles")
    email = f"alex.moreno.{j.run}@fusionsystems.com"
    assert j.post_demo_form({"email": email, "phone": la.phone(606), "first_name": "Alex", "last_name": "Moreno",
                             "company": "Fusion Systems", "job_title": "VP of Engineering", "country": "US",
                             "seats": "120", "need": "yes", "timeline": "asap"}).status_code == 200  # fmt: skip
    lead_id = j.lead_id_for(email=email)
    assert j.scored(lead_id).grade.value == "A"

    first = j.wait("the first assignment", lambda: next(iter(assignments(j, lead_id)), None), lead_id=lead_id)
    assert first.rep_id in US_REPS
    # The team works round the clock (but for the last second of each day): the SLA is SLA_S of wall time.
    assert timedelta(seconds=SLA_S) <= first.accept_by - first.assigned_at <= timedelta(seconds=SLA_S + 1)
    ignored = mail(j, REPS[first.rep_id][3], f"alert:{first.assignment_id}", lead_id)
    assert f"Please accept by {first.accept_by.isoformat()}" in ignored.text, ignored.text

    # Nobody clicks. When the SLA lapses the lead goes to the next rep and the first rep's manager hears.
    second = j.wait(
        "the reassignment after the SLA",
        lambda: next((a for a in assignments(j, lead_id) if a.attempt == 2), None),
        timeout_s=SLA_S + 30,
        lead_id=lead_id,
    )
    assert second.previous_rep_id == first.rep_id and second.rep_id != first.rep_id, second
    assert second.assigned_at >= first.accept_by
    manager_name, _, manager_address = MANAGERS[REPS[first.rep_id][4]]
    escalation = mail(j, manager_address, f"sla:{first.assignment_id}", lead_id)
    assert manager_name in str(escalation.message["To"])
    first_name, second_name = REPS[first.rep_id][0], REPS[second.rep_id][0]
    assert escalation.subject == f"SLA missed: Alex Moreno reassigned from {first_name} to {second_name}"
    assert f"{first_name} did not accept lead Alex Moreno" in escalation.text, escalation.text
    assert j.metric("nurture", "leadpipe_nurture_sla_breaches_total") >= 1

    # The next rep accepts from their own alert; the lead stays with them.
    alert = mail(j, REPS[second.rep_id][3], f"alert:{second.assignment_id}", lead_id)
    assert j.http.get(alert.link("Accept")).status_code == 200
    j.wait(
        "the second rep's acceptance",
        lambda: [
            e for e in j.tail.events("assignment.response.v1", lead_id) if e.data.assignment_id == second.assignment_id
        ],
        lead_id=lead_id,
    )

    # Journey 1's rep clicked within the SLA: that lead was never reassigned nor escalated.
    if "accepted" in j.notes:
        accepted_lead, accepted = j.notes["accepted"]
        assert datetime.now(UTC) > accepted.accept_by
        assert [a.attempt for a in assignments(j, accepted_lead)] == [1], j.diagnose(accepted_lead)
        assert not [m for m in j.inbox.all() if m.notification_id == f"sla:{accepted.assignment_id}"]


# -- consent -----------------------------------------------------------------------------------------------
def test_a_form_without_marketing_consent_gets_the_reply_to_its_request_and_no_marketing_touch(journey: Journey):
    j = journey
    here = pick_place(j.window, open_now=True, n=808)
    asker, browser = f"jo.asker.{j.run}@fusionsystems.com", f"lou.browser.{j.run}@deltafoods.com"
    not_started = j.metric("nurture", "leadpipe_nurture_cadence_not_started_total", channel="email")
    # A director asks for a demo without ticking the box (grade A: a reply and a rep), and a
    # grade-B manager whose sequence would start at once if they had ticked it (journey 3).
    assert j.post_demo_form({"email": asker, "first_name": "Jo", "last_name": "Asker", "company": "Fusion Systems",
                             "job_title": "VP of Engineering", "country": "US", "seats": "120", "need": "yes",
                             "timeline": "asap"}).status_code == 200  # fmt: skip
    assert j.post_demo_form(grade_b_form("Lou", "Browser", browser, here.phone(808), here.country, consent=())
                            ).status_code == 200  # fmt: skip
    asker_id, browser_id = j.lead_id_for(email=asker), j.lead_id_for(email=browser)
    assert j.scored(asker_id).grade.value == "A" and j.scored(browser_id).grade.value == "B"

    reply = mail(j, asker, f"touch:{asker_id}:0:web_grade_a:0", asker_id)
    assert "List-Unsubscribe" in reply.message  # even a reply lets the person opt out of what follows
    assert j.wait("the rep alert for the demo request", lambda: [r for r in j.requested(asker_id, audience="rep")
                  if r.template == "rep_alert"], lead_id=asker_id)  # fmt: skip
    expected = {asker_id: ["email"], browser_id: ["email", "sms"]}  # the browser left a phone number too
    for lead_id, channels in expected.items():
        j.wait("the timeline saying why no marketing cadence started",
               lambda lid=lead_id, chs=channels: consent_notes(j, lid) == [
                   f"cadence not started on {ch}: no marketing consent" for ch in chs], lead_id=lead_id)  # fmt: skip
        state = j.tail.states(lead_id)[-1]
        assert (state["cadence_active"], state["cadence_stop_reason"]) == (
            False, "waiting for marketing consent: no reachable channel has one",
        ), state  # fmt: skip
    time.sleep(2 * WEEK_S)  # two (compressed) weeks: grade B's sequence would have sent three touches by now
    assert [r.template for r in touch_requests(j, asker_id)] == ["lead_reply"], j.diagnose(asker_id)
    assert touch_requests(j, browser_id) == [] and j.inbox.to(browser) == [], j.diagnose(browser_id)
    assert [r.consent for r in touch_requests(j, asker_id)] == [None]  # the reply rests on the request itself
    assert j.metric("nurture", "leadpipe_nurture_cadence_not_started_total", channel="email") >= not_started + 2


def test_a_lead_who_consented_to_email_only_gets_no_sms_when_email_stops(journey: Journey):
    j = journey
    here = pick_place(j.window, open_now=True, n=909)
    email, phone = f"ira.mail.{j.run}@deltafoods.com", here.phone(909)
    assert (
        j.post_demo_form(grade_b_form("Ira", "Mail", email, phone, here.country, consent=("email",))).status_code == 200
    )
    lead_id = j.lead_id_for(email=email)
    scored = j.scored(lead_id)
    assert [c.value for c in scored.consent.channels] == ["email"] and scored.consent.capture_id, scored.consent
    first = j.wait("the first touch by email", lambda: touch_mails(j, email, lead_id), lead_id=lead_id)[0]
    request = next(r for r in touch_requests(j, lead_id) if r.notification_id == first.notification_id)
    assert request.consent.basis == "consent" and request.consent.capture_id == scored.consent.capture_id
    assert consent_notes(j, lead_id) == ["cadence not started on sms: no marketing consent"]

    stopped_in = unsubscribe_and_time_the_stop(j, str(first.message["List-Unsubscribe"]).strip("<>"))
    assert stopped_in < 1.0, f"the notifier took {stopped_in:.2f}s to stop the channel"
    j.wait("nurture holding the cadence: email unsubscribed, no consent for SMS",
           lambda: j.tail.states(lead_id)[-1]["cadence_stop_reason"] == "waiting for marketing consent: "
           "no reachable channel has one", timeout_s=4 * WEEK_S + 30, lead_id=lead_id)  # fmt: skip
    time.sleep(2 * WEEK_S)
    assert [x for x in j.outbox(lead_id) if x["channel"] == "sms"] == [], j.diagnose(lead_id)
    assert all(r.channel.value == "email" for r in touch_requests(j, lead_id)), touch_requests(j, lead_id)
    for o in outcomes(j, lead_id):
        assert o.status in ("sent", "suppressed") and o.channel.value == "email", o


# -- logs --------------------------------------------------------------------------------------------------
def test_no_log_of_the_stack_shows_an_email_address_or_phone_number_the_journeys_used(journey: Journey):
    j = journey
    here = pick_place(j.window, open_now=True, n=707)
    email, phone = f"robin.vale.{j.run}@deltafoods.com", here.phone(707)
    # One more lead through every service, and one refused submission (a path that logs a warning).
    assert j.post_demo_form(grade_b_form("Robin", "Vale", email, phone, here.country)).status_code == 200
    refused = j.post_demo_form({"email": f"no.company.{j.run}@deltafoods.com", "first_name": "Pat"})
    assert refused.status_code == 422 and "company" in refused.text
    lead_id = j.lead_id_for(email=email)
    j.wait("the extra lead's first touch delivered", lambda: touch_mails(j, email, lead_id), lead_id=lead_id)

    staff = {rep[3] for rep in REPS.values() if "@" in rep[3]} | {m[2] for m in MANAGERS.values() if "@" in m[2]}
    needles = j.used_pii | staff
    logs = sorted(p.name for p in j.stack.logs.glob("*.log") if p.stat().st_size > 0)
    assert {f"{s}.log" for s in ("ingest", "scoring", "nurture", "notifier")} <= set(logs), logs
    assert {email, phone} <= j.used_pii, j.used_pii  # this test's own lead at least, and whatever the journeys used
    leaks = scan_logs_for(j.stack.logs, needles)
    assert leaks == {}, f"in clear in the logs ({j.stack.logs}): {leaks}"
