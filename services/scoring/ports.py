"""The scoring handlers' ports: what they need from stores and the state topic.

Adapters implement these (``adapters/redis_store.py``, ``adapters/state_log.py``); the fakes in
``tests/fakes.py`` implement them for unit tests. Publishing goes through the runtime's
``leadpipe.runtime.publish.Publisher``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from services.scoring.domain.lead import LeadState
from services.scoring.domain.snapshot import Snapshot


class LeadStore(Protocol):
    """Lead profiles and identity links, read and written a batch at a time."""

    async def read(self, identifiers: Iterable[str]) -> Snapshot:
        """The links of the identifiers, the leads they point at, the active model version and
        the built marker (``Snapshot.built``), watched until ``write`` or ``abandon``."""

    async def write(self, snap: Snapshot) -> None:
        """Writes the snapshot's changes atomically; ``BatchConflict`` if they changed since ``read``."""

    async def abandon(self) -> None:
        """Forgets the read (nothing is written)."""

    async def erase(
        self, keys: list[str], lead_ids: list[str], *, held: set[str] | None = None
    ) -> tuple[list[str], int]:
        """Deletes the leads an erasure takes; returns their ids and how many links changed.
        ``held`` (when given) receives every identifier the erased leads held."""


class StateAppender(Protocol):
    """The compacted state topic Redis is rebuilt from."""

    async def append(
        self, states: Iterable[LeadState], deleted: Iterable[str] = (), *, model_version: str | None = None
    ) -> int:
        """Appends states (and tombstones for ``deleted``); returns once the broker acked them."""


class Observer(Protocol):
    """Business metrics the handler reports."""

    def graded(self, grade: str) -> None: ...
    def merged(self, count: int) -> None: ...
    def duplicate(self) -> None: ...
