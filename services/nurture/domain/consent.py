"""Marketing consent: on which channels a lead-facing touch may go, and on what basis.

- A transactional touch (a reply to the person's own request, onboarding for what they bought)
  needs no marketing basis: it goes on any reachable channel.
- A marketing touch goes only on a channel the person consented to (a ticked form box, the
  consent a booth recorded) or one a team configured a legitimate interest for in the person's
  country (none by default).
- A ``lead.scored`` written before scoring carried consent per channel is read as consent to
  email only when its profile says ``marketing_consent`` (the only channel forms offered then).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.base import Channel, MarketingBasis
from schemas.lead_scored.v1 import LeadScored
from services.nurture.domain.errors import ConfigError

#: Lead-facing templates that are not marketing (the notifier's template catalog says the same).
DEFAULT_TRANSACTIONAL = frozenset({"lead_reply", "onboarding"})
NO_CONSENT = "no marketing consent"
#: The cadence stop reason while no reachable channel has a marketing basis (it resumes when one does).
WAITING_FOR_CONSENT = "waiting for marketing consent: no reachable channel has one"
MARKETING_CHANNELS = frozenset({"email", "sms"})


@dataclass(frozen=True, slots=True)
class ConsentPolicy:
    transactional_templates: frozenset[str] = DEFAULT_TRANSACTIONAL
    #: country code (upper case) -> channels marketed to on a legitimate-interest basis
    legitimate_interest: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def is_marketing(self, template: str) -> bool:
        return template not in self.transactional_templates


def consented_channels(data: LeadScored) -> list[str]:
    """The channels the person consented to, as ``lead.scored`` carries them."""
    if data.consent is None:
        return ["email"] if data.profile.marketing_consent else []
    return [c.value for c in data.consent.channels]


def basis_for(
    channel: str,
    *,
    consented: Iterable[str],
    country: str | None,
    policy: ConsentPolicy,
    proof: Mapping[str, Any] | None = None,
) -> MarketingBasis | None:
    """The basis a marketing touch on ``channel`` rests on, or None when it has none.

    The person's own consent comes first; a configured legitimate interest for their country
    only where they gave none on that channel."""
    given = [c for c in consented if c in MARKETING_CHANNELS]
    if channel in given:
        return MarketingBasis(channels=tuple(Channel(c) for c in given), basis="consent", **(proof or {}))
    allowed = policy.legitimate_interest.get((country or "").strip().upper(), frozenset())
    if channel in allowed:
        return MarketingBasis(channels=tuple(Channel(c) for c in sorted(allowed)), basis="legitimate_interest")
    return None


def not_started(channel: str) -> str:
    """What the lead's timeline says for a channel the cadence does not use."""
    return f"cadence not started on {channel}: {NO_CONSENT}"


def parse_consent_policy(data: Mapping[str, Any] | None) -> ConsentPolicy:
    """``consent:`` of the playbooks file; ``ConfigError`` names the offending field."""
    if not data:
        return ConsentPolicy()
    if not isinstance(data, Mapping):
        raise ConfigError("consent", "must be a mapping")
    transactional = data.get("transactional_templates", sorted(DEFAULT_TRANSACTIONAL))
    if not isinstance(transactional, list) or not all(isinstance(t, str) for t in transactional):
        raise ConfigError("consent.transactional_templates", "must be a list of template names")
    raw = data.get("legitimate_interest") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError("consent.legitimate_interest", "must map a country code to a list of channels")
    interest: dict[str, frozenset[str]] = {}
    for country, channels in raw.items():
        where = f"consent.legitimate_interest.{country}"
        if not isinstance(country, str) or not country.strip():
            raise ConfigError("consent.legitimate_interest", f"not a country code: {country!r}")
        if not isinstance(channels, list) or not channels:
            raise ConfigError(where, "must be a non-empty list of channels")
        unknown = [c for c in channels if c not in MARKETING_CHANNELS]
        if unknown:
            raise ConfigError(where, f"not a marketing channel: {unknown[0]!r} (use email or sms)")
        interest[country.strip().upper()] = frozenset(channels)
    return ConsentPolicy(frozenset(transactional), interest)
