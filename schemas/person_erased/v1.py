"""``person.erased`` version 1: an erasure receipt. No personal data: counts per store and the
subject's keyed hash, which only the holder of the privacy secret can match to an address."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.base import Part, Payload, UtcDatetime

Text = Annotated[str, Field(max_length=500)]


class ErasedItem(Part):
    """What one store gave up: ``store`` (e.g. ``redis:scoring:lead``), what was done, how many."""

    store: Text
    action: Text
    count: Annotated[int, Field(ge=0)]


class PersonErased(Payload):
    """One service's receipt for one erasure request."""

    EVENT_TYPE = "person.erased"
    VERSION = 1

    request_id: Annotated[str, Field(min_length=1, max_length=200)]
    subject_hash: Annotated[str, Field(min_length=16, max_length=128)]
    service: Annotated[str, Field(min_length=1, max_length=50)]
    erased_at: UtcDatetime
    items: list[ErasedItem] = Field(default_factory=list)
    #: what this service does not erase (e.g. append-only topics left to retention)
    remaining: list[Text] = Field(default_factory=list)
    #: the notifier's: keyed hashes of the addresses now on its erased list (it rebuilds that list
    #: from these receipts, which are kept for good: they hold no address)
    suppressed_hashes: list[Annotated[str, Field(min_length=16, max_length=128)]] = Field(
        default_factory=list, max_length=10
    )
