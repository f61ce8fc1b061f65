"""``RoutingView``: a batch's reading of the reps' loads and its domains' owners, kept current
with this worker's own reservations, releases and owner claims."""

from __future__ import annotations

from services.nurture.domain.routing import Load
from services.nurture.handlers import RoutingView
from tests.unit.nurture.fakes import FakeNurtureStore

MONDAY = {"rep-ana": "2026-05-04", "rep-ben": "2026-05-04"}


async def read_view(store: FakeNurtureStore, domains: tuple[str, ...] = ("acme.io",)) -> RoutingView:
    view = RoutingView(domains)
    await view.read(store, MONDAY, None)
    return view


async def test_it_is_read_again_for_a_new_day_or_a_domain_it_did_not_read():
    store = FakeNurtureStore()
    view = await read_view(store)
    assert view.covers(MONDAY, "acme.io") and view.covers(MONDAY, None)
    assert not view.covers(MONDAY, "other.io")
    assert not view.covers({**MONDAY, "rep-ben": "2026-05-05"}, "acme.io")
    await view.read(store, MONDAY, "Other.io".lower())
    assert view.covers(MONDAY, "other.io") and view.covers(MONDAY, "acme.io")


async def test_reservations_and_releases_of_this_worker_move_the_loads_it_routes_by():
    store = FakeNurtureStore()
    store.used[("rep-ana", "2026-05-04")] = 3
    view = await read_view(store)
    view.reserved("rep-ana")
    assert view.loads["rep-ana"].used == 4 and view.loads["rep-ana"].last_assigned_at > 0
    view.released("rep-ana", "2026-05-03")  # a place held on another day: not today's load
    assert view.loads["rep-ana"].used == 4
    view.released("rep-ana", "2026-05-04")
    view.released("rep-ben", "2026-05-04")  # nothing held: never below zero
    assert view.loads["rep-ana"].used == 3 and view.loads["rep-ben"] == Load(0, 0.0)
    view.full("rep-ben", 20)
    assert view.loads["rep-ben"].used == 20


async def test_an_owner_claimed_in_the_batch_counts_only_where_none_was_and_a_domain_keeps_its_first_owner():
    store = FakeNurtureStore()
    store.owners["owned.io"] = "rep-ben"
    view = await read_view(store, ("owned.io", "new.io"))
    view.claimed("owned.io", "rep-ana")
    view.claimed("new.io", "rep-ana")
    view.claimed("new.io", "rep-ben")
    assert view.owners == {"owned.io": "rep-ben", "new.io": "rep-ana"}
