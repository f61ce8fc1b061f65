"""Two replicas finding the keyspace unbuilt at once: one rebuilds, the other waits for its marker.

(Two replicas that each overwrote the other's rebuild token never finished: the notifier's two
containers rebuilt 91 times each in the compose stack until the lease.)"""

from __future__ import annotations

import asyncio

from leadpipe.runtime.rebuild import RebuildGuard


class LeasedKeyspace:
    """The adapters' contract: a rebuild lease taken with SET NX, the marker set by its holder."""

    def __init__(self) -> None:
        self.built = False
        self.lease: str | None = None
        self.rebuilds: list[str] = []

    async def is_built(self) -> bool:
        return self.built

    def rebuild_as(self, replica: str):
        async def rebuild_once() -> bool:
            if self.lease is not None:
                return False
            self.lease = replica
            self.rebuilds.append(replica)
            await asyncio.sleep(0.05)  # reading the topics
            self.built, self.lease = True, None
            return True

        return rebuild_once


async def test_two_replicas_rebuild_once_between_them_and_both_end_built():
    keyspace = LeasedKeyspace()
    guards = [
        RebuildGuard(
            service="svc", source="t", is_built=keyspace.is_built, rebuild=keyspace.rebuild_as(name), retry_base_s=0.01
        )
        for name in ("a", "b")
    ]
    await asyncio.wait_for(asyncio.gather(*(g.ensure_built() for g in guards)), timeout=5)
    assert keyspace.built and len(keyspace.rebuilds) == 1
