"""Publish with the broker's ack, or spool durably when the broker is unreachable.

Nothing accepted is lost: the caller answers 202 only after ``publish`` returned, i.e. the
broker acked (acks=all) or the record was fsync'd to the spool. While the spool holds
records every new record is spooled too (so a lead's events keep their order), and a
background task replays the spool oldest-first. A record whose send failed after it was
handed to the client may have reached the broker anyway (the ack was lost); those are
flagged ``maybe_sent`` and, before replay, looked up on the topic by event id, so the
topic ends up with each event exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from leadpipe.runtime.kafka import topic_partitions
from schemas.codec import Record
from services.ingest.adapters.metrics import IngestMetrics
from services.ingest.adapters.spool import SpooledRecord, SqliteSpool

log = logging.getLogger(__name__)

#: How far back to look for maybe-sent records when the last acked offset is unknown.
LOOKBACK_RECORDS = 50_000


class Outcome(StrEnum):
    ACKED = "acked"
    SPOOLED = "spooled"


Item = tuple[str, Record, str]  # topic, record, event id


class Publisher:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        spool: SqliteSpool,
        metrics: IngestMetrics,
        *,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        replay_batch: int = 500,
        retry_s: float = 0.5,
    ):
        self.producer = producer
        self.spool = spool
        self.metrics = metrics
        self.consumer_factory = consumer_factory
        self.replay_batch = replay_batch
        self.retry_s = retry_s
        self.connected = False
        self.spooling = spool.depth > 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._acked: dict[tuple[str, int], int] = {}
        metrics.spool_depth.set_function(lambda: spool.depth)
        metrics.spool_oldest_age.set_function(spool.oldest_age_s)

    async def start(self) -> None:
        with contextlib.suppress(KafkaError, OSError):
            await self.producer.start()
            self.connected = True
        self._task = asyncio.create_task(self._run(), name="ingest-spool-replay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(KafkaError, OSError):
            await self.producer.stop()

    async def publish(self, items: list[Item]) -> list[Outcome]:
        """Each item's outcome; raises only if the spool itself cannot be written (disk full)."""
        if not items:
            return []
        async with self._lock:
            if self.spooling or not self.connected:
                await self._spool([(t, r, e, False) for t, r, e in items])
                return [Outcome.SPOOLED] * len(items)
        futures: list[asyncio.Future[Any] | BaseException] = []
        for topic, record, _ in items:
            try:
                futures.append(await self.producer.send(topic, record.value, key=record.key, headers=record.headers))
            except (KafkaError, OSError) as exc:
                futures.append(exc)
        results = await asyncio.gather(
            *[f for f in futures if not isinstance(f, BaseException)], return_exceptions=True
        )
        it = iter(results)
        outcomes: list[Outcome] = []
        failed: list[tuple[str, Record, str, bool]] = []
        for (topic, record, eid), fut in zip(items, futures, strict=True):
            result: Any = fut if isinstance(fut, BaseException) else next(it)
            if isinstance(result, BaseException):
                # Handed to the client and then failed: the broker may have it without our ack.
                failed.append((topic, record, eid, not isinstance(fut, BaseException)))
                outcomes.append(Outcome.SPOOLED)
            else:
                self._note_ack(topic, result)
                outcomes.append(Outcome.ACKED)
        if failed:
            log.warning("broker unreachable, spooling %d records", len(failed))
            async with self._lock:
                self.spooling = True
                await self._spool(failed)
        return outcomes

    def _note_ack(self, topic: str, meta: Any) -> None:
        tp = (topic, int(meta.partition))
        if meta.offset > self._acked.get(tp, -1):
            self._acked[tp] = int(meta.offset)

    async def _spool(self, rows: list[tuple[str, Record, str, bool]]) -> None:
        await asyncio.to_thread(self.spool.append, rows)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                if not self.connected:
                    await self.producer.start()
                    self.connected = True
                    log.info("connected to the broker")
                if self.spool.depth == 0:
                    async with self._lock:
                        if self.spool.depth == 0:
                            self.spooling = False
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 1.0)
                    continue
                if not await self._replay_once():
                    await asyncio.sleep(self.retry_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("spool replay: broker not reachable yet (%s)", exc)
                await asyncio.sleep(self.retry_s)

    async def _replay_once(self) -> bool:
        rows = await asyncio.to_thread(self.spool.head, self.replay_batch)
        maybe = [r for r in rows if r.maybe_sent]
        present = await self._present_on_topic(maybe) if maybe else set()
        to_send = [r for r in rows if r.event_id not in present]
        futures = [
            await self.producer.send(r.topic, r.record.value, key=r.record.key, headers=r.record.headers)
            for r in to_send
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        done = [r.seq for r in rows if r.event_id in present]
        failed = 0
        for row, result in zip(to_send, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
            else:
                self._note_ack(row.topic, result)
                done.append(row.seq)
        if failed:
            # These may have reached the broker; mark them so the next pass looks first.
            await asyncio.to_thread(self.spool.mark_maybe_sent, [r.seq for r in to_send if r.seq not in done])
        await asyncio.to_thread(self.spool.delete, done)
        if done:
            log.info("replayed %d spooled records (%d skipped: already on the topic)", len(done), len(present))
        return failed == 0

    async def _present_on_topic(self, rows: list[SpooledRecord]) -> set[str]:
        """Event ids among ``rows`` already on their topics (read from the last acked offset on)."""
        wanted = {r.event_id for r in rows}
        topics = {r.topic for r in rows}
        found: set[str] = set()
        consumer = self.consumer_factory()
        await consumer.start()
        try:
            tps = [tp for found in (await topic_partitions(consumer, topics)).values() for tp in found]
            if not tps:
                return found
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            pending = set()
            for tp in tps:
                start = self._acked.get((tp.topic, tp.partition))
                start = start + 1 if start is not None else max(begins[tp], ends[tp] - LOOKBACK_RECORDS)
                if start < ends[tp]:
                    consumer.seek(tp, start)
                    pending.add(tp)
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=1000)
                for tp, records in batches.items():
                    for rec in records:
                        for name, value in rec.headers or ():
                            if name == "ce_id" and value.decode(errors="replace") in wanted:
                                found.add(value.decode())
                    if records and records[-1].offset + 1 >= ends[tp]:
                        pending.discard(tp)
                if not batches:
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
        finally:
            await consumer.stop()
        return found

    async def erase_spooled(self, keys: list[bytes]) -> int:
        """Removes a person's records (by record key) from the spool before they reach the broker."""
        return await asyncio.to_thread(self.spool.erase_keys, keys)

    async def ready(self) -> dict[str, bool]:
        return {"broker": self.connected and not self.spooling, "spool": self.spool.writable()}
