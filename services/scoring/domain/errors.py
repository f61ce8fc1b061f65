"""Errors of the scoring domain.

::

    ScoringError
    ├── ModelError       a scoring model (YAML) is invalid; names the field and the problem
    ├── IdentityError    an event carries nothing that identifies a person
    └── SplitError       a split asked for cannot be made (names the lead or capture)
"""

from __future__ import annotations


class ScoringError(Exception):
    """Base of every error raised by the scoring domain."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class ModelError(ScoringError):
    """The scoring model is invalid (unknown fact, bad operator, missing band...)."""


class IdentityError(ScoringError):
    """Nothing in the event identifies a person (no valid email, phone or badge)."""


class SplitError(ScoringError):
    """A merge cannot be split as asked (unknown lead, capture not on it, nothing would remain)."""
