"""Counts the data-key store's round trips on the two hot paths of crypto-shredding, for N new
people: ingest publishing one capture per request, and a worker consuming batches of those
captures and sealing a state per lead (scoring's state log). Reports the Redis commands run
(``INFO commandstats``) and the round trips that blocked the event loop (the synchronous
client's calls) against those that did not (the asyncio client's).

    .venv/bin/python -m bench.keystore_trips --people 200 --batch 50

It starts its own redis-server and stops it. Run it from another checkout (``PYTHONPATH``) to
compare: it uses only what both sides have (a side without the async client reports none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import redis
from prometheus_client import CollectorRegistry

from leadpipe.devstack.processes import free_port, start_redis
from leadpipe.runtime import keystore
from leadpipe.runtime.keystore import KeyStoreSettings, keyring_from
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.stream import BatchProcessor, EventProcessor, RawMessage
from schemas import encode, new_event
from schemas.envelope import Envelope
from schemas.lead_captured.v1 import LeadCaptured
from schemas.pii import Keyring, use_keyring
from services.ingest import publishing
from services.scoring.adapters.state_log import StateLog
from services.scoring.domain.lead import new_lead
from tests.samples import events

TOPIC = "lead.captured.v1"


class Counted:
    """Wraps the keyring's synchronous client: every call is a round trip that blocked the loop."""

    def __init__(self, ring: Keyring):
        self.blocking = 0
        self.fetches = 0
        store: Any = ring.store
        client = store.redis
        original = client.execute_command

        def counted(*args: Any, **kw: Any) -> Any:
            self.blocking += 1
            return original(*args, **kw)

        client.execute_command = counted
        fast = getattr(ring, "prefetch_store", None)
        if fast is not None:
            fetch = fast.fetch

            async def counted_fetch(*args: Any, **kw: Any) -> Any:
                self.fetches += 1
                return await fetch(*args, **kw)

            fast.fetch = counted_fetch


def commands(client: redis.Redis[bytes]) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def captures(n: int, tag: str) -> list[LeadCaptured]:
    template = next(e for e in events() if e.type == "dev.leadpipe.lead.captured").data
    out = []
    for i in range(n):
        identity = template.identity.model_copy(update={"email": f"{tag}{i}@example.com", "phone": None})
        out.append(template.model_copy(update={"identity": identity}))
    return out


class Item:
    def __init__(self, payload: LeadCaptured, key: str):
        self.payload, self.key = payload, key


async def ingest(people: Sequence[LeadCaptured]) -> None:
    async def publish(records: Sequence[Any]) -> list[str]:
        return ["sent" for _ in records]

    noop = SimpleNamespace(labels=lambda *a: SimpleNamespace(inc=lambda *a: None))
    deps: Any = SimpleNamespace(settings=SimpleNamespace(kafka_max_record_bytes=1_000_000),
                                publisher=SimpleNamespace(publish=publish), metrics=SimpleNamespace(published=noop))  # fmt: skip
    for i, p in enumerate(people):
        await publishing.publish(deps, [Item(p, f"k{i}")], "forms/demo")


class Producer:
    async def send(self, topic: str, value: bytes | None, key: bytes) -> Any:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class ScoringLike:
    """Decodes the batch (the runtime) and appends a state per lead (scoring's state log)."""

    def __init__(self) -> None:
        self.seen: list[Envelope[Any]] = []
        self.log = StateLog(Producer(), "scoring.state.v1")

    def key(self, event: Envelope[Any]) -> str | None:
        return None

    async def begin(self, batch: Sequence[Envelope[Any]]) -> None:
        self.seen = []

    async def handle(self, event: Envelope[Any]) -> None:
        self.seen.append(event)

    async def commit(self) -> None:
        await self.log.append([new_lead(f"ld_{e.subject}", e.data.captured_at) for e in self.seen])

    async def abandon(self) -> None:
        self.seen = []


async def worker(records: Sequence[Any], batch: int) -> None:
    stage = StageMetrics("scoring", CollectorRegistry())

    async def flush() -> None:
        return None

    publisher: Any = SimpleNamespace(flush=flush)
    proc = BatchProcessor(EventProcessor(service="scoring", metrics=stage, publisher=publisher), ScoringLike(),
                          {TOPIC: LeadCaptured}, retry="batch")  # fmt: skip
    msgs = [RawMessage(TOPIC, 0, i, r.key, r.value, r.headers) for i, r in enumerate(records)]
    for start in range(0, len(msgs), batch):
        await proc.process(msgs[start : start + batch])


def measure(name: str, ring: Keyring, client: redis.Redis[bytes], run: Any) -> dict[str, Any]:
    before = commands(client)
    counted = Counted(ring)
    close = getattr(keystore, "close_keyring", None)

    async def go() -> None:
        try:
            await run()
        finally:
            if close is not None:
                await close()  # the async client lives in this loop

    asyncio.run(go())
    after = commands(client)
    used = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0) and k not in ("info",)}
    return {"path": name, "blocking_round_trips": counted.blocking, "async_round_trips": counted.fetches,
            "redis_commands": used}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_redis(port, Path(tmp) / "data", Path(tmp) / "redis.log", appendonly=False)
        try:
            url = f"redis://127.0.0.1:{port}/1"
            client = redis.Redis.from_url(url)
            settings = KeyStoreSettings(leadpipe_keystore_url=url, leadpipe_privacy_secret="bench")
            results = []
            # ingest: one capture per request, every person new
            ring = keyring_from(settings)
            assert ring is not None
            use_keyring(ring)
            results.append(measure("ingest: publish 1 capture per request", ring, client,
                                   lambda: ingest(captures(args.people, "a"))))  # fmt: skip
            # a worker in another process (a cold cache): batches of those people's captures
            writer = keyring_from(settings)
            assert writer is not None
            records = [encode(new_event(p, source="/bench", subject=f"s{i}"), keyring=writer)
                       for i, p in enumerate(captures(args.people, "b"))]  # fmt: skip
            ring = keyring_from(settings)
            assert ring is not None
            use_keyring(ring)
            results.append(measure(f"worker: decode + seal a state per lead, batches of {args.batch}", ring,
                                   client, lambda: worker(records, args.batch)))  # fmt: skip
            print(json.dumps({"people": args.people, "batch": args.batch, "results": results}, indent=2))
            client.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
