"""Retention (issue #15 item 4): unconverted leads kept too long are erased through the erasure path."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from leadpipe.runtime.retention import RetentionSettings, topic_config
from schemas.topics import registry
from services.scoring.domain.lead import LeadState
from services.scoring.domain.retention import RetentionPolicy, is_expired, last_activity
from services.scoring.retention import REQUESTED_BY, SweepMetrics, prune_logs, sweep
from tests.unit.scoring.leads import T0, capture, days, engagement, lead

TWO_YEARS = RetentionPolicy(unconverted_lead_days=730)


def test_an_unconverted_lead_silent_for_longer_than_the_limit_has_expired():
    quiet = lead(capture(at=T0))
    assert not is_expired(quiet, T0 + days(729), TWO_YEARS)
    assert is_expired(quiet, T0 + days(731), TWO_YEARS)


def test_engaging_again_keeps_the_lead():
    active = lead(capture(at=T0), engagement("email_clicked", at=T0 + days(400)))
    assert last_activity(active) == T0 + days(400)
    assert not is_expired(active, T0 + days(731), TWO_YEARS)


def test_a_lead_who_bought_is_never_swept_by_this_limit():
    customer = lead(capture(at=T0), engagement("purchased", at=T0 + days(1)))
    assert customer.purchased
    assert not is_expired(customer, T0 + days(5000), TWO_YEARS)


def test_a_negative_limit_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="unconverted_lead_days"):
        RetentionPolicy(unconverted_lead_days=-1)


async def _chunks(*states: LeadState) -> AsyncIterator[list[LeadState]]:
    yield list(states)


async def test_the_sweep_requests_erasure_of_expired_leads_by_lead_id_only_and_counts_them():
    old = lead(capture(email="old@example.com", at=T0))
    new = lead(capture(email="new@example.com", at=T0 + days(700)))
    published, forgotten = [], []
    metrics = SweepMetrics(CollectorRegistry())

    async def publish(requests):
        published.extend(requests)

    async def forget():
        forgotten.append(1)
        return 2

    report = await sweep(leads=_chunks(old, new), policy=TWO_YEARS, secret="s", publish=publish,
                         forget_answered=forget, metrics=metrics, now=T0 + days(731))  # fmt: skip
    assert report.expired == [old.lead_id] and report.leads_seen == 2
    [req] = published
    assert req.lead_ids == [old.lead_id] and req.email is None and req.phone is None
    assert req.requested_by == REQUESTED_BY
    assert report.request_keys_destroyed == 2 and forgotten == [1]
    value = metrics.registry.get_sample_value
    assert value("leadpipe_privacy_retention_purged_total", {"what": "unconverted_lead"}) == 1
    assert value("leadpipe_privacy_retention_purged_total", {"what": "erasure_request_key"}) == 2


async def test_a_dry_run_lists_and_erases_nothing():
    published = []

    async def publish(requests):
        published.extend(requests)

    async def forget():
        raise AssertionError("a dry run destroys no key")

    report = await sweep(leads=_chunks(lead(capture(at=T0))), policy=TWO_YEARS, secret="s", publish=publish,
                         forget_answered=forget, metrics=SweepMetrics(CollectorRegistry()), now=T0 + days(800),
                         dry_run=True)  # fmt: skip
    assert len(report.expired) == 1 and published == []


async def test_many_expired_leads_go_in_requests_of_at_most_a_hundred():
    states = [lead(capture(email=f"p{i}@example.com", at=T0)) for i in range(150)]
    published = []

    async def publish(requests):
        published.extend(requests)

    async def forget():
        return 0

    await sweep(leads=_chunks(*states), policy=TWO_YEARS, secret="s", publish=publish, forget_answered=forget,
                metrics=SweepMetrics(CollectorRegistry()), now=T0 + days(800))  # fmt: skip
    assert [len(r.lead_ids) for r in published] == [100, 50]


def test_log_files_older_than_the_limit_are_deleted(tmp_path):
    old, fresh = tmp_path / "old.log", tmp_path / "fresh.log"
    old.write_text("x"), fresh.write_text("y")
    past = time.time() - 31 * 86400
    os.utime(old, (past, past))
    assert prune_logs(tmp_path, 30) == 1
    assert not old.exists() and fresh.exists()


def test_raw_capture_topics_keep_no_longer_than_the_limit_and_state_topics_compact_within_a_bound():
    topics = registry(3)
    short = RetentionSettings(leadpipe_retention_raw_capture_days=2, leadpipe_state_compaction_lag_hours=1)
    assert topic_config(topics["lead.captured.v1"], short)["retention.ms"] == str(2 * 86400_000)
    assert topic_config(topics["lead.engagement.v1.dlq"], short)["retention.ms"] == str(2 * 86400_000)
    # the registry's 14 days stay when shorter than the 90-day default limit
    assert topic_config(topics["lead.captured.v1"], RetentionSettings())["retention.ms"] == str(14 * 86400_000)
    assert topic_config(topics["lead.scored.v1"], short) == topics["lead.scored.v1"].config
    state = topic_config(topics["scoring.state.v1"], short)
    assert state["max.compaction.lag.ms"] == state["segment.ms"] == str(3600_000)
