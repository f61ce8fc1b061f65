"""Comparing a decoded record with its golden (released) version."""

from __future__ import annotations

from typing import Any


def as_known(dumped: Any, known: Any) -> Any:
    """``dumped`` cut to the keys the golden record has, at every level: an optional field added
    to a part since the golden record was written (``consent.text_version``) is this release's
    addition, not a change of meaning. A key the golden has and ``dumped`` lacks stays a mismatch."""
    if isinstance(dumped, dict) and isinstance(known, dict):
        return {k: as_known(dumped[k], v) if k in dumped else None for k, v in known.items()}
    if isinstance(dumped, list) and isinstance(known, list) and len(dumped) == len(known):
        return [as_known(d, k) for d, k in zip(dumped, known, strict=True)]
    return dumped
