"""Settings of the console service (built only in the entrypoint, passed down)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from leadpipe.runtime.settings import ServiceSettings
from schemas.topics import consumer_group

#: The sales-team directory nurture routes with; the console's users are its reps and managers.
SALES_TEAM = Path(__file__).resolve().parent.parent / "nurture" / "config" / "sales_team.yaml"

#: Dev only: everybody's password is "leadpipe-dev" (``hash_password("leadpipe-dev", salt="dev")``).
DEV_PASSWORD_HASH = "pbkdf2_sha256$200000$dev$0a318b58e317ac6b963d3e199706a36cab1110e466ef764427967d38f75bcf13"

DEV_SESSION_SECRET = "dev-console-secret"


class ConsoleSettings(ServiceSettings):
    DEV_ONLY_VALUES = frozenset({DEV_PASSWORD_HASH})

    database_url: str = Field(description="postgresql://user@host:port/db")
    console_host: str = "127.0.0.1"
    console_port: int = 8090
    console_sales_team: Path = SALES_TEAM
    #: user id -> password hash (``leadpipe console hash-password``); ``*`` applies to anyone not listed.
    console_password_hashes: dict[str, str] = Field(default_factory=lambda: {"*": DEV_PASSWORD_HASH})
    console_session_secret: str = DEV_SESSION_SECRET
    console_session_ttl_s: int = 8 * 3600
    console_cookie_secure: bool = False
    console_consumer_group: str = consumer_group("console")
    #: Failed sign-ins allowed per account and per client address in the window, then 429.
    console_login_failures_per_account: int = Field(default=5, ge=1)
    console_login_failures_per_address: int = Field(default=20, ge=1)
    console_login_window_s: float = Field(default=300.0, gt=0)
    #: Proxies in front of the console that append to X-Forwarded-For (an ingress: 1). The
    #: throttle's client address is the one the outermost trusted proxy saw; 0 = the peer address.
    console_trusted_proxy_hops: int = Field(default=0, ge=0)
    #: Nurture's give-up rule (its playbooks' default): the manager sees leads within two touches of it.
    console_give_up_after_touches: int = 6
