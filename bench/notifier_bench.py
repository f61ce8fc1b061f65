"""Notifier sends/s to the dev file outbox and to a local SMTP server, each beside a raw
baseline measured in the same run:

- file:  raw ``.eml`` write + JSON line append  vs  render + FileOutbox  vs  the full handler
         (ledger, suppression and rate-limit checks in a real Redis, outcome encoded)
- smtp:  raw aiosmtplib ``sendmail`` of prebuilt bytes on one connection  vs  render + SmtpSender  vs  the
         full handler. The SMTP server (aiosmtpd, discarding) runs in its own process.

Kafka is not in the loop (the handler publishes to an in-memory sink): this measures the
notifier's own cost per send. Each row also gives the bench process's CPU ms per send (the
notifier's side; Redis and the SMTP server run in their own processes), and the handler rows
the Redis round trips per request (``bench/redis_trips.py``).

Run: ``.venv/bin/python bench/notifier_bench.py [-n N] [--audience rep|lead] [--concurrency C]``.
``--concurrency C`` runs the full-handler rows with C requests in flight at once (the worker's
``NOTIFIER_CONCURRENCY``; 1: one after another). The Redis client is the services' own
(``runtime.redis_client``): ``REDIS_AUTOPIPELINE=false`` turns its automatic pipelining off.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiosmtplib
import orjson
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from bench.redis_trips import RoundTrips
from leadpipe.devstack.processes import ManagedProcess, free_port, start_redis, wait_for_port
from leadpipe.runtime.metrics import StageMetrics
from leadpipe.runtime.redis_client import redis_client
from leadpipe.runtime.stream import RawMessage
from schemas.codec import Record, encode
from schemas.envelope import new_event
from schemas.notification_requested.v1 import NotificationRequested
from services.notifier.adapters.email_mime import email_bytes
from services.notifier.adapters.outbox import FileOutbox
from services.notifier.adapters.smtp_sender import SmtpSender
from services.notifier.adapters.templates import TemplateRenderer
from services.notifier.bootstrap import build_notifier
from services.notifier.config import TEMPLATES_DIR, NotifierSettings
from services.notifier.handlers import Notifier

SENDER = "leadpipe <noreply@leadpipe.local>"
VARS = {
    "lead": {
        "name": "Dana Lee",
        "company": "Example Corp",
        "title": "Director",
        "grade": "A",
        "score": 72.5,
        "reasons": ["Director-level title", "500+ employees", "Urgent need"],
        "source": "web_form",
    },
    "accept_url": "http://127.0.0.1:8080/v1/assignments/t/accept",
    "decline_url": "http://127.0.0.1:8080/v1/assignments/t/decline",
    "accept_by": "2026-05-04T09:45:02Z",
}


class NullSink:
    """A ``Publisher`` that drops everything (Kafka is not in the loop here)."""

    async def publish(self, events: Any) -> None:
        return None

    async def send(self, events: Any) -> None:
        return None

    async def publish_record(self, topic: str, record: Record) -> None:
        return None

    async def flush(self) -> None:
        return None


async def _no_dead_letters(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("nothing is dead-lettered in the benchmark")


def requests(n: int, audience: str = "rep") -> list[tuple[NotificationRequested, RawMessage, object]]:
    out = []
    run = uuid.uuid4().hex[:6]
    for i in range(n):
        req = NotificationRequested(
            notification_id=f"b-{run}-{i}",
            lead_id=f"ld-{i}",
            audience=audience,
            channel="email",
            recipient={"address": f"rep{i % 50}@sales.example", "name": "Rep"},
            template="rep_alert",
            variables=VARS,
            requested_at="2026-05-04T09:30:00Z",
        )
        event = new_event(req, source="/bench", subject=req.lead_id)
        rec = encode(event)
        out.append((req, RawMessage("notification.requested.v1", 0, i, rec.key, rec.value, rec.headers), event))
    return out


TRIPS = RoundTrips()


async def timed(label: str, n: int, coro_factory) -> float:
    TRIPS.reset()
    started, cpu = time.perf_counter(), time.process_time()
    await coro_factory()
    rate = n / (time.perf_counter() - started)
    cpu_ms = 1000 * (time.process_time() - cpu) / n
    trips = f"   {TRIPS.count / n:4.1f} Redis round trips/send" if TRIPS.count else ""
    print(f"  {label:<48} {rate:10.0f} sends/s  {cpu_ms:7.3f} ms CPU/send{trips}")
    return rate


def handler(settings: NotifierSettings, redis: Redis, channel) -> Notifier:
    registry = CollectorRegistry()
    return build_notifier(
        settings,
        redis=redis,
        publisher=NullSink(),
        dead_letter=_no_dead_letters,
        registry=registry,
        stage=StageMetrics("notifier", registry),
        channels={"email": channel},
    )


async def in_flight(concurrency: int, jobs: Any) -> None:
    """Runs the awaitables ``jobs`` makes, at most ``concurrency`` at once, in order of start."""
    it = iter(jobs)

    async def worker() -> None:
        for job in it:
            await job

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def main(n: int, audience: str, concurrency: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="notifier-bench-"))
    redis_port, smtp_port = free_port(), free_port()
    redis_proc = start_redis(redis_port, work / "redis", work / "redis.log", appendonly=False)
    smtp_proc = ManagedProcess(
        "smtp",
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}", "-c", "aiosmtpd.handlers.Sink"],
        work / "smtp.log",
    ).start()
    wait_for_port(smtp_port, proc=smtp_proc.proc)
    settings = NotifierSettings(
        kafka_bootstrap_servers="unused:9092",
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        notifier_recipient_limit=10**9,
        notifier_channel_rate_per_s={},
    )
    redis: Redis = redis_client(
        settings.redis_url, autopipeline=settings.redis_autopipeline, connection_class=TRIPS.connection_class()
    )
    renderer = TemplateRenderer(TEMPLATES_DIR, link_secret="s", public_url="http://127.0.0.1:8080")
    try:
        batch = requests(n, audience)
        sample = email_bytes(renderer.render(batch[0][0]), sender=SENDER)
        print(
            f"notifier bench: {n} rep_alert emails to the {audience} audience per row (rendered size {len(sample)} bytes)"
            f", handlers {concurrency} at a time, Redis autopipelining {'on' if settings.redis_autopipeline else 'off'}"
        )

        print("file outbox")
        raw_dir = work / "raw"
        raw_dir.mkdir()

        async def raw_files() -> None:
            with (raw_dir / "log.jsonl").open("ab") as _:
                pass
            for i, (req, _, _) in enumerate(batch):
                (raw_dir / f"{i}.eml").write_bytes(sample)
                with (raw_dir / "log.jsonl").open("ab") as log:
                    log.write(orjson.dumps({"notification_id": req.notification_id, "file": f"{i}.eml"}) + b"\n")

        raw_file = await timed("raw: write .eml + append JSON line", n, raw_files)
        short = renderer.render(batch[0][0])

        async def raw_lines() -> None:
            for req, _, _ in batch:
                with (raw_dir / "lines.jsonl").open("ab") as log:
                    log.write(orjson.dumps({"notification_id": req.notification_id, "text": short.short}) + b"\n")

        await timed("raw: open, append JSON line, close", n, raw_lines)
        lines_only = FileOutbox(work / "outbox-lines", name="sms")

        async def adapter_lines() -> None:
            for _ in batch:
                await lines_only.send(short)

        await timed("notifier: FileOutbox line only (sms, prerendered)", n, adapter_lines)
        await lines_only.close()
        outbox = FileOutbox(work / "outbox-a", name="email")

        async def adapter_files() -> None:
            for req, _, _ in batch:
                await outbox.send(renderer.render(req))

        adapter_file = await timed("notifier: render + FileOutbox", n, adapter_files)
        full = handler(
            settings.model_copy(update={"notifier_redis_prefix": "bench:f:"}),
            redis,
            FileOutbox(work / "outbox-b", name="email"),
        )

        async def full_files() -> None:
            await in_flight(concurrency, (full.on_request(event, msg) for _, msg, event in batch))

        full_file = await timed("notifier: full handler (Redis ledger) + outbox", n, full_files)

        print("smtp (aiosmtpd in its own process)")
        mails = [(req.recipient.address, email_bytes(renderer.render(req), sender=SENDER)) for req, _, _ in batch]

        async def raw_smtp() -> None:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False)
            await client.connect()
            for to, mail in mails:
                await client.sendmail("noreply@leadpipe.local", [to], mail)
            await client.quit()

        raw_rate = await timed("raw: aiosmtplib sendmail (prebuilt bytes)", n, raw_smtp)
        smtp = SmtpSender(host="127.0.0.1", port=smtp_port, sender=SENDER)

        async def adapter_smtp() -> None:
            for req, _, _ in batch:
                result = await smtp.send(renderer.render(req))
                assert result.ok, result

        adapter_smtp_rate = await timed("notifier: render + SmtpSender", n, adapter_smtp)
        full_smtp_handler = handler(
            settings.model_copy(update={"notifier_redis_prefix": "bench:s:"}),
            redis,
            SmtpSender(host="127.0.0.1", port=smtp_port, sender=SENDER),
        )

        async def full_smtp() -> None:
            await in_flight(concurrency, (full_smtp_handler.on_request(event, msg) for _, msg, event in batch))

        full_smtp_rate = await timed("notifier: full handler (Redis ledger) + SMTP", n, full_smtp)
        await smtp.close()
        for sender in full_smtp_handler.channels.values():
            await sender.close()

        print("ratios (notifier / raw, same run)")
        print(f"  outbox adapter / raw file   {adapter_file / raw_file:6.2f}")
        print(f"  outbox handler / raw file   {full_file / raw_file:6.2f}")
        print(f"  smtp adapter   / raw smtp   {adapter_smtp_rate / raw_rate:6.2f}")
        print(f"  smtp handler   / raw smtp   {full_smtp_rate / raw_rate:6.2f}")
    finally:
        await redis.aclose()
        smtp_proc.stop()
        redis_proc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="sends per row (default 2000)")
    parser.add_argument(
        "--audience", choices=["rep", "lead"], default="rep",
        help="rep: no suppression or erased-list check (as rep alerts); lead: both checks run",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=int, default=1, help="full-handler requests in flight at once (default 1)"
    )
    args = parser.parse_args()
    if args.n < 1:
        parser.error(f"-n: must be at least 1, got {args.n}")
    if args.concurrency < 1:
        parser.error(f"--concurrency: must be at least 1, got {args.concurrency}")
    asyncio.run(main(args.n, args.audience, args.concurrency))
