"""Overrides of aiokafka's private internals for every consumer (plain and Faust's), fenced here.

They set private attributes of aiokafka 0.14.0 (pinned; ``faust_compat.check_versions`` refuses
a Faust worker on any other version; re-run ``tests/integration/test_fetch_long_poll.py`` before
raising the pin). Kept apart from ``faust_compat`` so a plain consumer does not import Faust.

- ``long_poll_when_caught_up``: aiokafka sends every fetch with one ``fetch_max_wait_ms``, on
  the connection its other requests to that broker use, and a fetch it abandons (a rebalance)
  still holds that connection until the broker answers it.
- ``FetchSession``: aiokafka sends no incremental fetch sessions (KIP-227): every fetch and its
  answer list every assigned partition, encoded and decoded in Python, however few of them have
  anything new.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.protocol.fetch import FetchRequest

log = logging.getLogger(__name__)

#: The key aiokafka's client files the fetch connections under, beside its own two groups
#: (``ConnectionGroup``: DEFAULT for everything else, COORDINATION for the group coordinator).
FETCH_CONNECTIONS = 2


def long_poll_when_caught_up(
    consumer: AIOKafkaConsumer, idle_wait_ms: int, *, sessions: bool = True
) -> AIOKafkaConsumer:
    """Lets ``consumer``'s fetches wait up to ``idle_wait_ms`` when they cover every assigned
    partition, and its own ``fetch_max_wait_ms`` otherwise; with ``sessions``, its fetches
    go in incremental fetch sessions (``FetchSession``).

    Kafka answers a fetch as soon as a record arrives on any partition in it, so a fetch that
    covers them all costs no latency however long it may wait: it only spares the broker the
    empty answers of an idle consumer (two a second at 500 ms). aiokafka leaves out of a fetch
    the partitions whose records are still buffered (being processed), or paused, or waiting
    for a position; a record arriving on one of those waits for the fetch in flight to end,
    so such a fetch keeps the short wait. Applied when the consumer starts (aiokafka builds its
    fetcher then).

    Kafka answers a connection's requests in order, so a long poll holds up whatever is sent
    after it on its connection:
    - the consumer's other requests (offsets for a seek or ``end_offsets``, metadata): fetches
      go on a connection of their own to each broker (``FETCH_CONNECTIONS``);
    - the first fetch after a rebalance, which aiokafka sends while the abandoned long poll is
      still waiting (a partition this member just took over silent for up to
      ``idle_wait_ms``): an abandoned long poll closes its fetch connection, and the next
      fetch opens a fresh one (a local reconnect: milliseconds)."""
    start = consumer.start

    async def started() -> None:
        await start()
        _adapt_fetch_wait(consumer._fetcher, consumer._fetch_max_wait_ms, idle_wait_ms, sessions=sessions)

    consumer.start = started
    return consumer


def _adapt_fetch_wait(fetcher: Any, busy_wait_ms: int, idle_wait_ms: int, *, sessions: bool = True) -> None:
    plan = fetcher._get_actions_per_node

    def per_node(assignment: Any) -> Any:
        fetcher._fetch_max_wait_ms = idle_wait_ms if covers_every_partition(fetcher, assignment) else busy_wait_ms
        return plan(assignment)

    fetcher._get_actions_per_node = per_node
    client = fetcher._client = _FetchesApart(fetcher._client, sessions=sessions)
    if not fetcher._client_rack:
        # The fetch routine plans over every assigned partition each time it wakes (records
        # arrived, records consumed: two or three times a record at low rates), asking each
        # partition's read replica. Without a rack (KIP-392) there is no preferred replica to
        # ask about: it is always the leader, straight from the cluster's metadata.
        fetcher._select_read_replica = client.cluster.leader_for_partition

    fetch = fetcher._proc_fetch_request

    async def fetch_or_drop(assignment: Any, node_id: int, request: Any) -> bool:
        has_data: bool = await fetch(assignment, node_id, request)  # returns when cancelled too
        session = client.sessions.get(node_id)
        if session is not None and session.answered is request:
            session.answered = None
            if assignment.active and session.stamp_due():
                stamp_polled(assignment, request)
        task = asyncio.current_task()
        if task is not None and task.cancelling() and request._max_wait_ms > busy_wait_ms:
            drop_fetch_connection(fetcher._client, node_id)
        return has_data

    fetcher._proc_fetch_request = fetch_or_drop


class _FetchesApart:
    """The consumer's client as its fetcher sees it: the same client, but a fetch goes on the
    broker's fetch connection (aiokafka opens one per key and node on first use), in that
    broker's fetch session when ``sessions``."""

    def __init__(self, client: Any, *, sessions: bool = False):
        self._wrapped = client
        self.cluster = client.cluster  # read per partition by the fetcher; aiokafka never replaces it
        self._sessions_on = sessions
        #: node id -> its fetch session (``FetchSession``), made on the first fetch to it.
        self.sessions: dict[int, FetchSession] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    async def send(self, node_id: int, request: Any, *, group: int = ConnectionGroup.DEFAULT) -> Any:
        if group != ConnectionGroup.DEFAULT or not isinstance(request, FetchRequest):
            return await self._wrapped.send(node_id, request, group=group)
        if not self._sessions_on:
            return await self._wrapped.send(node_id, request, group=FETCH_CONNECTIONS)
        session = self.sessions.setdefault(node_id, FetchSession())
        wire = session.wire(request)
        try:
            response = await self._wrapped.send(node_id, wire, group=FETCH_CONNECTIONS)
        except BaseException:  # not answered (an error, or abandoned): what the broker holds is unknown
            session.reopen()
            raise
        return session.settle(request, wire, response)


