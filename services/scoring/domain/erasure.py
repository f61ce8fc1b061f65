"""Which leads an erasure request takes, and what the identity links look like afterwards.

Rules (a phone is weak: a switchboard or a booth device serves many people):
- every lead the request's email (or other strong identifier) points at is erased;
- the lead ids the request names are erased;
- a lead reached only through the phone is erased when it holds no strong identifier of its own
  (a phone-only capture); a lead with an email, badge or external id of its own is someone
  else who gave the same number, and is kept;
- each identifier of an erased lead stops pointing at it; a link left pointing at nobody goes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from services.scoring.domain.identity import is_strong


def leads_to_erase(
    *,
    keys: Sequence[str],
    links: Mapping[str, Sequence[str]],
    identifiers: Mapping[str, Sequence[str]],
    lead_ids: Collection[str] = (),
) -> set[str]:
    """``keys``: the request's identifier strings; ``identifiers``: lead id -> its identifiers."""
    out = {lid for lid in lead_ids if lid in identifiers}
    for key in keys:
        for lid in links.get(key, ()):
            if lid not in identifiers:
                continue
            if is_strong(key) or not any(is_strong(i) for i in identifiers[lid]):
                out.add(lid)
    return out


def links_after_erasure(links: Mapping[str, Sequence[str]], erased: Collection[str]) -> dict[str, tuple[str, ...]]:
    """The new value of every link that pointed at an erased lead (empty: delete the link)."""
    return {
        ident: tuple(lid for lid in lids if lid not in erased)
        for ident, lids in links.items()
        if any(lid in erased for lid in lids)
    }
