"""Booth staff's real exports through the real ``leadpipe scans upload`` command (a subprocess)
against a real ingest process and broker, with no ``--map``; the captures are read back from
the topic and checked against what each file says."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.ingest.domain.booth import normalise_rating
from tests.fixtures.booth import exports
from tests.integration.ingest.conftest import ROOT, read_all, running_ingest


@pytest.fixture(scope="module")
def ingest_url(tmp_path_factory: pytest.TempPathFactory, registry_topics: str, redis_url: str) -> Iterator[str]:
    with running_ingest(tmp_path_factory.mktemp("ingest"), registry_topics, redis_url) as url:
        yield url


def new_show(shows: Path, timezone: str, consent: str = "basis: none") -> str:
    show = f"expo-{uuid.uuid4().hex[:8]}"
    shows.mkdir(exist_ok=True)
    (shows / f"{show}.yaml").write_text(f"id: {show}\ntimezone: {timezone}\nconsent:\n  {consent}\n", encoding="utf-8")
    return show


def upload(url: str, export: Path, *args: str, shows: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "leadpipe.cli", "scans", "upload", str(export), "--url", url, "--booth", "B12", *args]
    if shows is not None:
        cmd += ["--shows-dir", str(shows)]
    env = os.environ | {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=export.parent)


def captured(bootstrap: str, show: str) -> dict[str, Any]:
    """The show's captures on the topic, by badge (every badge once)."""
    events = [e for e in asyncio.run(read_all(bootstrap, "lead.captured.v1")) if e.data.context.show_id == show]
    by_badge = {e.data.identity.badge_id: e.data for e in events}
    assert len(by_badge) == len(events), "a badge was published twice"
    return by_badge


def utc(local: datetime, zone: str) -> datetime:
    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def test_the_lead_retrieval_csv_uploads_without_a_map_in_the_shows_time_zone(
    ingest_url: str, tmp_path: Path, registry_topics: str
):
    show = new_show(tmp_path / "shows", "America/New_York")
    export = tmp_path / "booth.csv"
    shutil.copy(exports.LEADRETRIEVAL_CSV, export)
    done = upload(ingest_url, export, "--show", show, shows=tmp_path / "shows")
    assert done.returncode == 1, done.stderr  # one row had no scan time
    assert "accepted 299, already uploaded 0, rejected 0, not sent 1" in done.stdout
    assert "scanned_at: empty - 1 row, not sent: row 139" in done.stdout
    assert "rating: not a known rating (kept as an answer) - 3 rows, sent without it: rows 52, 149, 246" in done.stdout
    assert "consent: none (show settings)" in done.stdout
    leads = captured(registry_topics, show)
    people = exports.leadretrieval_people()
    assert len(leads) == 299 and people[exports.UNTIMED[0]].badge not in leads
    for i, p in enumerate(people):
        if i in exports.UNTIMED:
            continue
        lead = leads[p.badge]
        assert lead.captured_at == utc(p.local_time, "America/New_York")
        assert (lead.person.first_name, lead.person.last_name, lead.person.job_title) == (p.first, p.last, p.title)
        assert lead.identity.email == p.email and lead.person.company == p.company
        assert lead.person.language == ("zh-CN" if p.chinese else None)
        assert lead.consent is None  # the show states no consent: none is invented
        if i in exports.UNRATED:
            assert lead.booth_rating is None and lead.qualification.other == {"rating": exports.UNKNOWN_RATING}
        else:
            assert lead.booth_rating == normalise_rating(p.rating)
    assert sum(1 for p in people if p.email is None) >= 30  # rows without email went as scans too
    assert sum(1 for lead in leads.values() if lead.person.language == "zh-CN") >= 30


