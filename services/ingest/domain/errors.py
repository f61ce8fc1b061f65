"""Errors of the ingest domain.

::

    IngestError
    └── InvalidInput        one or more fields are bad (``problems`` names each field)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One bad field: its (dotted) name and what is wrong with it."""

    field: str
    problem: str


class IngestError(Exception):
    """Base of the ingest domain's errors."""


class InvalidInput(IngestError):
    """The input cannot become an event; ``problems`` lists every bad field."""

    def __init__(self, problems: list[FieldProblem]):
        super().__init__("; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.problems = problems
