"""A TCP proxy on loopback that can add latency to every chunk it forwards: "slow Redis" or
"slow PostgreSQL" without root (no tc/netem). Runs its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from bulwark_devstack.infra import free_port


class LatencyProxy:
    def __init__(self, target_port: int, name: str) -> None:
        self.name = f"slow {name}"
        self.target_port = target_port
        self.port = free_port()
        self.delay = 0.0  # seconds added to each chunk, each direction
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"proxy-{name}", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError):
            dst.close()

    # The Restartable shape: "stop" slows it down, "start" makes it fast again.
    def stop(self) -> None:
        self.delay = self.slow_delay

    def start(self) -> None:
        self.delay = 0.0

    slow_delay = 0.25

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
