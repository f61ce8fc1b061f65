"""A Kafka-protocol TCP shim for kcat (librdkafka 2.0) in front of the embedded broker.

librdkafka 2.0 cannot parse Tansu's ApiVersions v3 response (it reads past the end of the
tagged fields). The shim answers an ApiVersions request above v0 with UNSUPPORTED_VERSION,
as a broker that does not know that version would, so librdkafka retries with v0, which it
parses; every other byte is passed through untouched. Only tests use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

API_VERSIONS = 18
UNSUPPORTED_VERSION = 35


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _client_to_broker(
    client: asyncio.StreamReader, client_w: asyncio.StreamWriter, broker_w: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            size_raw = await client.readexactly(4)
            (size,) = struct.unpack(">i", size_raw)
            body = await client.readexactly(size)
            api_key, api_version, correlation_id = struct.unpack(">hhi", body[:8])
            if api_key == API_VERSIONS and api_version > 0:
                # v0 response header + body: error, one entry (ApiVersions 0..0).
                payload = struct.pack(">ihi hhh", correlation_id, UNSUPPORTED_VERSION, 1, API_VERSIONS, 0, 0)
                client_w.write(struct.pack(">i", len(payload)) + payload)
                await client_w.drain()
                continue
            broker_w.write(size_raw + body)
            await broker_w.drain()
    broker_w.close()


class KafkaShim:
    """Listens on ``listen_port`` and forwards to the broker at ``target_port``."""

    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1"):
        self.listen_port, self.target_port, self.host = listen_port, target_port, host
        self._server: asyncio.base_events.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b_reader, b_writer = await asyncio.open_connection(self.host, self.target_port)
        await asyncio.gather(_client_to_broker(reader, writer, b_writer), _pipe(b_reader, writer))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.listen_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
