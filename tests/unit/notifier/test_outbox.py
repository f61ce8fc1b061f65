"""The dev outbox keeps ``outbox.jsonl`` open between messages, and follows the file when an
erasure (or anyone) replaces or removes it: no line goes to a file nobody reads."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from services.notifier.adapters.outbox import FileOutbox, erase_from_outbox
from services.notifier.domain.message import OutboundMessage


def message(nid: str, to: str, lead_id: str = "ld_1") -> OutboundMessage:
    return OutboundMessage(
        notification_id=nid, lead_id=lead_id, channel="sms", audience="lead", to=to, to_name=None,
        template="weekly_checkin", locale="en", subject="Hi", text="Hi Dana", short="Hi Dana",
    )  # fmt: skip


def lines(directory: Path) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in (directory / "outbox.jsonl").read_bytes().splitlines()]


async def test_messages_go_through_one_open_file_and_find_sent_reads_each_at_once(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path, name="sms")
    assert (await outbox.send(message("n1", "+14155550100"))).ok
    handle = outbox._log
    assert (await outbox.send(message("n2", "+14155550101"))).ok
    assert outbox._log is handle  # not reopened per message
    assert [x["notification_id"] for x in lines(tmp_path)] == ["n1", "n2"]
    assert (await outbox.find_sent("n2") or "").startswith("outbox: already written at ")
    assert await outbox.find_sent("n3") is None
    await outbox.close()
    assert outbox._log is None


async def test_a_send_after_an_erasure_writes_to_the_rewritten_file_not_the_replaced_one(tmp_path: Path) -> None:
    outbox, other = FileOutbox(tmp_path, name="sms"), FileOutbox(tmp_path, name="phone")
    await outbox.send(message("n1", "+14155550100"))
    await other.send(message("n2", "+14155550199", lead_id="ld_2"))
    assert erase_from_outbox(tmp_path, {"+14155550100"}, {"ld_1"}) == (1, 0)

    await outbox.send(message("n3", "+14155550101", lead_id="ld_3"))
    await other.send(message("n4", "+14155550102", lead_id="ld_4"))

    after = lines(tmp_path)
    assert [x["notification_id"] for x in after] == ["n1", "n2", "n3", "n4"]
    assert after[0]["erased"] is True and after[0]["to"] == "[erased]" and "text" not in after[0]
    assert (await outbox.find_sent("n1")) is not None  # a redacted line still says it went
    assert (await outbox.find_sent("n3")) is not None
    await outbox.close()
    await other.close()


async def test_a_removed_log_is_created_again_by_the_next_send(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path, name="sms")
    await outbox.send(message("n1", "+14155550100"))
    os.remove(tmp_path / "outbox.jsonl")
    await outbox.send(message("n2", "+14155550101"))
    assert [x["notification_id"] for x in lines(tmp_path)] == ["n2"]
    await outbox.close()


async def test_a_failed_write_is_a_transient_failure_and_the_next_send_opens_the_file_again(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path, name="sms")
    await outbox.send(message("n1", "+14155550100"))
    os.remove(tmp_path / "outbox.jsonl")
    os.mkdir(tmp_path / "outbox.jsonl")  # the path now names something that cannot be appended to
    result = await outbox.send(message("n2", "+14155550101"))
    assert result.status == "transient" and result.response.startswith("outbox write failed: ")
    assert outbox._log is None
    os.rmdir(tmp_path / "outbox.jsonl")
    assert (await outbox.send(message("n3", "+14155550102"))).ok
    assert [x["notification_id"] for x in lines(tmp_path)] == ["n3"]
    await outbox.close()
