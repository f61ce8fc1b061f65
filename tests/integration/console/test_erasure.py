"""The console honours ``person.erasure_requested`` against a real broker and a real PostgreSQL:
no field of the person is left in any console table, the manager's funnel still adds up, the
request is idempotent, and neither a rebuild into the same database nor one into a new database
brings the person back."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry

from leadpipe.runtime.kafka import make_producer, publish
from schemas.envelope import Envelope, new_event
from schemas.lead_captured.v1 import Identity, LeadCaptured
from schemas.lead_outcome_logged.v1 import LeadOutcomeLogged
from schemas.lead_scored.v1 import LeadScored, Profile
from schemas.person_erased.v1 import PersonErased
from schemas.person_erasure_requested.v1 import erasure_request
from services.console import projector
from services.console.adapters.metrics import ConsoleMetrics
from services.console.adapters.postgres_store import PostgresStore
from services.console.domain.erasure import identity_hashes
from services.console.domain.facts import to_fact
from services.console.domain.reporting import funnel
from services.console.handlers import Projector
from tests.integration.console.test_projector import console_settings, lead_events, until


def person(run: str, phone: str) -> tuple[list[Envelope[Any]], dict[str, str]]:
    """A lead's events with the person's name, email, phone and company in as many places as the
    topics carry them (profile, capture identity, a rep's free-text note)."""
    events = lead_events(run)
    pii = {"email": f"jo.{run}@acme.test", "name": f"Jo {run}", "phone": phone, "company": f"Acme {run}"}
    out = []
    for event in events:
        if isinstance(event.data, LeadScored):
            profile = Profile(email=pii["email"], full_name=pii["name"], phone=phone, company=pii["company"])
            event = event.model_copy(update={"data": event.data.model_copy(update={"profile": profile})})
        out.append(event)
    captured = out[0].data
    assert isinstance(captured, LeadCaptured)
    by_phone = new_event(
        LeadCaptured(
            capture_id=f"cap-phone-{run}",
            source_kind=captured.source_kind,
            captured_at=captured.captured_at,
            identity=Identity(phone=phone),
        ),
        source="test",
        subject=f"ph_{run}",
        time=out[0].time,
    )
    return [*out, by_phone], pii


async def text_hits(database_url: str, needle: str) -> list[str]:
    """Every console table's every text-like column (jsonb and arrays as text) holding ``needle``."""
    hits = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name LIKE 'console%%' AND data_type IN ('text', 'jsonb', 'ARRAY', 'character varying')"
        )
        for table, column in await cur.fetchall():
            found = await conn.execute(
                f'SELECT count(*) FROM {table} WHERE "{column}"::text ILIKE %s',  # type: ignore[arg-type]
                (f"%{needle}%",),
            )
            row = await found.fetchone()
            if row is not None and row[0]:
                hits.append(f"{table}.{column}")
    return hits