#: How often an answered session fetch marks its partitions as fetched (``stamp_polled``).
STAMP_EVERY_S = 1.0

#: Kafka's error codes for a fetch session the broker no longer holds, or a request out of step with it.
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71


class FetchSession:
    """A consumer's incremental fetch session with one broker (KIP-227, as Kafka's Java client
    keeps it). The first fetch lists every partition, as aiokafka's all do, and asks the broker
    to open a session; each later fetch lists only the partitions whose fetch offset changed or
    that are new to the session, and names those left out of this fetch (their records still
    buffered, paused, unassigned) as forgotten. The broker answers for every partition in the
    session, but lists only those with records or a changed log end or an error. A fetch that
    fails, is abandoned, or that the broker refuses (it evicted the session, or the epoch is out
    of step) sends a full fetch next, opening a new session; a broker that declines to open one
    (its cache full) gets full fetches, as before, and is asked again with each.

    aiokafka reads a fetch's answer against the request it built (every partition and its fetch
    offset), so the request it sees is unchanged; only the one sent (``SessionFetch``) is
    smaller. One fetch is in flight per broker at a time (aiokafka's fetcher), so the session's
    state changes in step with its answers."""

    def __init__(self) -> None:
        self.id = 0  # the broker's id for the session; 0: none
        self.epoch = 0  # what the next fetch carries; 0: a full fetch that opens a session
        self.held: dict[tuple[str, int], int] = {}  # (topic, partition) -> the fetch offset the broker holds
        self.supported = True  # False after a broker answered with a fetch version before sessions (v7)
        self.answered: FetchRequest | None = None  # aiokafka's request, once its answer is in
        self.stamped = 0.0  # time.monotonic() of the last stamp_polled

    def stamp_due(self) -> bool:
        """Whether to mark the session's partitions as fetched now: at most once a second (Faust
        looks for a partition unfetched for minutes)."""
        now = time.monotonic()
        if now - self.stamped < STAMP_EVERY_S:
            return False
        self.stamped = now
        return True

    def wire(self, request: FetchRequest) -> FetchRequest:
        """The fetch to send for aiokafka's ``request``."""
        if not self.supported:
            return request
        if self.epoch == 0:
            return SessionFetch(request, self.id, 0, request.topics, [])
        held = self.held
        send: list[tuple[str, list[tuple[int, int, int]]]] = []
        wanted: set[tuple[str, int]] = set()
        for topic, partitions in request.topics:
            changed = []
            for partition in partitions:
                key = (topic, partition[0])
                wanted.add(key)
                if held.get(key) != partition[1]:
                    changed.append(partition)
            if changed:
                send.append((topic, changed))
        forgotten: dict[str, list[int]] = {}
        for key in held.keys() - wanted:
            forgotten.setdefault(key[0], []).append(key[1])
        return SessionFetch(request, self.id, self.epoch, send, list(forgotten.items()))

    def settle(self, request: FetchRequest, wire: FetchRequest, response: Any) -> Any:
        """Moves the session on by the broker's ``response`` to ``wire``; returns the answer for
        aiokafka's ``request`` (no partition it did not ask for)."""
        if not isinstance(wire, SessionFetch):  # this broker already found without sessions
            return response
        if response.API_VERSION < 7:  # it answered aiokafka's own fetch (SessionFetch.build)
            self.supported = False
            return response
        if response.error_code in (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH):
            log.info("fetch session %d refused by the broker (error %d): opening a new one",
                     self.id, response.error_code)  # fmt: skip
            self.reopen(forget_id=response.error_code == FETCH_SESSION_ID_NOT_FOUND)
            return response
        if response.error_code:
            self.reopen()
            return response
        if wire.session_epoch == 0:
            self.id = response.session_id  # 0: the broker declined to open one
        self.epoch = _next_epoch(wire.session_epoch) if self.id else 0
        self.held = {(topic, p[0]): p[1] for topic, partitions in request.topics for p in partitions} if self.id else {}
        self.answered = request
        if wire.session_epoch:
            response.topics = _only_asked(response.topics, self.held)
        return response

    def reopen(self, *, forget_id: bool = False) -> None:
        """The next fetch is a full one, closing this session (unless the broker no longer
        holds it) and opening another."""
        if forget_id:
            self.id = 0
        self.epoch = 0
        self.held = {}
        self.answered = None


