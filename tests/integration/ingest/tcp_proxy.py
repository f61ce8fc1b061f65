"""A TCP proxy the test can cut and restore: a network partition between ingest and the broker."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1"):
        self.listen_port = listen_port
        self.target_port = target_port
        self.host = host
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._forwarding = True

    async def start(self) -> None:
        self._forwarding = True
        self._server = await asyncio.start_server(self._handle, self.host, self.listen_port, reuse_address=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer, upstream=True), self._pump(up_reader, writer, upstream=False)
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        try:
            while data := await reader.read(65536):
                if upstream and not self._forwarding:
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    async def cut(self) -> None:
        """Stop requests reaching the broker, let answers already on their way through, then drop all."""
        self._forwarding = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0.3)
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.close()
        self._writers.clear()

    async def stop(self) -> None:
        await self.cut()
