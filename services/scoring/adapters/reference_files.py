"""Loads the scoring model (YAML) and the enrichment reference files shipped in ``data/``."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from services.scoring.domain.enrichment import Firmographic, ReferenceData
from services.scoring.domain.errors import ModelError
from services.scoring.domain.model import ScoringModel, parse_model

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MODELS_DIR = DATA_DIR / "models"
DEFAULT_MODEL = MODELS_DIR / "fit-2026.1.yaml"


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


class ModelCatalog:
    """Scoring models by version: ``<models dir>/<version>.yaml``, each parsed once."""

    def __init__(self, models_dir: Path = MODELS_DIR):
        self.models_dir = models_dir
        self._loaded: dict[str, ScoringModel] = {}

    def versions(self) -> list[str]:
        return sorted(p.stem for p in self.models_dir.glob("*.yaml"))

    def get(self, version: str) -> ScoringModel:
        """The model of ``version``; ``ModelError`` (field ``model``) naming the known ones otherwise."""
        if version in self._loaded:
            return self._loaded[version]
        path = self.models_dir / f"{version}.yaml"
        if not version or Path(version).name != version or not path.is_file():
            known = ", ".join(self.versions()) or "none"
            raise ModelError(f"unknown model version {version!r} (known: {known})", field="model")
        model = load_model(path)
        if model.version != version:
            raise ModelError(f"{path}: declares version {model.version!r}, expected {version!r}", field="version")
        self._loaded[version] = model
        return model


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
