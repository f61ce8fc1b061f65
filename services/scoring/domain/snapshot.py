"""What a batch of scoring events works on: the leads and links it read, and what it changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.scoring.domain.lead import LeadState


@dataclass
class Snapshot:
    """What a batch read, and what it changed (written back in one transaction)."""

    links: dict[str, tuple[str, ...]]
    leads: dict[str, LeadState]
    #: The active model version when the batch was read (None: the worker's configured model).
    model_version: str | None = None
    #: False when the keyspace carries no built marker (Redis wiped: rebuild before deciding).
    built: bool = True
    changed_links: dict[str, tuple[str, ...]] = field(default_factory=dict)
    changed_leads: dict[str, LeadState] = field(default_factory=dict)
    deleted_leads: set[str] = field(default_factory=set)
    #: Leads whose next assessment publishes even if nothing changed: an abandoned attempt of the
    #: batch published for them, from a state that was never stored.
    republish: set[str] = field(default_factory=set)
