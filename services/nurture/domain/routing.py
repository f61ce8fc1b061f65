"""Sales routing: who gets a sales-ready lead.

Rules in order: the account owner (a company already owned goes to its owner), then the
territory, then the language, then the product line, then rotation weighted by remaining
capacity (most remaining first; ties go to whoever was assigned least recently). Core accounts
go to senior reps when one has room. A rep without remaining capacity today, or one the lead
already went to, is never chosen. The atomic capacity reservation happens in the adapter: this
module ranks, it does not reserve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.nurture.domain.calendar import Window, add_working_time, parse_zone_name, zone
from services.nurture.domain.errors import ConfigError
from services.nurture.domain.playbooks import parse_window

ALERT_CHANNELS = frozenset({"email", "slack", "webhook", "sms"})


@dataclass(frozen=True, slots=True)
class Alert:
    channel: str
    address: str


@dataclass(frozen=True, slots=True)
class Rep:
    id: str
    name: str
    alert: Alert
    manager: str | None = None
    senior: bool = False
    territories: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    products: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    daily_capacity: int = 10
    timezone: str = "UTC"
    hours: Window = field(default_factory=Window)
    team: str | None = None

    def local_day(self, at: datetime) -> str:
        return at.astimezone(zone(self.timezone)).date().isoformat()

    def accept_by(self, assigned_at: datetime, sla: timedelta) -> datetime:
        """The SLA counts working time only: 15 minutes at 17:55 end at 09:10 the next working day."""
        return add_working_time(assigned_at, sla, zone(self.timezone), self.hours)


@dataclass(frozen=True, slots=True)
class Manager:
    id: str
    name: str
    alert: Alert


@dataclass(frozen=True, slots=True)
class Directory:
    version: str
    reps: tuple[Rep, ...]
    managers: tuple[Manager, ...] = ()

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for r in self.reps if r.id == rep_id), None)

    def manager(self, manager_id: str | None) -> Manager | None:
        return next((m for m in self.managers if m.id == manager_id), None)

    def owner_of(self, domain: str | None) -> Rep | None:
        if not domain:
            return None
        d = domain.lower()
        return next((r for r in self.reps if d in r.accounts), None)


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """What routing looks at."""

    country: str | None = None
    language: str | None = None
    company_domain: str | None = None
    products: tuple[str, ...] = ()
    core_account: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    rep: Rep
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Load:
    """A rep's load today: assignments counted against capacity, and when they last got one."""

    used: int = 0
    last_assigned_at: float = 0.0


def remaining(rep: Rep, load: Load | None) -> int:
    return rep.daily_capacity - (load.used if load else 0)


def _lang(code: str | None) -> str | None:
    return code.split("-")[0].lower() if code else None


def rank(
    lead: LeadFacts,
    directory: Directory,
    loads: Mapping[str, Load],
    *,
    exclude: Sequence[str] = (),
    dynamic_owner: str | None = None,
    ignore_capacity: bool = False,
) -> list[Candidate]:
    """Reps in the order they should be tried (the first whose capacity reserves wins)."""

    def has_room(r: Rep) -> bool:
        return ignore_capacity or remaining(r, loads.get(r.id)) > 0

    pool = [r for r in directory.reps if r.id not in exclude and has_room(r)]
    if not pool:
        return []
    out: list[Candidate] = []
    owner = directory.rep(dynamic_owner) if dynamic_owner else directory.owner_of(lead.company_domain)
    if owner is not None and owner in pool:
        out.append(Candidate(owner, "account_owner", f"owns the account {lead.company_domain or ''}".strip()))
    rule, reasons = "rotation", []
    if lead.core_account and any(r.senior for r in pool):
        pool = [r for r in pool if r.senior]
        rule = "core_account"
        reasons.append("core account to a senior rep")
    country = (lead.country or "").upper()
    narrowed = [r for r in pool if country and country in r.territories]
    if narrowed:
        pool = narrowed
        rule = rule if rule == "core_account" else "territory"
        reasons.append(f"territory {country}")
    lang = _lang(lead.language)
    narrowed = [r for r in pool if lang and lang in {_lang(x) for x in r.languages}]
    if narrowed:
        pool = narrowed
        rule = rule if rule in ("core_account", "territory") else "language"
        reasons.append(f"speaks {lang}")
    wanted = {p.lower() for p in lead.products}
    narrowed = [r for r in pool if wanted & {p.lower() for p in r.products}]
    if narrowed:
        pool = narrowed
        reasons.append("sells the product")

    def order(r: Rep) -> tuple[int, float, str]:
        load = loads.get(r.id)
        return (-remaining(r, load), load.last_assigned_at if load else 0.0, r.id)

    pool.sort(key=order)
    reasons.append("rotation by remaining capacity")
    for r in pool:
        if owner is None or r.id != owner.id:
            out.append(Candidate(r, rule, "; ".join(reasons)))
    return out


