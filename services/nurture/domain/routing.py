"""Sales routing: who gets a sales-ready lead.

Rules in order: the account owner (a company already owned goes to its owner), then the
territory, then the language, then the product line, then rotation weighted by remaining
capacity (most remaining first; ties go to whoever was assigned least recently). Core accounts
go to senior reps when one has room. A rep without remaining capacity today, or one the lead
already went to, is never chosen. The atomic capacity reservation happens in the adapter: this
module ranks, it does not reserve.

Overflow (nobody with room): the lead belongs to the team of the rep it would go to if capacity
were no object. That team's policy decides: ``queue`` (the default) puts it in the team's
visible queue and alerts the team's overflow channel or manager at once; ``least_loaded`` gives
it to the team's least-loaded rep past capacity. Queued leads are served hottest first (grade,
then score), then oldest, whenever a rep has room again (a decline, an expired SLA, a new day).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from schemas.base import Grade
from services.nurture.domain.calendar import Window, add_working_time, parse_zone_name, zone
from services.nurture.domain.errors import ConfigError
from services.nurture.domain.playbooks import parse_window

ALERT_CHANNELS = frozenset({"email", "slack", "webhook", "sms"})
OverflowPolicy = Literal["queue", "least_loaded"]
OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("queue", "least_loaded")
#: The team of reps the directory puts in none.
DEFAULT_TEAM = "sales"
_GRADE_ORDER = {Grade.A: 0, Grade.B: 1, Grade.C: 2, Grade.D: 3}


#: A capacity no rep reaches: reserving past capacity (the ``least_loaded`` overflow policy).
NO_LIMIT = 2**31


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

    @property
    def team_id(self) -> str:
        return self.team or DEFAULT_TEAM

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
    #: The locale of the manager's alerts (en or zh-CN templates).
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class Team:
    """A team's overflow rule: what happens to a sales-ready lead when none of its reps has room."""

    id: str
    manager: str | None = None
    overflow: OverflowPolicy = "queue"
    #: Where "the team is full" goes instead of the manager (e.g. a shared Slack channel).
    overflow_alert: Alert | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who hears about a team's overflow."""

    name: str
    alert: Alert
    locale: str = "en"


@dataclass(frozen=True, slots=True)
class Directory:
    version: str
    reps: tuple[Rep, ...]
    managers: tuple[Manager, ...] = ()
    teams: tuple[Team, ...] = ()

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for r in self.reps if r.id == rep_id), None)

    def manager(self, manager_id: str | None) -> Manager | None:
        return next((m for m in self.managers if m.id == manager_id), None)

    def team(self, team_id: str) -> Team:
        """The team's configured rules, else the defaults (queue, alert the reps' manager)."""
        return next((t for t in self.teams if t.id == team_id), None) or Team(team_id)

    def team_ids(self) -> list[str]:
        return sorted({r.team_id for r in self.reps} | {t.id for t in self.teams})

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
    #: Given past the rep's capacity (a ``least_loaded`` team's overflow).
    over_capacity: bool = False


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


# -- overflow ------------------------------------------------------------------------------------
def overflow_team(
    lead: LeadFacts, directory: Directory, *, exclude: Sequence[str] = (), dynamic_owner: str | None = None
) -> Team | None:
    """The team a lead belongs to when nobody has room: the team of the rep it would get if
    capacity were no object (of any rep, once every rep has been tried). None: no reps at all."""
    for skip in (exclude, ()):
        ranked = rank(lead, directory, {}, exclude=skip, dynamic_owner=dynamic_owner, ignore_capacity=True)
        if ranked:
            return directory.team(ranked[0].rep.team_id)
    return None


def overflow_recipient(team: Team, directory: Directory) -> Recipient | None:
    """Who is told at once that the team is full: the team's overflow channel, else its manager,
    else the manager of its first rep who has one."""
    if team.overflow_alert is not None:
        manager = directory.manager(team.manager)
        return Recipient(f"{team.id} overflow", team.overflow_alert, manager.locale if manager else "en")
    ids = [team.manager] + [r.manager for r in directory.reps if r.team_id == team.id]
    manager = next((m for m in map(directory.manager, ids) if m is not None), None)
    return None if manager is None else Recipient(manager.name, manager.alert, manager.locale)


