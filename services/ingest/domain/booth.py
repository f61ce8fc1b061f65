"""Booth-scanner exports as booth staff have them -> scans for ``POST /v1/scans``.

Badge-scanner apps name their columns in their own words (English or Chinese), write the
show's local time without an offset, and rate visitors on their own scale. These rules turn
such rows into scans and say plainly what could not be used, grouped by kind.

Errors: ``InvalidInput`` (from ``errors``) for a setting that makes the whole file unusable
(a ``--map`` naming a column the file does not have, an unknown time zone, naive times with no
time zone); per-row problems are returned as ``RowProblem`` values, never raised.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.base import BoothRating, Channel
from services.ingest.domain.errors import FieldProblem, InvalidInput

SCAN_FIELDS = (
    "scan_id", "badge_id", "scanned_at", "first_name", "last_name", "full_name", "email", "phone",
    "company", "job_title", "country", "language", "rating", "notes",
)  # fmt: skip
#: Answers the server files under the qualification questions rather than ``other``.
QUALIFICATION_FIELDS = ("need", "budget", "authority", "timeline")
#: Columns that carry the consent a visitor gave on the scanner app (``consent``: yes/no;
#: ``consent_channels``: e.g. "email sms", default email; ``consent_text``: what they agreed to).
#: A row's own consent wins over the upload's booth-wide ``--consent`` basis.
CONSENT_FIELDS = ("consent", "consent_channels", "consent_text")
_YES = frozenset({"yes", "y", "true", "1", "on", "x", "是", "同意"})
IGNORE = "ignore"

#: Column names seen in badge-scanner exports, per scan field (compared after ``normalise_header``).
VOCABULARY: Mapping[str, tuple[str, ...]] = {
    "scan_id": ("scan id", "scan no", "record id", "lead id", "扫描编号", "记录编号"),
    "badge_id": (
        "badge id", "badge", "badge no", "badge number", "badge code", "barcode", "registration id",
        "registration code", "attendee id", "visitor id", "胸卡号", "胸卡", "胸牌号", "证件号", "参会证号", "观众编号",
    ),
    "scanned_at": (
        "scan time", "scanned at", "scanned", "scan date", "scan datetime", "date scanned", "time scanned",
        "timestamp", "date", "datetime", "date time", "time", "capture time", "captured at", "created",
        "created at", "扫描时间", "扫码时间", "时间", "日期", "扫描日期", "采集时间",
    ),
    "first_name": ("first name", "firstname", "given name", "forename", "名"),
    "last_name": ("last name", "lastname", "surname", "family name", "姓"),
    "full_name": ("name", "full name", "contact", "contact name", "attendee", "attendee name", "visitor name", "姓名", "名字", "联系人"),
    "email": ("email", "e mail", "email address", "e mail address", "mail", "邮箱", "电子邮箱", "电子邮件", "邮件", "邮箱地址"),
    "phone": (
        "phone", "mobile", "mobile phone", "cell", "cell phone", "telephone", "tel", "phone number",
        "mobile number", "手机", "手机号", "手机号码", "电话", "联系电话",
    ),
    "job_title": ("title", "job title", "position", "job", "role", "designation", "职位", "职务", "头衔", "岗位"),
    "company": (
        "company", "company name", "organisation", "organization", "org", "employer", "account",
        "公司", "公司名称", "单位", "单位名称", "企业", "企业名称",
    ),
    "country": ("country", "country region", "nation", "国家", "国家地区", "地区"),
    "language": ("language", "preferred language", "语言"),
    "rating": (
        "rating", "lead rating", "temperature", "lead temperature", "lead score", "interest", "interest level",
        "priority", "quality", "grade", "意向", "意向度", "意向等级", "评级", "等级", "兴趣",
    ),
    "notes": ("notes", "note", "comments", "comment", "remarks", "memo", "备注", "说明", "留言", "记录"),
    "consent": ("consent", "opt in", "optin", "marketing consent", "marketing opt in", "gdpr consent", "同意营销", "营销同意"),
    "consent_channels": ("consent channels", "opt in channels", "optin channels", "同意渠道"),
    "consent_text": ("consent text", "opt in text", "consent wording", "同意文本"),
}  # fmt: skip


def normalise_header(name: str) -> str:
    """Case, width, spaces and punctuation do not matter: ``" E-Mail_Address "`` -> ``"e mail address"``."""
    text = " ".join(re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", name).lower()).split())
    # Chinese has no word spaces: "国家/地区" and "国家地区" are the same header.
    return re.sub(r"(?<=[\u4e00-\u9fff]) (?=[\u4e00-\u9fff])", "", text)


_BY_HEADER: dict[str, str] = {normalise_header(n): f for f, names in VOCABULARY.items() for n in names}


def header_row(lines: Sequence[Sequence[object]], look_at: int = 20) -> int | None:
    """Which line holds the column names: the first with two recognised names (exports often put
    a title or the export date above the header), else the first line that is not blank."""
    for i, line in enumerate(lines[:look_at]):
        if sum(1 for cell in line if cell is not None and normalise_header(str(cell)) in _BY_HEADER) >= 2:
            return i
    return next((i for i, line in enumerate(lines) if any(c is not None and str(c).strip() for c in line)), None)


@dataclass(frozen=True)
class HeaderMapping:
    """How each column of one export is used."""

    fields: Mapping[str, str]  # column -> scan field, "answers.NAME" or a qualification field
    recognised: frozenset[str]  # columns mapped from the vocabulary (not by --map)
    unrecognised: tuple[str, ...]  # columns kept as answers because nothing else fits
    ignored: Mapping[str, str]  # column -> why it is not sent

    def target(self, column: str) -> str | None:
        return self.fields.get(column)


def answer_name(column: str) -> str:
    return normalise_header(column).replace(" ", "_") or "column"


def _valid_target(target: str) -> bool:
    return (
        target in SCAN_FIELDS
        or target in CONSENT_FIELDS
        or target in QUALIFICATION_FIELDS
        or target == IGNORE
        or (target.startswith("answers.") and len(target) > len("answers."))
    )


def detect_mapping(columns: Sequence[str], overrides: Mapping[str, str] | None = None) -> HeaderMapping:
    """Map each column: ``overrides`` (``--map``) first, then the vocabulary, else an answer.

    A second column matching a field already taken is ignored (the first one wins), so a
    "Date" next to a "Scan Time" never overwrites it; the one exception is a second time column,
    kept so that a "Scan Date" holding only dates gets its time of day from "Scan Time". Raises ``InvalidInput`` naming ``--map``
    for a column not in the file or a target that is not a scan field.
    """
    overrides = dict(overrides or {})
    by_norm = {normalise_header(c): c for c in columns}
    problems: list[FieldProblem] = []
    chosen: dict[str, str] = {}
    for column, target in overrides.items():
        actual = column if column in columns else by_norm.get(normalise_header(column))
        if actual is None:
            problems.append(
                FieldProblem("--map", f"column {column!r} is not in the file (columns: {', '.join(columns)})")
            )
        elif not _valid_target(target):
            problems.append(
                FieldProblem(
                    "--map",
                    f"{column}={target}: {target!r} is not a scan field "
                    f"({', '.join(SCAN_FIELDS)}, answers.NAME or {IGNORE})",
                )
            )
        else:
            chosen[actual] = target
    if problems:
        raise InvalidInput(problems)
    fields: dict[str, str] = {}
    ignored: dict[str, str] = {}
    recognised: set[str] = set()
    unrecognised: list[str] = []
    taken: dict[str, str] = {}
    for column in columns:
        if not column.strip():
            ignored[column] = "no header"
            continue
        if column in chosen:
            target = chosen[column]
        elif (found := _BY_HEADER.get(normalise_header(column))) is not None:
            target = found
            recognised.add(column)
        else:
            target = "answers." + answer_name(column)
            unrecognised.append(column)
        if target == IGNORE:
            ignored[column] = "--map says ignore"
            continue
        if target == "scanned_at" and target in taken and sum(t == target for t in fields.values()) == 1:
            pass
        elif target in taken and column not in chosen:
            ignored[column] = f"{target} already comes from {taken[target]!r}"
            recognised.discard(column)
            continue
        fields[column] = target
        taken.setdefault(target, column)
    return HeaderMapping(fields, frozenset(recognised), tuple(unrecognised), ignored)


# ---- times --------------------------------------------------------------------------------
DateOrder = Literal["dmy", "mdy"]
_EXCEL_EPOCH = datetime(1899, 12, 30)
_NUMERIC_DATE = re.compile(
    r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?$"
)
_YEAR_FIRST = re.compile(
    r"^(\d{4})\s*[/.\-年]\s*(\d{1,2})\s*[/.\-月]\s*(\d{1,2})\s*日?(?:[ T]*(\d{1,2})\s*[:时]\s*(\d{2})\s*分?(?::(\d{2}))?)?$"
)


class NaiveTime(ValueError):
    """A timestamp without an offset while no time zone is known."""


def load_zone(name: str) -> ZoneInfo:
    """An IANA zone; raises ``InvalidInput`` naming ``--timezone`` for anything else."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError):
        raise InvalidInput(
            [FieldProblem("--timezone", f"{name!r} is not a known time zone (use an IANA name such as Europe/Lisbon)")]
        ) from None


