"""Errors of the nurture domain.

::

    NurtureError
    ├── IllegalTransition   a lifecycle move the state machine does not allow (counted, never applied)
    └── ConfigError         a playbook or sales-directory file is invalid (names the field)
"""

from __future__ import annotations


class NurtureError(Exception):
    """Base of every error raised by the nurture domain."""


class IllegalTransition(NurtureError):
    def __init__(self, from_stage: str | None, to_stage: str, reason: str):
        super().__init__(f"illegal lifecycle transition {from_stage} -> {to_stage} ({reason})")
        self.from_stage = from_stage
        self.to_stage = to_stage
        self.reason = reason


class ConfigError(NurtureError):
    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem
