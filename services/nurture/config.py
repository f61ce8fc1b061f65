"""Nurture settings, from the environment (built only in the entrypoint)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from leadpipe.runtime.settings import LinkSettings, ServiceSettings
from schemas.topics import consumer_group

CONFIG_DIR = Path(__file__).resolve().parent / "config"


class NurtureSettings(ServiceSettings, LinkSettings):
    ops_host: str = "127.0.0.1"
    ops_port: int = 9102
    nurture_group_id: str = consumer_group("nurture")
    nurture_redis_prefix: str = "nurture:"
    nurture_playbooks_path: Path = CONFIG_DIR / "playbooks.yaml"
    nurture_directory_path: Path = CONFIG_DIR / "sales_team.yaml"
    #: Overrides the playbooks' SLA (tests use seconds).
    nurture_sla_seconds: float | None = None
    #: The scheduler sleeps until the next due touch or timer, but at most this long: how soon it
    #: notices capacity freed by another replica, a rep's new day, due times a dead replica left
    #: and a Redis wiped while no event comes, and how often the gauges refresh (scheduler.py).
    nurture_check_interval_s: float = Field(default=5.0, gt=0, le=300)
    #: A claimed due entry comes back after this long if its worker died before finishing it.
    nurture_claim_lease_s: float = 30.0
    nurture_claim_batch: int = 200
    #: Records the agent takes at once (or what came within ``nurture_batch_within_s``), and how
    #: many leads of a batch are handled concurrently (a lead's own events always in order).
    nurture_batch_max: int = 200
    nurture_batch_within_s: float = 0.02
    nurture_batch_concurrency: int = 32
    #: Prepended to every topic name (private topics for tests; empty in production).
    nurture_topic_prefix: str = ""
    nurture_state_topic: str = "nurture.state.v1"

    def topic(self, name: str) -> str:
        return f"{self.nurture_topic_prefix}{name}"
