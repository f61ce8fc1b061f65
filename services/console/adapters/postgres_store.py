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
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.console.domain.erasure import Erasure, erasure_of, names_person, redact
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


#: A lead's events in order, with one "scored" entry per trigger: the latest. Scoring that ran a
#: trigger again (a batch re-run after a crash or a rebalance) published a second ``lead.scored``
#: for it under a new id. Both stay in ``console_events`` (the row's fold and a rebuild read every
#: event; the later one wins there too), but the rep's timeline said "scored" twice for one capture.
_TIMELINE = """
SELECT event_id, type, time, summary FROM console_events e
 WHERE lead_id = %s
   AND NOT (type = 'lead.scored' AND trigger_event_id IS NOT NULL AND EXISTS (
       SELECT 1 FROM console_events later
        WHERE later.lead_id = e.lead_id AND later.type = 'lead.scored'
          AND later.trigger_event_id = e.trigger_event_id AND (later.time, later.event_id) > (e.time, e.event_id)))
 ORDER BY time, event_id
"""


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
    async def project(self, facts: Sequence[Fact], hashes: Sequence[frozenset[str]] | None = None) -> int:
        """Store new facts and re-fold the leads they touch; returns how many were new. An erased
        person's facts (``hashes``: each fact's ``identity_hashes``) are stored redacted.

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
            erasures = await self._erasures()
            # Leads newly found to be an erased person's (a rebuild into an empty database that
            # saw the request before the person's score): their other events go too.
            newly: dict[str, str] = {}
            if erasures:
                by_id = dict(zip((f.event_id for f in facts), hashes or [frozenset()] * len(facts), strict=True))
                kept = []
                for f in unique:
                    linked = replace(f, lead_id=f.lead_id or links.get(f.event_id))
                    erasure = erasure_of(linked, by_id[f.event_id], erasures)
                    if erasure is not None:
                        f = redact(f)
                        if linked.lead_id is not None and linked.lead_id not in erasure.lead_ids:
                            newly[linked.lead_id] = erasure.request_id
                    kept.append(f)
                # The lead's other events in this batch (a later rescore, say) go too.
                unique = [redact(f) if (f.lead_id or links.get(f.event_id)) in newly else f for f in kept]
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
            if newly:
                touched |= await self._redact_leads(newly)
            erased_leads = set(newly).union(*(e.lead_ids for e in erasures))
            # A capture or engagement stored before the score that links it to an erased lead.
            theirs = [t for t, lid in triggers if lid in erased_leads]
            if theirs:
                await self._redact_events("event_id = ANY(%s)", (theirs,))
            if touched:
                new = {r["event_id"] for r in inserted}
                await self._refold(sorted(touched), {f.event_id: f.data for f in unique if f.event_id in new})
        return len(inserted)

    async def _redact_leads(self, leads: dict[str, str]) -> set[str]:
        """Adds the leads to their erasure (lead id -> request id) and redacts their stored events."""
        await self.conn.execute(
            "UPDATE console_erasures e SET lead_ids = e.lead_ids || t.lead_id FROM unnest(%s::text[], %s::text[])"
            " AS t(lead_id, request_id) WHERE e.request_id = t.request_id AND NOT t.lead_id = ANY(e.lead_ids)",
            [list(leads), list(leads.values())],
        )
        await self._redact_events("lead_id = ANY(%s)", (list(leads),))
        return set(leads)

    async def _redact_events(self, where: str, params: tuple[Any, ...]) -> int:
        cur = await self.conn.execute(
            f"SELECT event_id, type, time, lead_id, summary, data FROM console_events WHERE {where}", params
        )
        redacted = [
            redact(Fact(r["event_id"], r["type"], r["time"], r["lead_id"], r["summary"], r["data"]))
            for r in await cur.fetchall()
        ]
        if redacted:
            await self.conn.execute(
                "UPDATE console_events e SET summary = t.summary, data = t.data"
                " FROM unnest(%s::text[], %s::text[], %s::jsonb[]) AS t(event_id, summary, data)"
                " WHERE e.event_id = t.event_id",
                [[f.event_id for f in redacted], [f.summary for f in redacted], [_jsonb(f.data) for f in redacted]],
            )
        return len(redacted)

    async def _erasures(self) -> list[Erasure]:
        # Read in the batch's transaction (not cached): another console replica may have honoured
        # a request since, and the list is small (one row per request).
        cur = await self.conn.execute(
            "SELECT request_id, requested_at, identifier_hashes, lead_ids FROM console_erasures"
        )
        return [
            Erasure(r["request_id"], r["requested_at"], frozenset(r["identifier_hashes"]), frozenset(r["lead_ids"]))
            for r in await cur.fetchall()
        ]

    async def erase(
        self,
        *,
        request_id: str,
        subject_hash: str,
        requested_at: datetime,
        email: str | None,
        phone: str | None,
        lead_ids: Sequence[str],
        identifier_hashes: Sequence[str],
    ) -> tuple[int, int]:
        """Honours an erasure request in one transaction: every event of the person's leads, and
        their captures and engagements not linked to a lead yet, redacted; the leads re-folded
        from them (no personal field left); the request remembered in ``console_erasures``.
        Returns (leads, events) erased; a request already honoured changes nothing and returns
        its first counts."""
        async with self._lock, self.conn.transaction():
            cur = await self.conn.execute(
                "INSERT INTO console_erasures (request_id, subject_hash, requested_at, identifier_hashes, lead_ids,"
                " leads_erased, events_erased) VALUES (%s, %s, %s, %s, %s, 0, 0) ON CONFLICT (request_id) DO NOTHING"
                " RETURNING request_id",
                (request_id, subject_hash, requested_at, list(identifier_hashes), list(lead_ids)),
            )
            first: tuple[int, int] | None = None
            if await cur.fetchone() is None:
                # Honoured before (a replay, a rebuild): its first counts are the answer, but the
                # redaction runs again: rows projected since (a rebuild replaying the person's
                # events before this request) must not keep what the request took.
                cur = await self.conn.execute(
                    "SELECT leads_erased, events_erased FROM console_erasures WHERE request_id = %s", (request_id,)
                )
                done = await cur.fetchone()
                assert done is not None
                first = int(done["leads_erased"]), int(done["events_erased"])
            norm_email = email.strip().lower() if email else None
            # Candidates by SQL, decided by the domain rule (a phone counts only without an email).
            cur = await self.conn.execute(
                "SELECT lead_id, email, phone FROM console_leads WHERE lead_id = ANY(%s)"
                " OR lower(email) = %s OR (%s AND phone IS NOT NULL AND email IS NULL)",
                (list(lead_ids), norm_email, phone is not None),
            )
            leads = {r["lead_id"] for r in await cur.fetchall()
                     if r["lead_id"] in lead_ids
                     or names_person(r["email"], r["phone"], person_email=email, person_phone=phone)}  # fmt: skip
            cur = await self.conn.execute(
                "SELECT event_id, lead_id, data->'identity' AS identity FROM console_events"
                " WHERE type IN ('lead.captured', 'lead.engagement') AND (lower(data->'identity'->>'email') = %s"
                " OR (%s AND data->'identity'->>'phone' IS NOT NULL AND data->'identity'->>'email' IS NULL))",
                (norm_email, phone is not None),
            )
            theirs: set[str] = set()
            for r in await cur.fetchall():
                identity = r["identity"] or {}
                if names_person(identity.get("email"), identity.get("phone"), person_email=email, person_phone=phone):
                    theirs.add(r["event_id"])
                    if r["lead_id"] is not None:
                        leads.add(r["lead_id"])
            events = await self._redact_events(
                "lead_id = ANY(%s) OR event_id = ANY(%s)", (sorted(leads), sorted(theirs))
            )
            if first is None:
                await self.conn.execute(
                    "UPDATE console_erasures SET lead_ids = %s, leads_erased = %s, events_erased = %s"
                    " WHERE request_id = %s",
                    (sorted(leads | set(lead_ids)), len(leads), events, request_id),
                )
            if leads:
                await self._refold(sorted(leads), {})
            return first if first is not None else (len(leads), events)

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

    async def lead_with_timeline(self, lead_id: str) -> tuple[LeadRow | None, list[dict[str, Any]]]:
        """The lead's row and its timeline from one snapshot (REPEATABLE READ). Read apart, a batch
        the projector committed between the two reads showed a stage change in the timeline that
        the row's stage did not have yet (seen once in the console journey)."""
        async with self._lock, self.conn.transaction():
            await self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur = await self.conn.execute("SELECT * FROM console_leads WHERE lead_id = %s", (lead_id,))
            rows = await cur.fetchall()
            cur = await self.conn.execute(_TIMELINE, (lead_id,))
            events = await cur.fetchall()
        return (_lead(rows[0]) if rows else None), events

    async def timeline(self, lead_id: str) -> list[dict[str, Any]]:
        return await self._rows(_TIMELINE, (lead_id,))

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
