"""The sign-in throttle's rules, with no fixtures: per account, per address, the window, reset."""

from __future__ import annotations

import pytest

from services.console.domain.throttle import Blocked, LoginThrottle


def test_an_account_is_blocked_after_its_failures_from_any_address_until_the_oldest_leaves_the_window() -> None:
    t = LoginThrottle(per_account=3, per_address=100, window_s=60)
    for i, at in enumerate((0.0, 10.0, 20.0)):
        assert t.check("rep-ana", f"10.0.0.{i}", at) is None
        t.failed("rep-ana", f"10.0.0.{i}", at)
    assert t.check("REP-ana ", "10.9.9.9", 25.0) == Blocked("account", 35)
    assert t.check("rep-ben", "10.9.9.9", 25.0) is None
    assert t.check("rep-ana", "10.9.9.9", 60.0) is None  # the first failure left the window


def test_an_address_is_blocked_after_failures_on_many_accounts() -> None:
    t = LoginThrottle(per_account=100, per_address=2, window_s=300)
    t.failed("rep-ana", "10.0.0.1", 0.0)
    t.failed("rep-ben", "10.0.0.1", 1.5)
    assert t.check("rep-cy", "10.0.0.1", 2.0) == Blocked("address", 298)
    assert t.check("rep-cy", "10.0.0.2", 2.0) is None


def test_a_successful_sign_in_clears_the_accounts_failures_but_not_the_addresss() -> None:
    t = LoginThrottle(per_account=2, per_address=3, window_s=60)
    t.failed("rep-ana", "10.0.0.1", 0.0)
    t.failed("rep-ana", "10.0.0.1", 1.0)
    t.succeeded("rep-ana")
    assert t.check("rep-ana", "10.0.0.2", 2.0) is None
    t.failed("rep-ben", "10.0.0.1", 2.0)
    assert t.check("rep-ana", "10.0.0.1", 3.0) == Blocked("address", 57)


def test_memory_stays_bounded_under_made_up_account_names() -> None:
    t = LoginThrottle(per_account=1, per_address=10**9, window_s=60, max_keys=50)
    for i in range(1000):
        t.failed(f"nobody-{i}", "10.0.0.1", float(i) / 100)
    assert len(t._failures) <= 50
    assert t.check("nobody-999", "10.0.0.2", 10.0) == Blocked("account", 60)


@pytest.mark.parametrize("args", [(0, 1, 60), (1, 0, 60), (1, 1, 0)])
def test_limits_below_one_or_an_empty_window_are_refused(args: tuple[int, int, float]) -> None:
    with pytest.raises(ValueError, match="login throttle"):
        LoginThrottle(*args)
