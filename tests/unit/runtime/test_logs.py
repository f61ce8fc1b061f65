"""The log redaction filter: what it masks, and what it must leave readable."""

from __future__ import annotations

import io
import logging

import pytest

from leadpipe.runtime.logs import RedactingFilter, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail Dana.Lee@Example.com now", "mail [email] now"),
        ("call +44 20 7946 0958 today", "call [phone] today"),
        ("call (415) 555-0142", "call [phone]"),
        ("peer 203.0.113.7 said hi", "peer [ip] said hi"),
        ("peer 2001:db8::8a2e:370:7334 said hi", "peer [ip] said hi"),
        ("peer ::1 said hi", "peer [ip] said hi"),
        ("peer fe80:0:0:0:200:f8ff:fe21:67cf said hi", "peer [ip] said hi"),
    ],
)
def test_personal_data_is_masked_by_kind(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "[26/Nov/2026:21:57:20 +0000] GET /readyz",  # a time of day is not an address
        "event 0723e9b9-2cfa-51f0-ab93-94af769fec69 lead ld_266dbf0c57dd403b1892",
        "took 1234.5 ms, 42 records, version 4.1.1",
        "topic lead.captured.v1 partition 3 offset 1234567",
    ],
)
def test_ids_times_and_numbers_stay_readable(text: str) -> None:
    assert redact(text) == text


def test_the_filter_masks_the_formatted_message_and_extra_fields_but_not_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s|%(peer)s|%(lead_id)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("bounce for %s", "dana@example.com", extra={"peer": "198.51.100.20", "lead_id": "ld_1"})
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().strip() == "bounce for [email]|[ip]|ld_1"
