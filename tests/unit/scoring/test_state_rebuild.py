"""Scoring's state comes back from the compacted state topic after Redis is wiped."""

from __future__ import annotations

from typing import Any

from leadpipe.runtime.stream import BatchProcessor, RawMessage
from schemas.codec import encode
from schemas.envelope import new_event
from schemas.lead_captured.v1 import LeadCaptured
from schemas.topics import registry
from services.scoring.adapters.redis_store import dump_state, links_of, load_state
from services.scoring.adapters.state_log import MODEL_KEY, StateLog, current, fold, state_topic_spec
from services.scoring.handlers import Scorer, ScoringBatch
from tests.fakes import FakePublisher, event_processor
from tests.unit.scoring.fakes import FakeLeadStore, FakeStateLog, QuietObserver
from tests.unit.scoring.leads import MODEL, REF, capture
from tests.unit.scoring.world import World

SWITCHBOARD = "+44 20 7946 0000"


def two_colleagues() -> World:
    world = World()
    world.send(capture(email="ana@acme.com", phone=SWITCHBOARD, country="GB", capture_id="c-ana"))
    world.send(capture(email="ben@acme.com", phone=SWITCHBOARD, country="GB", capture_id="c-ben"))
    return world


def test_a_stored_state_reads_back_the_same_with_its_captures():
    [state, _] = two_colleagues().leads.values()
    again = load_state(dump_state(state))
    assert again == state and again.captures[0].capture.identity.email == "ana@acme.com"


def test_the_links_rebuilt_from_lead_states_are_the_links_scoring_made():
    world = two_colleagues()
    assert links_of(world.leads.values()) == world.links


def test_the_latest_state_per_lead_wins_and_a_merged_away_lead_stays_gone():
    latest: dict[bytes, bytes | None] = {}
    fold(latest, [(b"ld_a", b"a1"), (b"ld_b", b"b1"), (MODEL_KEY, b"fit-2026.1")])
    fold(latest, [(b"ld_a", b"a2"), (b"ld_b", None), (MODEL_KEY, b"fit-2026.2"), (None, b"junk")])
    assert current(latest) == ([b"a2"], "fit-2026.2")


def test_a_topic_without_a_model_record_restores_no_model():
    assert current({b"ld_a": b"a1"}) == ([b"a1"], None)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(self, topic: str, value: bytes | None, key: bytes) -> Any:
        self.sent.append((topic, value, key))

        async def ack() -> None:
            return None

        return ack()


async def test_the_state_log_appends_tombstones_states_and_the_model_keyed_for_compaction():
    producer = _Producer()
    [ana, _] = two_colleagues().leads.values()
    await StateLog(producer, "scoring.state.v1").append([ana], ["ld_gone"], model_version="fit-2026.2")
    assert [(v is None, k) for _, v, k in producer.sent] == [
        (True, b"ld_gone"),
        (False, ana.lead_id.encode()),
        (False, MODEL_KEY),
    ]


async def test_a_batch_finding_redis_wiped_waits_for_the_rebuild_before_deciding():
    publisher = FakePublisher()
    store = FakeLeadStore()
    store.built = False
    store.log = publisher.log  # one record of what happened, in order

    async def ensure_built() -> None:
        publisher.log.append("rebuild")
        store.built = True

    handler = ScoringBatch(scorer=Scorer(MODEL, REF, QuietObserver()), store=store,
                           state_log=FakeStateLog(publisher.log), publisher=publisher, ensure_built=ensure_built)  # fmt: skip
    batches = BatchProcessor(event_processor("scoring", publisher), handler, {"lead.captured.v1": LeadCaptured},
                             retry="batch")  # fmt: skip
    rec = encode(new_event(capture(email="dana@acme.com"), source="/t", subject="k", id="c-1"))
    msg = RawMessage(topic="lead.captured.v1", partition=0, offset=0, key=rec.key, value=rec.value,
                     headers=rec.headers)  # fmt: skip
    assert await batches.process([msg]) == 1
    assert publisher.log == ["read built=False", "rebuild", "read built=True", "send lead.scored.v1", "flush",
                             "state topic 1", "write"]  # fmt: skip


def test_topics_apply_creates_the_state_topic_compacted_and_kept_forever():
    spec = registry(3)["scoring.state.v1"]
    assert spec.config == {"cleanup.policy": "compact", "retention.ms": "-1"} and spec.partitions == 3
    assert spec.dead_letter_of is None and spec.event_type is None
    assert state_topic_spec("scoring-state-test", 3).config == spec.config
