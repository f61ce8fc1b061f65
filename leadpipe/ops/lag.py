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
    """Long-lived clients that read offsets (the exporter keeps one across scrapes): a consumer
    for end and start offsets and an admin client for the groups' commits, one request per group
    (not one per partition: an idle exporter's every-15-s round was hundreds of requests)."""

    def __init__(self, settings: OpsSettings):
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> Offsets:
        self._consumer = plain_consumer(self.settings)
        await self._consumer.start()
        try:
            self._admin = AIOKafkaAdminClient(**client_options(self.settings), request_timeout_ms=10_000)
            await self._admin.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("Offsets used outside `async with`")
        return self._consumer

    @property
    def admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise RuntimeError("Offsets used outside `async with`")
        return self._admin

    async def groups(self) -> list[str]:
        return sorted(str(g[0]) for g in await self.admin.list_consumer_groups())

    async def topic_partitions(self, topics: list[str]) -> list[TopicPartition]:
        """Partitions of the topics that exist on the broker (others are left out)."""
        found = await topic_partitions(self.consumer, topics)
        return [tp for topic in topics for tp in found[topic]]

    async def _ends(
        self, topics: list[str] | None
    ) -> tuple[list[str], list[TopicPartition], dict[TopicPartition, int]]:
        """The topics asked for, their partitions on the broker and each one's end offset."""
        names = default_topics(topics)
        tps = await self.topic_partitions(names)
        return names, tps, (await self.consumer.end_offsets(tps) if tps else {})

    async def consumer_lag(
        self, groups: list[str] | None = None, topics: list[str] | None = None
    ) -> list[PartitionLag]:
        """Lag of each group (default: every group on the broker) on each partition it committed."""
        _, tps, ends = await self._ends(topics)
        return await self._lag(groups, tps, ends)

    async def topic_records(self, topics: list[str] | None = None) -> dict[str, int]:
        """Records retained per topic: end minus start offset, summed over its partitions."""
        return await self._records(*await self._ends(topics))

    async def both(
        self, groups: list[str] | None = None, topics: list[str] | None = None
    ) -> tuple[list[PartitionLag], dict[str, int]]:
        """``consumer_lag`` and ``topic_records`` from one read of the partitions and their end
        offsets (the exporter's round: each of those is a request the broker answers for every
        partition of every topic, and asking twice bought nothing)."""
        names, tps, ends = await self._ends(topics)
        return await self._lag(groups, tps, ends), await self._records(names, tps, ends)

    async def _lag(
        self, groups: list[str] | None, tps: list[TopicPartition], ends: dict[TopicPartition, int]
    ) -> list[PartitionLag]:
        wanted = groups if groups else await self.groups()
        if not wanted or not tps:
            return []
        rows: list[PartitionLag] = []
        for group in wanted:
            # Never joins (or disturbs) the group: it only reads its commits (-1: none).
            committed = await self.admin.list_consumer_group_offsets(group, partitions=tps)
            for tp in tps:
                offset = committed.get(tp)
                if offset is not None and offset.offset >= 0:
                    rows.append(PartitionLag(group, tp.topic, tp.partition, offset.offset, ends[tp]))
        return rows

    async def _records(
        self, names: list[str], tps: list[TopicPartition], ends: dict[TopicPartition, int]
    ) -> dict[str, int]:
        out = {t: 0 for t in names if any(tp.topic == t for tp in tps)}
        if not tps:
            return out
        begins = await self.consumer.beginning_offsets(tps)
        for tp in tps:
            out[tp.topic] += max(0, ends[tp] - begins[tp])
        return out


async def consumer_lag(
    settings: OpsSettings, groups: list[str] | None = None, topics: list[str] | None = None
) -> list[PartitionLag]:
    async with Offsets(settings) as offsets:
        return await offsets.consumer_lag(groups, topics)
