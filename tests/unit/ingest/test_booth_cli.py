"""``leadpipe scans upload`` up to the point of sending: dry run and refusals (no server needed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from leadpipe.cli import main
from tests.fixtures.booth import exports

NOWHERE = "http://127.0.0.1:9"  # nothing listens: a dry run or a refusal must not try to send


@pytest.fixture
def shows(tmp_path: Path) -> Path:
    d = tmp_path / "shows"
    d.mkdir()
    (d / "expo-2026.yaml").write_text(
        "id: expo-2026\nname: Expo 2026\ntimezone: Europe/Lisbon\nconsent:\n  basis: none\n", encoding="utf-8"
    )
    return d


def squash(text: str) -> str:
    return re.sub(r" {2,}", " ", text)


def upload(*args: object) -> int:
    return main(["scans", "upload", *map(str, args), "--url", NOWHERE, "--no-progress"])


def test_a_dry_run_shows_mapping_ignored_columns_first_scans_and_problems_grouped_by_kind(
    tmp_path: Path, shows: Path, capsys: pytest.CaptureFixture[str]
):
    export = tmp_path / "booth.csv"
    shutil.copy(exports.LEADRETRIEVAL_CSV, export)
    rc = upload(export, "--show", "expo-2026", "--booth", "B12", "--shows-dir", shows, "--dry-run", "--rows", "2")
    out = squash(capsys.readouterr().out)
    assert rc == 0
    assert "'Scan Time' -> scanned_at (recognised)" in out
    assert "'Lead Rating' -> rating (recognised)" in out
    assert "time zone: Europe/Lisbon (show settings)" in out
    assert "consent: none (show settings): the scans carry no marketing consent" in out
    assert "first 2 of 299 scans as they would be sent:" in out
    assert ' row 2: {"badge_id": "WS1800000", ' in out and '"scanned_at": "2026-11-03T09:32:00+00:00"' in out
    assert '"language": "zh-CN"' in out.split("row 2:")[1].split("\n")[0]  # a visitor from China
    assert "row 4:" not in out
    assert " rating: not a known rating (kept as an answer) - 3 rows, sent without it: rows 52, 149, 246" in out
    assert " scanned_at: empty - 1 row, not sent: row 139" in out
    assert out.count("scanned_at: empty") == 1  # one line per kind, not one per row
    assert not list(tmp_path.glob("*.progress.json"))


def test_a_dry_run_lists_ignored_and_unrecognised_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    export = tmp_path / "scans.csv"
    export.write_text(
        "Badge;Scan Time;Email;E-mail Address;Fax;Booth Visit Reason\nB1;2026-11-03 14:05;a@example.com;b@example.com;123;demo\n",
        encoding="utf-8",
    )
    rc = upload(
        export, "--show", "s", "--booth", "B1", "--timezone", "Asia/Shanghai", "--map", "Fax=ignore", "--dry-run"
    )
    out = squash(capsys.readouterr().out)
    assert rc == 0
    assert "'E-mail Address' -> ignored (email already comes from 'Email')" in out
    assert "'Fax' -> ignored (--map says ignore)" in out
    assert "'Booth Visit Reason' -> answers.booth_visit_reason (not recognised, kept as an answer)" in out
    assert '"scanned_at": "2026-11-03T14:05:00+08:00"' in out
    assert "time zone: Asia/Shanghai (--timezone)" in out
    assert "consent: none (no --consent and no show settings): the scans carry no marketing consent" in out


def test_a_chinese_gbk_export_is_read_with_its_chinese_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    rc = upload(exports.CHINA_EXPO_CSV, "--show", "cn", "--booth", "A1", "--timezone", "Asia/Shanghai", "--dry-run")
    out = squash(capsys.readouterr().out)
    assert rc == 0
    assert "40 rows, encoding GBK/GB18030" in out
    assert "'扫描时间' -> scanned_at" in out and "'意向'" in out
    assert '"rating": "hot"' in out and '"full_name": "王洋"' in out and "problems (nothing sent: dry run): none" in out


def test_an_unknown_time_zone_is_refused_naming_the_option(shows: Path, capsys: pytest.CaptureFixture[str]):
    rc = upload(exports.LEADRETRIEVAL_CSV, "--show", "expo-2026", "--booth", "B", "--timezone", "Europe/Lisbn")
    err = capsys.readouterr().err
    assert rc == 2
    assert "error: --timezone: 'Europe/Lisbn' is not a known time zone (use an IANA name such as Europe/Lisbon)" in err


def test_naive_times_with_no_timezone_and_no_show_settings_are_refused_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    rc = upload(exports.LEADRETRIEVAL_CSV, "--show", "unknown-show", "--booth", "B", "--shows-dir", tmp_path)
    err = capsys.readouterr().err
    assert rc == 2
    assert "error: --timezone: row 2, column 'Scan Time': '2026-11-03 09:32' has no UTC offset" in err
    assert "--timezone Europe/Lisbon" in err and "no settings for show 'unknown-show'" in err


def test_an_unreadable_file_is_refused_saying_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert upload(tmp_path / "missing.csv", "--show", "s", "--booth", "B") == 2
    assert "error: cannot read" in capsys.readouterr().err
    broken = tmp_path / "leads.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    assert upload(broken, "--show", "s", "--booth", "B") == 2
    assert "error: leads.xlsx: not a readable .xlsx workbook" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n", encoding="utf-8")
    assert upload(empty, "--show", "s", "--booth", "B") == 2
    assert "error: empty.csv: no header row (the file is empty)" in capsys.readouterr().err


def test_a_map_naming_a_column_not_in_the_file_is_refused_naming_the_column(
    shows: Path, capsys: pytest.CaptureFixture[str]
):
    rc = upload(exports.LEADRETRIEVAL_CSV, "--show", "expo-2026", "--booth", "B", "--shows-dir", shows,
                "--map", "Scan Tme=scanned_at")  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "error: --map: column 'Scan Tme' is not in the file (columns: Badge ID, First Name" in err


def test_a_bad_consent_basis_or_show_file_is_refused_naming_the_setting(
    shows: Path, capsys: pytest.CaptureFixture[str]
):
    rc = upload(
        exports.LEADRETRIEVAL_CSV, "--show", "expo-2026", "--booth", "B", "--shows-dir", shows, "--consent", "yes"
    )
    assert rc == 2 and "error: consent: 'yes' is not none, email, sms, phone" in capsys.readouterr().err
    (shows / "bad.yaml").write_text("id: bad\ntimezone: Europe/Lisbon\n", encoding="utf-8")
    assert upload(exports.LEADRETRIEVAL_CSV, "--show", "bad", "--booth", "B", "--shows-dir", shows) == 2
    assert "bad.yaml: consent.basis: is required" in capsys.readouterr().err
    (shows / "broken.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    assert upload(exports.LEADRETRIEVAL_CSV, "--show", "broken", "--booth", "B", "--shows-dir", shows) == 2
    assert "broken.yaml: show: not readable YAML" in capsys.readouterr().err


def test_a_utf8_bom_export_from_excel_keeps_its_first_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    export = tmp_path / "bom.csv"
    export.write_bytes("胸卡号,扫描时间,职位\nC1,2026/11/05 09:02,技术总监\n".encode("utf-8-sig"))
    rc = upload(export, "--show", "cn", "--booth", "A1", "--timezone", "Asia/Shanghai", "--dry-run")
    out = squash(capsys.readouterr().out)
    assert rc == 0 and "'胸卡号' -> badge_id (recognised)" in out
    assert (
        '"badge_id": "C1"' in out
        and '"language": "zh-CN"' in out
        and '"scanned_at": "2026-11-05T09:02:00+08:00"' in out
    )
