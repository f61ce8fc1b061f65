"""Enrichment: what an address, a phone number and a company domain tell about a lead."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import phonenumbers
from phonenumbers import timezone as phone_timezone

EmailKind = Literal["corporate", "free", "disposable", "unknown"]


@dataclass(frozen=True, slots=True)
class Firmographic:
    """A company record from the firmographics file."""

    domain: str
    company: str
    industry: str
    employees: int
    country: str


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Lists and tables enrichment reads; loaded by an adapter, plain data here."""

    free_mail: frozenset[str] = frozenset()
    disposable: frozenset[str] = frozenset()
    firmographics: Mapping[str, Firmographic] = field(default_factory=dict)
    served_countries: frozenset[str] = frozenset()


#: Country names (English and Chinese) that forms send instead of ISO codes.
_COUNTRY_NAMES = {
    "united states": "US",
    "usa": "US",
    "united states of america": "US",
    "america": "US",
    "美国": "US",
    "canada": "CA",
    "加拿大": "CA",
    "united kingdom": "GB",
    "uk": "GB",
    "great britain": "GB",
    "england": "GB",
    "英国": "GB",
    "ireland": "IE",
    "germany": "DE",
    "deutschland": "DE",
    "德国": "DE",
    "austria": "AT",
    "switzerland": "CH",
    "france": "FR",
    "法国": "FR",
    "netherlands": "NL",
    "the netherlands": "NL",
    "荷兰": "NL",
    "belgium": "BE",
    "china": "CN",
    "中国": "CN",
    "prc": "CN",
    "hong kong": "HK",
    "香港": "HK",
    "singapore": "SG",
    "新加坡": "SG",
    "japan": "JP",
    "日本": "JP",
    "australia": "AU",
    "澳大利亚": "AU",
    "india": "IN",
    "印度": "IN",
    "brazil": "BR",
    "巴西": "BR",
    "russia": "RU",
    "俄罗斯": "RU",
    "mexico": "MX",
    "墨西哥": "MX",
    "south korea": "KR",
    "korea": "KR",
    "韩国": "KR",
    "taiwan": "TW",
    "spain": "ES",
    "italy": "IT",
    "sweden": "SE",
    "norway": "NO",
    "denmark": "DK",
    "poland": "PL",
}


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


def classify_email_domain(domain: str | None, ref: ReferenceData) -> EmailKind:
    """Free webmail, disposable, or corporate (anything else with a dot in it)."""
    if not domain:
        return "unknown"
    if domain in ref.disposable:
        return "disposable"
    if domain in ref.free_mail:
        return "free"
    return "corporate" if "." in domain else "unknown"


def company_domain(email_dom: str | None, stated: str | None, website: str | None, kind: EmailKind) -> str | None:
    """The company's domain: the stated one, else the website's host, else a corporate email's."""
    for candidate in (stated, website):
        if candidate and candidate.strip():
            host = candidate.strip().lower()
            host = host.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
            return host.removeprefix("www.") or None
    return email_dom if kind == "corporate" else None


def lookup_company(domain: str | None, ref: ReferenceData) -> Firmographic | None:
    """The firmographics record of a domain or of its parent (``eu.example.com`` -> ``example.com``)."""
    while domain and "." in domain:
        found = ref.firmographics.get(domain)
        if found is not None:
            return found
        domain = domain.split(".", 1)[1]
    return None


def normalise_country(country: str | None) -> str | None:
    """ISO alpha-2 from a code or a common English/Chinese name; None when unrecognised."""
    if not country or not country.strip():
        return None
    text = country.strip()
    if len(text) == 2 and text.isascii() and text.isalpha():
        return text.upper()
    return _COUNTRY_NAMES.get(text.lower())


# Pure lookups that parse the number again; memoised (bounded) since they run on every event.
@lru_cache(maxsize=16384)
def phone_country(e164: str | None) -> str | None:
    if not e164:
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


@lru_cache(maxsize=16384)
def timezone_for(e164: str | None, country: str | None) -> str | None:
    """The time zone of a phone number, else the main time zone of a country."""
    candidates: tuple[str, ...] = ()
    if e164:
        try:
            candidates = phone_timezone.time_zones_for_number(phonenumbers.parse(e164))
        except phonenumbers.NumberParseException:
            candidates = ()
    if (not candidates or candidates[0] == "Etc/Unknown") and country:
        example = phonenumbers.example_number(country)
        candidates = phone_timezone.time_zones_for_number(example) if example else ()
    if not candidates or candidates[0] == "Etc/Unknown":
        return None
    return candidates[0]


def in_served_area(country: str | None, ref: ReferenceData) -> bool | None:
    """True inside the served countries, False outside, None when the country is unknown."""
    if country is None:
        return None
    return country in ref.served_countries
