"""Scanner export files -> a header and rows of cells: CSV (any common encoding and delimiter),
Excel ``.xlsx`` (openpyxl) and vCard.

``UnreadableExport`` says why a file cannot be read at all; a readable file's odd cells are the
domain's business.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.ingest.domain.booth import header_row

#: Tried in order. GB18030 is a superset of GBK/GB2312, which Chinese scanner apps and Excel on
#: a Chinese Windows write; it decodes almost any byte string, so it comes last.
ENCODINGS = ("utf-8-sig", "gb18030")


class UnreadableExport(Exception):
    """The file cannot be read as a scanner export (the message says why)."""


@dataclass(frozen=True)
class ExportTable:
    columns: list[str]
    rows: list[dict[str, Any]]
    first_row: int  # the file's row number of rows[0]
    encoding: str | None = None
    sheet: str | None = None


def is_vcard(path: Path) -> bool:
    if path.suffix.lower() in (".vcf", ".vcard"):
        return True
    try:
        with path.open("rb") as f:
            return f.read(64).lstrip(b"\xef\xbb\xbf \r\n\t").upper().startswith(b"BEGIN:VCARD")
    except OSError:
        return False


def read_text(path: Path) -> tuple[str, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableExport(f"cannot read {path}: {exc.strerror or exc}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise UnreadableExport(f"{path.name}: not text in UTF-8 or GBK/GB18030")


def read_vcard_text(path: Path) -> str:
    return read_text(path)[0]


def vcard_default_time(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()


def read_table(path: Path) -> ExportTable:
    """The first sheet or the CSV, header row first; raises ``UnreadableExport``."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    if path.suffix.lower() == ".xls":
        raise UnreadableExport(f"{path.name}: the old .xls format is not supported; save it as .xlsx or CSV")
    text, encoding = read_text(path)
    if "\x00" in text:
        raise UnreadableExport(f"{path.name}: binary data, not a CSV export")
    sample = text[:20000]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    lines = [row for row in reader]
    return _table(lines, path, encoding=encoding)


def _read_xlsx(path: Path) -> ExportTable:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise UnreadableExport(f"{path.name}: not a readable .xlsx workbook ({exc})") from None
    try:
        sheet = book.worksheets[0]
        lines = [list(row) for row in sheet.iter_rows(values_only=True)]
        title = sheet.title
    finally:
        book.close()
    return _table(lines, path, sheet=title)


def _table(lines: list[list[Any]], path: Path, *, encoding: str | None = None, sheet: str | None = None) -> ExportTable:
    header_at = header_row(lines)
    if header_at is None:
        raise UnreadableExport(f"{path.name}: no header row (the file is empty)")
    columns = [str(c).strip() if c is not None else "" for c in lines[header_at]]
    while columns and not columns[-1]:
        columns.pop()
    rows = [
        {col: (row[i] if i < len(row) else None) for i, col in enumerate(columns)} for row in lines[header_at + 1 :]
    ]
    return ExportTable(columns, rows, header_at + 2, encoding, sheet)
