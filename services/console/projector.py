"""The projector's Kafka side: the live consumer loop (consumer group ``console``) and the rebuild
that reads every projected topic from its start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer

from leadpipe.runtime.kafka import make_consumer, read_to_end, topic_partitions
from services.console.adapters.postgres_store import PostgresStore
from services.console.config import ConsoleSettings
from services.console.handlers import TOPICS, Projector

log = logging.getLogger(__name__)

#: The poll's timeout until the group assigned partitions: /readyz waits for that.
JOINING_POLL_MS = 500
#: ...and after. A record wakes the poll as soon as a fetch brings it (aiokafka's getmany waits on
#: the fetcher, not on the timeout), so the timeout only says how often an idle loop turns round
#: for nothing: twice a second was two of an idle console's four or five wake-ups a second
#: (issue #13). A poll in progress counts as activity for ``max_poll_interval_ms``: the group
#: keeps the member however long it waits.
IDLE_POLL_MS = 30_000


async def run(settings: ConsoleSettings, projector: Projector, ready: asyncio.Event) -> None:
    """Consume until cancelled; a batch's offsets are committed after its transaction commits, so
    a crash replays at most the batches not committed yet, which the store skips by event id.

    The commit of one batch's offsets runs while the next batch is fetched and projected (a round
    trip to the broker less per batch, which is most of a small batch's time on a busy machine);
    the next commit waits for it, and a failed one stops the loop like any other failure."""
    consumer = make_consumer(settings, *TOPICS, group_id=settings.console_consumer_group)
    await consumer.start()
    committing: asyncio.Future[None] | None = None
    try:
        while True:
            wait_ms = IDLE_POLL_MS if ready.is_set() else JOINING_POLL_MS
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=500)
            if consumer.assignment():
                ready.set()
            records = [r for rs in batch.values() for r in rs]
            if not records:
                continue
            await projector.handle(records)
            if committing is not None:
                await committing
            # Offsets named now: the consumer's own positions may move on before the commit runs.
            offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs}
            committing = asyncio.ensure_future(consumer.commit(offsets))
    finally:
        if committing is not None and not committing.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await committing
        await consumer.stop()


async def rebuild(settings: ConsoleSettings, store: PostgresStore, projector: Projector) -> int:
    """Drop the projection and read every projected topic from its beginning into it again."""
    await store.migrate()
    await store.drop()
    consumer: AIOKafkaConsumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = [tp for tps in (await topic_partitions(consumer, TOPICS)).values() for tp in tps]

        async def project(records: list[Any]) -> None:
            await projector.handle(records)

        await read_to_end(consumer, tps, project)
    finally:
        await consumer.stop()
    count = await store.event_count()
    log.info("console projection rebuilt: %d events", count)
    return count
