"""The pipeline bench's tracker times a record by its CreateTime, not by when it reads it: that is
what lets it read lazily (a fetch every quarter second, not one per record) without changing a
latency it reports. Against the session broker."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from bench.pipeline_bench import Load, Tracker, verify


async def test_the_tracker_reports_the_times_the_records_were_made_not_read(kafka_bootstrap: str, unique: str) -> None:
    corr, nid = f"corr-{unique}", f"notif-{unique}"
    made_ms = int(time.time() * 1000) - 60_000  # a minute before anything here reads it
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    prefix = f"tracker-{unique}."  # private topics: the session broker's own carry other tests' records
    tracker = Tracker(kafka_bootstrap, prefix=prefix)
    await producer.start()
    try:
        headers = [("ce_correlationid", corr.encode())]
        requested = {"notification_id": nid, "template": "rep_alert"}
        sent = {"notification_id": nid, "status": "sent"}
        await producer.send_and_wait(prefix + "lead.scored.v1", orjson.dumps({"grade": "A"}), headers=headers,
                                     timestamp_ms=made_ms)  # fmt: skip
        await producer.send_and_wait(prefix + "notification.requested.v1", orjson.dumps(requested), headers=headers,
                                     timestamp_ms=made_ms + 40)  # fmt: skip
        await producer.send_and_wait(prefix + "notification.outcome.v1", orjson.dumps(sent), headers=headers,
                                     timestamp_ms=made_ms + 90)  # fmt: skip
        await tracker.start()
        assert await tracker.wait_for([corr], 30), "the tracker did not read the rep alert's outcome within 30 s"
        assert tracker.scored[corr] == [(made_ms / 1000, "A")]
        assert tracker.alert_of[corr] == nid
        assert tracker.alert_sent_at(corr) == (made_ms + 90) / 1000
    finally:
        await tracker.stop()
        await producer.stop()


async def test_a_record_the_tracker_cannot_read_is_counted_and_the_records_after_it_still_read(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    corr, nid = f"corr-{unique}", f"notif-{unique}"
    prefix = f"tracker-bad-{unique}."
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    tracker = Tracker(kafka_bootstrap, prefix=prefix)
    await producer.start()
    try:
        headers = [("ce_correlationid", corr.encode())]
        for topic, value in [
            ("lead.scored.v1", b"not json"),  # unparseable
            ("notification.requested.v1", orjson.dumps({"template": "rep_alert"})),  # no notification_id
            ("lead.scored.v1", orjson.dumps({"grade": "A"})),
            ("notification.requested.v1", orjson.dumps({"notification_id": nid, "template": "rep_alert"})),
            ("notification.outcome.v1", orjson.dumps({"notification_id": nid, "status": "sent"})),
        ]:
            await producer.send_and_wait(prefix + topic, value, headers=headers, partition=0)
        await tracker.start()
        assert await tracker.wait_for([corr], 30), "the tracker stopped reading at the first record it could not read"
        assert tracker.unreadable == {"lead.scored.v1": 1, "notification.requested.v1": 1}
        assert "JSONDecodeError" in tracker.unreadable_example or "notification_id" in tracker.unreadable_example
        checks = verify(tracker, Load("http://unused", kafka_bootstrap), tmp_path)
        assert checks["unreadable_records"] == {"lead.scored.v1": 1, "notification.requested.v1": 1}
        assert checks["ok"] is False
        tracker.unreadable.clear()
        assert verify(tracker, Load("http://unused", kafka_bootstrap), tmp_path)["ok"] is True
    finally:
        await tracker.stop()
        await producer.stop()