class SessionFetch(FetchRequest):  # type: ignore[misc]  # aiokafka is untyped here
    """A fetch as sent in a session: the partitions in ``send`` (all, when ``epoch`` is 0), and
    ``forgotten`` ones to leave out of the session from now on."""

    def __init__(
        self,
        request: FetchRequest,
        session_id: int,
        epoch: int,
        send: list[tuple[str, list[tuple[int, int, int]]]],
        forgotten: list[tuple[str, list[int]]],
    ):
        super().__init__(request._max_wait_ms, request._min_bytes, request._max_bytes, request._isolation_level,
                         send, rack_id=request._rack_id)  # fmt: skip
        self.whole = request
        self.session_id = session_id
        self.session_epoch = epoch
        self.forgotten = forgotten

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION < 7:  # a broker without sessions: aiokafka's own fetch
            return self.whole.build(request_struct_class)
        struct = super().build(request_struct_class)
        struct.session_id = self.session_id
        struct.session_epoch = self.session_epoch
        struct.forgotten_topics_data = self.forgotten
        return struct


def _next_epoch(epoch: int) -> int:
    return 1 if epoch >= 2**31 - 1 else epoch + 1


def _only_asked(topics: list[Any], held: dict[tuple[str, int], int]) -> list[Any]:
    """An answer's partitions that are in the session (all of them, unless the broker and the
    session are out of step: then the others are dropped rather than read against no request)."""
    if all((topic, p[0]) in held for topic, partitions in topics for p in partitions):
        return topics
    log.warning("a fetch answer listed partitions outside its session; dropped")
    kept = [(topic, [p for p in partitions if (topic, p[0]) in held]) for topic, partitions in topics]
    return [(topic, partitions) for topic, partitions in kept if partitions]


def stamp_polled(assignment: Any, request: FetchRequest) -> None:
    """Marks every partition of an answered session fetch as just fetched (aiokafka's
    ``TopicPartitionState.timestamp``, which it sets for each partition an answer lists and
    Faust's event-path check reads): a session's answer leaves out the partitions with nothing
    new, which were fetched all the same."""
    now_ms = int(1000 * time.time())
    for topic, partitions in request.topics:
        for partition in partitions:
            state = assignment.state_value(TopicPartition(topic, partition[0]))
            if state is not None:
                state.timestamp = now_ms


def drop_fetch_connection(client: Any, node_id: int) -> None:
    """Closes the consumer's fetch connection to ``node_id``, if open (it carries fetches only)."""
    conn = client._conns.get((node_id, FETCH_CONNECTIONS))
    if conn is not None and conn.connected():
        conn.close(reason=CloseReason.IDLE_DROP)


def covers_every_partition(fetcher: Any, assignment: Any) -> bool:
    """Whether the next fetch includes every assigned partition: none has records buffered, none
    is paused and every one has a position. (Run each time the fetch routine wakes, so it reads
    the assignment's partition states directly rather than looking each one up.)"""
    if fetcher._records:
        return False
    return not any(state.paused or state._position is None for state in assignment._tp_state.values())
