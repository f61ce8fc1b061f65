"""Who signs in and what each may see: reps see only the leads assigned to them; a manager sees
the leads of the teams they manage. Passwords are kept only as salted PBKDF2 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.console.domain.projection import LeadRow

_ITERATIONS = 200_000


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    role: Literal["rep", "manager"]
    teams: tuple[str, ...]


def users_from_team(config: Mapping[str, Any]) -> dict[str, User]:
    """The console's users from the sales-team directory (``sales_team.yaml``)."""
    users: dict[str, User] = {}
    teams = config.get("teams") or []
    for m in config.get("managers") or []:
        managed = tuple(t["id"] for t in teams if t.get("manager") == m["id"])
        users[m["id"]] = User(m["id"], m.get("name") or m["id"], "manager", managed)
    for r in config.get("reps") or []:
        users[r["id"]] = User(r["id"], r.get("name") or r["id"], "rep", (r["team"],) if r.get("team") else ())
    return users


def can_see(user: User, lead: LeadRow) -> bool:
    if user.role == "rep":
        return lead.rep_id == user.id and lead.assignment_status in ("pending", "accepted")
    return lead.team is None or lead.team in user.teams


def hash_password(password: str, *, salt: str | None = None, iterations: int = _ITERATIONS) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations)).hex()
    return hmac.compare_digest(candidate, digest)
