"""Overrides of aiokafka's private internals for every consumer (plain and Faust's), fenced here.

They set private attributes of aiokafka 0.14.0 (pinned; ``faust_compat.check_versions`` refuses
a Faust worker on any other version; re-run ``tests/integration/test_fetch_long_poll.py`` before
raising the pin). Kept apart from ``faust_compat`` so a plain consumer does not import Faust.

- ``long_poll_when_caught_up``: aiokafka sends every fetch with one ``fetch_max_wait_ms``; and
  a long poll it abandons (a rebalance) would still hold its connection until the wait ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.client import ConnectionGroup
from aiokafka.conn import CloseReason


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

    A rebalance makes aiokafka abandon the fetch in flight, but Kafka answers a connection's
    requests in order: the first fetch for the new assignment would queue behind the abandoned
    long poll until its wait ends (a partition this member just took over silent for up to
    ``idle_wait_ms``). So an abandoned long poll closes its connection, and the next fetch
    opens a fresh one (a local reconnect: milliseconds)."""
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

    fetch = fetcher._proc_fetch_request

    async def fetch_or_drop(assignment: Any, node_id: int, request: Any) -> bool:
        has_data: bool = await fetch(assignment, node_id, request)  # returns when cancelled too
        task = asyncio.current_task()
        if task is not None and task.cancelling() and request._max_wait_ms > busy_wait_ms:
            drop_fetch_connection(fetcher._client, node_id)
        return has_data

    fetcher._proc_fetch_request = fetch_or_drop


def drop_fetch_connection(client: Any, node_id: int) -> None:
    """Closes the connection the consumer fetches from ``node_id`` on, if open: whatever else is
    in flight on it fails with a connection error, which aiokafka retries (metadata, offsets)."""
    conn = client._conns.get((node_id, ConnectionGroup.DEFAULT))
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
