"""The read model in PostgreSQL (psycopg 3): events by id, one row per lead, numbered migrations.

Idempotent by event id: an event already stored is skipped. A lead's row is re-folded from all of
its stored events whenever one of them arrives, so arrival order (live, replay, rebuild across
topics) does not change the row.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.console.domain.facts import trigger_of
from services.console.domain.projection import Fact, LeadRow, fold

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_LEAD_COLUMNS = [f.name for f in fields(LeadRow)]
_TABLES = ("console_leads", "console_events")
#: Migrations after which the projection is refilled from the topics (the first one creates it;
#: 003 adds a topic whose past events existing rows have not seen).
REFILL_AFTER = frozenset({1, 3})


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=lambda v: json.dumps(v, default=_json_default, sort_keys=True))


class PostgresStore:
    """The console's store. ``connect`` once; every write is one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.AsyncConnection[dict[str, Any]] | None = None
        # One connection, one transaction at a time: concurrent requests on a shared connection
        # would nest their transactions into each other's.
        self._lock = asyncio.Lock()

    async def connect(self) -> PostgresStore:
        self._conn = await psycopg.AsyncConnection.connect(self.url, row_factory=dict_row, autocommit=False)
        return self

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._conn is None:
            raise RuntimeError("PostgresStore.connect() first")
        return self._conn

    async def ping(self) -> bool:
        try:
            async with self._lock, self.conn.transaction():
                await self.conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    # -- schema ----------------------------------------------------------------------------
    async def migrate(self) -> list[int]:
        """Apply the numbered SQL files not applied yet (``NNN_name.sql``); returns those applied."""
        applied: list[int] = []
        async with self._lock, self.conn.transaction():
            await self.conn.execute(
                "CREATE TABLE IF NOT EXISTS console_migrations (version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            # One migrator at a time (a second console starting at once waits here).
            await self.conn.execute("SELECT pg_advisory_xact_lock(7461616)")
            cur = await self.conn.execute("SELECT version FROM console_migrations")
            done = {row["version"] for row in await cur.fetchall()}
            for path in sorted(MIGRATIONS.glob("*.sql")):
                match = re.match(r"(\d+)_", path.name)
                if match is None or int(match.group(1)) in done:
                    continue
                await self.conn.execute(path.read_text())
                await self.conn.execute(
                    "INSERT INTO console_migrations (version, name) VALUES (%s, %s)", (int(match.group(1)), path.name)
                )
                applied.append(int(match.group(1)))
        return applied

    async def drop(self) -> None:
        """Empty the projection (the rebuild's first step); migrations stay applied."""
        async with self._lock, self.conn.transaction():
            await self.conn.execute(f"TRUNCATE {', '.join(_TABLES)}")

    # -- projection ------------------------------------------------------------------------
    async def project(self, facts: Sequence[Fact]) -> int:
        """Store new facts and re-fold the leads they touch; returns how many were new.

        A handful of statements per batch, whatever its size: the projection keeps up by batching,
        not by being clever per event."""
        unique = list({f.event_id: f for f in facts}.values())
        # Pipeline mode: BEGIN goes with the first statement, the row upserts with COMMIT; a batch
        # waits on three or four round trips to the server instead of six or seven.
        async with self._lock, self.conn.pipeline(), self.conn.transaction():
            unlinked = [f.event_id for f in unique if f.lead_id is None]
            links: dict[str, str] = {}
            if unlinked:  # a capture or engagement: linked to the lead its scoring names
                cur = await self.conn.execute(
                    "SELECT DISTINCT ON (trigger_event_id) trigger_event_id, lead_id FROM console_events"
                    " WHERE trigger_event_id = ANY(%s) AND lead_id IS NOT NULL ORDER BY trigger_event_id, time, event_id",
                    (unlinked,),
                )
                links = {r["trigger_event_id"]: r["lead_id"] for r in await cur.fetchall()}
            rows = [
                (f.event_id, f.type, f.time, f.lead_id or links.get(f.event_id), trigger_of(f), f.summary,
                 _jsonb(dict(f.data)))
                for f in unique
            ]  # fmt: skip
            cur = await self.conn.execute(
                "INSERT INTO console_events (event_id, type, time, lead_id, trigger_event_id, summary, data)"
                # Binary parameters (%b): psycopg escapes every string of a text-format array with
                # a regex, which was a third of a batch's time with JSON payloads in them.
                " SELECT * FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::text[],"
                " %b::jsonb[]) ON CONFLICT (event_id) DO NOTHING RETURNING event_id, lead_id, trigger_event_id",
                [list(col) for col in zip(*rows, strict=True)] if rows else [[]] * 7,
            )
            inserted = await cur.fetchall()
            touched = {r["lead_id"] for r in inserted if r["lead_id"] is not None}
            triggers = [
                (r["trigger_event_id"], r["lead_id"]) for r in inserted if r["trigger_event_id"] and r["lead_id"]
            ]
            if triggers:
                await self.conn.execute(
                    "UPDATE console_events e SET lead_id = t.lead_id FROM unnest(%s::text[], %s::text[])"
                    " AS t(event_id, lead_id) WHERE e.event_id = t.event_id AND e.lead_id IS NULL",
                    [[t for t, _ in triggers], [lid for _, lid in triggers]],
                )
            if touched:
                new = {r["event_id"] for r in inserted}
                await self._refold(sorted(touched), {f.event_id: f.data for f in unique if f.event_id in new})
        return len(inserted)

    async def _refold(self, lead_ids: list[str], stored_now: dict[str, Any]) -> None:
        """``stored_now``: the payloads this transaction inserted, not read back (a JSON parse per
        event was a fifth of a batch's time)."""
        cur = await self.conn.execute(
            "SELECT event_id, type, time, lead_id, summary, CASE WHEN event_id = ANY(%b::text[]) THEN NULL ELSE data END"
            " AS data FROM console_events WHERE lead_id = ANY(%b::text[])",
            (list(stored_now), lead_ids),
        )
        by_lead: dict[str, list[Fact]] = {lid: [] for lid in lead_ids}
        for r in await cur.fetchall():
            data = r["data"] if r["data"] is not None else stored_now[r["event_id"]]
            by_lead[r["lead_id"]].append(Fact(r["event_id"], r["type"], r["time"], r["lead_id"], r["summary"], data))
        values = []
        for lead_id, lead_facts in by_lead.items():
            folded = fold(lead_id, lead_facts)
            row = {c: getattr(folded, c) for c in _LEAD_COLUMNS}  # not ``asdict``: it deep-copies
            row["reasons"] = _jsonb(list(row["reasons"]))
            values.append(row)
        cols = ", ".join(_LEAD_COLUMNS)
        marks = ", ".join(f"%({c})s" for c in _LEAD_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _LEAD_COLUMNS if c != "lead_id")
        async with self.conn.cursor() as many:
            await many.executemany(
                f"INSERT INTO console_leads ({cols}) VALUES ({marks}) ON CONFLICT (lead_id) DO UPDATE SET {updates}",
                values,
            )

    # -- reads -----------------------------------------------------------------------------
    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        async with self._lock, self.conn.transaction():
            cur = await self.conn.execute(sql, tuple(params))
            return await cur.fetchall()

    async def leads_of(self, rep_id: str) -> list[LeadRow]:
        rows = await self._rows(
            "SELECT * FROM console_leads WHERE rep_id = %s AND assignment_status IN ('pending', 'accepted')", (rep_id,)
        )
        return [_lead(r) for r in rows]

    async def lead(self, lead_id: str) -> LeadRow | None:
        rows = await self._rows("SELECT * FROM console_leads WHERE lead_id = %s", (lead_id,))
        return _lead(rows[0]) if rows else None

    async def all_leads(self) -> list[LeadRow]:
        return [_lead(r) for r in await self._rows("SELECT * FROM console_leads ORDER BY lead_id")]

    async def timeline(self, lead_id: str) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT event_id, type, time, summary FROM console_events WHERE lead_id = %s ORDER BY time, event_id",
            (lead_id,),
        )

    async def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, in a stable order (the rebuild test compares two dumps)."""
        return {
            "console_leads": await self._rows("SELECT * FROM console_leads ORDER BY lead_id"),
            "console_events": await self._rows("SELECT * FROM console_events ORDER BY event_id"),
        }

    async def event_count(self) -> int:
        rows = await self._rows("SELECT count(*) AS n FROM console_events")
        return int(rows[0]["n"])


def _lead(r: dict[str, Any]) -> LeadRow:
    values = {c: r[c] for c in _LEAD_COLUMNS}
    values["reasons"] = tuple(r["reasons"] or ())
    return LeadRow(**values)
