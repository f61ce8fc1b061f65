"""Every assigned partition keeps delivering: the worker's watch for a partition whose records
wait while nothing of it is being processed.

A partition of a live consumer has been seen to stop delivering while the consumer's other
partitions went on (the container chaos suite: one ``lead.captured`` partition left unscored
for over four minutes, with nothing logged). Its offset is not committed, so nothing is lost,
but its leads wait for the next rebalance or restart. Faust's own check only warns, and only
after ``stream_processing_timeout`` (300 s) when the partition's stream is busy.

The watch needs no broker requests. Every check, per assigned partition, the worker takes a
``PartitionView``: what the client knows (the next offset it fetches, the end of the log as its
last fetch saw it, whether it holds fetched records for the partition, when it last fetched
it) and what the stream knows (the next offset to deliver, whether the partition's records are
queued or being processed). ``DeliveryWatch.stalled`` names the partitions that have been
*stuck* for ``stall_s``: not held on purpose (paused for a rebalance or recovery), nothing of
theirs queued or in processing, and either records known to wait that make no progress, or
records fetched and left undelivered. The worker then puts the partition back into its fetches
and seeks it to the next offset to deliver (``PartitionView.next_offset``); the view is logged
so the cause can be read afterwards.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One assigned partition as the worker sees it at one check."""

    tp: Hashable
    #: The next offset the client fetches or hands out (None: no position yet).
    position: int | None
    #: The end of the partition's log as the last fetch saw it (None: never fetched).
    highwater: int | None
    #: The next offset to deliver to the streams (None: nothing delivered since assignment).
    delivered: int | None
    #: The client holds fetched records of the partition that were not handed out.
    buffered: bool
    #: The partition's records are queued for a stream or being processed.
    busy: bool
    #: Paused on purpose (a rebalance, a recovery). A partition left out of the fetches for
    #: back-pressure is not held: its records are queued (``busy``) until the pressure drops.
    held: bool

    @property
    def next_offset(self) -> int | None:
        """The first offset of the partition not delivered yet, as far as the worker knows: where
        a restart seeks it, so nothing undelivered is skipped."""
        return self.delivered if self.delivered is not None else self.position

    @property
    def waiting(self) -> bool:
        """Records exist that were not delivered: fetched and kept, or known to be in the log."""
        nxt = self.next_offset
        if nxt is None:
            return False
        if self.buffered or (self.position is not None and self.position > nxt):
            return True
        return self.highwater is not None and self.highwater > nxt

    @property
    def progress(self) -> tuple[int | None, int | None]:
        return self.position, self.delivered

    def describe(self) -> str:
        return (
            f"position {self.position}, log end {self.highwater}, next to deliver {self.delivered}, "
            f"fetched records held by the client: {'yes' if self.buffered else 'no'}"
        )


class DeliveryWatch:
    """Names the partitions stuck for ``stall_s``: records waiting, no progress, nothing of
    theirs queued or being processed, not held on purpose. A partition is named once per
    ``stall_s`` while it stays stuck."""

    def __init__(self, stall_s: float) -> None:
        if stall_s <= 0:
            raise ValueError(f"stall_s: must be > 0, got {stall_s}")
        self.stall_s = stall_s
        self._since: dict[Hashable, tuple[tuple[int | None, int | None], float]] = {}

    def stalled(self, now: float, views: Iterable[PartitionView]) -> list[PartitionView]:
        stuck: list[PartitionView] = []
        seen: set[Hashable] = set()
        for view in views:
            seen.add(view.tp)
            if view.held or view.busy or not view.waiting:
                self._since.pop(view.tp, None)
                continue
            last = self._since.get(view.tp)
            if last is None or last[0] != view.progress:
                self._since[view.tp] = (view.progress, now)
            elif now - last[1] >= self.stall_s:
                stuck.append(view)
                self._since[view.tp] = (view.progress, now)
        for tp in set(self._since) - seen:  # revoked
            del self._since[tp]
        return stuck
