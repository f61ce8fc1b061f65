"""Jinja2 templates per template name and locale: ``templates/<locale>/<name>.txt.j2`` holds
the ``subject``, ``text`` and ``short`` (SMS/Slack) blocks; ``<name>.html.j2`` the HTML part
(autoescaped). Undefined variables raise (StrictUndefined), so a request missing a variable
ends as a clear ``failed`` outcome instead of a message with holes in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

from schemas.links import unsubscribe_token
from schemas.notification_requested.v1 import NotificationRequested
from services.notifier.domain.consent import PURPOSES, Purpose, purpose_of
from services.notifier.domain.errors import TemplateMissing, VariableMissing
from services.notifier.domain.message import OutboundMessage
from services.notifier.domain.policy import resolve_locale

LEAD_AUDIENCE = "lead"
CATALOG = "_catalog.yaml"


def load_catalog(path: Path) -> dict[str, Purpose]:
    """template name -> purpose; ``ValueError`` names a bad entry (the worker refuses to start)."""
    if not path.exists():
        return {}
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: must map template names to a purpose")
    for name, purpose in raw.items():
        if purpose not in PURPOSES:
            raise ValueError(f"{path.name}: {name}: purpose must be marketing or transactional, not {purpose!r}")
    return {str(k): v for k, v in raw.items()}


class TemplateRenderer:
    def __init__(self, directory: Path, *, link_secret: str, public_url: str, default_locale: str = "en"):
        self.directory = directory
        self.link_secret = link_secret
        self.public_url = public_url.rstrip("/")
        self.default_locale = default_locale
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            # Templates ship with the code: loaded once, never re-stat'ed per send (a restart
            # picks up an edited template).
            auto_reload=False,
        )
        self._compiled: dict[tuple[str, str], tuple[jinja2.Template, jinja2.Template | None]] = {}
        self.locales = {p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("_")}
        self.catalog = load_catalog(directory / CATALOG)

    def _templates(self, locale: str, template: str) -> tuple[jinja2.Template, jinja2.Template | None]:
        """The compiled text and HTML templates, looked up once per (locale, template): a
        lookup stats the file, and a template without HTML raised ``TemplateNotFound`` on every
        send. A missing text template is not remembered (``TemplateMissing`` each time)."""
        key = (locale, template)
        found = self._compiled.get(key)
        if found is None:
            try:
                text_tpl = self.env.get_template(f"{locale}/{template}.txt.j2")
            except jinja2.TemplateNotFound as exc:
                raise TemplateMissing(template, locale) from exc
            try:
                html_tpl: jinja2.Template | None = self.env.get_template(f"{locale}/{template}.html.j2")
            except jinja2.TemplateNotFound:
                html_tpl = None
            found = self._compiled[key] = (text_tpl, html_tpl)
        return found

    def purpose(self, template: str) -> Purpose:
        return purpose_of(template, self.catalog)

    def unsubscribe_url(self, req: NotificationRequested) -> str:
        token = unsubscribe_token(
            self.link_secret, lead_id=req.lead_id, channel=req.channel.value, address=req.recipient.address
        )
        return f"{self.public_url}/v1/unsubscribe/{token}"

    def render(self, req: NotificationRequested) -> OutboundMessage:
        """Raises ``TemplateMissing`` or ``VariableMissing`` (both ``RenderError``)."""
        locale = resolve_locale(req.locale, self.locales, self.default_locale)
        headers: dict[str, str] = {}
        context: dict[str, Any] = dict(req.variables)
        context |= {"recipient": req.recipient.model_dump(), "locale": locale, "audience": req.audience}
        if req.audience == LEAD_AUDIENCE:
            url = self.unsubscribe_url(req)
            context["unsubscribe_url"] = url
            # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" to the URL.
            headers["List-Unsubscribe"] = f"<{url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        text_tpl, html_tpl = self._templates(locale, req.template)
        try:
            # One context for the three blocks: a block's own assignments stay in its scope.
            text_ctx = text_tpl.new_context(context)
            blocks = {name: _block(text_tpl, name, text_ctx) for name in ("subject", "text", "short")}
            html = html_tpl.render(context) if html_tpl is not None else None
        except jinja2.UndefinedError as exc:
            raise VariableMissing(req.template, str(exc)) from exc
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            raise VariableMissing(req.template, f"bad value: {exc}") from exc
        return OutboundMessage(
            notification_id=req.notification_id,
            lead_id=req.lead_id,
            channel=req.channel.value,
            audience=req.audience,
            template=req.template,
            locale=locale,
            to=req.recipient.address,
            to_name=req.recipient.name,
            subject=" ".join(blocks["subject"].split()),
            text=blocks["text"].strip() + "\n",
            short=blocks["short"].strip(),
            html=html,
            headers=headers,
            data={
                "template": req.template,
                "audience": req.audience,
                "lead_id": req.lead_id,
                "assignment_id": req.assignment_id,
                "variables": req.variables,
            },
        )


def _block(template: jinja2.Template, name: str, context: jinja2.runtime.Context) -> str:
    if name not in template.blocks:
        raise VariableMissing(template.name or "?", f"block {name!r} missing from the template file")
    return "".join(template.blocks[name](context))
