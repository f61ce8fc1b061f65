"""Output ids are deterministic, so a replayed event or a re-run rescore republishes the same id."""

from __future__ import annotations

import uuid

from services.scoring.handlers import _OUT_NS, output_id


def test_output_ids_are_the_uuid5_of_the_event_the_lead_and_the_model_version():
    for event_id, lead_id in [("e-1", "ld_1"), ("rescore:fit-2026.2:run", "ld_" + "f" * 20), ("ü", "")]:
        expected = str(uuid.uuid5(_OUT_NS, f"{event_id}/{lead_id}/fit-2026.1"))
        assert output_id(event_id, lead_id, "fit-2026.1") == expected


def test_the_same_event_scored_under_another_model_gets_another_id():
    assert output_id("e-1", "ld_1", "fit-2026.1") != output_id("e-1", "ld_1", "fit-2026.2")


def test_the_events_a_lead_counted_are_part_of_the_id_so_a_changed_lead_is_not_a_duplicate():
    counted = ("e-0", "e-1")
    assert output_id("e-1", "ld_1", "fit-2026.1", counted) == output_id("e-1", "ld_1", "fit-2026.1", counted)
    assert output_id("e-1", "ld_1", "fit-2026.1", counted) != output_id("e-1", "ld_1", "fit-2026.1", ("e-9", *counted))
    assert output_id("e-1", "ld_1", "fit-2026.1", counted) != output_id("e-1", "ld_1", "fit-2026.1")
