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
