"""The pipeline bench's own arithmetic: top frames of a profile, the sweep's goals, bad options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.pipeline_bench import parse_args, sweep_goals, throughput_ratios, top_frames


def test_top_frames_counts_self_and_inclusive_samples(tmp_path: Path) -> None:
    doc = {
        "shared": {
            "frames": [
                {"name": "run", "file": "/x/runpy.py", "line": 1},
                {"name": "handle", "file": "/x/services/scoring/handlers.py", "line": 9},
                {"name": "encode", "file": "/x/schemas/codec.py", "line": 3},
                {"name": "EpollSelector.select", "file": "/x/selectors.py", "line": 468},
            ]
        },
        "profiles": [{"samples": [[0, 1, 2], [0, 1], [0, 1, 2], [0], [0, 3]], "weights": [1, 1, 1, 1, 1]}],
    }
    path = tmp_path / "p.speedscope.json"
    path.write_text(json.dumps(doc))
    found = top_frames(path)
    assert found["busy_pct"] == 80.0  # the select() sample is a wait, not work
    assert found["self"][0] == ("encode (codec.py:3)", 50.0)
    assert found["inclusive"] == [("handle (handlers.py:9)", 75.0), ("encode (codec.py:3)", 50.0)]  # ours only


def _row(p99: float, all_sent: bool = True) -> dict[str, object]:
    return {"latency_ms": {"post_to_sent": {"n": 10, "p99": p99}}, "all_alerts_sent": all_sent}


def test_the_sweep_goals_are_the_issues_bounds() -> None:
    args = parse_args(["--sweep-only"])
    goals = sweep_goals({"20": _row(299.0), "100": _row(510.0)}, args)
    assert goals["p99_under_300ms_at_20_per_s"] == {"p99_ms": 299.0, "met": True}
    assert goals["p99_under_500ms_at_100_per_s"] == {"p99_ms": 510.0, "met": False}
    assert sweep_goals({"20": _row(100.0, all_sent=False)}, args)["p99_under_300ms_at_20_per_s"]["met"] is False


def test_the_sweep_defaults_are_the_issues_and_bad_rates_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args([])
    assert (args.sweep_rates, args.sweep_seconds, args.check_rate, args.check_seconds) == (
        [5.0, 20.0, 50.0, 100.0, 200.0],
        20.0,
        100.0,
        60.0,
    )
    with pytest.raises(SystemExit):
        parse_args(["--sweep-rates", "5,-1"])
    assert "--sweep-rates must list rates > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--sweep-seconds", "0"])
    assert "--sweep-seconds must be > 0" in capsys.readouterr().err


def _throughput(c1: float, c2: float, d3: float) -> dict[str, object]:
    return {
        key: {"throughput": {"leads_per_s": rate}}
        for key, rate in (("c1_http_1_replica", c1), ("c2_inject_1_replica", c2), ("d3_inject_2_replicas", d3))
    }


def test_throughput_is_a_ratio_to_the_sealed_and_to_the_plain_raw_chain() -> None:
    result = {
        "raw": {"max": {"events_per_s": 700.0}, "max_plain": {"events_per_s": 2000.0}},
        "phases": _throughput(280.0, 210.0, 350.0),
    }
    sealed, plain = throughput_ratios(result)
    assert sealed == {"c1_http_1_replica": 0.4, "c2_inject_1_replica": 0.3, "d3_inject_2_replicas": 0.5}
    assert plain == {"c1_http_1_replica": 0.14, "c2_inject_1_replica": 0.105, "d3_inject_2_replicas": 0.175}


def test_a_result_without_the_plain_chain_has_no_plain_ratios() -> None:
    # results of before the plain chain was measured
    sealed, plain = throughput_ratios(
        {"raw": {"max": {"events_per_s": 700.0}}, "phases": _throughput(70.0, 70.0, 70.0)}
    )
    assert sealed["c1_http_1_replica"] == 0.1
    assert plain == {}


def test_a_raw_chain_that_completed_nothing_gives_ratios_that_meet_no_goal() -> None:
    raw = {"max": {"events_per_s": 0.0}, "max_plain": {"events_per_s": 0.0}}
    sealed, plain = throughput_ratios({"raw": raw, "phases": _throughput(70.0, 70.0, 70.0)})
    for ratios in (sealed, plain):
        assert set(ratios) == {"c1_http_1_replica", "c2_inject_1_replica", "d3_inject_2_replicas"}
        assert all(math.isnan(r) and not r >= 0.30 for r in ratios.values())
