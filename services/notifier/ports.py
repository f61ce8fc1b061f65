"""The notifier handler's ports: the ledger, the suppression and erased lists, the recipient
limiters, the retry backlog, the renderer and the channel senders. ``adapters/`` implements
them (Redis, Jinja, SMTP/HTTP/outbox); ``tests/unit/notifier/fakes.py`` has in-memory fakes.
Publishing goes through the runtime's ``leadpipe.runtime.publish.Publisher``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from schemas.codec import Record
from schemas.notification_requested.v1 import NotificationRequested
from services.notifier.adapters.channel import ChannelSender, DeliveryLookup
from services.notifier.domain.consent import Purpose
from services.notifier.domain.ledger import Claim, LedgerEntry, RequestState
from services.notifier.domain.message import OutboundMessage
from services.notifier.domain.suppression import Suppression

__all__ = [
    "ChannelSender",
    "Claimer",
    "DeliveryLookup",
    "ErasedList",
    "Ledger",
    "Renderer",
    "RequestReader",
    "RetryBacklog",
    "SuppressionList",
]


class Ledger(Protocol):
    """One entry per notification id: its state, attempts and stored outcome (idempotency)."""

    async def get(self, notification_id: str) -> LedgerEntry: ...

    async def mark_requested(self, notification_id: str) -> None: ...

    async def claim(self, notification_id: str, *, now: float, lease_s: float) -> Claim:
        """Takes the send lease (status ``claimed``), or says why not (``busy``, terminal,
        ``unbuilt`` for a guarded ledger without its built marker)."""

    async def release(self, notification_id: str) -> None: ...

    async def finish(self, notification_id: str, state: str, outcome: Record) -> bool:
        """Records a terminal state and its outcome; False if it already had one."""

    async def mark_published(self, notification_id: str, state: str, outcome: Record) -> None: ...


class Claimer(Protocol):
    """Takes a slot of the recipient's rate limit (``scope``: ``lead`` or ``internal``) and the
    send lease together (the Redis adapter: one script, one round trip)."""

    async def claim(
        self, notification_id: str, *, now: float, lease_s: float, scope: str, channel: str, address: str
    ) -> Claim:
        """``limited`` if the recipient's window is full (no lease taken), else as ``Ledger.claim``."""


class RequestReader(Protocol):
    """Reads everything a request is decided on at once (the Redis adapter: one round trip)."""

    async def read(self, notification_id: str, channel: str, address: str, *, lead: bool) -> RequestState:
        """The ledger entry and, with ``lead``, the address's suppression reason and erasure
        time (the erased list is read only where the handler has one)."""


class SuppressionList(Protocol):
    async def add(self, entry: Suppression) -> None: ...
    async def reason(self, channel: str, address: str) -> str | None: ...


class ErasedList(Protocol):
    """Keyed hashes of erased people's addresses (never the addresses)."""

    secret: str

    async def add(self, digests: Iterable[str], erased_at: datetime) -> int: ...
    async def erased_at(self, channel: str, address: str) -> datetime | None: ...


class RetryBacklog(Protocol):
    async def add(self, notification_id: str, due: float) -> int: ...
    async def remove(self, notification_id: str) -> int: ...


class Renderer(Protocol):
    def purpose(self, template: str) -> Purpose: ...

    def render(self, req: NotificationRequested) -> OutboundMessage:
        """Raises ``RenderError`` for a missing template or variable."""
