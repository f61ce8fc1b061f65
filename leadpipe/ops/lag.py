"""Consumer lag per group, topic and partition, and records per topic, from broker offsets.

Which topics a group consumes is read from its committed offsets on the registry's topics
(plus any extra topics named), so a group that has committed nothing yet shows no rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from leadpipe.ops.reader import plain_consumer
from leadpipe.ops.settings import OpsSettings
from leadpipe.runtime.kafka import client_options, topic_partitions
from schemas.topics import TOPICS


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


def default_topics(extra: list[str] | None = None) -> list[str]:
    return sorted(set(TOPICS) | set(extra or ()))


class Offsets:
    """Long-lived clients that read offsets (the exporter keeps one across scrapes)."""

    def __init__(self, settings: OpsSettings):
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._members: dict[str, AIOKafkaConsumer] = {}

    async def __aenter__(self) -> Offsets:
        self._consumer = plain_consumer(self.settings)
        await self._consumer.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for member in self._members.values():
            await member.stop()
        self._members.clear()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("Offsets used outside `async with`")
        return self._consumer

    async def groups(self) -> list[str]:
        admin = AIOKafkaAdminClient(**client_options(self.settings), request_timeout_ms=10_000)
        await admin.start()
        try:
            return sorted(str(g[0]) for g in await admin.list_consumer_groups())
        finally:
            await admin.close()

    async def topic_partitions(self, topics: list[str]) -> list[TopicPartition]:
        """Partitions of the topics that exist on the broker (others are left out)."""
        found = await topic_partitions(self.consumer, topics)
        return [tp for topic in topics for tp in found[topic]]

    async def _member(self, group: str) -> AIOKafkaConsumer:
        # Never subscribes, so it never joins (or disturbs) the group; it only reads commits.
        if group not in self._members:
            member = plain_consumer(self.settings, group_id=group)
            await member.start()
            self._members[group] = member
        return self._members[group]

    async def consumer_lag(
        self, groups: list[str] | None = None, topics: list[str] | None = None
    ) -> list[PartitionLag]:
        """Lag of each group (default: every group on the broker) on each partition it committed."""
        wanted = groups if groups else await self.groups()
        tps = await self.topic_partitions(default_topics(topics))
        if not wanted or not tps:
            return []
        ends = await self.consumer.end_offsets(tps)
        rows: list[PartitionLag] = []
        for group in wanted:
            member = await self._member(group)
            for tp in tps:
                committed = await member.committed(tp)
                if committed is not None and committed >= 0:
                    rows.append(PartitionLag(group, tp.topic, tp.partition, committed, ends[tp]))
        return rows

    async def topic_records(self, topics: list[str] | None = None) -> dict[str, int]:
        """Records retained per topic: end minus start offset, summed over its partitions."""
        names = default_topics(topics)
        tps = await self.topic_partitions(names)
        out = {t: 0 for t in names if any(tp.topic == t for tp in tps)}
        if not tps:
            return out
        ends = await self.consumer.end_offsets(tps)
        begins = await self.consumer.beginning_offsets(tps)
        for tp in tps:
            out[tp.topic] += max(0, ends[tp] - begins[tp])
        return out


async def consumer_lag(
    settings: OpsSettings, groups: list[str] | None = None, topics: list[str] | None = None
) -> list[PartitionLag]:
    async with Offsets(settings) as offsets:
        return await offsets.consumer_lag(groups, topics)
