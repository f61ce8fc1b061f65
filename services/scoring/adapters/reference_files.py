"""Loads the scoring model (YAML) and the enrichment reference files shipped in ``data/``."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from services.scoring.domain.enrichment import Firmographic, ReferenceData
from services.scoring.domain.errors import ModelError
from services.scoring.domain.model import ScoringModel, parse_model

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_MODEL = DATA_DIR / "models" / "fit-2026.1.yaml"


def parse_model_text(text: str, origin: str = "<text>") -> ScoringModel:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(f"{origin}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{origin}: expected a mapping at the top level")
    try:
        return parse_model(data)
    except ModelError as exc:
        raise ModelError(f"{origin}: {exc}", field=exc.field) from exc


def load_model(path: Path = DEFAULT_MODEL) -> ScoringModel:
    return parse_model_text(path.read_text(encoding="utf-8"), str(path))


def _domains(path: Path) -> frozenset[str]:
    lines = (line.strip().lower() for line in path.read_text(encoding="utf-8").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def load_firmographics(path: Path) -> dict[str, Firmographic]:
    out: dict[str, Firmographic] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            try:
                firm = Firmographic(
                    domain=row["domain"].strip().lower(),
                    company=row["company"],
                    industry=row["industry"],
                    employees=int(row["employees"]),
                    country=row["country"].strip().upper(),
                )
            except (KeyError, ValueError, AttributeError) as exc:
                raise ValueError(f"{path}:{n}: bad firmographics row ({exc})") from exc
            out[firm.domain] = firm
    return out


def load_reference(data_dir: Path = DATA_DIR, served_area: Path | None = None) -> ReferenceData:
    area = yaml.safe_load((served_area or data_dir / "served_area.yaml").read_text(encoding="utf-8")) or {}
    countries = area.get("countries") if isinstance(area, dict) else None
    if not isinstance(countries, list):
        raise ValueError("served area: 'countries' must be a list of ISO country codes")
    return ReferenceData(
        free_mail=_domains(data_dir / "free_mail_domains.txt"),
        disposable=_domains(data_dir / "disposable_domains.txt"),
        firmographics=load_firmographics(data_dir / "firmographics.csv"),
        served_countries=frozenset(str(c).upper() for c in countries),
    )
