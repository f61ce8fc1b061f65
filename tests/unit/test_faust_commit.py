"""The offset our Faust consumer commits: never past a message an agent is still processing
(faust-streaming#606, which lost a notification request under kill -9 in the chaos suite)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from intervaltree import IntervalTree

from leadpipe.runtime.faust_app import _Consumer

TP0 = TP("notification.requested.v1", 0)


def consumer(
    committed: int | None, acked: list[int], gap: tuple[int, int] | None = None, *, tables: bool = False
) -> Any:
    # Only the offset bookkeeping is exercised: no broker, no real app.
    c: Any = object.__new__(_Consumer)
    c.app = SimpleNamespace(tables=SimpleNamespace(changelog_topics={"counts-changelog"} if tables else set()))
    c._committed_offset = defaultdict(lambda: None, {TP0: committed})
    c._acked = defaultdict(list, {TP0: list(acked)})
    c._acked_index = defaultdict(set, {TP0: set(acked)})
    c._gap = defaultdict(IntervalTree)
    if gap is not None:
        c._gap[TP0].addi(*gap)
    return c


def test_a_message_in_flight_at_the_committed_offset_holds_the_commit_back():
    # Offset 12 is still being sent by one agent actor; 13-15 were finished by the others.
    assert consumer(12, [13, 14, 15])._new_offset(TP0) is None


def test_the_commit_moves_once_the_head_message_is_acked():
    assert consumer(12, [12, 13, 14, 15])._new_offset(TP0) == 16


def test_the_commit_stops_before_the_first_unacked_offset():
    assert consumer(12, [12, 13, 15])._new_offset(TP0) == 14


def test_a_known_gap_at_the_head_is_committed_over():
    # Offsets 12-13 do not exist (e.g. compacted away): Faust recorded them as a gap.
    assert consumer(12, [14, 15], gap=(12, 14))._new_offset(TP0) == 16


def test_from_the_very_first_offset_the_head_must_be_acked_too():
    assert consumer(0, [1, 2])._new_offset(TP0) is None
    assert consumer(0, [0, 1, 2])._new_offset(TP0) == 3


def test_apps_with_changelog_tables_keep_fausts_own_rule():
    assert consumer(12, [13, 14, 15], tables=True)._new_offset(TP0) == 16
