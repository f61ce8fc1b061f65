"""Web-form submissions -> ``LeadCaptured``: field mapping, required fields, consent proof, and
the visitor's language from the browser when the form does not ask for it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas.base import Channel, SourceKind
from schemas.identity import normalise_phone
from schemas.lead_captured.v1 import (
    CaptureContext,
    Consent,
    Identity,
    LeadCaptured,
    Person,
    Qualification,
)
from services.ingest.domain.capture import Captured, keyed, wording_version
from services.ingest.domain.errors import FieldProblem, InvalidInput
from services.ingest.domain.languages import preferred_language
from services.ingest.domain.text import WS, strip

#: On the stripped value; the contract allows blanks around it.
EMAIL_PATTERN = rf"^[^@{WS}]{{1,64}}@[^@{WS}]+\.[^@{WS}]{{2,}}$"
EMAIL_RE = re.compile(EMAIL_PATTERN)
#: Digits 0-9 only (``int()`` would also take "+5", "1_000" and other scripts' digits), at most 9.
WHOLE_NUMBER_RE = re.compile(r"^[0-9]{1,9}$")
TRUTHY = frozenset({"on", "true", "yes", "1", "y", "checked"})
_SECTIONS = ("identity", "person", "context", "qualification")
_INT_FIELDS = frozenset({"qualification.seats"})
_LIST_FIELDS = frozenset({"qualification.product_interest"})


@dataclass(frozen=True)
class ConsentConfig:
    """One consent box: its posted field, the text shown beside it, the channels it covers."""

    field: str
    text: str
    channels: tuple[Channel, ...] = (Channel.EMAIL,)


@dataclass(frozen=True)
class RateLimits:
    per_ip_per_minute: int = 20
    per_form_per_minute: int = 600


@dataclass(frozen=True)
class FormConfig:
    """One form's rules, as written in its YAML file."""

    id: str
    title: str
    fields: Mapping[str, str]
    required: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    redirect_url: str | None = None
    #: One box per purpose the person can agree to separately (e.g. email news, text messages).
    consent: tuple[ConsentConfig, ...] = ()
    honeypot: str | None = None
    rate_limits: RateLimits = field(default_factory=RateLimits)
    default_region: str | None = None
    tags: tuple[str, ...] = ()
    #: Languages we write to leads in (the notifier's template locales), and the one for a
    #: browser that asks for none of them.
    languages: tuple[str, ...] = ("en", "zh-CN")
    default_language: str = "en"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> FormConfig:
        """Build from parsed YAML; raises ``InvalidInput`` naming each bad setting."""
        problems: list[FieldProblem] = []
        fields = dict(raw.get("fields") or {})
        for name, target in fields.items():
            section, _, leaf = str(target).partition(".")
            if section not in _SECTIONS or not leaf:
                problems.append(FieldProblem(f"fields.{name}", f"target {target!r} is not section.field"))
        for name in raw.get("required") or ():
            if name not in fields:
                problems.append(FieldProblem(f"required.{name}", "is not a mapped field"))
        if not raw.get("id"):
            problems.append(FieldProblem("id", "is required"))
        consent = _consent_boxes(raw.get("consent"), problems)
        languages = tuple(str(x) for x in raw.get("languages") or ("en", "zh-CN"))
        default_language = str(raw.get("default_language") or languages[0])
        if default_language not in languages:
            problems.append(FieldProblem("default_language", f"{default_language!r} is not one of languages"))
        if problems:
            raise InvalidInput(problems)
        limits = raw.get("rate_limits") or {}
        return cls(
            id=str(raw["id"]),
            title=str(raw.get("title", raw["id"])),
            fields=fields,
            required=tuple(raw.get("required") or ()),
            allowed_origins=tuple(raw.get("allowed_origins") or ()),
            redirect_url=raw.get("redirect_url"),
            consent=consent,
            honeypot=raw.get("honeypot"),
            rate_limits=RateLimits(**limits),
            default_region=raw.get("default_region"),
            tags=tuple(raw.get("tags") or ()),
            languages=languages,
            default_language=default_language,
        )

    def origin_allowed(self, origin: str | None) -> bool:
        """No Origin header (a server-to-server client) is allowed; a browser origin must be listed."""
        return origin is None or "*" in self.allowed_origins or origin in self.allowed_origins


def _consent_boxes(raw: Any, problems: list[FieldProblem]) -> tuple[ConsentConfig, ...]:
    """``consent:`` is one box (a mapping) or a list of boxes, each with field, text and channels."""
    if not raw:
        return ()
    boxes = [raw] if isinstance(raw, Mapping) else list(raw) if isinstance(raw, list) else None
    if boxes is None:
        problems.append(FieldProblem("consent", "must be a box (field, text, channels) or a list of boxes"))
        return ()
    out = []
    for i, box in enumerate(boxes):
        where = "consent" if isinstance(raw, Mapping) else f"consent[{i}]"
        if not isinstance(box, Mapping) or not box.get("field") or not box.get("text"):
            problems.append(FieldProblem(where, "needs field and text"))
            continue
        try:
            channels = tuple(Channel(x) for x in box.get("channels", ["email"]))
        except ValueError as exc:
            problems.append(FieldProblem(f"{where}.channels", str(exc)))
            continue
        out.append(ConsentConfig(str(box["field"]), str(box["text"]), channels))
    return tuple(out)


