"""Samples of a Prometheus text page (a service's /metrics), read with prometheus_client's own
parser rather than by splitting lines."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """Every sample called ``name`` (a counter's ``…_total``, a histogram's ``…_count``), with its
    labels and value."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                yield sample.labels, sample.value