def date_order_of(values: Iterable[object]) -> DateOrder | None:
    """Day-first or month-first, as the column's own values show; None when no value tells."""
    for value in values:
        m = _NUMERIC_DATE.match(str(value).strip()) if isinstance(value, str) else None
        if m is None:
            continue
        first, second = int(m.group(1)), int(m.group(2))
        if first > 12 >= second:
            return "dmy"
        if second > 12 >= first:
            return "mdy"
    return None


def parse_scan_time(value: object, zone: tzinfo | None, order: DateOrder = "dmy") -> datetime:
    """A scanner's time (ISO, "03/11/2026 14:05", "2026/11/03 14:05", "2026年11月3日", an Excel
    datetime or serial number) as an aware datetime; a naive one is read in ``zone``.

    Raises ``NaiveTime`` when the value has no offset and ``zone`` is None, ``ValueError`` when it
    is not a time at all.
    """
    parsed = _parse_naive_or_aware(value, order)
    if parsed.tzinfo is not None:
        return parsed
    if zone is None:
        raise NaiveTime(f"{value!r} has no UTC offset")
    return parsed.replace(tzinfo=zone)


def _parse_naive_or_aware(value: object, order: DateOrder) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_excel_serial(float(value))
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not text:
        raise ValueError("is empty")
    if re.fullmatch(r"\d{5}(\.\d+)?", text):
        return _from_excel_serial(float(text))
    try:
        return datetime.fromisoformat(text.replace(" UTC", "Z"))
    except ValueError:
        pass
    if m := _NUMERIC_DATE.match(text):
        a, b, year, hour, minute, second, ampm = m.groups()
        day, month = (int(a), int(b)) if order == "dmy" else (int(b), int(a))
        return _build(int(year), month, day, hour, minute, second, ampm, text)
    if m := _YEAR_FIRST.match(text):
        y, mo, d, hour, minute, second = m.groups()
        return _build(int(y), int(mo), int(d), hour, minute, second, None, text)
    raise ValueError(f"{text!r} is not a date and time I can read")


