"""The email bytes the outbox and the SMTP sender write, read back with the standard library's
parser (``policy=default``): headers as the renderer gave them, bodies decoded, every line
within RFC 5322's limit and CRLF-terminated."""

from __future__ import annotations

import email
import hashlib
import re
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from services.notifier.adapters.email_mime import email_bytes
from services.notifier.adapters.outbox import FileOutbox
from services.notifier.adapters.smtp_sender import SmtpSender
from services.notifier.domain.message import OutboundMessage

SENDER = "leadpipe <noreply@leadpipe.local>"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://leads.example/v1/unsubscribe/" + "t" * 300 + ">",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def _message(**changes: object) -> OutboundMessage:
    fields: dict = {
        "notification_id": "nt_0001",
        "lead_id": "ld_1",
        "channel": "email",
        "audience": "lead",
        "template": "weekly_checkin",
        "locale": "en",
        "to": "dana@example.com",
        "to_name": "Dana Lee",
        "subject": "Checking in, Dana",
        "text": "Hi Dana,\n\nHow is it going?\n",
        "short": "s",
    }
    return OutboundMessage(**(fields | changes))


def _parse(data: bytes) -> EmailMessage:
    mail = email.message_from_bytes(data, policy=default)
    assert isinstance(mail, EmailMessage)
    assert [part.defects for part in mail.walk()] == [[] for _ in mail.walk()]
    return mail


def _content(part: EmailMessage | None) -> str:
    """A part's decoded text; the parser leaves a 7bit body's CRLF line ends as they are."""
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _assert_strict_lines(data: bytes) -> None:
    assert data.isascii(), "8-bit bytes in a message declared 7bit/QP/base64"
    assert data.endswith(b"\r\n")
    lines = data[:-2].split(b"\r\n")
    assert not [line for line in lines if b"\n" in line or b"\r" in line], "bare CR or LF"
    assert max(len(line) for line in lines) <= 998
    for word in re.findall(rb"=\?utf-8\?b\?[^?]*\?=", data):
        assert len(word) <= 75


def test_a_plain_message_carries_the_headers_and_the_text_as_given() -> None:
    message = _message()
    data = email_bytes(message, sender=SENDER)
    _assert_strict_lines(data)
    mail = _parse(data)
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert mail["From"] == SENDER and mail["To"] == "Dana Lee <dana@example.com>"
    assert mail["Subject"] == "Checking in, Dana" and mail["Content-Language"] == "en"
    assert mail["X-Leadpipe-Notification-Id"] == "nt_0001" and mail["MIME-Version"] == "1.0"
    assert mail["Message-ID"] == f"<{hashlib.sha256(b'nt_0001').hexdigest()[:32]}@leadpipe.local>"
    assert mail["Date"].datetime is not None and mail["List-Unsubscribe"] is None
    assert _content(mail) == "Hi Dana,\n\nHow is it going?\n"
    assert b"Content-Transfer-Encoding: 7bit" in data  # plain ASCII stays readable


