"""A steady stream of web-form leads and engagement webhooks posted to ingest over HTTP.

Runs in its own thread (its own event loop) so the caller can make faults with the blocking
``Stack`` methods meanwhile. Every 202 is recorded (``Accepted``); anything else is counted
by status (``"conn"`` for a refused or cut connection, e.g. ingest killed) and not retried:
a post without a 202 makes no promise, and the next post is a new capture.

The stream is built so every capture changes what scoring publishes for its lead:
- ``new``: a new person (email; one in four also gives a phone);
- ``repeat``: a known person again, with a new job title (same identity key, so it lands
  on the same partition after the earlier captures);
- ``phone`` then ``link``: a phone-only capture of a known person (a new lead, keyed by the
  phone), later a capture with both email and phone, which merges the two leads;
- ``engage``: an engagement webhook (opened / clicked / page visit) for a known person.
One person has at most one post in flight, so a person's captures reach ingest in order.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from services.ingest.domain.webhooks import sign
from tests.chaos.audit import Accepted

FORMS_DIR = Path(__file__).parent / "forms"
FORM_ID = "chaos"
WEBHOOK_PROVIDER = "demo"
WEBHOOK_SECRET = "dev-webhook-secret"
TITLES = ("Director of Operations", "VP Engineering", "Head of Sales", "CTO", "Marketing Manager", "CEO")
COMPANIES = ("example.com", "rivalsoft.com", "acme-logistics.example", "globex.example")
COUNTRIES = ("US", "GB", "DE", "FR", "US", "US")
ENGAGEMENTS = ("opened", "clicked", "visit")
#: Consecutive runs in one process take consecutive blocks of numbers (from a random start).
_PHONE_BLOCKS = itertools.count(random.randrange(100))


@dataclass
class Person:
    n: int
    email: str
    phone: str | None
    company: str
    country: str
    captures: int = 0
    phone_sent: bool = False
    linked: bool = False
    busy: bool = False


@dataclass
class DriverStats:
    statuses: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    delivery: Counter[str] = field(default_factory=Counter)  # acked / spooled


class LoadDriver:
    """``start()``, faults, ``stop()``; then ``accepted`` holds every 202's event ids."""

    def __init__(self, base_url: str, *, rate_per_s: float = 8.0, concurrency: int = 4, seed: int = 0):
        self.base_url = base_url
        self.rate_per_s = rate_per_s
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self.run_id = uuid.uuid4().hex[:6]
        # Each run its own phone numbers: the container tests run several loads on one stack, and
        # an earlier run's person with this run's number would be linked by it (a phone is weak).
        self.phone_block = next(_PHONE_BLOCKS) % 100
        self.accepted = Accepted()
        self.stats = DriverStats()
        self.people: list[Person] = []
        self._next_person = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # -- control ------------------------------------------------------------------------
    def start(self) -> LoadDriver:
        self._thread = threading.Thread(target=self._main, name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError("the load driver did not stop")
        if self._error is not None:
            raise RuntimeError("the load driver failed") from self._error

    def accepted_count(self) -> int:
        with self._lock:
            return len(self.accepted.captures)

    def wait_accepted(self, more: int, timeout_s: float = 60.0) -> None:
        """Block until ``more`` further captures were accepted (the stream is flowing)."""
        target = self.accepted_count() + more
        deadline = time.monotonic() + timeout_s
        while self.accepted_count() < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"ingest accepted {self.accepted_count()} of {target} captures; {self.stats}")
            if self._error is not None:
                raise RuntimeError("the load driver failed") from self._error
            time.sleep(0.1)

    # -- the stream ---------------------------------------------------------------------
    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # surfaced by stop()
            self._error = exc

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=20.0, limits=limits) as client:
            workers = [asyncio.create_task(self._worker(client, i)) for i in range(self.concurrency)]
            await asyncio.gather(*workers)

    async def _worker(self, client: httpx.AsyncClient, i: int) -> None:
        interval = self.concurrency / self.rate_per_s
        next_at = time.monotonic() + interval * i / self.concurrency
        while not self._stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + interval, time.monotonic() - interval)
            action, person = self._next_action()
            try:
                await self._do(client, action, person)
            finally:
                person.busy = False

    def _next_action(self) -> tuple[str, Person]:
        with self._lock:
            idle = [p for p in self.people if not p.busy and p.captures > 0]
            roll = self.rng.random()
            candidates: list[tuple[str, list[Person]]] = []
            if roll < 0.12:
                candidates.append(("repeat", idle))
            elif roll < 0.17:
                candidates.append(("phone", [p for p in idle if p.phone and not p.phone_sent]))
            elif roll < 0.22:
                candidates.append(("link", [p for p in idle if p.phone_sent and not p.linked]))
            elif roll < 0.32:
                candidates.append(("engage", idle))
            for action, pool in candidates:
                if pool:
                    person = self.rng.choice(pool)
                    person.busy = True
                    return action, person
            n = self._next_person
            self._next_person += 1
            person = Person(
                n,
                email=f"chaos-{self.run_id}-{n}@{self.rng.choice(COMPANIES)}",
                phone=f"+33612{self.phone_block:02d}{n % 10_000:04d}" if self.rng.random() < 0.25 else None,
                company=f"Company {n % 50}",
                country=self.rng.choice(COUNTRIES),
                busy=True,
            )
            self.people.append(person)
            return "new", person

    async def _do(self, client: httpx.AsyncClient, action: str, person: Person) -> None:
        self.stats.actions[action] += 1
        if action == "engage":
            await self._engage(client, person)
            return
        body: dict[str, Any] = {
            "first_name": f"First{person.n}",
            "last_name": f"Last{person.n}",
            "company": person.company,
            "country": person.country,
            "job_title": TITLES[(person.n + person.captures) % len(TITLES)],
            "seats": str(5 + person.n % 200),
        }
        if action in ("new", "repeat", "link"):
            body["email"] = person.email
        if action in ("phone", "link"):
            body["phone"] = person.phone
        resp = await self._post(client, f"/v1/forms/{FORM_ID}", json=body)
        if resp is not None and resp.status_code == 202:
            data = resp.json()
            with self._lock:
                self.accepted.captures.append(data["event_id"])
                self.stats.delivery[data.get("delivery", "?")] += 1
                person.captures += 1
                if action == "phone":
                    person.phone_sent = True
                if action == "link":
                    person.linked = True
        elif action == "new" and person.captures == 0:
            with self._lock:
                self.people.remove(person)

    async def _engage(self, client: httpx.AsyncClient, person: Person) -> None:
        event = {
            "id": uuid.uuid4().hex,
            "kind": self.rng.choice(ENGAGEMENTS),
            "occurred_at": datetime.now(UTC).isoformat(),
            "email": person.email,
        }
        body = orjson.dumps(event)
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "x-leadpipe-timestamp": str(ts),
            "x-leadpipe-signature": sign(WEBHOOK_SECRET, ts, body),
        }
        resp = await self._post(client, f"/v1/webhooks/{WEBHOOK_PROVIDER}", content=body, headers=headers)
        if resp is not None and resp.status_code == 202:
            with self._lock:
                self.accepted.engagements.extend(resp.json()["event_ids"])

    async def _post(self, client: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            resp = await client.post(path, **kwargs)
        except httpx.TransportError:
            self.stats.statuses["conn"] += 1
            await asyncio.sleep(0.2)  # ingest is down: do not spin
            return None
        self.stats.statuses[str(resp.status_code)] += 1
        return resp
