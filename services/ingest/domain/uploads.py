"""``--map`` specs and vCard exports -> scan dicts for ``POST /v1/scans`` (CSV and Excel rows: ``booth.py``)."""

from __future__ import annotations

from services.ingest.domain.errors import FieldProblem, InvalidInput


def parse_mapping(spec: str | None) -> dict[str, str]:
    """``"Badge=badge_id,Time=scanned_at"`` -> {column: field} (checked against the file by ``booth.detect_mapping``)."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        column, sep, target = part.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise InvalidInput([FieldProblem("--map", f"{part!r} is not COLUMN=field")])
        out[column.strip()] = target.strip()
    return out


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
