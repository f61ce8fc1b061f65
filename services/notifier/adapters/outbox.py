"""The dev file outbox (``NOTIFIER_OUTBOX_DIR``): every email as an ``.eml`` file and every
message of any channel as one line of ``outbox.jsonl``. ``make run`` uses it by default so a
developer can read what would have been sent."""

from __future__ import annotations

import errno
import os
import re
from datetime import UTC, datetime
from io import FileIO
from pathlib import Path

import orjson

from services.notifier.adapters.email_mime import email_bytes
from services.notifier.domain.erasure import outbox_line_is_theirs, redact_outbox_line, their_lead_ids
from services.notifier.domain.message import OutboundMessage, SendResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def _write_all(fd: int, data: bytes, what: str) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if not written:
            raise OSError(errno.EIO, f"{what} took no bytes")
        view = view[written:]


class FileOutbox:
    """Writes messages to files; ``name`` is the channel it serves.

    ``outbox.jsonl`` stays open between messages (opening it per message was 7 % of the
    notifier's CPU): appended unbuffered, one ``write`` per line, so ``find_sent`` and the
    other channels' outboxes (each holds its own handle on the same file, ``O_APPEND``) see
    every line at once. Before each write the path is checked to still name the open file: an
    erasure renames a rewritten file over it (``erase_from_outbox``, from this process or
    another), or someone removed it; then it is opened again."""

    def __init__(self, directory: Path, *, name: str, sender: str = "leadpipe <noreply@leadpipe.local>"):
        self.directory = directory
        self.name = name
        self.sender = sender
        self.directory.mkdir(parents=True, exist_ok=True)
        self._dir = os.fspath(directory)
        self.log_path = directory / "outbox.jsonl"
        self._log: FileIO | None = None
        self._log_id = (0, 0)

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            return self._write(message)
        except OSError as exc:
            self._close_log()
            return SendResult("transient", f"outbox write failed: {exc.strerror}", "connection")

    def _append(self, line: bytes) -> None:
        log = self._log
        if log is not None:
            try:
                st = os.stat(self.log_path)
                current = (st.st_dev, st.st_ino) == self._log_id
            except FileNotFoundError:
                current = False
            if not current:
                self._close_log()
                log = None
        if log is None:
            log = FileIO(self.log_path, "ab")
            st = os.fstat(log.fileno())
            self._log, self._log_id = log, (st.st_dev, st.st_ino)
        _write_all(log.fileno(), line, "outbox.jsonl")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

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
            try:
                data = email_bytes(message, sender=self.sender)
            except ValueError as exc:
                return SendResult("permanent", str(exc), "client_error")
            # One open/write/close (Path.write_bytes was 3 % of the notifier's CPU).
            fd = os.open(os.path.join(self._dir, filename), _CREATE, 0o644)
            try:
                _write_all(fd, data, filename)
            finally:
                os.close(fd)
            entry["file"] = filename
        else:
            entry["text"] = message.short
        self._append(orjson.dumps(entry) + b"\n")
        return SendResult("ok", f"outbox: {entry.get('file', 'outbox.jsonl')}")

    async def find_sent(self, notification_id: str) -> str | None:
        """The outbox's line for ``notification_id`` if it was written already (its provider
        log, read only after an interrupted send)."""
        if not self.log_path.exists():
            return None
        needle = orjson.dumps(notification_id)
        for raw in self.log_path.read_bytes().splitlines():
            if needle not in raw:
                continue
            entry = orjson.loads(raw)
            if entry.get("notification_id") == notification_id and entry.get("channel") == self.name:
                return f"outbox: already written at {entry.get('at')} ({entry.get('file', 'outbox.jsonl')})"
        return None

    async def close(self) -> None:
        self._close_log()


def erase_from_outbox(directory: Path, addresses: set[str], lead_ids: set[str]) -> tuple[int, int]:
    """Redacts the person's lines of ``outbox.jsonl`` (rewritten whole, then renamed over the old
    file) and deletes their ``.eml`` files. Returns (lines redacted, files deleted).

    Synchronous on purpose: the worker's sends write the same file from the same event loop,
    so no append can fall between the read and the rename.
    """
    path = directory / "outbox.jsonl"
    if not path.exists():
        return 0, 0
    entries = [orjson.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]
    lead_ids = lead_ids | their_lead_ids(entries, addresses)
    lines, redacted, deleted = [], 0, 0
    for entry in entries:
        if not entry.get("erased") and outbox_line_is_theirs(entry, addresses, lead_ids):
            file = entry.get("file")
            if isinstance(file, str) and (directory / file).exists():
                (directory / file).unlink()
                deleted += 1
            entry = redact_outbox_line(entry)
            redacted += 1
        lines.append(orjson.dumps(entry))
    if redacted:
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in lines))
        tmp.replace(path)
    return redacted, deleted
