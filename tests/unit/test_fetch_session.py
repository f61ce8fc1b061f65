"""``FetchSession``'s bookkeeping (KIP-227), without a broker: what each fetch sends, how the
session moves on with the broker's answers, and how it starts over when one is refused or lost.
tests/integration/test_fetch_sessions.py runs the same against the session broker."""

from __future__ import annotations

import inspect
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v11, FetchResponse_v4, FetchResponse_v11

from leadpipe.runtime.aiokafka_compat import (
    FETCH_SESSION_ID_NOT_FOUND,
    INVALID_FETCH_SESSION_EPOCH,
    FetchSession,
    SessionFetch,
    _adapt_fetch_wait,
    _FetchesApart,
    covers_every_partition,
    stamp_polled,
)
from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.kafka import make_consumer
from leadpipe.runtime.settings import ServiceSettings

MAX = 1_048_576


def _request(offsets: dict[tuple[str, int], int]) -> FetchRequest:
    by_topic: dict[str, list[tuple[int, int, int]]] = {}
    for (topic, partition), offset in offsets.items():
        by_topic.setdefault(topic, []).append((partition, offset, MAX))
    return FetchRequest(500, 1, 50_000_000, 0, list(by_topic.items()), rack_id="")


def _answer(session_id: int = 0, error: int = 0, partitions: list[tuple[str, int]] = ()) -> Any:  # type: ignore[assignment]
    by_topic: dict[str, list[Any]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append((partition, 0, 10, 10, 0, [], -1, b""))
    return FetchResponse_v11(0, error, session_id, list(by_topic.items()))


def _sent(wire: FetchRequest) -> dict[tuple[str, int], int]:
    return {(t, p[0]): p[1] for t, ps in wire.topics for p in ps}


def _opened(offsets: dict[tuple[str, int], int], session_id: int = 7) -> FetchSession:
    session = FetchSession()
    request = _request(offsets)
    session.settle(request, session.wire(request), _answer(session_id))
    return session


ALL = {("a", 0): 5, ("a", 1): 9, ("b", 0): 0}


def test_the_first_fetch_is_full_and_opens_a_session_the_next_sends_only_what_moved():
    session = FetchSession()
    request = _request(ALL)
    wire = session.wire(request)
    assert isinstance(wire, SessionFetch) and (wire.session_id, wire.session_epoch) == (0, 0)
    assert _sent(wire) == ALL and wire.forgotten == []
    answer = session.settle(request, wire, _answer(session_id=7))
    assert answer.session_id == 7
    assert (session.id, session.epoch, session.held) == (7, 1, ALL)
    assert session.answered is request

    moved = ALL | {("a", 1): 12}
    wire = session.wire(_request(moved))
    assert (wire.session_id, wire.session_epoch) == (7, 1)
    assert _sent(wire) == {("a", 1): 12}
    assert wire.forgotten == []
    assert wire.topics != _request(moved).topics  # the one sent is smaller than aiokafka's


def test_partitions_left_out_of_a_fetch_are_forgotten_and_new_ones_sent():
    session = _opened(ALL)
    wanted = {("a", 0): 5, ("c", 3): 1}  # a/1 and b/0 buffered or paused; c/3 newly assigned
    request = _request(wanted)
    wire = session.wire(request)
    assert _sent(wire) == {("c", 3): 1}
    assert sorted(wire.forgotten) == [("a", [1]), ("b", [0])]
    session.settle(request, wire, _answer(session_id=7))
    assert session.held == wanted and session.epoch == 2


def test_the_built_fetch_carries_the_session_and_its_forgotten_partitions():
    session = _opened(ALL)
    wire = session.wire(_request({("a", 0): 6, ("b", 0): 0}))
    struct = wire.build(FetchRequest_v11)
    assert (struct.session_id, struct.session_epoch) == (7, 1)
    assert struct.topics == [("a", [(0, -1, 6, -1, MAX)])]
    assert struct.forgotten_topics_data == [("a", [1])]
    decoded = FetchRequest_v11.decode(io.BytesIO(struct.encode()))
    assert (decoded.session_id, decoded.session_epoch, decoded.forgotten_topics_data) == (7, 1, [("a", [1])])


def test_an_epoch_wraps_to_one_not_zero():
    session = _opened(ALL)
    session.epoch = 2**31 - 1
    request = _request(ALL)
    session.settle(request, session.wire(request), _answer(session_id=7))
    assert session.epoch == 1


@pytest.mark.parametrize(
    ("error", "keeps_id"), [(FETCH_SESSION_ID_NOT_FOUND, False), (INVALID_FETCH_SESSION_EPOCH, True), (1, True)]
)
def test_a_refused_fetch_sends_a_full_one_next(error: int, keeps_id: bool):
    session = _opened(ALL)
    request = _request(ALL | {("a", 0): 6})
    session.settle(request, session.wire(request), _answer(session_id=0, error=error))
    assert (session.epoch, session.held, session.answered) == (0, {}, None)
    assert session.id == (7 if keeps_id else 0)  # 7: the full fetch closes it as it opens another
    wire = session.wire(request)
    assert (wire.session_id, wire.session_epoch) == (session.id, 0)
    assert _sent(wire) == ALL | {("a", 0): 6}


def test_a_fetch_that_was_not_answered_sends_a_full_one_next_closing_the_session():
    session = _opened(ALL)
    session.reopen()
    wire = session.wire(_request(ALL))
    assert (wire.session_id, wire.session_epoch) == (7, 0)
    assert _sent(wire) == ALL


def test_a_broker_that_declines_a_session_gets_full_fetches_and_is_asked_again():
    session = _opened(ALL, session_id=0)
    assert (session.id, session.epoch, session.held) == (0, 0, {})
    wire = session.wire(_request(ALL))
    assert (wire.session_id, wire.session_epoch) == (0, 0) and _sent(wire) == ALL


def test_a_broker_without_sessions_gets_aiokafkas_own_fetch():
    session = FetchSession()
    request = _request(ALL)
    wire = session.wire(request)
    assert wire.build(FetchRequest_v4).topics == request.build(FetchRequest_v4).topics
    answer = FetchResponse_v4(0, [])
    assert session.settle(request, wire, answer) is answer
    assert session.supported is False
    assert session.wire(request) is request


def test_an_answer_listing_a_partition_outside_the_session_drops_it(caplog: pytest.LogCaptureFixture):
    session = _opened(ALL)
    request = _request(ALL)
    wire = session.wire(request)
    answer = session.settle(request, wire, _answer(session_id=7, partitions=[("a", 1), ("z", 0), ("a", 4)]))
    assert [(t, [p[0] for p in ps]) for t, ps in answer.topics] == [("a", [1])]
    assert "outside its session" in caplog.text


def test_every_partition_of_an_answered_fetch_is_stamped_as_fetched():
    states = {
        TopicPartition("a", 0): SimpleNamespace(timestamp=None),
        TopicPartition("a", 1): SimpleNamespace(timestamp=1),
    }
    assignment = SimpleNamespace(state_value=states.get)
    stamp_polled(assignment, _request({("a", 0): 1, ("a", 1): 2, ("gone", 0): 3}))
    assert all(s.timestamp and s.timestamp > 1_700_000_000_000 for s in states.values())


class _Client:
    def __init__(self, answer: Any = None, error: BaseException | None = None):
        self.answer, self.error, self.groups = answer, error, []
        self.cluster = object()

    async def send(self, node_id: int, request: Any, *, group: int = 0) -> Any:
        self.groups.append(group)
        if self.error:
            raise self.error
        return self.answer


async def test_the_client_keeps_a_session_per_broker_and_starts_over_after_a_failed_send():
    client = _FetchesApart(_Client(_answer(session_id=7)), sessions=True)
    await client.send(1, _request(ALL))
    await client.send(2, _request(ALL))
    assert {n: (s.id, s.epoch) for n, s in client.sessions.items()} == {1: (7, 1), 2: (7, 1)}
    client._wrapped.error = ConnectionError("gone")
    with pytest.raises(ConnectionError):
        await client.send(1, _request(ALL))
    assert (client.sessions[1].epoch, client.sessions[2].epoch) == (0, 1)


async def test_with_sessions_off_the_client_sends_aiokafkas_fetch_unchanged():
    inner = _Client(_answer())
    client = _FetchesApart(inner)
    request = _request(ALL)
    sent: list[Any] = []
    inner.send = lambda node, r, group=0: _record(sent, r)  # type: ignore[method-assign]
    await client.send(1, request)
    assert sent == [request] and client.sessions == {}


async def _record(sent: list[Any], request: Any) -> Any:
    sent.append(request)
    return _answer()


def _settings(tmp_path: Path, **extra: Any) -> ServiceSettings:
    return ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1", redis_url="redis://unused",
                           leadpipe_state_dir=tmp_path, **extra)  # fmt: skip


