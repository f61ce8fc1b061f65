"""The dev file outbox (``NOTIFIER_OUTBOX_DIR``): every email as an ``.eml`` file and every
message of any channel as one line of ``outbox.jsonl``. ``make run`` uses it by default so a
developer can read what would have been sent."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import orjson

from services.notifier.adapters.email_mime import build_email
from services.notifier.domain.message import OutboundMessage, SendResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class FileOutbox:
    """Writes messages to files; ``name`` is the channel it serves."""

    def __init__(self, directory: Path, *, name: str, sender: str = "leadpipe <noreply@leadpipe.local>"):
        self.directory = directory
        self.name = name
        self.sender = sender
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "outbox.jsonl"

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            return self._write(message)
        except OSError as exc:
            return SendResult("transient", f"outbox write failed: {exc.strerror}", "connection")

    def _write(self, message: OutboundMessage) -> SendResult:
        now = datetime.now(UTC)
        entry: dict[str, object] = {
            "at": now.isoformat(),
            "notification_id": message.notification_id,
            "lead_id": message.lead_id,
            "channel": self.name,
            "audience": message.audience,
            "template": message.template,
            "locale": message.locale,
            "to": message.to,
            "subject": message.subject,
        }
        if self.name == "email":
            filename = f"{now:%Y%m%dT%H%M%S%f}-{_UNSAFE.sub('_', message.notification_id)[:80]}.eml"
            (self.directory / filename).write_bytes(bytes(build_email(message, sender=self.sender)))
            entry["file"] = filename
        else:
            entry["text"] = message.short
        with self.log_path.open("ab") as log:
            log.write(orjson.dumps(entry) + b"\n")
        return SendResult("ok", f"outbox: {entry.get('file', 'outbox.jsonl')}")

    async def close(self) -> None:
        return None