def test_an_html_message_is_text_and_html_alternatives_with_unfolded_unsubscribe_headers() -> None:
    message = _message(html="<!DOCTYPE html>\n<p>Hi <b>Dana</b></p>\n", headers=UNSUBSCRIBE)
    data = email_bytes(message, sender=SENDER)
    _assert_strict_lines(data)
    mail = _parse(data)
    assert mail.get_content_type() == "multipart/alternative"
    assert _content(mail.get_body(("plain",))) == message.text
    assert _content(mail.get_body(("html",))) == message.html
    assert mail["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Unfolded: the whole URL on the header's own line, as receivers' one-click code reads it.
    assert f"List-Unsubscribe: {UNSUBSCRIBE['List-Unsubscribe']}\r\n".encode() in data


def test_a_resend_is_the_same_bytes_apart_from_the_date() -> None:
    message = _message(html="<p>Hi</p>", headers=UNSUBSCRIBE)
    first, second = email_bytes(message, sender=SENDER), email_bytes(message, sender=SENDER)

    def undated(data: bytes) -> bytes:
        return re.sub(rb"\r\nDate: [^\r]*", b"", data)

    assert undated(first) == undated(second)
    other = email_bytes(_message(notification_id="nt_0002", html="<p>Hi</p>"), sender=SENDER)
    assert _parse(first).get_boundary() != _parse(other).get_boundary()


def test_non_ascii_names_subjects_and_bodies_are_encoded_and_read_back_unchanged() -> None:
    subject = "新的 A 级线索：Dana Lee（Example Corp）— réunion à 10 h " * 3
    message = _message(
        to_name="Zoë 张伟",
        subject=subject.strip(),
        locale="zh-CN",
        text="您好，达娜：\n感谢您的关注，我们的销售代表会尽快与您联系。\n接受：https://leads.example/a\n",
        html="<p>Réunion à 10 h, café ☕</p>\n",
        headers=UNSUBSCRIBE,
    )
    data = email_bytes(message, sender="Équipe leadpipe <noreply@leadpipe.local>")
    _assert_strict_lines(data)
    mail = _parse(data)
    assert mail["Subject"] == subject.strip()
    assert mail["To"].addresses[0].display_name == "Zoë 张伟"
    assert mail["To"].addresses[0].addr_spec == "dana@example.com"
    assert mail["From"].addresses[0].display_name == "Équipe leadpipe"
    assert mail["From"].addresses[0].addr_spec == "noreply@leadpipe.local"
    assert mail["Content-Language"] == "zh-CN"
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert _content(text) == message.text and _content(html) == message.html
    # CJK goes as base64 (a third of QP's size), mostly-Latin text as quoted-printable.
    assert (text["Content-Transfer-Encoding"], html["Content-Transfer-Encoding"]) == ("base64", "quoted-printable")


def test_long_lines_are_kept_within_998_characters_and_bodies_decode_to_what_was_given() -> None:
    long_word_line = "x" * 2500 + "\n"
    subject = " ".join(["word"] * 400)  # 1999 characters: folded at spaces
    message = _message(subject=subject, text="see " + long_word_line, html="<p>" + "é" * 1200 + "</p>")
    data = email_bytes(message, sender=SENDER)
    _assert_strict_lines(data)
    mail = _parse(data)
    assert mail["Subject"] == subject
    assert _content(mail.get_body(("plain",))) == "see " + long_word_line
    assert mail.get_body(("plain",))["Content-Transfer-Encoding"] == "quoted-printable"
    assert _content(mail.get_body(("html",))) == message.html


def test_line_breaks_in_the_text_become_crlf_whatever_they_were() -> None:
    data = email_bytes(_message(text="one\r\ntwo\rthree\n"), sender=SENDER)
    _assert_strict_lines(data)
    assert _content(_parse(data)) == "one\ntwo\nthree\n"


def test_a_7bit_body_holding_the_derived_boundary_gets_another_boundary() -> None:
    derived = "=_" + hashlib.sha256(b"nt_0001").hexdigest()[32:]
    message = _message(text=f"--{derived}\nstill the text\n", html=f"<p>{derived}</p>")
    data = email_bytes(message, sender=SENDER)
    mail = _parse(data)
    assert mail.get_boundary() != derived
    assert _content(mail.get_body(("plain",))) == message.text
    assert _content(mail.get_body(("html",))) == message.html


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"subject": "Hi\r\nBcc: everyone@example.com"}, "Subject"),
        ({"to_name": "Dana\nBcc: x@example.com"}, "To"),
        ({"headers": {"List-Unsubscribe": "<https://x>\nBcc: x@example.com"}}, "List-Unsubscribe"),
        ({"subject": "y" * 1000}, "Subject"),
    ],
)
def test_a_header_that_cannot_be_written_is_refused_naming_it(changes: dict, named: str) -> None:
    with pytest.raises(ValueError, match=f"email header {named}:"):
        email_bytes(_message(**changes), sender=SENDER)


async def test_the_outbox_writes_the_same_bytes_as_one_eml_file(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path, name="email", sender=SENDER)
    message = _message(html="<p>Hi</p>", headers=UNSUBSCRIBE)
    result = await outbox.send(message)
    await outbox.close()
    [eml] = tmp_path.glob("*.eml")
    assert result.ok and result.response == f"outbox: {eml.name}"
    strip_date = re.compile(rb"\r\nDate: [^\r]*")
    assert strip_date.sub(b"", eml.read_bytes()) == strip_date.sub(b"", email_bytes(message, sender=SENDER))


async def test_a_message_with_an_unwritable_header_fails_permanently_and_writes_nothing(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path, name="email", sender=SENDER)
    result = await outbox.send(_message(subject="Hi\nBcc: x@example.com"))
    await outbox.close()
    assert (result.status, result.error_kind) == ("permanent", "client_error")
    assert "email header Subject" in result.response
    assert list(tmp_path.glob("*.eml")) == [] and not (tmp_path / "outbox.jsonl").exists()
    # The SMTP sender refuses it before connecting (nothing listens on port 9).
    smtp = SmtpSender(host="127.0.0.1", port=9, sender=SENDER, timeout_s=0.5)
    result = await smtp.send(_message(subject="Hi\nBcc: x@example.com"))
    assert (result.status, result.error_kind) == ("permanent", "client_error")
    assert "email header Subject" in result.response