@pytest.mark.parametrize("value", [None, "false"])
async def test_kafka_fetch_sessions_reaches_plain_and_faust_consumers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
):
    if value is None:
        monkeypatch.delenv("KAFKA_FETCH_SESSIONS", raising=False)
    else:
        monkeypatch.setenv("KAFKA_FETCH_SESSIONS", value)
    settings = _settings(tmp_path)
    assert settings.kafka_fetch_sessions is (value is None)
    consumer = make_consumer(settings, "t", group_id=None)
    assert inspect.getclosurevars(consumer.start).nonlocals["sessions"] is (value is None)  # applied at start()
    await consumer.stop()
    app = make_app("fetch-sessions-test", settings)
    worker_consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert inspect.getclosurevars(worker_consumer.start).nonlocals["sessions"] is (value is None)
    await worker_consumer.stop()


def test_an_answered_session_fetch_stamps_its_partitions_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch):
    session = FetchSession()
    clock = iter([100.0, 100.5, 101.2])
    monkeypatch.setattr("leadpipe.runtime.aiokafka_compat.time.monotonic", lambda: next(clock))
    assert [session.stamp_due() for _ in range(3)] == [True, False, True]


@pytest.mark.parametrize("rack", ["", "eu-west-1a"])
def test_without_a_rack_the_fetcher_asks_the_cluster_for_each_partitions_leader_directly(rack: str):
    cluster = SimpleNamespace(leader_for_partition=lambda tp: 1)
    own = object()
    fetcher = SimpleNamespace(_get_actions_per_node=None, _proc_fetch_request=None, _client_rack=rack,
                              _select_read_replica=own, _client=SimpleNamespace(cluster=cluster))  # fmt: skip
    _adapt_fetch_wait(fetcher, 100, 1000)
    if rack:
        assert fetcher._select_read_replica is own  # aiokafka's, which honours a preferred replica
    else:
        assert fetcher._select_read_replica == cluster.leader_for_partition


def test_a_fetch_covers_every_partition_unless_one_is_buffered_paused_or_without_a_position():
    def state(paused: bool = False, position: int | None = 3) -> Any:
        return SimpleNamespace(paused=paused, _position=position)

    def covers(records: dict[Any, Any], *states: Any) -> bool:
        assignment = SimpleNamespace(_tp_state={TopicPartition("a", n): s for n, s in enumerate(states)})
        return covers_every_partition(SimpleNamespace(_records=records), assignment)

    assert covers({}, state(), state())
    assert not covers({"a": 1}, state(), state())
    assert not covers({}, state(), state(paused=True))
    assert not covers({}, state(position=None), state())
