"""A durable local spool (SQLite in WAL mode, synchronous=FULL: every commit is fsync'd) for
records the broker could not take. Rows are replayed in insertion order."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from schemas.codec import Record


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    seq: int
    topic: str
    record: Record
    event_id: str
    spooled_at: float
    maybe_sent: bool


class SqliteSpool:
    """Append, read oldest-first, delete after the broker acked. Thread-safe (one connection, a lock)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsync'd at every commit, so a 202 survives a power cut.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " key BLOB, value BLOB NOT NULL, headers BLOB NOT NULL, event_id TEXT NOT NULL,"
            " spooled_at REAL NOT NULL, maybe_sent INTEGER NOT NULL DEFAULT 0)"
        )
        self._depth, oldest = self._db.execute("SELECT count(*), min(spooled_at) FROM spool").fetchone()
        self._oldest: float | None = oldest

    @property
    def depth(self) -> int:
        return int(self._depth)

    def oldest_age_s(self) -> float:
        return max(0.0, time.time() - self._oldest) if self._oldest is not None else 0.0

    def append(self, items: list[tuple[str, Record, str, bool]]) -> None:
        """Write (topic, record, event id, maybe already sent) rows in one fsync'd transaction."""
        now = time.time()
        rows = [
            (
                topic,
                rec.key,
                rec.value,
                orjson.dumps([[k, v.decode("latin-1")] for k, v in rec.headers]),
                eid,
                now,
                int(m),
            )
            for topic, rec, eid, m in items
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO spool (topic, key, value, headers, event_id, spooled_at, maybe_sent)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += len(rows)
            if self._oldest is None:
                self._oldest = now

    def head(self, limit: int) -> list[SpooledRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, key, value, headers, event_id, spooled_at, maybe_sent FROM spool"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            SpooledRecord(
                seq,
                topic,
                Record(key=key or b"", value=value, headers=[(k, v.encode("latin-1")) for k, v in orjson.loads(hdrs)]),
                eid,
                at,
                bool(maybe),
            )
            for seq, topic, key, value, hdrs, eid, at, maybe in rows
        ]

    def delete(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])
            self._db.execute("COMMIT")
            self._depth, self._oldest = self._db.execute("SELECT count(*), min(spooled_at) FROM spool").fetchone()

    def erase_keys(self, keys: list[bytes]) -> int:
        """Deletes every spooled record with one of these record keys (a person's identity keys);
        returns how many went. A row the replay task already read may still be sent once."""
        if not keys:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(keys))
            deleted = self._db.execute(f"DELETE FROM spool WHERE key IN ({marks})", keys).rowcount
            self._db.execute("COMMIT")
            self._depth, self._oldest = self._db.execute("SELECT count(*), min(spooled_at) FROM spool").fetchone()
        return int(deleted)

    def mark_maybe_sent(self, seqs: list[int]) -> None:
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE spool SET maybe_sent = 1 WHERE seq = ?", [(s,) for s in seqs])
            self._db.execute("COMMIT")

    def writable(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        with self._lock:
            self._db.close()
