"""Nurture decides which touches need consent and the notifier checks again at send time: the two
must agree on which lead-facing templates are transactional."""

from pathlib import Path

import yaml

from services.notifier.adapters.templates import load_catalog
from services.nurture.domain.playbooks import LEAD_TEMPLATES, parse_playbooks

ROOT = Path(__file__).resolve().parents[2]


def test_nurture_and_the_notifier_agree_on_which_lead_templates_are_transactional():
    books = parse_playbooks(yaml.safe_load((ROOT / "services/nurture/config/playbooks.yaml").read_text()))
    catalog = load_catalog(ROOT / "services/notifier/templates/_catalog.yaml")
    notifier_side = {t for t in LEAD_TEMPLATES if catalog.get(t) == "transactional"}
    assert books.consent.transactional_templates == notifier_side
