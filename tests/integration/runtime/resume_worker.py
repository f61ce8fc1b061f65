"""A Faust worker on our runtime (``make_app``, our consumer) that holds one of its two
partitions back and lets it go again, the way back-pressure or a pause does:

- a record ``pause`` on partition 0 has a timer, half a second later (when the streams are
  waiting for records again), leave partition 1 (with ``RESUME_PAUSE_ALL``: the whole assignment,
  as a rebalance does) out of what the streams ask for (``pause_partitions``; the client keeps
  fetching and holds the records), and ``RESUME_AFTER_S`` after that put them back
  (``resume_partitions``): timers, not records (a record arriving ends the streams' wait).

Each record it processes is written to ``RESUME_OUT`` as ``<partition> <offset> <wall time>``;
the pause and the resume as ``paused <wall time>`` and ``resumed <wall time>``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from faust.types import TP

from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.settings import ServiceSettings

PREFIX = os.environ["RESUME_PREFIX"]
OUT = Path(os.environ["RESUME_OUT"])
AFTER_S = float(os.environ["RESUME_AFTER_S"])
settings = ServiceSettings(kafka_partitions=2)  # type: ignore[call-arg]
app = make_app(f"resume-{PREFIX}", settings)
source = app.topic(f"{PREFIX}.in", partitions=2, key_type=bytes, value_type=bytes)
held = {TP(f"{PREFIX}.in", 1)}


def write(line: str) -> None:
    with OUT.open("a") as out:
        out.write(line + "\n")


def resume() -> None:
    app.consumer.resume_partitions(held)
    write(f"resumed {time.time():.6f}")


def pause() -> None:
    if os.environ.get("RESUME_PAUSE_ALL"):  # the whole assignment, Faust's leader topic included
        held.update(app.consumer.assignment())
    app.consumer.pause_partitions(held)
    write(f"paused {time.time():.6f}")
    asyncio.get_running_loop().call_later(AFTER_S, resume)


@app.agent(source)
async def record(stream: Any) -> None:
    async for event in stream.events():
        message = event.message
        write(f"{message.partition} {message.offset} {time.time():.6f}")
        if message.value == b"pause":
            asyncio.get_running_loop().call_later(0.5, pause)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    app.main()
