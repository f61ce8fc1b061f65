"""Booth-scan batches -> ``LeadCaptured``, one per scan, with per-item results.

A badge scanned twice at the same show is one lead: both scans carry the same show+badge
identity key (so they land in order on one partition) and scoring merges their notes. A scan
uploaded twice (same scan id) is a duplicate and is published once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.base import BoothRating, Channel, SourceKind, UtcDatetime
from schemas.identity import identity_key
from schemas.lead_captured.v1 import CaptureContext, Consent, Identity, LeadCaptured, Person, Qualification
from services.ingest.domain.booth import BoothConsent, parse_consent_basis, visitor_language
from services.ingest.domain.capture import capture_key, wording_version
from services.ingest.domain.errors import FieldProblem, InvalidInput

MAX_SCANS_PER_BATCH = 1000

Text = Annotated[str, Field(max_length=500)]


class ScanConsent(BaseModel):
    """The consent the booth recorded, where the show collects it (the visitor ticked a box on the
    scanner app or the badge's opt-in). A scan without it carries no marketing consent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    marketing: bool
    channels: Annotated[list[Channel], Field(max_length=6)] = Field(default_factory=lambda: [Channel.EMAIL])
    text_shown: Annotated[str, Field(max_length=5000)] | None = None
    given_at: UtcDatetime | None = None


class Scan(BaseModel):
    """One badge scan as the scanner app sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scan_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    badge_id: Annotated[str, Field(min_length=1, max_length=200)]
    scanned_at: UtcDatetime
    first_name: Text | None = None
    last_name: Text | None = None
    full_name: Text | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=40)] | None = None
    company: Text | None = None
    job_title: Text | None = None
    country: Annotated[str, Field(max_length=56)] | None = None
    language: Annotated[str, Field(max_length=35)] | None = None
    rating: BoothRating | None = None
    answers: dict[str, Annotated[str, Field(max_length=5000)]] = Field(default_factory=dict)
    notes: Annotated[str, Field(max_length=5000)] | None = None
    consent: ScanConsent | None = None


class BoothConsentIn(BaseModel):
    """What visitors agreed to at the booth: ``basis`` none, email, sms, phone or e.g. email+sms,
    with the consent text and its version as shown at the booth."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    basis: Annotated[str, Field(pattern=r"^(none|(email|sms|phone)(\+(email|sms|phone))*)$")]
    text: Annotated[str, Field(max_length=4000)] | None = None
    version: Annotated[str, Field(max_length=100)] | None = None


class ScanBatch(BaseModel):
    """A batch from one device at one booth of one show (the scans are checked one by one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: Annotated[str, Field(min_length=1, max_length=200)]
    show_id: Annotated[str, Field(min_length=1, max_length=200)]
    booth: Annotated[str, Field(min_length=1, max_length=200)]
    staff: Text | None = None
    show_name: Text | None = None
    show_ends_on: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None
    consent: BoothConsentIn | None = None
    scans: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_SCANS_PER_BATCH)]

    def booth_consent(self) -> BoothConsent:
        """The show's consent basis; a batch that states none carries no consent."""
        if self.consent is None:
            return BoothConsent()
        return parse_consent_basis(self.consent.basis, self.consent.text, self.consent.version)


ItemStatus = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True, slots=True)
class ScanCapture:
    """A valid scan ready to publish: its scan id, the record key and the payload."""

    index: int
    scan_id: str
    key: str
    capture: LeadCaptured

    @property
    def payload(self) -> LeadCaptured:
        return self.capture


@dataclass(frozen=True, slots=True)
class RejectedScan:
    index: int
    scan_id: str | None
    problems: list[FieldProblem]


_QUAL_KEYS = frozenset({"need", "budget", "authority", "timeline"})


def parse_batch(raw: Any) -> ScanBatch:
    """The batch envelope; raises ``InvalidInput`` naming each bad field."""
    try:
        return ScanBatch.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(
            [
                FieldProblem(".".join(str(p) for p in err["loc"]) or "body", _msg(err["type"], err["msg"]))
                for err in exc.errors(include_url=False)
            ]
        ) from exc


def _msg(kind: str, msg: str) -> str:
    if kind == "too_long":
        return f"at most {MAX_SCANS_PER_BATCH} scans per batch"
    return msg


