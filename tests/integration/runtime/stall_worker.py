"""A Faust worker on our runtime (``make_app``, our consumer) whose delivery of two of its four
partitions is broken once, on purpose, in two of the ways a partition can stop delivering:

- partition 1, *dropped*: the client returns the record at ``STALL_OFFSET`` and it is never
  handed to the streams (the client's position has moved past it);
- partition 2, *orphaned*: after the record before ``STALL_OFFSET`` was delivered, the partition
  is left out of what the worker asks the client for, though neither paused nor under
  back-pressure (the client fetches its next records and holds them).

Each record it processes is written to ``STALL_OUT`` as ``<partition> <offset>``; each delivery
restart as ``restart <topic> <partition>``."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from faust.transport import consumer as faust_consumer
from faust.types import TP

from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.settings import ServiceSettings

PREFIX = os.environ["STALL_PREFIX"]
OFFSET = int(os.environ["STALL_OFFSET"])
OUT = Path(os.environ["STALL_OUT"])
settings = ServiceSettings(kafka_partitions=4)  # type: ignore[call-arg]
app = make_app(f"stall-{PREFIX}", settings)
source = app.topic(f"{PREFIX}.in", partitions=4, key_type=bytes, value_type=bytes)
dropped = TP(f"{PREFIX}.in", 1)
orphaned = TP(f"{PREFIX}.in", 2)
broken: set[TP] = set()


def write(line: str) -> None:
    with OUT.open("a") as out:
        out.write(line + "\n")


app.delivery_restarts = lambda topic, partition: write(f"restart {topic} {partition}")
original_getmany = faust_consumer.Consumer.getmany


async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
    async for tp, message in original_getmany(self, timeout):
        if tp == dropped and dropped not in broken and message.offset == OFFSET:
            broken.add(dropped)
            continue
        yield tp, message


faust_consumer.Consumer.getmany = getmany  # type: ignore[method-assign]


@app.agent(source)
async def record(stream: Any) -> None:
    async for event in stream.events():
        message = event.message
        write(f"{message.partition} {message.offset}")
        if message.tp == orphaned and orphaned not in broken and message.offset == OFFSET - 1:
            broken.add(orphaned)
            app.consumer._get_active_partitions().discard(orphaned)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "info", "--without-web"]
    app.main()
