"""The services' asyncio Redis client, with automatic pipelining of concurrent commands.

The workers handle a batch of records with bounded concurrency (``stream.BatchProcessor``), so
under load many handlers await a Redis command in the same event-loop tick. With a plain
``redis.asyncio.Redis`` each of them checks a connection out, writes, reads and checks it back
in on its own. ``AutoPipelineRedis`` queues every command awaited in one tick and sends them as
ONE non-transactional pipeline on the next tick; each caller gets its own reply or its own error.

    redis = redis_client(url, autopipeline=settings.redis_autopipeline, socket_timeout=5)

What holds (tests/integration/runtime/test_redis_client.py):

- Replies are parsed by the client's own ``parse_response`` (the same response callbacks as
  without batching), so every command returns what it returned before.
- A command's own error (WRONGTYPE, NOSCRIPT, a Lua error: a ``ResponseError``) reaches only its
  caller; ``Script`` objects (``register_script``) still load themselves on NOSCRIPT, since they
  call the client, not a pipeline.
- A failure of the batch as a whole (``ConnectionError``, ``TimeoutError``, anything raised
  while it was sent or read) reaches every caller of that batch as that same exception object,
  so ``retry.TRANSIENT`` still recognises it. redis-py's own retry policy (the connection's
  ``retry``) applies to the batch as it does to a lone command: a retried batch is re-sent whole.
- Cancellation: a caller cancelled before its batch is sent (within a tick or two of queueing)
  is dropped from the batch: its command is NOT sent. A caller cancelled after the batch was sent
  does not stop it: its command runs and its reply is discarded. The other callers never see
  either.
- Blocking and connection-state commands (``DIRECT``, and ``XREAD``/``XREADGROUP`` with
  ``BLOCK``) never join a batch: they are sent as before. ``pipeline()`` and transactions
  (MULTI/EXEC, WATCH) are redis-py's own ``Pipeline``, untouched.
- At most ``max_batch`` commands go in one pipeline (the next command opens another batch), and
  a lone command is sent as a plain command: its cost is one extra loop hop, nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

if TYPE_CHECKING:
    _RedisBase = Redis[bytes]
else:
    _RedisBase = Redis

#: Commands sent on their own, never batched: they block the connection they run on, or change
#: its state (so they must not share a pipeline, and a pipeline's connection must not keep it).
DIRECT = frozenset(
    {
        "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
        "WAIT", "WAITAOF", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE",
        "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR", "CLIENT", "SELECT", "AUTH", "HELLO", "RESET",
        "QUIT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "READONLY", "READWRITE",
        "SHUTDOWN", "SYNC", "PSYNC", "REPLICAOF", "SLAVEOF", "DEBUG", "HIMPORT",
    }
)  # fmt: skip
#: Sent directly when their arguments hold ``BLOCK``.
BLOCKING_WITH_OPTION = frozenset({"XREAD", "XREADGROUP"})
MAX_BATCH = 512


def _name(arg: object) -> str:
    text = arg.decode() if isinstance(arg, (bytes, bytearray)) else str(arg)
    # redis-py names some commands with their subcommand ("CLIENT SETNAME"): the first word counts
    return text.split(" ", 1)[0].upper()


def goes_direct(args: tuple[Any, ...]) -> bool:
    """True when the command ``args`` (as ``execute_command`` gets them) must not be batched."""
    name = _name(args[0])
    if name in DIRECT:
        return True
    if name in BLOCKING_WITH_OPTION:
        return any(isinstance(a, (str, bytes)) and _name(a) == "BLOCK" for a in args[1:])
    return False


class _Batch:
    """Commands queued in one tick: ``(args, options, future)`` each."""

    __slots__ = ("items", "loop", "sealed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self.sealed = False


class AutoPipelineRedis(_RedisBase):
    """``redis.asyncio.Redis`` whose commands awaited in one event-loop tick go as one pipeline."""

    max_batch = MAX_BATCH

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: _Batch | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.single_connection_client or goes_direct(args):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        batch = self._open
        if batch is not None and not batch.sealed and batch.loop is loop:
            batch.items.append((args, options, future))
            if len(batch.items) >= self.max_batch:
                batch.sealed = True
            return await future
        # The first command of a tick opens a batch and yields once: every task ready in this
        # tick may add to it. Alone then, it is sent as a plain command from this task (no batch
        # task: a lone command costs one loop hop); else the batch goes to a task of its own
        # (sent on the next hop, taking what comes meanwhile too), so that no caller's
        # cancellation can cut it short.
        batch = self._open = _Batch(loop)
        batch.items.append((args, options, future))
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            future.cancel()
            self._hand_off(batch)
            raise
        if len(batch.items) == 1:
            self._seal(batch)
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        self._hand_off(batch)
        return await future

    def _seal(self, batch: _Batch) -> None:
        batch.sealed = True
        if self._open is batch:
            self._open = None

    def _hand_off(self, batch: _Batch) -> None:
        # the batch stays open until the task's first step: commands of the next tick join it
        task = batch.loop.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        self._seal(batch)
        # callers cancelled before now are dropped: their commands are never sent
        items = [item for item in batch.items if not item[2].done()]
        if not items:
            return
        try:
            if len(items) == 1:
                args, options, _ = items[0]
                replies: list[Any] = [await self._direct(*args, **options)]
            else:
                replies = await self._pipelined([(args, options) for args, options, _ in items])
        except asyncio.CancelledError:
            for _, _, future in items:
                future.cancel()
            raise
        except Exception as exc:  # the batch as a whole failed: every caller sees why
            for _, _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), reply in zip(items, replies, strict=True):
            if future.done():  # cancelled while the batch was in flight: its reply is dropped
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipelined(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        """One write of every command, then each reply read (a ``ResponseError`` is its reply).
        What ``Pipeline.execute(raise_on_error=False)`` does without MULTI, minus its own
        bookkeeping (WATCH state, scripts, a Pipeline object per batch): measured cheaper."""
        pool = self.connection_pool
        conn = await pool.get_connection()
        try:
            replies: list[Any] = await conn.retry.call_with_retry(
                lambda: self._round_trip(conn, commands),
                lambda error, failures: conn.disconnect(error=error, failure_count=failures),
                with_failure_count=True,
            )
            return replies
        except BaseException:
            # replies may be left unread (cancelled, or a reply callback raised): a connection
            # out of step with its replies never goes back to the pool as it is
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def _round_trip(self, conn: Any, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        await conn.send_packed_command(conn.pack_commands([args for args, _ in commands]))
        replies: list[Any] = []
        for args, options in commands:
            try:
                # the client's own parsing: the same response callbacks as an unbatched command
                # (``**options`` is a copy, so a retried batch parses as the first try did)
                replies.append(await self.parse_response(conn, args[0], **options))
            except ResponseError as exc:
                replies.append(exc)
        return replies

    async def _direct(self, *args: Any, **options: Any) -> Any:
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        # batches already queued are sent (or fail) before the pool goes away
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await super().aclose(close_connection_pool)  # type: ignore[misc]  # stubs predate aclose


def redis_client(url: str, *, autopipeline: bool = True, **options: Any) -> Redis[bytes]:
    """The services' asyncio client for ``url``: ``AutoPipelineRedis`` unless ``autopipeline``
    is off (``REDIS_AUTOPIPELINE=false``: a plain ``redis.asyncio.Redis``)."""
    cls: Callable[..., Redis[bytes]] = (AutoPipelineRedis if autopipeline else Redis).from_url
    return cls(url, **options)