def test_a_chinese_gbk_export_uploads_with_zh_cn_replies_and_the_stated_consent(
    ingest_url: str, tmp_path: Path, registry_topics: str
):
    show = f"cn-expo-{uuid.uuid4().hex[:8]}"
    text = "我同意接收产品资讯邮件"
    done = upload(ingest_url, exports.CHINA_EXPO_CSV, "--show", show, "--timezone", "Asia/Shanghai",
                  "--consent", "email", "--consent-text", text, "--consent-version", "2026-10",
                  "--shows-dir", str(tmp_path))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accepted 40, already uploaded 0, rejected 0, not sent 0" in done.stdout
    leads = captured(registry_topics, show)
    for p in exports.china_expo_people():
        lead = leads[p.badge]
        assert lead.captured_at == utc(p.local_time, "Asia/Shanghai")
        assert lead.person.full_name == (f"{p.last}{p.first}" if p.chinese else f"{p.first} {p.last}")
        assert lead.person.language == ("zh-CN" if p.chinese else None)
        assert lead.booth_rating == normalise_rating(p.rating)
        assert lead.consent is not None and lead.consent.marketing and lead.consent.channels == ("email",)
        assert lead.consent.text_shown == f"{text}\n[consent text version 2026-10]"
        assert lead.consent.given_at == lead.captured_at


def test_an_excel_export_uploads_directly(ingest_url: str, tmp_path: Path, registry_topics: str):
    show = new_show(tmp_path / "shows", "Europe/Berlin", 'basis: email+sms\n  text: "Yes, news by email and SMS"')
    export = tmp_path / "leads.xlsx"
    people = exports.write_xlsx(export)
    done = upload(ingest_url, export, "--show", show, shows=tmp_path / "shows")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "accepted 25, already uploaded 0, rejected 0, not sent 0" in done.stdout
    leads = captured(registry_topics, show)
    for p in people:
        lead = leads[p.badge]
        assert lead.captured_at == utc(p.local_time, "Europe/Berlin")
        assert lead.booth_rating == normalise_rating(p.rating)
        assert lead.person.job_title == p.title and lead.identity.phone == p.phone
        assert lead.qualification.other == {"product_interest": "analytics"}
        assert lead.consent is not None and lead.consent.channels == ("email", "sms")
        assert lead.person.language == ("zh-CN" if p.chinese else None)


def test_a_corrected_reupload_after_fixing_the_mapping_goes_through_and_an_identical_repeat_is_already_uploaded(
    ingest_url: str, tmp_path: Path, registry_topics: str
):
    # Written so yesterday's CLI can run it too (offsets in the file, only --map): there the
    # corrected run was refused as "Idempotency-Key reused".
    show = f"fix-{uuid.uuid4().hex[:8]}"
    export = tmp_path / "scans.csv"
    notes = ["short", "wants a demo of the analytics add-on for their whole sales team", "ok"] * 2
    export.write_text(
        "Badge ID,Email,Notes,Scan Time\n"
        + "".join(f"F{i},f{i}@example.com,{n},2026-11-03T1{i}:05:00+01:00\n" for i, n in enumerate(notes)),
        encoding="utf-8",
    )
    args = ["--show", show, "--no-progress"]
    wrong = upload(ingest_url, export, *args, "--map", "Scan Time=scanned_at,Notes=country")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "accepted 4," in wrong.stdout and "rejected 2" in wrong.stdout

    fixed = upload(ingest_url, export, *args, "--map", "Scan Time=scanned_at")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "accepted 2, already uploaded 4, rejected 0" in fixed.stdout  # the 4 went through the first time
    assert "country: String should have at most 56 characters - 2 rows, rejected: rows 3, 6" in wrong.stdout

    again = upload(ingest_url, export, *args, "--map", "Scan Time=scanned_at")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "accepted 0, already uploaded 6, rejected 0" in again.stdout
    leads = captured(registry_topics, show)
    assert sorted(leads) == [f"F{i}" for i in range(6)]
    assert leads["F1"].notes == (notes[1],) and leads["F1"].person.country is None
