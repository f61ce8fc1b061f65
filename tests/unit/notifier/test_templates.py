"""Every shipped template renders in every shipped locale with the variables nurture supplies
(docs/contracts.md), and a missing one is a clear error."""

import shutil
from datetime import UTC, datetime

import pytest

from schemas.notification_requested.v1 import NotificationRequested
from services.notifier.adapters.templates import TemplateRenderer
from services.notifier.config import TEMPLATES_DIR
from services.notifier.domain.errors import TemplateMissing, VariableMissing

LEAD = {"name": "Dana", "company": None, "title": None, "grade": "B", "score": 55, "reasons": ["r1"], "source": "x"}
CONTRACT = {
    "rep_alert": ("rep", {"lead": LEAD, "accept_url": "A", "decline_url": "D", "accept_by": "T"}),
    "rep_call_task": ("rep", {"lead": LEAD, "show_name": "S", "call_at": "C", "accept_url": "A", "decline_url": "D"}),
    "manager_sla_breach": ("manager", {"lead": LEAD, "rep_name": "R", "next_rep_name": "N", "assigned_at": "T"}),
    "manager_overflow": ("manager", {"lead": LEAD, "team": "amer", "queued_at": "T"}),
    "lead_reply": ("lead", {"first_name": "Dana", "rep_name": None}),
    "nurture_content": ("lead", {"first_name": "Dana", "step": 2, "topic": "pricing"}),
    "weekly_checkin": ("lead", {"first_name": "Dana"}),
    "onboarding": ("lead", {"first_name": "Dana", "step": 1}),
}
RENDERER = TemplateRenderer(TEMPLATES_DIR, link_secret="s", public_url="https://leads.example/")


def _req(template, audience, variables, locale="en"):
    return NotificationRequested(
        notification_id="n-1",
        lead_id="ld-1",
        audience=audience,
        channel="email",
        recipient={"address": "dana@example.com"},
        template=template,
        locale=locale,
        variables=variables,
        requested_at=datetime(2026, 5, 4, tzinfo=UTC),
    )


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("template", sorted(CONTRACT))
def test_every_template_renders_subject_text_html_and_short_in_each_locale(template, locale):
    audience, variables = CONTRACT[template]
    message = RENDERER.render(_req(template, audience, variables, locale))
    assert message.locale == locale
    assert message.subject and "\n" not in message.subject
    assert message.text.strip() and message.short and message.html.startswith("<!DOCTYPE html>")
    lead_facing = audience == "lead"
    assert ("List-Unsubscribe" in message.headers) is lead_facing
    assert ("https://leads.example/v1/unsubscribe/" in message.text) is lead_facing
    assert ("https://leads.example/v1/unsubscribe/" in message.html) is lead_facing


def test_html_escapes_lead_supplied_text_but_the_text_part_keeps_it_verbatim():
    lead = LEAD | {"name": "<script>x</script> & Co"}
    message = RENDERER.render(_req("rep_alert", "rep", CONTRACT["rep_alert"][1] | {"lead": lead}))
    assert "&lt;script&gt;" in message.html and "<script>" not in message.html
    assert "<script>x</script> & Co" in message.text


def test_a_missing_variable_names_the_template_and_the_variable():
    with pytest.raises(VariableMissing, match=r"'weekly_checkin'.*first_name"):
        RENDERER.render(_req("weekly_checkin", "lead", {}))


def test_an_unknown_template_is_reported_with_its_name_and_locale():
    with pytest.raises(TemplateMissing, match="'nope' not found for locale 'zh-CN'"):
        RENDERER.render(_req("nope", "lead", {}, locale="zh"))


def test_templates_are_loaded_once_per_locale_not_looked_up_on_every_send(tmp_path):
    shutil.copytree(TEMPLATES_DIR, tmp_path / "templates")
    renderer = TemplateRenderer(tmp_path / "templates", link_secret="s", public_url="https://leads.example/")
    first = renderer.render(_req("rep_alert", "rep", CONTRACT["rep_alert"][1]))
    for name in ("rep_alert.txt.j2", "rep_alert.html.j2"):
        (tmp_path / "templates" / "en" / name).unlink()
    again = renderer.render(_req("rep_alert", "rep", CONTRACT["rep_alert"][1]))
    assert (again.subject, again.text, again.html) == (first.subject, first.text, first.html)
    # A missing template is not remembered as missing: every request for it names it.
    (tmp_path / "templates" / "en" / "weekly_checkin.txt.j2").unlink()
    for _ in range(2):
        with pytest.raises(TemplateMissing, match="'weekly_checkin' not found for locale 'en'"):
            renderer.render(_req("weekly_checkin", "lead", CONTRACT["weekly_checkin"][1]))