def _build(
    year: int,
    month: int,
    day: int,
    hour: str | None,
    minute: str | None,
    second: str | None,
    ampm: str | None,
    text: str,
) -> datetime:
    h = int(hour or 0)
    if ampm:
        h = h % 12 + (12 if ampm.lower() == "pm" else 0)
    try:
        return datetime(year, month, day, h, int(minute or 0), int(second or 0))
    except ValueError:
        raise ValueError(f"{text!r} is not a real date and time") from None


def _from_excel_serial(serial: float) -> datetime:
    # Excel counts days from 1899-12-30 (it believes 1900 was a leap year); the range check keeps
    # a stray number (a badge id, a phone) from passing for a date.
    if not 20000 < serial < 80000:
        raise ValueError(f"{serial!r} is not a date and time I can read")
    return (_EXCEL_EPOCH + timedelta(days=serial)).replace(microsecond=0)


# ---- ratings and language ------------------------------------------------------------------
_RATINGS: Mapping[str, BoothRating] = {
    **{k: BoothRating.HOT for k in ("hot", "a", "5", "4", "热", "高", "high", "高意向", "强")},
    **{k: BoothRating.WARM for k in ("warm", "b", "3", "温", "中", "medium", "中意向", "一般")},
    **{k: BoothRating.COLD for k in ("cold", "c", "d", "2", "1", "冷", "低", "low", "低意向", "弱")},
}


