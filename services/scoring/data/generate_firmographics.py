"""Generate ``firmographics.csv``: a realistic, deterministic sample of company records.

Run from the repository root: ``python -m services.scoring.data.generate_firmographics``.
The same seed always writes the same file, so the committed CSV can be regenerated and diffed.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SEED = 20260501
ROWS = 3000
OUT = Path(__file__).with_name("firmographics.csv")

PREFIXES = (
    "Acme",
    "Apex",
    "Atlas",
    "Aurora",
    "Beacon",
    "Blue",
    "Bright",
    "Cedar",
    "Summit",
    "Cobalt",
    "Copper",
    "Crest",
    "Delta",
    "Ember",
    "Evergreen",
    "Falcon",
    "Fusion",
    "Granite",
    "Harbor",
    "Helix",
    "Horizon",
    "Iron",
    "Jade",
    "Keystone",
    "Lumen",
    "Maple",
    "Meridian",
    "Nimbus",
    "Nova",
    "Oak",
    "Onyx",
    "Orbit",
    "Pacific",
    "Pioneer",
    "Pixel",
    "Quantum",
    "Quartz",
    "Redwood",
    "River",
    "Sage",
    "Silver",
    "Solar",
    "Spruce",
    "Stellar",
    "Terra",
    "Titan",
    "Vertex",
    "Vista",
    "Willow",
    "Zenith",
    "Huaxin",
    "Jinma",
    "Longteng",
    "Mingda",
    "Tianhe",
    "Xinghai",
    "Yuanfang",
    "Zhongke",
    "Hanse",
    "Nordic",
    "Alpen",
)
SUFFIXES = (
    "Systems",
    "Labs",
    "Logistics",
    "Analytics",
    "Health",
    "Foods",
    "Motors",
    "Energy",
    "Robotics",
    "Software",
    "Networks",
    "Retail",
    "Capital",
    "Bio",
    "Materials",
    "Textiles",
    "Media",
    "Cloud",
    "Devices",
    "Pharma",
    "Freight",
    "Foundry",
    "Works",
    "Dynamics",
    "Solutions",
)
FORMS = {
    "US": "Inc.",
    "CA": "Ltd.",
    "GB": "Ltd",
    "DE": "GmbH",
    "FR": "SAS",
    "NL": "B.V.",
    "CN": "Co., Ltd.",
    "SG": "Pte. Ltd.",
    "JP": "K.K.",
    "AU": "Pty Ltd",
    "IN": "Pvt. Ltd.",
    "BR": "Ltda.",
}
TLDS = {
    "US": ".com",
    "CA": ".ca",
    "GB": ".co.uk",
    "DE": ".de",
    "FR": ".fr",
    "NL": ".nl",
    "CN": ".cn",
    "SG": ".sg",
    "JP": ".jp",
    "AU": ".com.au",
    "IN": ".in",
    "BR": ".com.br",
}
COUNTRY_WEIGHTS = {
    "US": 30,
    "CN": 15,
    "DE": 10,
    "GB": 10,
    "FR": 6,
    "CA": 6,
    "NL": 4,
    "SG": 4,
    "JP": 5,
    "AU": 4,
    "IN": 4,
    "BR": 2,
}
INDUSTRY_BY_SUFFIX = {
    "Systems": "software",
    "Labs": "research",
    "Logistics": "logistics",
    "Analytics": "software",
    "Health": "healthcare",
    "Foods": "food",
    "Motors": "automotive",
    "Energy": "energy",
    "Robotics": "manufacturing",
    "Software": "software",
    "Networks": "telecom",
    "Retail": "retail",
    "Capital": "financial services",
    "Bio": "biotech",
    "Materials": "manufacturing",
    "Textiles": "manufacturing",
    "Media": "media",
    "Cloud": "software",
    "Devices": "electronics",
    "Pharma": "pharma",
    "Freight": "logistics",
    "Foundry": "manufacturing",
    "Works": "manufacturing",
    "Dynamics": "engineering",
    "Solutions": "it services",
}
#: Company sizes follow a long tail: many small firms, a few very large ones.
SIZE_BANDS = ((5, 49, 40), (50, 199, 28), (200, 999, 20), (1000, 4999, 8), (5000, 50000, 4))

#: Fixed rows the examples and tests refer to.
FIXED = (
    ("example.com", "Example Corp", "software", 500, "US"),
    ("rivalsoft.com", "RivalSoft Inc.", "software", 800, "US"),
    ("university.edu", "State University", "education", 12000, "US"),
)


def rows(seed: int = SEED, count: int = ROWS) -> list[tuple[str, str, str, int, str]]:
    rng = random.Random(seed)
    countries = list(COUNTRY_WEIGHTS)
    weights = list(COUNTRY_WEIGHTS.values())
    out: list[tuple[str, str, str, int, str]] = list(FIXED)
    seen = {r[0] for r in out}
    while len(out) < count:
        prefix, suffix = rng.choice(PREFIXES), rng.choice(SUFFIXES)
        country = rng.choices(countries, weights)[0]
        domain = f"{prefix}{suffix}".lower() + TLDS[country]
        if domain in seen:
            domain = f"{prefix}-{suffix}-{rng.randint(2, 99)}".lower() + TLDS[country]
            if domain in seen:
                continue
        seen.add(domain)
        lo, hi, _ = rng.choices(SIZE_BANDS, [b[2] for b in SIZE_BANDS])[0]
        out.append(
            (domain, f"{prefix} {suffix} {FORMS[country]}", INDUSTRY_BY_SUFFIX[suffix], rng.randint(lo, hi), country)
        )
    return out


def main() -> None:
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("domain", "company", "industry", "employees", "country"))
        writer.writerows(rows())
    print(f"wrote {OUT} ({ROWS} rows)")


if __name__ == "__main__":
    main()
