"""The real ``python -m services.ingest`` process: a browser fills the demo page's form, lands
on the thank-you page, and the capture is on the topic."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from leadpipe.devstack.processes import free_port
from tests.integration.ingest.conftest import read_all, running_ingest
from tests.support.tools import require_tool

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def ingest_process(tmp_path: Path, registry_topics: str, redis_url: str) -> Iterator[str]:
    with running_ingest(tmp_path, registry_topics, redis_url) as url:
        yield url


async def test_the_process_serves_ops_endpoints_and_accepts_a_form(ingest_process: str):
    async with httpx.AsyncClient(base_url=ingest_process) as c:
        assert (await c.get("/healthz")).status_code == 200
        assert (await c.get("/readyz")).json()["checks"]["redis"] is True
        resp = await c.post("/v1/forms/demo", json={"email": "proc@example.com", "first_name": "P", "company": "C"})
        assert resp.status_code == 202 and resp.json()["delivery"] == "acked"
        assert "leadpipe_ingest_events_published_total" in (await c.get("/metrics")).text


async def test_a_form_post_from_a_browser_asking_for_chinese_records_zh_cn_as_the_visitors_language(
    ingest_process: str, registry_topics: str
):
    emails = {f"{who}-{uuid.uuid4().hex[:8]}@example.com": who for who in ("zh", "fr", "api")}
    headers = {"zh": "zh-CN,zh;q=0.9,en;q=0.8", "fr": "fr-FR,fr;q=0.9"}
    async with httpx.AsyncClient(base_url=ingest_process) as c:
        for email, who in emails.items():
            form = {"email": email, "first_name": "Li", "company": "Hua Tech"}
            sent = {"Accept-Language": headers[who]} if who in headers else {}
            resp = await (c.post("/v1/forms/demo", data=form, headers=sent) if who != "api" else
                          c.post("/v1/forms/demo", json=form))  # fmt: skip
            assert resp.status_code in (202, 303), resp.text
    captures = {e.data.identity.email: e.data for e in await read_all(registry_topics, "lead.captured.v1")}
    got = {who: captures[email].person.language for email, who in emails.items()}
    assert got == {"zh": "zh-CN", "fr": "en", "api": None}


@pytest.mark.browser
async def test_a_browser_fills_the_demo_form_and_the_capture_is_on_the_topic(ingest_process: str, registry_topics: str):
    chromium = require_tool("chromium", "chromium")
    from playwright.async_api import async_playwright

    email = f"browser-{uuid.uuid4().hex[:8]}@example.com"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = await browser.new_page()
            await page.goto(ingest_process + "/")
            await page.fill("#f-email", "not-an-email-but-typed")
            await page.fill("#f-first_name", "Brow")
            await page.fill("#f-company", "Ser GmbH")
            # type=email input blocks submission in the browser; bypass to see the server's answer
            await page.eval_on_selector("form", "f => f.noValidate = true")
            await page.click("button[type=submit]")
            assert "is not an email address" in await page.inner_text("#errors")
            await page.fill("#f-email", email)
            await page.fill("#f-seats", "12")
            await page.check("#f-marketing_consent")
            await page.click("button[type=submit]")
            await page.wait_for_url("**/thanks")
            assert "Thanks" in await page.inner_text("#message")
            user_agent = await page.evaluate("navigator.userAgent")
        finally:
            await browser.close()
    [event] = [e for e in await read_all(registry_topics, "lead.captured.v1") if e.data.identity.email == email]
    assert event.data.person.company == "Ser GmbH" and event.data.qualification.seats == 12
    assert event.data.consent.marketing is True and event.data.consent.user_agent == user_agent


def test_scans_upload_cli_resumes_and_keeps_device_times(ingest_process: str, tmp_path: Path, registry_topics: str):
    import asyncio

    from leadpipe.cli import main

    show = f"show-{uuid.uuid4().hex[:6]}"
    export = tmp_path / "export.csv"
    rows = ["Badge,Scanned,Email,Company,Budget"] + [
        f"K{i},2026-04-30T1{i % 10}:00:00Z,k{i}@example.com,Co {i},{i}k" for i in range(1200)
    ]
    export.write_text("\n".join(rows) + "\n")
    common = ["scans", "upload", str(export), "--show", show, "--booth", "B1", "--no-progress",
              "--map", "Badge=badge_id,Scanned=scanned_at,Budget=answers.budget"]  # fmt: skip
    dead = f"http://127.0.0.1:{free_port()}"
    assert main([*common, "--url", dead, "--retries", "0"]) == 2
    progress = tmp_path / "export.csv.progress.json"
    assert not progress.exists()
    assert main([*common, "--url", ingest_process, "--batch-size", "500"]) == 0
    assert not progress.exists()  # finished uploads leave no progress file
    # the same file again: every scan is recognised by its scan id
    assert main([*common, "--url", ingest_process, "--batch-size", "400"]) == 0
    metrics = httpx.get(ingest_process + "/metrics").text
    assert 'leadpipe_ingest_events_published_total{source="scans",type="lead.captured"} 1200.0' in metrics
    events = [e for e in asyncio.run(read_all(registry_topics, "lead.captured.v1")) if e.data.context.show_id == show]
    assert len(events) == 1200
    k7 = next(e for e in events if e.data.identity.badge_id == "K7")
    assert k7.data.captured_at.isoformat() == "2026-04-30T17:00:00+00:00"
    assert k7.data.qualification.budget == "7k"


def test_scans_upload_cli_skips_batches_already_sent(ingest_process: str, tmp_path: Path):
    import json

    from leadpipe.cli import main
    from services.ingest.domain.booth import batch_key
    from services.ingest.domain.uploads import scans_from_vcard

    show = f"show-{uuid.uuid4().hex[:6]}"
    export = tmp_path / "cards.vcf"
    cards = "".join(
        f"BEGIN:VCARD\nVERSION:4.0\nUID:V{i}\nN:Doe;Jo{i};;;\nEMAIL:v{i}@example.com\nORG:Acme\nREV:2026-04-29T08:00:00Z\nEND:VCARD\n"
        for i in range(6)
    )
    export.write_text(cards)
    first = {"device_id": "cli-upload", "show_id": show, "booth": "B2", "scans": scans_from_vcard(cards, "unused")[:4]}
    progress = tmp_path / "cards.vcf.progress.json"
    progress.write_text(json.dumps({"done": [batch_key(first)]}))  # batch 0 went through before a failure
    args = ["scans", "upload", str(export), "--show", show, "--booth", "B2", "--no-progress", "--batch-size", "4"]
    assert main([*args, "--url", ingest_process]) == 0
    metrics = httpx.get(ingest_process + "/metrics").text
    assert 'leadpipe_ingest_events_published_total{source="scans",type="lead.captured"} 2.0' in metrics