def least_loaded(
    team: Team, directory: Directory, loads: Mapping[str, Load], *, exclude: Sequence[str] = ()
) -> list[Rep]:
    """The team's reps for an overflow lead, least loaded (share of capacity used) first, then
    whoever was assigned least recently. A rep with no capacity at all (off today) gets none."""

    def order(r: Rep) -> tuple[float, int, float, str]:
        load = loads.get(r.id) or Load()
        return (load.used / r.daily_capacity, load.used, load.last_assigned_at, r.id)

    reps = [r for r in directory.reps if r.team_id == team.id and r.id not in exclude and r.daily_capacity > 0]
    return sorted(reps, key=order)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """A lead waiting in a team's overflow queue (``exclude``: reps it already went to)."""

    lead_id: str
    team: str
    grade: Grade
    score: float
    since: datetime
    exclude: tuple[str, ...] = ()


def queue_order(entries: Sequence[QueueEntry]) -> list[QueueEntry]:
    """Hottest first (grade, then score), then the one waiting longest."""
    return sorted(entries, key=lambda e: (_GRADE_ORDER.get(e.grade, 9), -e.score, e.since, e.lead_id))


def serve_next(entries: Sequence[QueueEntry], directory: Directory, loads: Mapping[str, Load]) -> list[str]:
    """The queued leads to route now, in queue order, as many as reps have room for. A lead every
    rep with room has already declined (or let lapse) is passed over, not allowed to block the queue."""
    room = {r.id: remaining(r, loads.get(r.id)) for r in directory.reps}
    out: list[str] = []
    for e in queue_order(entries):
        open_reps = [rep_id for rep_id, n in room.items() if n > 0 and rep_id not in e.exclude]
        if not open_reps:
            continue
        room[max(open_reps, key=lambda rep_id: room[rep_id])] -= 1
        out.append(e.lead_id)
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
        managers.append(Manager(str(m["id"]), str(m.get("name", m["id"])), _alert(m.get("alert"), f"{w}.alert"),
                                str(m.get("language") or "en")))  # fmt: skip
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
                team=None if r.get("team") is None else str(r["team"]),
            )
        )
    ids = [r.id for r in reps]
    if len(set(ids)) != len(ids):
        raise ConfigError("directory.reps", "rep ids must be unique")
    directory = Directory(str(data.get("version", "1")), tuple(reps), tuple(managers),
                          _teams(data.get("teams"), manager_ids))  # fmt: skip
    for team_id in directory.team_ids():
        # An overflow nobody hears about is the silent drop the queue exists to prevent.
        if overflow_recipient(directory.team(team_id), directory) is None:
            raise ConfigError(f"directory.teams.{team_id}", "nobody to alert when the team is full: "
                              "give it a manager or an overflow_alert (or its reps a manager)")  # fmt: skip
    return directory


def _teams(data: Any, manager_ids: set[str]) -> tuple[Team, ...]:
    if data is None:
        return ()
    if isinstance(data, str) or not isinstance(data, Sequence):
        raise ConfigError("directory.teams", "must be a list")
    teams: list[Team] = []
    for i, t in enumerate(data):
        w = f"directory.teams[{i}]"
        if not isinstance(t, Mapping) or not t.get("id"):
            raise ConfigError(f"{w}.id", "missing")
        manager = t.get("manager")
        if manager is not None and str(manager) not in manager_ids:
            raise ConfigError(f"{w}.manager", f"no manager with id {manager!r}")
        policy = t.get("overflow", "queue")
        if policy not in OVERFLOW_POLICIES:
            raise ConfigError(f"{w}.overflow", f"must be one of {list(OVERFLOW_POLICIES)}, not {policy!r}")
        alert = None if t.get("overflow_alert") is None else _alert(t["overflow_alert"], f"{w}.overflow_alert")
        teams.append(Team(str(t["id"]), None if manager is None else str(manager), policy, alert))
    ids = [t.id for t in teams]
    if len(set(ids)) != len(ids):
        raise ConfigError("directory.teams", "team ids must be unique")
    return tuple(teams)
