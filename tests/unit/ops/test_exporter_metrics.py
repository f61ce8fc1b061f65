"""How the exporter turns offsets into series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from leadpipe.exporter import ExporterMetrics, ExporterSettings
from leadpipe.ops.lag import PartitionLag


def _value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float | None:
    return registry.get_sample_value(name, labels)


def test_lag_is_end_minus_committed_and_never_negative() -> None:
    assert PartitionLag("g", "t", 0, committed=3, end=10).lag == 7
    # The embedded broker can report an end offset below a committed one (it counts batches).
    assert PartitionLag("g", "t", 0, committed=12, end=10).lag == 0


def test_a_partition_no_longer_reported_disappears_from_the_series() -> None:
    registry = CollectorRegistry()
    metrics = ExporterMetrics(registry)
    metrics.apply(
        [PartitionLag("leadpipe-scoring", "lead.captured.v1", 0, 5, 9), PartitionLag("notifier", "x.v1", 1, 0, 2)],
        {"lead.captured.v1.dlq": 4},
    )
    assert (
        _value(
            registry,
            "leadpipe_consumer_lag",
            {"group": "leadpipe-scoring", "topic": "lead.captured.v1", "partition": "0"},
        )
        == 4
    )
    assert _value(registry, "leadpipe_topic_records", {"topic": "lead.captured.v1.dlq"}) == 4

    metrics.apply([PartitionLag("leadpipe-scoring", "lead.captured.v1", 0, 9, 9)], {"lead.captured.v1.dlq": 6})
    assert (
        _value(
            registry,
            "leadpipe_consumer_lag",
            {"group": "leadpipe-scoring", "topic": "lead.captured.v1", "partition": "0"},
        )
        == 0
    )
    assert _value(registry, "leadpipe_consumer_lag", {"group": "notifier", "topic": "x.v1", "partition": "1"}) is None
    assert _value(registry, "leadpipe_topic_records", {"topic": "lead.captured.v1.dlq"}) == 6


def test_groups_and_topics_settings_are_comma_lists_and_empty_means_discover() -> None:
    settings = ExporterSettings(kafka_bootstrap_servers="k:9092", exporter_groups=" a, b ,,", exporter_topics="")
    assert settings.groups() == ["a", "b"]
    assert settings.topics() == []
    assert ExporterSettings(kafka_bootstrap_servers="k:9092").groups() is None
    assert ExporterSettings(kafka_bootstrap_servers="k:9092").exporter_port == 9104


def test_the_collection_interval_defaults_to_30_s_and_a_non_positive_one_is_refused_by_name() -> None:
    import pytest
    from pydantic import ValidationError

    assert ExporterSettings(kafka_bootstrap_servers="k:9092").exporter_interval_s == 30.0
    with pytest.raises(ValidationError, match="exporter_interval_s"):
        ExporterSettings(kafka_bootstrap_servers="k:9092", exporter_interval_s=0)


class _Committed:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _FakeConsumer:
    """End and start offsets, counting the requests (each one a ListOffsets over every partition)."""

    def __init__(self, ends: dict[object, int], begins: dict[object, int]) -> None:
        self.ends, self.begins, self.requests = ends, begins, []

    async def end_offsets(self, tps: list[object]) -> dict[object, int]:
        self.requests.append("end")
        return {tp: self.ends[tp] for tp in tps}

    async def beginning_offsets(self, tps: list[object]) -> dict[object, int]:
        self.requests.append("begin")
        return {tp: self.begins[tp] for tp in tps}


class _FakeAdmin:
    def __init__(self, commits: dict[str, dict[object, int]]) -> None:
        self.commits = commits

    async def list_consumer_groups(self) -> list[tuple[str, str]]:
        return [(g, "consumer") for g in self.commits]

    async def list_consumer_group_offsets(self, group: str, partitions: list[object]) -> dict[object, _Committed]:
        return {tp: _Committed(self.commits[group].get(tp, -1)) for tp in partitions}


async def test_one_round_reads_the_partitions_and_end_offsets_once_for_lag_and_depth() -> None:
    from aiokafka import TopicPartition

    from leadpipe.ops.lag import Offsets

    scored, dlq = TopicPartition("lead.scored.v1", 0), TopicPartition("lead.scored.v1.dlq", 0)
    consumer = _FakeConsumer(ends={scored: 10, dlq: 4}, begins={scored: 2, dlq: 1})
    offsets = Offsets(ExporterSettings(kafka_bootstrap_servers="k:9092"))
    offsets._consumer, offsets._admin = consumer, _FakeAdmin({"notifier": {scored: 7}})  # type: ignore[assignment]
    metadata: list[list[str]] = []

    async def partitions(topics: list[str]) -> list[TopicPartition]:
        metadata.append(topics)
        return [tp for tp in (scored, dlq) if tp.topic in topics]

    offsets.topic_partitions = partitions  # type: ignore[method-assign]
    rows, records = await offsets.both()
    assert rows == [PartitionLag("notifier", "lead.scored.v1", 0, committed=7, end=10)]
    assert records == {"lead.scored.v1": 8, "lead.scored.v1.dlq": 3}
    assert len(metadata) == 1 and consumer.requests == ["end", "begin"]
    # The same answers as the two separate reads the CLI makes.
    assert await offsets.consumer_lag() == rows and await offsets.topic_records() == records
