"""The bytes of an email: a text part, or text and HTML alternatives (multipart/alternative),
a Message-ID derived from the notification id (so a resend after a crash carries the same id
and receivers can de-duplicate), and the List-Unsubscribe headers the renderer asked for.

Written directly, CRLF line ends (what SMTP carries; the dev outbox's ``.eml`` files are the
same bytes): flattening a compat32 ``email.message.Message`` per send (header folding, a random
boundary, ``Header.encode``) was 8 % of the notifier's busy CPU in the pipeline profile.
``tests/unit/notifier/test_email_mime.py`` reads the output back with ``email``'s parser
(``policy=default``, no defects) and checks every line.

- Headers are written unfolded (a folded List-Unsubscribe URL or subject would start a line
  with whitespace in strict parsers); only a header over RFC 5322's 998-character line limit
  is folded, at spaces. A non-ASCII value becomes RFC 2047 encoded-words (base64, at most 75
  characters each, one per line). A CR or LF in a value raises ``ValueError`` naming the header
  (it would inject headers).
- Bodies: 7bit when ASCII with lines within 998 characters, else quoted-printable, or base64
  when more than a quarter of the bytes are non-ASCII (CJK text is three times its size in QP).
- The multipart boundary is derived from the notification id, so a resend is byte-identical
  apart from ``Date``. It starts with ``=_``, which quoted-printable and base64 never produce;
  a 7bit body that contains it is rejected for the next derivation.
"""

from __future__ import annotations

import binascii
import hashlib
from email.utils import formataddr, formatdate, parseaddr

from services.notifier.domain.message import OutboundMessage

CRLF = b"\r\n"
#: RFC 5322 2.1.1: a line MUST be at most 998 characters, excluding the CRLF.
MAX_LINE = 998
#: RFC 2047 2: an encoded-word is at most 75 characters.
_MAX_WORD = 75
_WORD_OVERHEAD = len("=?utf-8?b??=")


def _check(name: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"email header {name}: contains a line break ({value[:40]!r}), which would inject headers")


def _encoded_words(value: str, first_budget: int) -> str:
    """``value`` as RFC 2047 base64 encoded-words, whole characters in each, one per line."""
    words: list[str] = []
    budget = first_budget
    chunk: list[str] = []
    size = 0
    for char in value:
        n = len(char.encode())
        # base64 of size+n bytes must fit the budget beside the =?utf-8?b?...?= wrapper.
        if chunk and 4 * -(-(size + n) // 3) + _WORD_OVERHEAD > budget:
            words.append("".join(chunk))
            chunk, size, budget = [], 0, _MAX_WORD
        chunk.append(char)
        size += n
    words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{binascii.b2a_base64(w.encode(), newline=False).decode()}?=" for w in words)


def _fold(name: str, value: str) -> str:
    """An ASCII value whose line would exceed 998 characters, folded at spaces."""
    lines: list[str] = []
    line = f"{name}:"
    for word in value.split(" "):
        if len(line) + 1 + len(word) > MAX_LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += f" {word}"
        if len(line) > MAX_LINE:
            raise ValueError(f"email header {name}: a word of {len(word)} characters cannot fit a 998-character line")
    lines.append(line)
    return "\r\n".join(lines)[len(name) + 2 :]


def header_value(name: str, value: str) -> str:
    """``value`` ready to follow ``name: ``; see the module docstring."""
    _check(name, value)
    if not value.isascii():
        return _encoded_words(value, min(_MAX_WORD, 78 - len(name) - 2))
    if len(name) + 2 + len(value) > MAX_LINE:
        return _fold(name, value)
    return value


def address(name: str | None, addr: str, header: str = "To") -> str:
    """``Name <addr>``; a non-ASCII name as encoded-words, an ASCII one quoted where needed."""
    _check(header, addr)
    if not name:
        return addr
    _check(header, name)
    if name.isascii():
        return formataddr((name, addr))
    return f"{_encoded_words(name, min(_MAX_WORD, 78 - len(header) - 2))} <{addr}>"


def _sender_header(sender: str) -> str:
    if sender.isascii():
        return header_value("From", sender)
    name, addr = parseaddr(sender)
    return address(name, addr, "From") if addr else header_value("From", sender)


def _body(text: str) -> tuple[bytes, bytes]:
    """(Content-Transfer-Encoding, encoded body with CRLF line ends)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii() and (len(text) <= MAX_LINE or max(map(len, text.split("\n"))) <= MAX_LINE):
        return b"7bit", text.replace("\n", "\r\n").encode()
    raw = text.replace("\n", "\r\n").encode()
    if 4 * (len(raw) - len(text)) > len(raw):
        lines = [binascii.b2a_base64(raw[i : i + 57]) for i in range(0, len(raw), 57)]
        return b"base64", b"".join(lines).replace(b"\n", CRLF)
    return b"quoted-printable", binascii.b2a_qp(raw, istext=True)


def _part(text: str, subtype: bytes) -> bytes:
    cte, body = _body(text)
    return b"".join(
        (b"Content-Type: text/", subtype, b'; charset="utf-8"\r\nContent-Transfer-Encoding: ', cte, CRLF, CRLF, body)
    )


def email_bytes(message: OutboundMessage, *, sender: str, domain: str = "leadpipe.local") -> bytes:
    """The whole message, CRLF line ends, ready for SMTP ``DATA`` or an ``.eml`` file.

    Raises ``ValueError`` naming the header for a value that cannot be written (a line break
    in it, or a word longer than a line)."""
    digest = hashlib.sha256(message.notification_id.encode()).hexdigest()
    lines = [
        f"From: {_sender_header(sender)}",
        f"To: {address(message.to_name, message.to)}",
        f"Subject: {header_value('Subject', message.subject)}",
        f"Date: {formatdate(localtime=False)}",
        f"Message-ID: <{digest[:32]}@{domain}>",
        f"X-Leadpipe-Notification-Id: {header_value('X-Leadpipe-Notification-Id', message.notification_id)}",
        f"Content-Language: {header_value('Content-Language', message.locale)}",
    ]
    for name, value in message.headers.items():
        _check("header name", name)
        lines.append(f"{name}: {header_value(name, value)}")
    lines.append("MIME-Version: 1.0")
    head = "\r\n".join(lines).encode()
    if message.html is None:
        return head + CRLF + _part(message.text, b"plain")
    text, html = _part(message.text, b"plain"), _part(message.html, b"html")
    boundary = f"=_{digest[32:]}".encode()
    while boundary in text or boundary in html:  # only a 7bit body can hold "=_"
        boundary = b"=_" + hashlib.sha256(boundary).hexdigest()[:32].encode()
    return b"".join(
        (
            head,
            b'\r\nContent-Type: multipart/alternative; boundary="',
            boundary,
            b'"\r\n\r\n--',
            boundary,
            CRLF,
            text,
            b"\r\n--",
            boundary,
            CRLF,
            html,
            b"\r\n--",
            boundary,
            b"--\r\n",
        )
    )