def normalise_rating(value: object) -> BoothRating | None:
    """The booth's rating on the scans' scale: hot/warm/cold, A/B/C(/D), 1-5 (5 best), 热/温/冷,
    高/中/低; None when the value is none of these."""
    shown = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    text = unicodedata.normalize("NFKC", shown).strip().lower()
    text = re.sub(r"\s*(lead|类|级)$", "", text)
    return _RATINGS.get(text)


_CHINA = frozenset({"cn", "chn", "china", "prc", "people s republic of china", "mainland china", "中国", "中国大陆", "中华人民共和国"})  # fmt: skip
_OTHER_HAN = frozenset({"jp", "jpn", "japan", "日本", "kr", "kor", "korea", "south korea", "韩国"})
_TRADITIONAL: Mapping[str, str] = {
    **dict.fromkeys(("tw", "twn", "taiwan", "台湾", "臺灣"), "zh-TW"),
    **dict.fromkeys(("hk", "hkg", "hong kong", "香港"), "zh-HK"),
    **dict.fromkeys(("mo", "mac", "macau", "macao", "澳门", "澳門"), "zh-MO"),
}
_HAN = re.compile(r"[\u4e00-\u9fff]")
_KANA = re.compile(r"[\u3040-\u30ff]")


def visitor_language(
    country: str | None, job_title: str | None = None, name: str | None = None, language: str | None = None
) -> str | None:
    """The language to answer a visitor in: what the export says, zh-CN for China or for a
    Chinese title/name, None when nothing tells (the pipeline's default applies).

    Han characters alone are not Chinese: Japanese titles and names use them too, so they count
    only without kana and when the country is not Japan or Korea.
    """
    if language and language.strip():
        return language.strip()
    where = normalise_header(country or "")
    if where in _CHINA:
        return "zh-CN"
    if where in _OTHER_HAN:
        return None
    text = " ".join(t for t in (job_title, name) if t)
    if _HAN.search(text) and not _KANA.search(text):
        return _TRADITIONAL.get(where, "zh-CN")
    return None


# ---- consent -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoothConsent:
    """What visitors agreed to at the booth, as the show states it (never guessed from the file)."""

    channels: tuple[Channel, ...] = ()
    text: str | None = None
    version: str | None = None

    @property
    def basis(self) -> str:
        return "+".join(c.value for c in self.channels) or "none"

    def as_dict(self) -> dict[str, Any]:
        return {"basis": self.basis} | {k: v for k, v in (("text", self.text), ("version", self.version)) if v}


_CONSENT_CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.PHONE)


def parse_consent_basis(basis: str, text: str | None = None, version: str | None = None) -> BoothConsent:
    """``none``, ``email``, ``sms``, ``phone`` or a ``+`` combination such as ``email+sms``."""
    raw = basis.strip().lower()
    if raw == "none":
        return BoothConsent((), text, version)
    channels: list[Channel] = []
    for part in raw.split("+"):
        try:
            channel = Channel(part.strip())
        except ValueError:
            channel = None
        if channel not in _CONSENT_CHANNELS:
            raise InvalidInput(
                [
                    FieldProblem(
                        "consent", f"{basis!r} is not none, email, sms, phone or a combination such as email+sms"
                    )
                ]
            )
        assert channel is not None
        if channel not in channels:
            channels.append(channel)
    return BoothConsent(tuple(channels), text, version)