def _alert(data: Any, where: str) -> Alert:
    if not isinstance(data, Mapping):
        raise ConfigError(where, "must be a mapping with channel and address")
    channel = str(data.get("channel", ""))
    if channel not in ALERT_CHANNELS:
        raise ConfigError(f"{where}.channel", f"must be one of {sorted(ALERT_CHANNELS)}, not {channel!r}")
    address = str(data.get("address") or "")
    if not address:
        raise ConfigError(f"{where}.address", "missing")
    return Alert(channel, address)


def _strings(data: Any, where: str, upper: bool = False) -> frozenset[str]:
    if data is None:
        return frozenset()
    if isinstance(data, str) or not isinstance(data, Sequence):
        raise ConfigError(where, "must be a list")
    return frozenset(str(x).upper() if upper else str(x).lower() for x in data)


def parse_directory(data: Mapping[str, Any]) -> Directory:
    """The sales-team directory from its YAML document; ``ConfigError`` names the field."""
    if not isinstance(data, Mapping):
        raise ConfigError("directory", "document must be a mapping")
    reps_data = data.get("reps")
    if not isinstance(reps_data, Sequence) or not reps_data:
        raise ConfigError("directory.reps", "must be a non-empty list")
    managers: list[Manager] = []
    for i, m in enumerate(data.get("managers") or ()):
        w = f"directory.managers[{i}]"
        if "id" not in m:
            raise ConfigError(f"{w}.id", "missing")
        managers.append(Manager(str(m["id"]), str(m.get("name", m["id"])), _alert(m.get("alert"), f"{w}.alert")))
    manager_ids = {m.id for m in managers}
    reps: list[Rep] = []
    for i, r in enumerate(reps_data):
        w = f"directory.reps[{i}]"
        if not isinstance(r, Mapping) or "id" not in r:
            raise ConfigError(f"{w}.id", "missing")
        capacity = r.get("daily_capacity", 10)
        if not isinstance(capacity, int) or capacity < 0:
            raise ConfigError(f"{w}.daily_capacity", f"must be a whole number >= 0, not {capacity!r}")
        tz = str(r.get("timezone", "UTC"))
        if parse_zone_name(tz) is None:
            raise ConfigError(f"{w}.timezone", f"unknown time zone {tz!r}")
        manager = r.get("manager")
        if manager is not None and str(manager) not in manager_ids:
            raise ConfigError(f"{w}.manager", f"no manager with id {manager!r}")
        reps.append(
            Rep(
                id=str(r["id"]),
                name=str(r.get("name", r["id"])),
                alert=_alert(r.get("alert"), f"{w}.alert"),
                manager=None if manager is None else str(manager),
                senior=bool(r.get("senior", False)),
                territories=_strings(r.get("territories"), f"{w}.territories", upper=True),
                languages=_strings(r.get("languages"), f"{w}.languages"),
                products=_strings(r.get("products"), f"{w}.products"),
                accounts=_strings(r.get("accounts"), f"{w}.accounts"),
                daily_capacity=capacity,
                timezone=tz,
                hours=parse_window(r.get("working_hours"), f"{w}.working_hours"),
                team=r.get("team"),
            )
        )
    ids = [r.id for r in reps]
    if len(set(ids)) != len(ids):
        raise ConfigError("directory.reps", "rep ids must be unique")
    return Directory(str(data.get("version", "1")), tuple(reps), tuple(managers))
