"""In-memory fakes of scoring's ports (``services/scoring/ports.py``).

``FakeLeadStore`` behaves as ``RedisLeadStore`` does for the handler: a read is a snapshot of
what the keyspace holds (and its built marker), a write applies the snapshot's changes, and a
write after someone else changed the keyspace since the read raises ``BatchConflict``.
"""

from __future__ import annotations

from collections.abc import Iterable

from leadpipe.runtime.stream import BatchConflict
from services.scoring.domain.erasure import leads_to_erase, links_after_erasure
from services.scoring.domain.identity import is_strong
from services.scoring.domain.lead import LeadState
from services.scoring.domain.snapshot import Snapshot


class FakeLeadStore:
    def __init__(self) -> None:
        self.links: dict[str, tuple[str, ...]] = {}
        self.leads: dict[str, LeadState] = {}
        self.model_version: str | None = None
        self.built = True
        self.version = 0  # bumped by every write: a write over a newer version conflicts
        self._read_at: int | None = None
        self.log: list[str] = []

    async def read(self, identifiers: Iterable[str]) -> Snapshot:
        ids = list(identifiers)
        links = {i: self.links[i] for i in ids if i in self.links}
        lead_ids = {lid for lids in links.values() for lid in lids}
        leads = {lid: self.leads[lid] for lid in lead_ids if lid in self.leads}
        # As the Redis store: the phone links of the leads read too (a merge or split rewrites them).
        phones = {i for s in leads.values() for i in s.identifiers if not is_strong(i) and i not in links}
        links |= {i: self.links[i] for i in phones if i in self.links}
        self._read_at = self.version
        self.log.append(f"read built={self.built}")
        return Snapshot(links=links, leads=leads, model_version=self.model_version, built=self.built)

    async def write(self, snap: Snapshot) -> None:
        read_at, self._read_at = self._read_at, None
        if read_at != self.version:
            raise BatchConflict("changed since the read")
        self.links |= snap.changed_links
        self.leads |= snap.changed_leads
        for lead_id in snap.deleted_leads:
            self.leads.pop(lead_id, None)
        self.version += 1
        self.log.append("write")

    async def abandon(self) -> None:
        self._read_at = None

    async def erase(
        self, keys: list[str], lead_ids: list[str], *, held: set[str] | None = None
    ) -> tuple[list[str], int]:
        links = {k: self.links[k] for k in keys if k in self.links}
        candidates = {*lead_ids, *(lid for lids in links.values() for lid in lids)}
        leads = {lid: self.leads[lid] for lid in candidates if lid in self.leads}
        erased = leads_to_erase(keys=keys, links=links, identifiers={lid: s.identifiers for lid, s in leads.items()},
                                lead_ids=lead_ids)  # fmt: skip
        links |= {i: self.links[i] for lid in erased for i in leads[lid].identifiers if i in self.links}
        changed = links_after_erasure(links, erased)
        if held is not None:
            held.update(i for lid in erased for i in leads[lid].identifiers)
        for lid in erased:
            self.leads.pop(lid, None)
        for ident, lids in changed.items():
            if lids:
                self.links[ident] = lids
            else:
                self.links.pop(ident, None)
        self.version += 1
        return sorted(erased), len(changed)


class ReplicaView(FakeLeadStore):
    """Another worker's connection to ``store``'s keyspace: the same leads, links and version,
    its own WATCH (a write conflicts if anyone wrote since this view's read)."""

    def __init__(self, store: FakeLeadStore) -> None:
        self.store = store
        self.links, self.leads = store.links, store.leads
        self.model_version, self.built = store.model_version, store.built
        self._read_at = None
        self.log = []

    @property  # type: ignore[override]
    def version(self) -> int:
        return self.store.version

    @version.setter
    def version(self, value: int) -> None:
        self.store.version = value


class FakeStateLog:
    """The state topic: what was appended, in order (``None`` for a tombstone)."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.appended: list[tuple[str, LeadState | None]] = []
        self.log = log if log is not None else []

    async def append(
        self, states: Iterable[LeadState], deleted: Iterable[str] = (), *, model_version: str | None = None
    ) -> int:
        entries: list[tuple[str, LeadState | None]] = [(lid, None) for lid in deleted]
        entries += [(s.lead_id, s) for s in states]
        self.appended += entries
        self.log.append(f"state topic {len(entries)}")
        return len(entries)


class QuietObserver:
    def __init__(self) -> None:
        self.duplicates = 0

    def graded(self, grade: str) -> None: ...
    def merged(self, count: int) -> None: ...

    def duplicate(self) -> None:
        self.duplicates += 1
