"""The fence around Faust's private internals: pinned versions checked, log levels translated."""

from __future__ import annotations

import pytest

from leadpipe.runtime.faust_compat import PINNED, IncompatibleVersion, check_versions, faust_loglevel


def test_the_pinned_versions_are_the_installed_ones():
    check_versions()


def test_another_faust_version_is_refused_naming_it_and_the_expected_one():
    with pytest.raises(IncompatibleVersion, match=r"faust-streaming 0\.16\.0 \(expected 0\.15\.3\)"):
        check_versions(faust_version="0.16.0", aiokafka_version=PINNED["aiokafka"])


def test_another_aiokafka_version_is_refused():
    with pytest.raises(IncompatibleVersion, match=r"aiokafka 0\.15\.0"):
        check_versions(faust_version=PINNED["faust-streaming"], aiokafka_version="0.15.0")


@pytest.mark.parametrize(("ours", "faust"), [("WARNING", "warn"), ("warning", "warn"), ("CRITICAL", "crit"),
                                             ("INFO", "info"), ("DEBUG", "debug"), ("ERROR", "error")])  # fmt: skip
def test_log_levels_are_given_to_faust_in_its_own_names(ours: str, faust: str):
    assert faust_loglevel(ours) == faust


def test_an_unknown_log_level_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="log_level: 'LOUD'"):
        faust_loglevel("LOUD")
