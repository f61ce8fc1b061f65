"""``leadpipe console rebuild`` (drop the read model and replay the topics into it) and
``leadpipe console hash-password`` (a hash for ``CONSOLE_PASSWORD_HASHES``)."""

from __future__ import annotations

import argparse
import asyncio
import getpass

from prometheus_client import CollectorRegistry


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("console", help="the sales console's read model")
    s = p.add_subparsers(dest="console_command", required=True)
    rb = s.add_parser("rebuild", help="drop the console's projection and rebuild it from the topics")
    rb.set_defaults(func=_rebuild)
    hp = s.add_parser("hash-password", help="print a password hash for CONSOLE_PASSWORD_HASHES")
    hp.set_defaults(func=_hash_password)


def _rebuild(_: argparse.Namespace) -> int:
    from services.console.adapters.metrics import ConsoleMetrics
    from services.console.adapters.postgres_store import PostgresStore
    from services.console.config import ConsoleSettings
    from services.console.handlers import Projector
    from services.console.projector import rebuild

    settings = ConsoleSettings()

    async def go() -> int:
        store = await PostgresStore(settings.database_url).connect()
        try:
            return await rebuild(
                settings,
                store,
                Projector(store, ConsoleMetrics(CollectorRegistry()), privacy_secret=settings.leadpipe_privacy_secret),
            )
        finally:
            await store.close()

    print(f"console: rebuilt the projection from {asyncio.run(go())} events")
    return 0


def _hash_password(_: argparse.Namespace) -> int:
    from services.console.domain.access import hash_password

    print(hash_password(getpass.getpass("password: ")))
    return 0
