"""The port every delivery channel implements."""

from __future__ import annotations

from typing import Protocol

from services.notifier.domain.message import OutboundMessage, SendResult


class ChannelSender(Protocol):
    """Delivers one rendered message and says what the provider answered.

    An adapter never raises for a provider's answer or a network failure: it classifies it
    into a ``SendResult`` (ok / transient / permanent). It passes ``notification_id`` on as
    the provider's idempotency key where the provider has one (Message-ID for email).
    """

    name: str

    async def send(self, message: OutboundMessage) -> SendResult: ...

    async def close(self) -> None: ...