def scan_id_for(batch: ScanBatch, scan: Scan) -> str:
    """The scanner's own id, else one derived from device, badge and device time (stable on re-upload)."""
    if scan.scan_id:
        return scan.scan_id
    basis = f"{batch.device_id}|{batch.show_id}|{scan.badge_id}|{scan.scanned_at.isoformat()}"
    return "scan_" + hashlib.blake2b(basis.encode(), digest_size=12).hexdigest()


def build_captures(batch: ScanBatch, *, batch_id: str) -> tuple[list[ScanCapture], list[RejectedScan]]:
    """Split a batch into publishable captures and rejected scans (each with its reasons)."""
    good: list[ScanCapture] = []
    bad: list[RejectedScan] = []
    for index, raw in enumerate(batch.scans):
        try:
            scan = Scan.model_validate(raw)
        except ValidationError as exc:
            sid = raw.get("scan_id") if isinstance(raw, dict) else None
            bad.append(
                RejectedScan(
                    index,
                    sid if isinstance(sid, str) else None,
                    [
                        FieldProblem(f"scans[{index}]." + ".".join(str(p) for p in err["loc"]), err["msg"])
                        for err in exc.errors(include_url=False)
                    ],
                )
            )
            continue
        sid = scan_id_for(batch, scan)
        capture = _capture(batch, scan, sid, batch_id)
        good.append(ScanCapture(index, sid, capture_key(capture), capture))
    return good, bad


def scan_key(show_id: str, badge_id: str) -> str:
    """Every scan of one badge at one show shares this key (``capture_key`` of its capture)."""
    return identity_key(show_id=show_id, badge_id=badge_id)


def scan_consent(consent: BoothConsent, scan: Scan) -> Consent | None:
    """Booth consent on a capture, as form consent is: given at the scan, per channel, with the
    text shown. No basis (or ``none``) is no consent object at all: a booth that asked nothing
    must not read as a withdrawal of consent given elsewhere."""
    if not consent.channels:
        return None
    text = consent.text
    if consent.version:
        text = f"{text or ''}\n[consent text version {consent.version}]".strip()
    return Consent(marketing=True, channels=consent.channels, text_shown=text,
                   text_version=wording_version(consent.text, consent.version), given_at=scan.scanned_at)  # fmt: skip


def _capture(batch: ScanBatch, scan: Scan, scan_id: str, batch_id: str) -> LeadCaptured:
    answers = dict(scan.answers)
    qual = {k: answers.pop(k) for k in list(answers) if k in _QUAL_KEYS}
    return LeadCaptured(
        capture_id=scan_id,
        source_kind=SourceKind.BOOTH_SCAN,
        captured_at=scan.scanned_at,
        identity=Identity(email=scan.email, phone=scan.phone, badge_id=scan.badge_id, show_id=batch.show_id),
        person=Person(
            first_name=scan.first_name,
            last_name=scan.last_name,
            full_name=scan.full_name,
            company=scan.company,
            job_title=scan.job_title,
            country=scan.country,
            language=visitor_language(scan.country, scan.job_title, _name(scan), scan.language),
        ),
        # The scan's own consent (the visitor's box on the scanner app) wins over the batch's
        # booth-wide basis.
        consent=_consent(scan) if scan.consent is not None else scan_consent(batch.booth_consent(), scan),
        context=CaptureContext(
            show_id=batch.show_id,
            show_name=batch.show_name,
            show_ends_on=batch.show_ends_on,
            booth=batch.booth,
            device_id=batch.device_id,
            staff=batch.staff,
            batch_id=batch_id,
        ),
        qualification=Qualification(**qual, other=answers),
        booth_rating=scan.rating,
        notes=(scan.notes,) if scan.notes else (),
    )


def _consent(scan: Scan) -> Consent | None:
    c = scan.consent
    if c is None:
        return None
    return Consent(
        marketing=c.marketing,
        channels=tuple(dict.fromkeys(c.channels)) if c.marketing else (),
        text_shown=c.text_shown,
        text_version=wording_version(c.text_shown),
        given_at=c.given_at or scan.scanned_at,
    )


def _name(scan: Scan) -> str | None:
    return " ".join(n for n in (scan.full_name, scan.last_name, scan.first_name) if n) or None
