"""One way to learn a topic's partitions: ``leadpipe.runtime.kafka.topic_partitions``.

A consumer's own metadata covers only the topics it subscribed to or was assigned, so
``consumer.partitions_for_topic(t)`` answers None for any other topic on Apache Kafka. Code that
trusted it read nothing and reported success: nurture's, the notifier's and scoring's Redis
rebuilds, the spool's pre-replay check and the chaos audit all did (found moving off Tansu,
whose metadata listed every topic)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {ROOT / "leadpipe" / "runtime" / "kafka.py", Path(__file__).resolve()}


def test_no_code_asks_a_consumer_for_a_topics_partitions_directly():
    offenders = []
    for folder in ("services", "leadpipe", "tests", "bench", "schemas"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.resolve() in ALLOWED:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if ".partitions_for_topic(" in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert not offenders, "use leadpipe.runtime.kafka.topic_partitions instead: " + ", ".join(offenders)