# ---- shows ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShowConfig:
    """One show's settings, as written in its YAML file."""

    id: str
    timezone: str
    name: str | None = None
    ends_on: str | None = None
    consent: BoothConsent = field(default_factory=BoothConsent)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ShowConfig:
        """Build from parsed YAML; raises ``InvalidInput`` naming each bad setting."""
        if not isinstance(raw, Mapping):
            raise InvalidInput([FieldProblem("show", "is not a mapping of settings (id, timezone, consent)")])
        problems: list[FieldProblem] = []
        if not raw.get("id"):
            problems.append(FieldProblem("id", "is required"))
        zone = str(raw.get("timezone") or "")
        if not zone:
            problems.append(FieldProblem("timezone", "is required (an IANA name such as Europe/Lisbon)"))
        else:
            try:
                load_zone(zone)
            except InvalidInput:
                problems.append(FieldProblem("timezone", f"{zone!r} is not a known time zone"))
        consent = BoothConsent()
        c = raw.get("consent")
        if c is None or not isinstance(c, Mapping) or "basis" not in c:
            problems.append(FieldProblem("consent.basis", "is required: none, email, sms or e.g. email+sms"))
        else:
            try:
                consent = parse_consent_basis(str(c["basis"]), c.get("text"), _str_or_none(c.get("version")))
            except InvalidInput as exc:
                problems += [FieldProblem("consent.basis", p.problem) for p in exc.problems]
            if consent.channels and not c.get("text"):
                problems.append(FieldProblem("consent.text", "is required when visitors gave consent"))
        ends = _str_or_none(raw.get("ends_on"))
        if ends is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", ends):
            problems.append(FieldProblem("ends_on", f"{ends!r} is not YYYY-MM-DD"))
        if problems:
            raise InvalidInput(problems)
        return cls(str(raw["id"]), zone, _str_or_none(raw.get("name")), ends, consent)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


# ---- rows -> scans ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with one row; ``sent`` says whether the row still goes (without that value)."""

    row: int
    field: str
    kind: str
    sent: bool


@dataclass(frozen=True)
class PreparedScan:
    row: int
    scan: dict[str, Any]


@dataclass(frozen=True)
class Prepared:
    scans: list[PreparedScan]
    problems: list[RowProblem]
    #: True when 03/11/2026-style dates could be either order and were read day first.
    guessed_day_first: bool = False


def prepare_scans(
    rows: Sequence[Mapping[str, object]],
    mapping: HeaderMapping,
    zone: tzinfo | None,
    *,
    first_row: int = 2,
    date_order: DateOrder | None = None,
) -> Prepared:
    """Rows (column -> cell) -> scans, in file order, with each row's problems.

    ``first_row`` is the file's row number of ``rows[0]`` (2 under a header line), so problems
    name rows as a spreadsheet shows them. A row with no badge or no readable time is not sent;
    a rating that is not on any known scale is kept as an answer and the scan goes without it.
    Raises ``InvalidInput`` naming ``--timezone`` when a time has no offset and ``zone`` is None.
    """
    time_columns = [c for c, t in mapping.fields.items() if t == "scanned_at"]
    times = [r.get(c) for r in rows for c in time_columns]
    order = date_order or date_order_of(times)
    guessed = order is None and any(isinstance(v, str) and _NUMERIC_DATE.match(v.strip()) for v in times)
    out: list[PreparedScan] = []
    problems: list[RowProblem] = []
    for offset, row in enumerate(rows):
        number = first_row + offset
        scan: dict[str, Any] = {}
        answers: dict[str, str] = {}
        consent: dict[str, str] = {}
        row_problems: list[RowProblem] = []
        cells = [(c, row.get(c)) for c in time_columns if _filled(row.get(c))]
        if cells:
            column, value = cells[0]
            try:
                when = parse_scan_time(_with_time_of_day(value, [v for _, v in cells[1:]]), zone, order or "dmy")
                scan["scanned_at"] = when.isoformat()
            except NaiveTime:
                raise InvalidInput(
                    [
                        FieldProblem(
                            "--timezone",
                            f"row {number}, column {column!r}: {value!r} has no UTC offset; give the show's "
                            "time zone with --timezone (e.g. --timezone Europe/Lisbon) or configure the show",
                        )
                    ]
                ) from None
            except ValueError:
                row_problems.append(RowProblem(number, "scanned_at", "not a date and time", sent=False))
        for column, target in mapping.fields.items():
            value = row.get(column)
            if not _filled(value) or target == "scanned_at":
                continue
            text = _cell_text(value)
            if target == "rating":
                rating = normalise_rating(value)
                if rating is None:
                    answers["rating"] = text
                    row_problems.append(RowProblem(number, "rating", "not a known rating (kept as an answer)", True))
                else:
                    scan["rating"] = rating.value
            elif target in SCAN_FIELDS:
                scan[target] = text
            elif target in CONSENT_FIELDS:
                consent[target] = text
            else:
                answers[target.removeprefix("answers.")] = text
        for required in ("badge_id", "scanned_at"):
            if required not in scan and not any(p.field == required for p in row_problems):
                row_problems.append(RowProblem(number, required, "empty", sent=False))
        if not scan and not answers:
            continue  # a blank line in the export
        language = visitor_language(
            _s(scan.get("country")),
            _s(scan.get("job_title")),
            " ".join(str(scan[k]) for k in ("full_name", "last_name", "first_name") if k in scan) or None,
            _s(scan.get("language")),
        )
        if language:
            scan["language"] = language
        if answers:
            scan["answers"] = answers
        if consent:
            scan["consent"] = row_consent(consent)
        problems += row_problems
        if all(p.sent for p in row_problems):
            out.append(PreparedScan(number, scan))
    return Prepared(out, problems, guessed)


