"""Scanner exports (CSV with a header mapping, vCard) -> scan dicts for ``POST /v1/scans``."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from services.ingest.domain.errors import FieldProblem, InvalidInput

SCAN_FIELDS = (
    "scan_id", "badge_id", "scanned_at", "first_name", "last_name", "full_name", "email", "phone",
    "company", "job_title", "country", "rating", "notes",
)  # fmt: skip


#: Columns that carry the consent the booth recorded (``consent``: yes/no; ``consent_channels``:
#: e.g. "email sms", default email; ``consent_text``: what the visitor agreed to).
CONSENT_COLUMNS = ("consent", "consent_channels", "consent_text")
_YES = frozenset({"yes", "y", "true", "1", "on", "x"})


def _consent(columns: Mapping[str, str]) -> dict[str, object]:
    out: dict[str, object] = {"marketing": columns.get("consent", "").lower() in _YES}
    if columns.get("consent_channels"):
        out["channels"] = columns["consent_channels"].replace(",", " ").split()
    if columns.get("consent_text"):
        out["text_shown"] = columns["consent_text"]
    return out


def parse_mapping(spec: str | None) -> dict[str, str]:
    """``"Badge=badge_id,Time=scanned_at"`` -> {column: field}; unknown fields become answers."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        column, sep, target = part.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise InvalidInput([FieldProblem("--map", f"{part!r} is not COLUMN=field")])
        out[column.strip()] = target.strip()
    return out


def scans_from_csv(text: str, mapping: Mapping[str, str]) -> list[dict[str, object]]:
    """Each row -> a scan; a column not mapped to a scan field is kept as a qualifying answer."""
    reader = csv.DictReader(io.StringIO(text))
    scans: list[dict[str, object]] = []
    for row in reader:
        scan: dict[str, object] = {}
        answers: dict[str, str] = {}
        consent: dict[str, str] = {}
        for column, value in row.items():
            if column is None or value is None or not value.strip():
                continue
            target = mapping.get(column, column.strip().lower().replace(" ", "_"))
            if target in SCAN_FIELDS:
                scan[target] = value.strip()
            elif target in CONSENT_COLUMNS:
                consent[target] = value.strip()
            elif target.startswith("answers."):
                answers[target.split(".", 1)[1]] = value.strip()
            else:
                answers[target] = value.strip()
        if answers:
            scan["answers"] = answers
        if consent:
            scan["consent"] = _consent(consent)
        scans.append(scan)
    return scans


def scans_from_vcard(text: str, default_time: str) -> list[dict[str, object]]:
    """vCard 3/4 cards (business cards): N, FN, EMAIL, TEL, ORG, TITLE, NOTE, UID, REV."""
    scans: list[dict[str, object]] = []
    card: dict[str, object] | None = None
    for raw in text.replace("\r\n ", "").replace("\n ", "").splitlines():
        line = raw.strip()
        if line.upper() == "BEGIN:VCARD":
            card = {}
            continue
        if line.upper() == "END:VCARD" and card is not None:
            card.setdefault("scanned_at", default_time)
            if "badge_id" not in card:
                card["badge_id"] = str(card.get("email") or card.get("phone") or f"card-{len(scans) + 1}")
            scans.append(card)
            card = None
            continue
        if card is None or ":" not in line:
            continue
        name, value = line.split(":", 1)
        prop = name.split(";", 1)[0].upper()
        value = value.replace("\\,", ",").replace("\\n", "\n").strip()
        if prop == "FN":
            card["full_name"] = value
        elif prop == "N":
            parts = [*value.split(";"), "", ""]
            card["last_name"], card["first_name"] = parts[0] or None, parts[1] or None
        elif prop == "EMAIL":
            card.setdefault("email", value)
        elif prop == "TEL":
            card.setdefault("phone", value.removeprefix("tel:"))
        elif prop == "ORG":
            card["company"] = value.split(";", 1)[0]
        elif prop == "TITLE":
            card["job_title"] = value
        elif prop == "NOTE":
            card["notes"] = value
        elif prop == "UID":
            card["badge_id"] = value
        elif prop == "REV":
            card["scanned_at"] = value
    return [{k: v for k, v in c.items() if v is not None} for c in scans]
