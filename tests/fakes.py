"""Fakes of the runtime's ports, for unit tests of any service's handlers.

Each implements the same Protocol as the real adapter (``leadpipe.runtime.publish.Publisher``);
service-specific fakes live in ``tests/unit/<service>/fakes.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.stream import EventProcessor
from schemas.codec import Record
from schemas.envelope import Envelope


class FakePublisher:
    """Keeps what was published. ``send`` holds events until ``flush`` (as the broker's acks
    would), so a test can tell acknowledged outputs from ones merely sent; ``fail`` makes the
    next ``publish``/``flush`` raise it (a broker away)."""

    def __init__(self) -> None:
        self.events: list[Envelope[Any]] = []
        self.records: list[tuple[str, Record]] = []
        self.pending: list[Envelope[Any]] = []
        self.fail: BaseException | None = None
        self.log: list[str] = []

    def _raise(self) -> None:
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc

    async def publish(self, events: Sequence[Envelope[Any]]) -> None:
        self._raise()
        self.events += events
        self.log += [f"publish {e.data.topic()}" for e in events]

    async def send(self, events: Sequence[Envelope[Any]]) -> None:
        self.pending += events
        self.log += [f"send {e.data.topic()}" for e in events]

    async def flush(self) -> None:
        pending, self.pending = self.pending, []  # as the real one: a failed flush loses its sends
        self._raise()
        self.events += pending
        if pending:
            self.log.append("flush")

    async def publish_record(self, topic: str, record: Record) -> None:
        self.records.append((topic, record))
        self.log.append(f"record {topic}")

    def topics(self) -> list[str]:
        return [e.data.topic() for e in self.events]

    def dead_letters(self) -> list[str]:
        return [topic for topic, _ in self.records if topic.endswith(".dlq")]


def event_processor(service: str, publisher: FakePublisher | None = None) -> EventProcessor:
    """An ``EventProcessor`` over a fake publisher, with fast retries."""
    return EventProcessor(
        service=service, metrics=StageMetrics(service, CollectorRegistry()), publisher=publisher or FakePublisher(),
        retry_base_s=0.001, retry_max_s=0.002,
    )  # fmt: skip
