"""Every override of Faust's (and aiokafka's) private internals, fenced in this one module.

These subclass private Faust classes and set private aiokafka attributes, so they hold for the
pinned versions only: ``check_versions`` refuses to start a worker on any other pair (raise the
pins in ``pyproject.toml`` only after re-running ``tests/unit/test_faust_commit.py``,
``tests/unit/test_fetch_wait.py`` and the chaos suite).

- ``_InLoopConsumerThread``: Faust runs its aiokafka consumer in a thread of its own and hands
  every fetch, commit and rebalance callback across loops; this runs the same service in the
  worker's loop (``KAFKA_CONSUMER_IN_LOOP``).
- ``_Consumer._new_offset``: faust-streaming/faust#606 (commits over a message still in flight
  with agent concurrency > 1).
- ``_ConsumerThread``: Faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer and
  offers no setting for it (nor for ``consumer_timeout_ms``, the fetch routine's poll); the
  long poll of a caught-up consumer is ``aiokafka_compat``'s, as for the plain consumers.
- ``_Consumer.verify_all_partitions_active``: Faust's livelock check (every 2.5 commit intervals)
  yields to the loop before each assigned partition through mode's ``sleep(0)`` (a task and a
  timer each): about 45 loop wake-ups a second in an idle nurture worker, a third of its total.
- ``_Consumer.restart_stalled_partitions`` (run by the livelock check): a partition whose records
  wait while nothing of it is queued or processed is put back into the fetches and sought to its
  next undelivered offset (``leadpipe.runtime.delivery``); Faust only warns, after 300 s.
- ``_Consumer.getmany`` and ``_Consumer._wake_record_wait``: Faust's drain loop asks for records
  with a fixed 1 s timeout (a dozen loop wake-ups a second in an idle worker); in the worker's
  loop it waits as long as the fetch's long poll, and a partition becoming active again wakes it.
- ``_InLoopConsumerThread._fetch_records``: a wait whose partition set Faust empties meanwhile
  (pausing every partition) no longer hands back, and so loses, every partition's records.
- ``_Consumer._commit_handler``, ``QuietMonitor``: Faust's commit tick and its monitor's sampler
  run every second in an idle worker; the commit now waits for an acknowledgement, and the
  sampler (averages for Faust's web views, which the workers do not serve) is gone.
- ``_Producer``: Faust makes its producer idempotent only inside transactions.
- ``take_back_logging``: Faust's worker configures logging with ``disable_existing_loggers``.
- ``take_batches``: Faust's ``Stream.take_events`` wakes every ``within`` seconds whether or not
  a record arrived (50 times a second per batch agent at our 20 ms window: about 2 % of a core
  per idle worker), and acks a batch even when its processing raised.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import AsyncGenerator
from typing import Any

import aiokafka
import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from leadpipe.runtime.aiokafka_compat import long_poll_when_caught_up
from leadpipe.runtime.delivery import DeliveryWatch, PartitionView
from leadpipe.runtime.logs import setup_logging

log = logging.getLogger(__name__)

#: The versions these overrides were written and tested against (pinned in pyproject.toml).
PINNED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


class IncompatibleVersion(RuntimeError):
    """faust-streaming or aiokafka is not the version the overrides here were tested with."""


def check_versions(faust_version: str | None = None, aiokafka_version: str | None = None) -> None:
    """Refuses to run on versions other than ``PINNED`` (the private internals may have moved)."""
    found = {
        "faust-streaming": faust_version or faust.__version__,
        "aiokafka": aiokafka_version or aiokafka.__version__,
    }
    wrong = [f"{name} {found[name]} (expected {want})" for name, want in PINNED.items() if found[name] != want]
    if wrong:
        raise IncompatibleVersion(
            "leadpipe.runtime.faust_compat overrides private internals of: " + ", ".join(wrong)
            + "; re-check them against the new version before changing the pins"
        )  # fmt: skip


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes a fixed fetch_max_wait_ms=1500; aiokafka reads this at start(). Apps with
        # changelog tables keep Faust's value (table recovery was only ever tested with it).
        if not self.app.tables.changelog_topics:
            consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # type: ignore[attr-defined]
            consumer._consumer_timeout = self.app.fetch_routine_poll_ms / 1000  # type: ignore[attr-defined]
            long_poll_when_caught_up(consumer, self.app.fetch_idle_wait_ms,  # type: ignore[attr-defined]
                                     sessions=self.app.fetch_sessions)  # type: ignore[attr-defined]  # fmt: skip
        return consumer


class _InLoopConsumerThread(_ConsumerThread):
    """Faust's consumer "thread" run as a service in the worker's own event loop.

    Faust runs its aiokafka consumer in a thread with its own loop and hands every call across
    (fetches, commits, rebalance callbacks) through method queues: each handoff is a self-pipe
    write and a wake-up of the other loop, and both sides keep a one-second keep-alive timer.
    Here the same service runs in the caller's loop: a call is a plain await, and there is no
    thread to keep awake. The fetch, commit and rebalance code is Faust's own."""

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, thread_loop=kwargs.get("loop") or asyncio.get_event_loop(), **kwargs)

    async def start(self) -> None:
        self._thread_started.set()
        await self._default_start()

    # A service thread's children, futures and exit stacks are stopped by its thread, at its end,
    # and its stop waits for that: here there is no thread, so stop does it (mode's defaults).
    wait_for_shutdown = False

    async def _stop_children(self) -> None:
        await self._default_stop_children()

    async def _stop_futures(self) -> None:
        await self._default_stop_futures()

    async def _stop_exit_stacks(self) -> None:
        await self._default_stop_exit_stacks()

    async def stop(self) -> None:
        if self._started.is_set():
            await faust.Service.stop(self)
            await self.on_thread_stop()  # what the thread ran at its end: stops the aiokafka consumer
            self.set_shutdown()

    async def call_thread(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
        result = fun(*args, **kwargs)  # Faust hands over plain functions and coroutines alike
        return await result if inspect.isawaitable(result) else result

    async def cast_thread(self, fun: Any, *args: Any, **kwargs: Any) -> None:
        result = fun(*args, **kwargs)
        if inspect.isawaitable(result):
            self.add_future(result)

    @faust.Service.task
    async def _thread_keepalive(self) -> None:
        return  # no other loop to keep awake

    async def _fetch_records(
        self, consumer: aiokafka.AIOKafkaConsumer, active_partitions: Any, timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:  # fmt: skip
        # aiokafka reads an empty partition set as "every partition". Faust never asks with an
        # empty one, but it empties its set in place (pausing every partition, as a rebalance
        # does) while a wait is under way: the records that then arrived were all handed back,
        # none of them active, and Faust's getmany skipped them with the client's position
        # already past them (lost until a seek).
        view = None if active_partitions is None else _ActiveView(active_partitions)
        return await super()._fetch_records(consumer, view, timeout=timeout, max_records=max_records)  # type: ignore[arg-type]  # read as a set by aiokafka


class _ActiveView:
    """Faust's active partitions as aiokafka's ``fetched_records`` reads them (``if partitions
    and tp not in partitions``): the live set, changed in place during the wait, and empty
    meaning none."""

    __slots__ = ("tps",)

    def __init__(self, tps: Any) -> None:
        self.tps = tps

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.tps


class QuietMonitor(faust.Monitor):
    """Faust's monitor without its once-a-second sampler, which only averages events per second
    for Faust's web views (the workers serve none, ``web_enabled=False``); the per-event
    bookkeeping Faust's livelock check reads is kept. The sampler was one timer and about
    eight loop callbacks a second in every idle worker."""

    @faust.Service.task
    async def _sampler(self) -> None:
        return


class _Consumer(faust_aiokafka.Consumer):
    _acked_since_commit: asyncio.Event | None = None

    # -- the streams' wait for records (Faust's drain loop) ------------------------------------
    # Faust's drain loop asks the client for the records of its active partitions with a fixed
    # 1 s timeout, and goes round again when nothing came: a task, timers and a dozen loop
    # wake-ups a second in every idle worker. In the worker's own loop it waits as long as the
    # fetch's own long poll (``fetch_idle_wait_ms``) instead: records arriving end the wait at
    # once, as before. What the client does not announce is a partition becoming active again
    # (resumed, taken back after back-pressure, newly assigned) whose records it already holds:
    # the wait then saw only the partitions it was asked for, so each of those wakes the wait
    # (``_wake_record_wait``) and the client's loop looks again with the current set (Faust's
    # active set is one set object, changed in place, that the client's wait reads).
    def _in_loop_fetcher(self) -> Any | None:
        thread = getattr(self, "_thread", None)
        if not isinstance(thread, _InLoopConsumerThread):
            return None  # Faust's thread: its own loop, its own 1 s timeout
        return getattr(getattr(thread, "_consumer", None), "_fetcher", None)

    def _wake_record_wait(self) -> None:
        fetcher = self._in_loop_fetcher()
        for waiter in list(getattr(fetcher, "_fetch_waiters", ())):
            if not waiter.done():
                waiter.set_result(None)

    def _set_active_tps(self, tps: Any) -> Any:
        active = super()._set_active_tps(tps)
        self._wake_record_wait()
        return active

    def resume_partitions(self, tps: Any) -> None:
        super().resume_partitions(tps)
        self._wake_record_wait()

    def on_buffer_drop(self, tp: TP) -> None:
        was_held_back = tp in self._buffered_partitions
        super().on_buffer_drop(tp)
        if was_held_back:
            self._wake_record_wait()

    def resume_flow(self) -> None:
        super().resume_flow()
        self._wake_record_wait()

    def _ack_event(self) -> asyncio.Event:
        if self._acked_since_commit is None:
            self._acked_since_commit = asyncio.Event()
        return self._acked_since_commit

    def ack(self, message: Any) -> bool:
        acked = super().ack(message)
        if acked:
            self._ack_event().set()
        return bool(acked)

    @faust.Service.task
    async def _commit_handler(self) -> None:
        # Faust's commit tick runs every commit interval whether or not anything was acknowledged
        # (one timer and a commit check a second in an idle worker). This one commits at the
        # same pace while records are acknowledged, and sleeps without a timer while none are.
        interval = self.commit_interval
        acked = self._ack_event()
        await self.sleep(interval)
        while not self.should_stop:
            await self.wait(acked)  # type: ignore[arg-type]  # mode waits on any .wait()
            if self.should_stop:
                return
            acked.clear()
            await self.commit()
            if self._uncommitted_acks():  # e.g. another commit was under way: try again
                acked.set()
            await self.sleep(interval)

    def _uncommitted_acks(self) -> bool:
        try:
            return any(self._new_offset(tp) is not None for tp in self.assignment())
        except Exception:  # the consumer is stopping: its stop commits what it can
            return False

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        # Apps with changelog tables keep Faust's thread (table recovery was only tested with it).
        if getattr(self.app, "consumer_in_loop", False) and not self.app.tables.changelog_topics:
            return _InLoopConsumerThread(self, loop=self.loop, beacon=self.beacon)
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _new_offset(self, tp: TP) -> int | None:
        # faust-streaming/faust#606: with agent concurrency > 1 Faust commits over a message still
        # being processed when it sits right at the committed offset (its head-gap check is off
        # by one), and a crash then loses it (found by the chaos suite: a notification request
        # never sent, its ledger entry stuck at "sending"). The committed offset is the next
        # one to process: nothing may be committed until that one is acked (or a known gap).
        # Apps with changelog tables keep Faust's own rule: table recovery was not shown to work
        # with this one (the table-recovery contract test, already flaky here, did worse).
        if self.app.tables.changelog_topics:
            return super()._new_offset(tp)
        committed = self._committed_offset[tp]
        acked = self._acked[tp]
        if committed is not None and acked and min(acked) > committed and not self._gap[tp].overlaps(committed):
            return None
        return super()._new_offset(tp)

    async def verify_all_partitions_active(self) -> None:
        # The same checks as Faust's (each one is synchronous and cheap: it reads the partition's
        # offsets and last-event times, and logs a stalled one), without Faust's mode-``sleep(0)``
        # before each partition: a task, a timer and loop wake-ups per assigned partition every
        # 2.5 s, which made this diagnostic a third of an idle worker's loop wake-ups. Then the
        # partitions that stopped delivering are restarted.
        now = time.monotonic()
        for tp in self.assignment():
            if self.should_stop:
                return
            self.verify_event_path(now, tp)
        await self.restart_stalled_partitions(now)

    # -- every assigned partition keeps delivering (leadpipe.runtime.delivery) ---------------
    _delivery_watch: DeliveryWatch | None = None
    _handed_out: dict[TP, int] | None = None

    async def getmany(self, timeout: float) -> AsyncGenerator[tuple[TP, Any], None]:
        # Remembers the last offset of each partition handed to the streams' delivery loop:
        # records the client returned past it and never handed out are a stalled delivery.
        handed = self._handed_out
        if handed is None:
            handed = self._handed_out = {}
        if self._in_loop_fetcher() is not None:
            timeout = max(timeout, getattr(self.app, "fetch_idle_wait_ms", 0) / 1000)
        async for tp, message in super().getmany(timeout):
            handed[tp] = message.offset
            yield tp, message

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if self._handed_out is not None:
            for tp in revoked:
                self._handed_out.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    def partition_views(self) -> list[PartitionView]:
        """Each assigned partition as the delivery watch needs it (reads only; see ``delivery``)."""
        app = self.app
        held_all = bool(app.rebalancing or not self.flow_active or app.in_recovery or self.should_stop)
        try:
            client = self._thread._ensure_consumer()
            assignment = client._fetcher._subscriptions.subscription.assignment
            buffered_records = client._fetcher._records
        except Exception:  # not started, or between assignments
            return []
        if assignment is None:
            return []
        handed = self._handed_out or {}
        tp_index = app.topics._tp_index  # type: ignore[attr-defined]  # the conductor: partition -> channels
        busy_tps = {message.tp for message in list(self._unacked_messages)}
        views = []
        for tp in self.assignment():
            if tp.topic in app.tables.changelog_topics:
                continue
            aiotp = TopicPartition(tp.topic, tp.partition)
            try:
                state = assignment.state_value(aiotp)
            except Exception:
                continue
            if state is None:
                continue
            queued = any(channel.queue.qsize() for channel in tp_index.get(tp, ()))
            last = handed.get(tp)
            views.append(PartitionView(
                tp=tp,
                position=state.position if state.has_valid_position else None,
                highwater=state.highwater,
                delivered=None if last is None else last + 1,
                buffered=aiotp in buffered_records,
                busy=queued or tp in busy_tps,
                held=held_all or state.paused or tp in self._paused_partitions,
            ))  # fmt: skip
        return views

    async def restart_stalled_partitions(self, now: float) -> None:
        """Puts back into the fetches, and seeks to its next undelivered offset, each partition
        stuck for ``delivery_stall_s``; logged with what the worker saw, and counted."""
        watch = self._delivery_watch
        if watch is None:
            watch = self._delivery_watch = DeliveryWatch(getattr(self.app, "delivery_stall_s", 30.0))
        try:
            stalled = watch.stalled(now, self.partition_views())
        except Exception:  # a diagnostic: never the reason a worker stops
            log.exception("the delivery watch failed; it runs again at the next check")
            return
        for view in stalled:
            tp: TP = view.tp  # type: ignore[assignment]  # partition_views gives Faust's TP
            log.warning("%s partition %d stopped delivering for %.0f s with records waiting and none of them "
                        "being processed (%s): restarting its delivery at offset %s",
                        tp.topic, tp.partition, watch.stall_s, view.describe(), view.next_offset)  # fmt: skip
            count = getattr(self.app, "delivery_restarts", None)
            if count is not None:
                count(tp.topic, tp.partition)
            self._buffered_partitions.discard(tp)
            self._get_active_partitions().add(tp)
            self._wake_record_wait()
            if view.next_offset is not None:
                try:
                    await self.seek_wait({tp: view.next_offset})
                except Exception as exc:  # tried again if it is still stuck after another stall_s
                    log.warning("%s partition %d: seek to %s failed: %r", tp.topic, tp.partition, view.next_offset, exc)


class _Producer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Any:
        # Faust makes its producer idempotent only inside transactions; ours always is (acks=all),
        # unless KAFKA_ENABLE_IDEMPOTENCE=false for a broker that cannot (InitProducerId refused).
        acks = getattr(self.app, "acks", "all")
        idempotent = getattr(self.app, "enable_idempotence", True) and acks == "all"
        return {**super()._settings_extra(), "acks": acks if acks == "all" else int(acks),
                "enable_idempotence": idempotent}  # fmt: skip


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


_FAUST_LEVELS = {"CRITICAL": "crit", "ERROR": "error", "WARNING": "warn", "WARN": "warn", "INFO": "info",
                 "DEBUG": "debug"}  # fmt: skip


def faust_loglevel(level: str) -> str:
    """Our ``LOG_LEVEL`` (Python's names) as Faust's ``--loglevel`` takes it (``WARNING`` -> ``warn``)."""
    try:
        return _FAUST_LEVELS[level.strip().upper()]
    except KeyError:
        raise ValueError(f"log_level: {level!r} is not one of {', '.join(_FAUST_LEVELS)}") from None


def take_back_logging(service: str, *, level: str, json_logs: bool) -> None:
    """Faust's worker configures logging at start (``disable_existing_loggers``, its own handlers):
    put the redacting handler back and re-enable every logger it disabled. Called by the runtime
    when a worker's agents start."""
    setup_logging(service, level=level, json_logs=json_logs)
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = False


def take_batches(stream: Any, max_records: int, within_s: float) -> AsyncGenerator[list[Any], None]:
    """A Faust stream's events in batches of at most ``max_records``: what arrived in a window of
    ``within_s``. An idle stream sleeps until its next record (no timer runs while nothing comes);
    a window then closes where Faust's polling one would have (a whole number of ``within_s``
    after the previous batch was handed out), so a record waits no longer than with
    ``take_events``, and under load a batch comes every ``within_s`` as before. A full batch is
    handed out at once. A batch's events are acknowledged when the consumer asks for the next
    batch (its processing returned), never when it raised or the stream stopped mid-batch: those
    records are read again after a restart or rebalance (at-least-once)."""
    batches = _take_batches(stream, max_records, within_s)
    stream._active_agens.add(batches)  # Faust closes it when the stream stops (as its own take_*)
    return batches


async def _take_batches(stream: Any, max_records: int, within_s: float) -> AsyncGenerator[list[Any], None]:
    loop = asyncio.get_running_loop()
    events: list[Any] = []
    arrived, full, room = asyncio.Event(), asyncio.Event(), asyncio.Event()
    room.set()

    # Faust runs every record of the stream through its processors in a background drainer;
    # this one collects them. It waits (holding the drainer, and so the next records) while a
    # batch is being processed or the buffer is full.
    async def collect(value: Any) -> Any:
        await room.wait()
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_batches: a record arrived without its Faust event")
        events.append(event)
        arrived.set()
        if len(events) >= max_records:
            room.clear()
            full.set()
        return value

    acks_before = stream.enable_acks
    stream.enable_acks = False  # acked here, once processed
    stream.add_processor(collect)
    stream._enable_passive(aiter(stream.channel))
    try:
        handed_out = loop.time()
        while not stream.should_stop:
            # (mode's ``wait`` reports a timeout as "stopped": ``should_stop`` is what tells.)
            if not events:
                await stream.wait(arrived)
            now = loop.time()
            close = handed_out + max(1, math.ceil((now - handed_out) / within_s)) * within_s if within_s > 0 else now
            if not full.is_set() and close > now:
                await stream.wait(full, timeout=close - now)
            if not events:  # stopping (the loop ends), or woken with nothing to hand out
                continue
            room.clear()
            batch = list(events)
            yield batch
            events.clear()
            arrived.clear()
            full.clear()
            for event in batch:
                await stream.ack(event)
            handed_out = loop.time()
            room.set()
    finally:
        stream.enable_acks = acks_before
        stream._processors.remove(collect)