async def test_an_erased_persons_fields_leave_every_console_table_and_stay_gone_after_rebuilds(
    registry_topics: str, database_url: str, postgres_server: str, unique: str
) -> None:
    settings = console_settings(registry_topics, database_url, f"console-{unique}")
    secret = settings.leadpipe_privacy_secret
    digits = f"{int(unique, 16) % 10_000:04d}"
    theirs, pii = person(unique, f"+1415555{digits}")
    others, bystander = person(unique[::-1], f"+1628555{digits}")
    lead_id, other_id = f"lead-{unique}", f"lead-{unique[::-1]}"

    producer = make_producer(settings)
    await producer.start()
    store = await PostgresStore(database_url).connect()
    receipts: list[PersonErased] = []

    async def keep(event: Envelope[Any]) -> None:
        assert isinstance(event.data, PersonErased)
        if event.data.request_id == f"req-{unique}":  # the shared topics carry other tests' requests
            receipts.append(event.data)

    registry = CollectorRegistry()
    proj = Projector(store, ConsoleMetrics(registry), privacy_secret=secret, publish=keep)
    await store.migrate()
    task = asyncio.create_task(projector.run(settings, proj, asyncio.Event()))
    try:
        for event in [*theirs, *others]:
            await publish(producer, event, max_bytes=1_000_000)

        async def projected() -> bool:
            return [len(await store.timeline(lid)) for lid in (lead_id, other_id)] == [9, 9]

        await until(projected, 60)
        assert await text_hits(database_url, pii["email"]), "the search must find the person before"
        ours = [lead for lead in await store.all_leads() if lead.lead_id in (lead_id, other_id)]
        before = funnel(ours)

        request = erasure_request(
            secret,
            request_id=f"req-{unique}",
            # After every event of theirs, as a real request is: the fixture's events are dated up
            # to a minute ahead, and a rebuild that meets the request before them (another
            # partition) keeps a person's event dated after their request (a later capture is new).
            requested_at=max(datetime.now(UTC), *(e.time for e in theirs)) + timedelta(seconds=1),
            requested_by="cli:test",
            email=pii["email"].upper(),
            phone=pii["phone"],
        )
        await publish(producer, new_event(request, source="test", subject=request.subject_hash), max_bytes=1_000_000)

        async def receipted() -> bool:
            return bool(receipts)

        await until(receipted, 60)
        # A rep's late note about the erased lead, after the request: projected redacted.
        late = LeadOutcomeLogged(
            outcome_id=f"late-{unique}",
            lead_id=lead_id,
            rep_id="rep-ana",
            outcome="lost",
            logged_at=datetime.now(UTC) + timedelta(minutes=5),
            note=f"{pii['name']} ({pii['company']}) asked us to stop",
        )
        await publish(
            producer, new_event(late, source="test", subject=lead_id, time=late.logged_at), max_bytes=1_000_000
        )
        # The same request again (a redelivery): nothing changes, the receipt says the same.
        await publish(producer, new_event(request, source="test", subject=request.subject_hash), max_bytes=1_000_000)

        async def late_seen() -> bool:
            return len(receipts) == 2 and len(await store.timeline(lead_id)) == 10

        await until(late_seen, 60)
    except BaseException:
        await store.close()
        raise
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.stop()

    async def ours_now(s: PostgresStore) -> list[Any]:
        return [(await s.lead(lid), await s.timeline(lid)) for lid in (lead_id, other_id)]

    try:
        for field in pii.values():
            assert await text_hits(database_url, field) == [], field
        assert await text_hits(database_url, bystander["email"]), "another person stays"
        lead = await store.lead(lead_id)
        assert lead is not None
        assert (lead.name, lead.email, lead.phone, lead.company, lead.country) == (None,) * 5
        # The lead page's one-snapshot read gives what the two reads give on a quiet store.
        assert await store.lead_with_timeline(lead_id) == (lead, await store.timeline(lead_id))
        assert (lead.stage, lead.grade, lead.source_kind, lead.rep_id) == (
            "sales_qualified",
            "A",
            "web_form",
            "rep-ana",
        )
        other = await store.lead(other_id)
        assert other is not None and other.email == bystander["email"]
        ours = [lead for lead in await store.all_leads() if lead.lead_id in (lead_id, other_id)]
        assert funnel(ours) == before
        assert len(await store.timeline(lead_id)) == 10  # the timeline keeps its shape, redacted
        assert lead.last_outcome == "lost"

        assert [r.items for r in receipts] == [receipts[0].items] * 2
        counts = {i.store: i.count for i in receipts[0].items}
        assert counts == {"postgres:console_leads": 1, "postgres:console_events": 10}
        assert receipts[0].service == "console" and receipts[0].subject_hash == request.subject_hash
        assert not any(v.lower() in receipts[0].model_dump_json().lower() for v in pii.values())

        erased = await ours_now(store)
        # Same database: the rebuild replays the captures before the request; the erasure list
        # (kept by the drop) wins.
        await projector.rebuild(settings, store, Projector(store, ConsoleMetrics(CollectorRegistry()),
                                                                     privacy_secret=secret))  # fmt: skip
        for field in pii.values():
            assert await text_hits(database_url, field) == [], field
        assert await ours_now(store) == erased
        assert funnel([x for x in await store.all_leads() if x.lead_id in (lead_id, other_id)]) == before
    finally:
        await store.close()

    # A new, empty database (the erasure list lost with the old one) rebuilt while the request is
    # still on its topic (kept one day): the person's score names the lead, and its events go too.
    async with await psycopg.AsyncConnection.connect(postgres_server, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE n_{unique}")  # type: ignore[arg-type]  # a generated name
    fresh_url = postgres_server.rsplit("/", 1)[0] + f"/n_{unique}"
    fresh = await PostgresStore(fresh_url).connect()
    try:
        fresh_settings = settings.model_copy(update={"database_url": fresh_url})
        await projector.rebuild(fresh_settings, fresh, Projector(fresh, ConsoleMetrics(CollectorRegistry()),
                                                                 privacy_secret=secret))  # fmt: skip
        for field in pii.values():
            assert await text_hits(fresh_url, field) == [], field
        again = await fresh.lead(lead_id)
        assert again is not None and (again.name, again.email, again.phone) == (None, None, None)
        assert await ours_now(fresh) == erased
        assert funnel([x for x in await fresh.all_leads() if x.lead_id in (lead_id, other_id)]) == before
    finally:
        await fresh.close()


async def test_a_rescore_in_the_batch_that_reveals_an_erased_lead_is_redacted_and_the_row_with_it(
    database_url: str, unique: str
) -> None:
    """A new database rebuilt after the request: the person's first score (before the request)
    names the lead; a later rescore of it in the same batch is theirs too, and so is the row."""
    secret = "dev-privacy-secret"
    events, pii = person(unique, "+14155550199")
    scores = [e for e in events if isinstance(e.data, LeadScored)]
    assert len(scores) == 2
    store = await PostgresStore(database_url).connect()
    try:
        await store.migrate()
        request = erasure_request(
            secret, request_id=f"r-{unique}", requested_at=scores[0].time + timedelta(seconds=5),
            requested_by="cli:test", email=pii["email"],
        )  # fmt: skip
        await store.erase(
            request_id=request.request_id, subject_hash=request.subject_hash, requested_at=request.requested_at,
            email=request.email, phone=None, lead_ids=[], identifier_hashes=request.identifier_hashes,
        )  # fmt: skip
        assert scores[1].time > request.requested_at
        facts = [to_fact(e.data.EVENT_TYPE, e.id, e.time, e.data.model_dump(mode="json")) for e in scores]
        await store.project(facts, [identity_hashes(secret, f) for f in facts])  # one batch
        for field in pii.values():
            assert await text_hits(database_url, field) == [], field
        lead = await store.lead(f"lead-{unique}")
        assert lead is not None and (lead.grade, lead.name, lead.email) == ("A", None, None)
    finally:
        await store.close()
