"""Structured JSON logs with a redaction filter: no email address, phone number or IP address leaves."""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# An IP address is personal data too, but it is not a phone number: masked first, as "[ip]".
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
# IPv6: a "::" or seven colons, so that a time of day ("21:57:20") is left alone.
_IPV6 = re.compile(r"(?<![\w:])(?=[0-9A-Fa-f:]*::|(?:[0-9A-Fa-f]{1,4}:){7})[0-9A-Fa-f:]{2,39}(?![\w:])")
_PHONE = re.compile(r"(?<![\w/.:(-])\+?\(?\d[\d ().\-]{7,}\d(?![\w/.:-])")


def redact(text: str) -> str:
    text = _EMAIL.sub("[email]", text)
    text = _IPV6.sub("[ip]", _IPV4.sub("[ip]", text))
    return _PHONE.sub("[phone]", text)


class RedactingFilter(logging.Filter):
    """Masks email addresses, phone numbers and IP addresses in the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        for key, value in list(record.__dict__.items()):
            if key in ("event_id", "lead_id", "correlation_id", "topic") or not isinstance(value, str):
                continue
            if key not in _STANDARD:
                record.__dict__[key] = redact(value)
        return True


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def setup_logging(service: str, *, level: str = "INFO", json_logs: bool = True) -> None:
    # The real stderr: inside a Faust worker sys.stderr is Faust's proxy that writes into logging,
    # and a handler writing there loses (or loops) every record.
    handler = logging.StreamHandler(sys.__stderr__ if sys.__stderr__ is not None else sys.stderr)
    if json_logs:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
