"""How many failed sign-ins the console takes before it makes a caller wait.

Two limits, each over a sliding window: failures per account (someone guessing one rep's
password from many addresses) and failures per client address (one address trying many
accounts). A blocked caller is told how long to wait; a successful sign-in clears its account's
failures but not its address's (a guesser who knows one password must not reset the count for
the accounts it is guessing).

Kept in the process: one console replica counts its own callers, so N replicas let N times the
limit through at worst (still a few guesses a minute, not thousands).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Blocked:
    """Which limit a caller hit, and how many whole seconds until it may try again."""

    limit: str
    retry_after_s: int


class LoginThrottle:
    """Failed sign-ins per account and per address in the last ``window_s`` seconds. Times are
    plain floats (a monotonic clock's seconds), passed in by the caller."""

    def __init__(self, per_account: int, per_address: int, window_s: float, max_keys: int = 100_000) -> None:
        if per_account < 1 or per_address < 1 or window_s <= 0:
            raise ValueError("login throttle: limits must be >= 1 and the window > 0 seconds")
        self.limits = {"account": per_account, "address": per_address}
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def check(self, account: str, address: str, now: float) -> Blocked | None:
        """None when the caller may try; else the limit it is over and when it may try again."""
        for kind, key in (("account", account.strip().lower()), ("address", address)):
            times = self._recent((kind, key), now)
            if len(times) >= self.limits[kind]:
                # The oldest failure that keeps the count at the limit has to leave the window.
                oldest = times[len(times) - self.limits[kind]]
                wait = max(1, int(oldest + self.window_s - now + 0.999))
                return Blocked(kind, wait)
        return None

    def failed(self, account: str, address: str, now: float) -> None:
        for key in (("account", account.strip().lower()), ("address", address)):
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:  # bounded memory under a flood of made-up names
            self._failures.popitem(last=False)

    def succeeded(self, account: str) -> None:
        self._failures.pop(("account", account.strip().lower()), None)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times
