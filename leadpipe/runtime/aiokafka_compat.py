"""Overrides of aiokafka's private internals for every consumer (plain and Faust's), fenced here.

They set private attributes of aiokafka 0.14.0 (pinned; ``faust_compat.check_versions`` refuses
a Faust worker on any other version; re-run ``tests/integration/test_fetch_long_poll.py`` before
raising the pin). Kept apart from ``faust_compat`` so a plain consumer does not import Faust.

- ``long_poll_when_caught_up``: aiokafka sends every fetch with one ``fetch_max_wait_ms``, on
  the connection its other requests to that broker use, and a fetch it abandons (a rebalance)
  still holds that connection until the broker answers it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason
from aiokafka.protocol.fetch import FetchRequest

#: The key aiokafka's client files the fetch connections under, beside its own two groups
#: (``ConnectionGroup``: DEFAULT for everything else, COORDINATION for the group coordinator).
FETCH_CONNECTIONS = 2


def long_poll_when_caught_up(consumer: AIOKafkaConsumer, idle_wait_ms: int) -> AIOKafkaConsumer:
    """Lets ``consumer``'s fetches wait up to ``idle_wait_ms`` when they cover every assigned
    partition, and its own ``fetch_max_wait_ms`` otherwise.

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
        _adapt_fetch_wait(consumer._fetcher, consumer._fetch_max_wait_ms, idle_wait_ms)

    consumer.start = started
    return consumer


def _adapt_fetch_wait(fetcher: Any, busy_wait_ms: int, idle_wait_ms: int) -> None:
    plan = fetcher._get_actions_per_node

    def per_node(assignment: Any) -> Any:
        fetcher._fetch_max_wait_ms = idle_wait_ms if covers_every_partition(fetcher, assignment) else busy_wait_ms
        return plan(assignment)

    fetcher._get_actions_per_node = per_node
    fetcher._client = _FetchesApart(fetcher._client)

    fetch = fetcher._proc_fetch_request

    async def fetch_or_drop(assignment: Any, node_id: int, request: Any) -> bool:
        has_data: bool = await fetch(assignment, node_id, request)  # returns when cancelled too
        task = asyncio.current_task()
        if task is not None and task.cancelling() and request._max_wait_ms > busy_wait_ms:
            drop_fetch_connection(fetcher._client, node_id)
        return has_data

    fetcher._proc_fetch_request = fetch_or_drop


class _FetchesApart:
    """The consumer's client as its fetcher sees it: the same client, but a fetch goes on the
    broker's fetch connection (aiokafka opens one per key and node on first use)."""

    def __init__(self, client: Any):
        self._wrapped = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    async def send(self, node_id: int, request: Any, *, group: int = ConnectionGroup.DEFAULT) -> Any:
        if group == ConnectionGroup.DEFAULT and isinstance(request, FetchRequest):
            group = FETCH_CONNECTIONS
        return await self._wrapped.send(node_id, request, group=group)


def drop_fetch_connection(client: Any, node_id: int) -> None:
    """Closes the consumer's fetch connection to ``node_id``, if open (it carries fetches only)."""
    conn = client._conns.get((node_id, FETCH_CONNECTIONS))
    if conn is not None and conn.connected():
        conn.close(reason=CloseReason.IDLE_DROP)


def covers_every_partition(fetcher: Any, assignment: Any) -> bool:
    """Whether the next fetch includes every assigned partition: none has records buffered, none
    is paused and every one has a position."""
    if fetcher._records:
        return False
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        if state.paused or not state.has_valid_position:
            return False
    return True
