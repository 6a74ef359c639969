"""A TCP forwarder in a process of its own (`python tcp_proxy.py LISTEN_PORT TARGET_PORT`; the
`Proxy` class runs it): the network path to a server, which a test kills to make the server
unreachable mid-run and starts again to bring it back, the server and its data untouched."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from safetypairs.serving.launcher import free_port


class Proxy:
    """tests/tcp_proxy.py in its own process: the path to the store, killed and restarted."""

    def __init__(self, target_port: int) -> None:
        self.port, self.target = free_port(), target_port
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Proxy:
        script = Path(__file__)
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(self.port), str(self.target)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdout.readline() == "ready\n"
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(listen: int, target: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
