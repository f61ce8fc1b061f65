"""Events out: each keyed payload a route produced is wrapped in its CloudEvents envelope,
encoded and handed to the publisher (broker ack, or the local spool), and counted."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from leadpipe.runtime.keystore import KeyStoreUnavailable, prepare_keys
from schemas.base import Payload
from schemas.codec import encode
from schemas.envelope import new_event
from schemas.pii import sealing_ref
from services.ingest.adapters.publisher import Outcome
from services.ingest.bootstrap import IngestDeps

log = logging.getLogger(__name__)

SOURCE = "/leadpipe/ingest"


class SpoolUnavailable(Exception):
    """Neither the broker nor the local spool took the events."""


class Keyed(Protocol):
    """A payload and the record key it is published under (a ``Captured``, an ``Engagement``...)."""

    @property
    def payload(self) -> Payload: ...

    @property
    def key(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    payload: Payload
    key: str


async def publish(deps: IngestDeps, items: Sequence[Keyed], source: str) -> tuple[list[str], list[Outcome]]:
    """Publish ``items`` from ``source`` (``forms/demo``, ``scans/<show>``...): their event ids and
    outcomes, or ``SpoolUnavailable``."""
    events = [new_event(i.payload, source=f"{SOURCE}/{source}", subject=i.key) for i in items]
    max_bytes = deps.settings.kafka_max_record_bytes
    # privacy hook: the people's data keys cached (created when new) in one round trip, so
    # sealing below does not block the loop; what is not cached is asked for by the codec
    await prepare_keys(sealing_ref(e.data) for e in events)
    try:
        records = [(e.data.topic(), encode(e, max_bytes=max_bytes), e.id) for e in events]
    except KeyStoreUnavailable as exc:  # privacy hook: personal fields cannot be sealed now
        log.error("the data-key store is unreachable: %d events not taken (%s)", len(events), exc)
        raise SpoolUnavailable(str(exc)) from exc
    try:
        outcomes = await deps.publisher.publish(records)
    except Exception as exc:
        log.exception("neither the broker nor the spool took %d events", len(records))
        raise SpoolUnavailable(str(exc)) from exc
    label = source.split("/", 1)[0]
    for e in events:
        deps.metrics.published.labels(e.data.EVENT_TYPE, label).inc()
    return [e.id for e in events], outcomes
