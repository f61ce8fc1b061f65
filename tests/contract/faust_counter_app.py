"""A tiny Faust worker for the broker contract suite: counts records per key in a table
(backed by a changelog topic) and publishes each new count to ``<prefix>.counts``."""

from __future__ import annotations

import os
import sys

from leadpipe.runtime.faust_app import make_app
from leadpipe.runtime.settings import ServiceSettings

PREFIX = os.environ["COUNTER_PREFIX"]
settings = ServiceSettings(kafka_partitions=3)  # type: ignore[call-arg]
app = make_app(f"counter-{PREFIX}", settings)
source = app.topic(f"{PREFIX}.in", partitions=3)
counts_topic = app.topic(f"{PREFIX}.counts", partitions=1)
# Table keys and values travel through the changelog as JSON, so keep them JSON types.
counts = app.Table("counts", default=int, partitions=3, key_type=str, value_type=int)


@app.agent(source)
async def count(stream):  # type: ignore[no-untyped-def]
    async for key, _value in stream.items():
        name = key.decode()
        counts[name] += 1
        await counts_topic.send(key=key, value=str(counts[name]).encode())


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
    app.main()
