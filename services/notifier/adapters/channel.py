"""The port every delivery channel implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

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


@runtime_checkable
class DeliveryLookup(Protocol):
    """A channel whose provider can say whether it already accepted a notification id.

    Asked only in the one duplicate window: a delivery died between claiming a request and
    recording the provider's answer. If the provider has it, the send is recorded, not
    repeated; a channel without a lookup resends with the same idempotency key.
    """

    async def find_sent(self, notification_id: str) -> str | None:
        """The provider's record of an accepted send of ``notification_id``, or ``None``."""
        ...
