"""Nothing accepted is lost: the broker becomes unreachable mid-load (a cut TCP proxy between
ingest and a dedicated broker that advertises the proxy's address), ingest keeps answering 202
from its fsync'd spool, and once the path is back every 202 is on the topic exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from leadpipe.devstack.kafka import KafkaCluster
from leadpipe.devstack.processes import ManagedProcess, free_port, wait_for_port
from leadpipe.runtime.kafka import ensure_topics
from schemas.topics import registry
from services.ingest.app import create_app
from services.ingest.bootstrap import build_deps
from services.ingest.config import IngestSettings
from tests.integration.ingest.conftest import read_events
from tests.integration.ingest.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[3]
FORM = """
id: load
title: Load
fields: {email: identity.email, first_name: person.first_name}
required: [email]
rate_limits: {per_ip_per_minute: 1000000, per_form_per_minute: 1000000}
"""


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A dedicated Kafka node listening on one port and advertising another (where the proxy will be)."""
    proxy_port = free_port()
    cluster = KafkaCluster(tmp_path / "kafka", tmp_path, advertise={1: proxy_port}).start()
    try:
        yield cluster.node(1).port, proxy_port
    finally:
        cluster.stop()


@pytest.mark.chaos
async def test_broker_cut_mid_load_every_202_lands_on_the_topic_exactly_once(
    proxied_broker: tuple[int, int], tmp_path: Path, redis_url: str
):
    broker_port, proxy_port = proxied_broker
    proxy = TcpProxy(proxy_port, broker_port)
    await proxy.start()
    bootstrap = f"127.0.0.1:{proxy_port}"
    await ensure_topics(bootstrap, [registry(3)["lead.captured.v1"]])
    forms = tmp_path / "forms"
    forms.mkdir()
    (forms / "load.yaml").write_text(FORM)
    settings = IngestSettings(
        kafka_bootstrap_servers=bootstrap,
        redis_url=redis_url,
        leadpipe_state_dir=tmp_path / "state",
        ingest_forms_dir=forms,
        ingest_publish_timeout_s=1.5,
    )
    reg = CollectorRegistry()
    app = create_app(settings, build_deps(settings, reg))
    accepted: list[str] = []
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()

    async def client(n: int, c: httpx.AsyncClient) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            resp = await c.post("/v1/forms/load", json={"email": f"u{n}-{i}@example.com", "first_name": "U"})
            statuses[resp.status_code] += 1
            if resp.status_code == 202:
                accepted.append(resp.json()["event_id"])

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest", timeout=30) as c:
            load = [asyncio.create_task(client(n, c)) for n in range(8)]
            await asyncio.sleep(1.0)
            before_cut = len(accepted)
            await proxy.cut()
            await asyncio.sleep(3.0)
            spooled = reg.get_sample_value("leadpipe_ingest_spool_depth") or 0
            during_cut = len(accepted) - before_cut
            await proxy.start()
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(*load)
            deadline = time.monotonic() + 30
            while (reg.get_sample_value("leadpipe_ingest_spool_depth") or 0) > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert reg.get_sample_value("leadpipe_ingest_spool_depth") == 0
    assert set(statuses) == {202}, statuses
    assert before_cut > 20 and during_cut > 20 and spooled > 0, (before_cut, during_cut, spooled)
    events = await read_events(bootstrap, "lead.captured.v1", set(accepted), timeout_s=30)
    ids = Counter(e.id for e in events)
    assert set(ids) == set(accepted), f"lost {len(set(accepted) - set(ids))} of {len(accepted)}"
    assert max(ids.values()) == 1, f"duplicates: {[i for i, n in ids.items() if n > 1][:5]}"
    await proxy.stop()


def _ingest_process(work: Path, bootstrap: str, redis_url: str, forms: Path, port: int) -> ManagedProcess:
    return ManagedProcess(
        "ingest",
        [sys.executable, "-m", "services.ingest"],
        work / "ingest.log",
        env={
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": redis_url,
            "LEADPIPE_STATE_DIR": str(work / "state"),  # the spool lives here: kept across the kill
            "INGEST_PORT": str(port),
            "INGEST_FORMS_DIR": str(forms),
            "INGEST_PUBLISH_TIMEOUT_S": "1.5",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        },
        cwd=ROOT,
    ).start()


def _spool_depth(base: str) -> float:
    for line in httpx.get(base + "/metrics", timeout=5).text.splitlines():
        if line.startswith("leadpipe_ingest_spool_depth "):
            return float(line.split()[1])
    return -1.0


@pytest.mark.chaos
async def test_ingest_killed_with_a_full_spool_publishes_every_202_once_and_in_order_after_restart(
    proxied_broker: tuple[int, int], tmp_path: Path, redis_url: str
):
    broker_port, proxy_port = proxied_broker
    proxy = TcpProxy(proxy_port, broker_port)
    await proxy.start()
    bootstrap = f"127.0.0.1:{proxy_port}"
    await ensure_topics(bootstrap, [registry(3)["lead.captured.v1"]])
    forms = tmp_path / "forms"
    forms.mkdir()
    (forms / "load.yaml").write_text(FORM)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Three people, each posting in turn: a person's captures share a record key, so their
    # order on the topic is the order ingest answered 202.
    people = [f"order-{i}@example.com" for i in range(3)]
    posted: dict[str, list[str]] = {p: [] for p in people}
    seq = 0

    async def post_round(c: httpx.AsyncClient, rounds: int) -> None:
        nonlocal seq
        for _ in range(rounds):
            for person in people:
                seq += 1
                resp = await c.post("/v1/forms/load", json={"email": person, "first_name": f"S{seq}"})
                assert resp.status_code == 202, resp.text
                posted[person].append(resp.json()["event_id"])

    ingest = _ingest_process(tmp_path, bootstrap, redis_url, forms, port)
    try:
        await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 60.0, ingest.proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            await post_round(c, 3)  # broker reachable: acked
            await proxy.cut()  # the broker is unreachable: 202s now come from the spool
            await post_round(c, 5)
            spooled = await asyncio.to_thread(_spool_depth, base)
            assert spooled >= 10, f"expected a full spool, depth {spooled}"
        ingest.kill9()  # with records still in its spool
        await proxy.start()
        ingest = _ingest_process(tmp_path, bootstrap, redis_url, forms, port)
        await asyncio.to_thread(wait_for_port, port, "127.0.0.1", 60.0, ingest.proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            await post_round(c, 2)  # new posts after the restart queue behind the spooled ones
        deadline = time.monotonic() + 60
        while await asyncio.to_thread(_spool_depth, base) != 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await asyncio.to_thread(_spool_depth, base) == 0
        wanted = {e for ids in posted.values() for e in ids}
        events = await read_events(bootstrap, "lead.captured.v1", wanted, timeout_s=30)
    finally:
        ingest.stop()
        await proxy.stop()
    ids = Counter(e.id for e in events)
    assert set(ids) == wanted, f"lost {len(wanted - set(ids))} of {len(wanted)}"
    assert max(ids.values()) == 1, f"published twice: {[i for i, n in ids.items() if n > 1]}"
    assert "Traceback" not in (tmp_path / "ingest.log").read_text(), "ingest logged a crash"
    for person, expected in posted.items():
        on_topic = [e.id for e in events if e.data.identity.email == person]
        assert on_topic == expected, f"{person}: order on the topic differs from the order of the 202s"