def row_consent(columns: Mapping[str, str]) -> dict[str, object]:
    """A row's consent columns -> the scan's ``consent`` (a box not ticked is no consent)."""
    out: dict[str, object] = {"marketing": columns.get("consent", "").strip().lower() in _YES}
    if columns.get("consent_channels"):
        out["channels"] = columns["consent_channels"].replace(",", " ").replace("+", " ").split()
    if columns.get("consent_text"):
        out["text_shown"] = columns["consent_text"]
    return out


def _filled(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?$")


def _with_time_of_day(value: object, others: Sequence[object]) -> object:
    """A date-only cell completed by a time-of-day cell from a second time column (exports with
    "Scan Date" and "Scan Time" apart); anything else is returned as it is."""
    if not others:
        return value
    other = others[0]
    if isinstance(other, time):
        hms = (other.hour, other.minute, other.second)
    elif isinstance(other, str) and (m := _TIME_OF_DAY.match(other.strip())):
        h = int(m.group(1))
        if m.group(4):
            h = h % 12 + (12 if m.group(4).lower() == "pm" else 0)
        hms = (h, int(m.group(2)), int(m.group(3) or 0))
    else:
        return value
    if isinstance(value, datetime):
        if value.time() != time(0):
            return value
        day: date = value.date()
    elif isinstance(value, date):
        day = value
    elif isinstance(value, str) and (
        re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip())
        or ((m2 := _NUMERIC_DATE.match(value.strip())) and m2.group(4) is None)
        or ((m3 := _YEAR_FIRST.match(value.strip())) and m3.group(4) is None)
    ):
        return f"{value.strip()} {hms[0]:02d}:{hms[1]:02d}:{hms[2]:02d}"
    else:
        return value
    return datetime.combine(day, time(*hms))


def _s(value: object) -> str | None:
    return None if value is None else str(value)


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a badge or phone number that a spreadsheet stored as a number
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


# ---- batches and summaries -----------------------------------------------------------------
def batch_key(body: Mapping[str, Any]) -> str:
    """The Idempotency-Key of one batch: a hash of exactly what is sent (items, show, booth,
    device, consent), so a corrected batch gets a new key and an identical repeat the same one."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "booth-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ProblemLine:
    field: str
    kind: str
    count: int
    rows: tuple[int, ...]
    sent: bool

    def render(self, shown: int = 5, verb: str | None = None) -> str:
        more = f" (+{self.count - shown} more)" if self.count > shown else ""
        verb = verb or ("sent without it" if self.sent else "not sent")
        rows = ", ".join(str(r) for r in self.rows[:shown])
        plural = "s" if self.count != 1 else ""
        return f"{self.field}: {self.kind} - {self.count} row{plural}, {verb}: row{plural} {rows}{more}"


def group_problems(problems: Iterable[RowProblem]) -> list[ProblemLine]:
    """One line per kind of problem, most frequent first, with the rows it hit in file order."""
    groups: dict[tuple[str, str, bool], list[int]] = {}
    for p in problems:
        groups.setdefault((p.field, p.kind, p.sent), []).append(p.row)
    lines = [ProblemLine(f, k, len(rows), tuple(sorted(set(rows))), s) for (f, k, s), rows in groups.items()]
    return sorted(lines, key=lambda line: (-line.count, line.field, line.kind))
