"""`leadpipe dlq list|show|replay`, `tail` and `lag` against the session broker.

Records are dead-lettered the way the services do it (``EventProcessor`` with a failing
handler, publishing to ``<topic>.dlq`` through a real producer); each test uses its own
topics and replay group, so nothing else on the broker is touched.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from leadpipe.ops.dlq import REPLAYED_FROM_HEADER
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.publish import KafkaPublisher
from leadpipe.runtime.stream import EventProcessor, HandlerError, RawMessage
from schemas import LeadCaptured, encode
from schemas.codec import Record
from schemas.dlq import dead_letter
from tests.integration.ops.helpers import cli, cli_json, make_topics, produce, read_all
from tests.samples import events


def captured_record() -> Record:
    event = next(e for e in events() if isinstance(e.data, LeadCaptured))
    return encode(event)


def dead_letter_through_the_error_policy(bootstrap: str, origin: str, records: list[Record]) -> StageMetrics:
    """Run each record through EventProcessor with a handler that rejects it."""

    async def reject(_: Any) -> list[Any]:
        raise HandlerError("territory table has no row for this country", field="data.person.country")

    async def go() -> StageMetrics:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        metrics = StageMetrics("opstest", CollectorRegistry())
        try:
            processor = EventProcessor(
                service="opstest", metrics=metrics, publisher=KafkaPublisher(producer, metrics=metrics)
            )
            for offset, record in enumerate(records):
                msg = RawMessage(origin, 0, offset, record.key, record.value, list(record.headers))
                await processor.process(msg, LeadCaptured, reject)
        finally:
            await producer.stop()
        return metrics

    return asyncio.run(go())


@pytest.fixture
def origin(registry_topics: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", registry_topics)
    monkeypatch.setenv("DLQ_REPLAY_GROUP", f"ops-replay-{unique}")
    name = f"opstest.{unique}.v1"
    make_topics(registry_topics, name)
    return name


def test_a_dead_letter_is_listed_shown_replayed_once_and_never_again(
    origin: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = captured_record()
    garbled = Record(good.key, b'{"capture_id": ', list(good.headers))
    metrics = dead_letter_through_the_error_policy(kafka_bootstrap, origin, [good, garbled])
    assert metrics.dead_lettered.labels("opstest", origin, "rejected")._value.get() == 1
    assert metrics.dead_lettered.labels("opstest", origin, "invalid")._value.get() == 1

    [listed] = cli_json(capsys, "dlq", "list", origin)
    assert listed["topic"] == f"{origin}.dlq"
    assert (listed["records"], listed["pending"], listed["replayed"]) == (2, 2, 0)
    assert listed["reasons"] == {
        "opstest: HandlerError at data.person.country": 1,
        "opstest: DecodeError at data": 1,
    }

    code, out, _ = cli(capsys, "dlq", "show", f"{origin}.dlq")
    assert code == 0
    shown = [json.loads(chunk) for chunk in _json_documents(out)]
    assert shown[0]["event"]["id"] == _header(good, "ce_id")
    assert shown[0]["dead_letter"]["error"] == "territory table has no row for this country"
    assert shown[0]["dead_letter"]["topic"] == origin
    assert shown[1]["decode_error"]["field"] == "data"
    assert shown[1]["value"] == '{"capture_id": '

    [first] = cli_json(capsys, "dlq", "replay", origin)
    assert (first["replayed"], first["skipped"]) == (2, 0)
    [second] = cli_json(capsys, "dlq", "replay", origin)
    assert (second["replayed"], second["skipped"]) == (0, 0)

    replayed = [r for r in read_all(kafka_bootstrap, origin) if r.header(REPLAYED_FROM_HEADER)]
    assert sorted(r.value for r in replayed) == sorted([good.value, garbled.value])
    by_value = {r.value: r for r in replayed}
    assert by_value[good.value].key == good.key
    assert _header(by_value[good.value], "ce_id") == _header(good, "ce_id")
    assert not any(k.startswith("dlq_") for r in replayed for k, _ in r.headers)

    [after] = cli_json(capsys, "dlq", "list", origin)
    assert (after["records"], after["pending"], after["replayed"]) == (2, 0, 2)
    code, out, _ = cli(capsys, "dlq", "show", origin, "--pending")
    assert code == 0 and out.strip() == ""


def test_replay_publishes_only_dead_letters_added_since_the_last_replay(
    origin: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = captured_record()
    dead_letter_through_the_error_policy(kafka_bootstrap, origin, [first])
    assert cli_json(capsys, "dlq", "replay", origin)[0]["replayed"] == 1
    later = Record(b"other-key", first.value, list(first.headers))
    dead_letter_through_the_error_policy(kafka_bootstrap, origin, [later])

    assert cli_json(capsys, "dlq", "replay", origin, "--dry-run")[0]["replayed"] == 1
    assert cli_json(capsys, "dlq", "replay", origin)[0]["replayed"] == 1

    replayed = [r for r in read_all(kafka_bootstrap, origin) if r.header(REPLAYED_FROM_HEADER)]
    assert sorted(r.key for r in replayed) == sorted([first.key, b"other-key"])


def test_a_record_without_its_original_topic_is_reported_and_not_republished(
    origin: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = captured_record()
    stray = Record(good.key, good.value, list(good.headers))  # no dlq_* headers at all
    elsewhere = dead_letter(
        key=good.key,
        value=good.value,
        headers=good.headers,
        error="x",
        topic="lead.scored.v1",
        partition=0,
        offset=7,
        service="opstest",
    )
    produce(kafka_bootstrap, f"{origin}.dlq", [stray, elsewhere])

    [result] = cli_json(capsys, "dlq", "replay", origin)
    assert (result["replayed"], result["skipped"]) == (0, 2)
    assert "header dlq_topic is missing" in result["problems"][0]
    assert "names 'lead.scored.v1'" in result["problems"][1]
    assert read_all(kafka_bootstrap, origin) == []
    assert cli_json(capsys, "dlq", "replay", origin)[0]["skipped"] == 0


def test_unknown_topics_are_a_clear_error(origin: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "dlq", "show", "no.such.topic")
    assert code == 2
    assert "topic 'no.such.topic.dlq': not found on the broker" in err
    code, _, err = cli(capsys, "tail", "no.such.topic.v9", "--from-beginning", "--no-follow")
    assert code == 2
    assert "not found on the broker" in err


def test_tail_prints_decoded_events_and_decode_errors(
    origin: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = captured_record()
    produce(kafka_bootstrap, origin, [good, Record(b"k", b"not json", [("ce_id", b"x")])])
    code, out, _ = cli(capsys, "tail", origin, "--from-beginning", "--max", "2")
    assert code == 0
    docs = [json.loads(d) for d in _json_documents(out)]
    decoded = next(d for d in docs if "event" in d)
    assert decoded["event"]["data"]["capture_id"] == good_capture_id(good)
    broken = next(d for d in docs if "decode_error" in d)
    assert broken["decode_error"]["field"] == "ce_type"


def test_lag_shows_each_partition_a_group_committed(
    origin: str, kafka_bootstrap: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiokafka import TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    from leadpipe.ops.reader import plain_consumer
    from leadpipe.ops.settings import OpsSettings

    good = captured_record()
    produce(kafka_bootstrap, origin, [Record(good.key, good.value, good.headers) for _ in range(5)])
    group = f"ops-lag-{unique}"

    async def commit() -> None:
        consumer = plain_consumer(OpsSettings(kafka_bootstrap_servers=kafka_bootstrap), group_id=group)
        await consumer.start()
        try:
            tp = TopicPartition(origin, _partition_of(good.key))
            consumer.assign([tp])
            await consumer.commit({tp: OffsetAndMetadata(2, "")})
        finally:
            await consumer.stop()

    asyncio.run(commit())
    rows = cli_json(capsys, "lag", "--group", group, "--topic", origin)
    assert rows == [
        {"group": group, "topic": origin, "partition": _partition_of(good.key), "committed": 2, "end": 5, "lag": 3}
    ]


def _partition_of(key: bytes) -> int:
    from aiokafka.partitioner import DefaultPartitioner

    return int(DefaultPartitioner()(key, [0, 1, 2], [0, 1, 2]))


def good_capture_id(record: Record) -> str:
    return str(json.loads(record.value)["capture_id"])


def _header(record: Record, name: str) -> str:
    raw = record.header(name)
    assert raw is not None
    return raw.decode()


def _json_documents(text: str) -> list[str]:
    decoder = json.JSONDecoder()
    docs, i = [], 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        obj, end = decoder.raw_decode(text, i)
        docs.append(json.dumps(obj))
        i = end
    return docs
