"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in test_api_contract: how to make the values of
the contract's custom formats."""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis
from hypothesis import strategies as st

# "phone": a number phonenumbers calls valid; the contract cannot say that as a pattern.
schemathesis.openapi.format(
    "phone", st.sampled_from(["+14155550100", "+442079460958", "+4930901820", "+33142685300", "+61291234567"])
)


@schemathesis.hook
def map_headers(context: schemathesis.HookContext, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """A scanner app makes one Idempotency-Key per batch: generated keys ("0", "00"...) repeat
    across different batches, which is refused (422) by design and tested in test_scans.py."""
    operation = context.operation
    if operation is not None and operation.path == "/v1/scans" and headers and headers.get("idempotency-key"):
        key = str(headers["idempotency-key"])
        if len(key) <= 200:
            headers["idempotency-key"] = f"{key[:160]}-{uuid.uuid4().hex}"
    return headers