@dataclass(frozen=True)
class Submitter:
    """Who posted: kept as consent proof."""

    ip: str | None
    user_agent: str | None
    landing_page: str | None = None
    #: The browser's ``Accept-Language`` header (the visitor's language when the form has no field for it).
    accept_language: str | None = None


def is_spam(config: FormConfig, values: Mapping[str, Any]) -> bool:
    """A filled honeypot field means a bot filled every input it found."""
    return bool(config.honeypot and str(values.get(config.honeypot) or "").strip())


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = strip(str(value))
    return text or None


def _ticked(value: Any) -> bool:
    return value is True or _text(value) in TRUTHY


def build_capture(
    config: FormConfig,
    values: Mapping[str, Any],
    *,
    capture_id: str,
    now: datetime,
    submitter: Submitter,
) -> LeadCaptured:
    """Map posted values through the form's config; raises ``InvalidInput`` naming every bad field."""
    problems: list[FieldProblem] = []
    sections: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
    for name in config.required:
        if _text(values.get(name)) is None:
            problems.append(FieldProblem(name, "is required"))
    for name, target in config.fields.items():
        raw = values.get(name)
        if target in _LIST_FIELDS:
            items = raw if isinstance(raw, list | tuple) else ([raw] if raw not in (None, "") else [])
            if items:
                sections["qualification"]["product_interest"] = tuple(str(i) for i in items)
            continue
        if isinstance(raw, list | tuple | dict):
            problems.append(FieldProblem(name, "must be a single value"))
            continue
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)  # JSON's 40.0 is the integer 40
        text = _text(raw)
        if text is None:
            continue
        section, _, leaf = target.partition(".")
        if target == "identity.email" and not EMAIL_RE.match(text):
            problems.append(FieldProblem(name, "is not an email address"))
            continue
        if target == "identity.phone" and normalise_phone(text, config.default_region) is None:
            problems.append(FieldProblem(name, "is not a valid phone number (use +country code)"))
            continue
        if target in _INT_FIELDS:
            if WHOLE_NUMBER_RE.match(text):
                sections[section][leaf] = int(text)
            else:
                problems.append(FieldProblem(name, "must be a whole number (at most 9 digits)"))
            continue
        if section == "qualification" and leaf not in Qualification.model_fields:
            sections["qualification"].setdefault("other", {})[leaf] = text
            continue
        sections[section][leaf] = text
    ident = sections["identity"]
    if not ident.get("email") and not ident.get("phone") and not any(p.field in config.fields for p in problems):
        problems.append(FieldProblem("email", "an email address or a phone number is required"))
    if problems:
        raise InvalidInput(problems)
    consent = None
    if config.consent:
        ticked = [box for box in config.consent if _ticked(values.get(box.field))]
        consent = Consent(
            marketing=bool(ticked),
            # Only the boxes ticked: consent to email news is not consent to text messages.
            channels=tuple(dict.fromkeys(ch for box in ticked for ch in box.channels)),
            text_shown=(shown := "\n".join(box.text for box in config.consent)[:5000]),
            text_version=wording_version(shown),
            given_at=now,
            ip=submitter.ip,
            user_agent=(submitter.user_agent or "")[:500] or None,
        )
    if "language" not in sections["person"]:
        language = preferred_language(submitter.accept_language, config.languages, config.default_language)
        if language is not None:
            sections["person"]["language"] = language
    sections["context"]["form_id"] = config.id
    if submitter.landing_page and "landing_page" not in sections["context"]:
        sections["context"]["landing_page"] = submitter.landing_page[:2000]
    try:
        return LeadCaptured(
            capture_id=capture_id,
            source_kind=SourceKind.WEB_FORM,
            captured_at=now,
            identity=Identity(**ident),
            person=Person(**sections["person"]),
            consent=consent,
            context=CaptureContext(**sections["context"]),
            qualification=Qualification(**sections["qualification"]),
            tags=config.tags,
        )
    except ValidationError as exc:
        raise InvalidInput(_problems_from(exc, config)) from exc


def capture_form(
    config: FormConfig,
    values: Mapping[str, Any],
    *,
    capture_id: str,
    now: datetime,
    submitter: Submitter,
) -> Captured:
    """``build_capture`` with its record key (the form's default region reads local phones)."""
    capture = build_capture(config, values, capture_id=capture_id, now=now, submitter=submitter)
    return keyed(capture, default_region=config.default_region)


def _problems_from(exc: ValidationError, config: FormConfig) -> list[FieldProblem]:
    by_target = {target.split(".", 1)[1]: name for name, target in config.fields.items()}
    out = []
    for err in exc.errors(include_url=False):
        leaf = str(err["loc"][-1]) if err["loc"] else ""
        out.append(FieldProblem(by_target.get(leaf, ".".join(str(p) for p in err["loc"])), err["msg"]))
    return out
