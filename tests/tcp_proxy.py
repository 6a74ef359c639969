"""A TCP forwarder in a process of its own (`python tcp_proxy.py LISTEN_PORT TARGET_PORT
[CUT_AFTER_BYTES]`; the `Proxy` class runs it): the network path to a server, which a test kills
to make the server unreachable mid-run and starts again to bring it back, the server and its data
untouched. With CUT_AFTER_BYTES the path goes away by itself once that many bytes have gone to
the server: a cut mid-run that does not depend on how fast this machine runs the client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from safetypairs.serving.launcher import free_port


class Proxy:
    """tests/tcp_proxy.py in its own process: the path to the store, killed and restarted."""

    def __init__(self, target_port: int) -> None:
        self.port, self.target = free_port(), target_port
        self.process: subprocess.Popen[str] | None = None

    def start(self, cut_after_bytes: int | None = None) -> Proxy:
        script = Path(__file__)
        cut = [] if cut_after_bytes is None else [str(cut_after_bytes)]
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(self.port), str(self.target), *cut],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdout.readline() == "ready\n"
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def wait_cut(self, timeout: float) -> None:
        """Wait for a proxy started with cut_after_bytes to cut the path."""
        assert self.process is not None
        self.process.wait(timeout)


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    count: Callable[[int], None] = lambda n: None,
) -> None:
    try:
        while data := await reader.read(65536):
            count(len(data))
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(listen: int, target: int, cut_after: int | None) -> None:
    sent = 0

    def count(n: int) -> None:
        nonlocal sent
        sent += n
        if cut_after is not None and sent > cut_after:
            # Every connection and the listener go at once, as when a network path is cut;
            # nothing more reaches the server.
            os._exit(0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer, count), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    cut = int(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), cut))
