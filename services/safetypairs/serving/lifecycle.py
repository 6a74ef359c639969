"""Start and stop of a service worker: its runtime (batcher, slots) and its gRPC server.

Start is two steps: `serve` starts the runtime and gRPC (serving.one_process does this before
BentoML is imported, so gRPC answers while HTTP comes up), and `start`, from the service's
on_startup hook as HTTP comes up, does what is left (serving first where nothing has yet) and
makes the worker ready for /readyz.

Shutdown order matters. On SIGTERM uvicorn (inside BentoML) stops taking HTTP connections and
lets the ones in flight finish; only then does it run the on_shutdown hooks. Stopping gRPC from
that hook would leave the gRPC port taking new calls, and reporting SERVING, for as long as
HTTP drains. So the worker hooks SIGTERM itself: at the signal, gRPC health turns NOT_SERVING
and the gRPC server stops taking new calls while its in-flight ones finish, side by side with
the HTTP drain; the on_shutdown hook then waits for that drain and stops the runtime, which
answers what is still queued.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Protocol

from safetypairs.serving.grpc_server import GrpcServer
from safetypairs.serving.memory import (
    MemoryTrimmer,
    freeze_loaded_objects,
    map_large_allocations,
)

log = logging.getLogger(__name__)


class Runtime(Protocol):
    def start(self) -> None: ...
    async def stop(self) -> None: ...


class WorkerLifecycle:
    """`start` from the service's on_startup hook, `stop` from its on_shutdown hook."""

    def __init__(
        self, runtime: Runtime, grpc: GrpcServer, grace_s: float, trim_interval_s: float = 0.0
    ) -> None:
        self.runtime = runtime
        self.grpc = grpc
        self.grace_s = grace_s
        self.trimmer = MemoryTrimmer(trim_interval_s)
        self.serving = False  # runtime and gRPC started
        self.ready = False  # and HTTP: what /readyz reports

    async def serve(self) -> None:
        """Take requests: the runtime, then gRPC (idempotent)."""
        if self.serving:
            return
        self.runtime.start()
        await self.grpc.start()
        self.serving = True

    async def start(self) -> None:
        await self.serve()
        self._hook_sigterm(asyncio.get_running_loop())
        self.trimmer.start()
        freeze_loaded_objects()  # everything the worker needs is loaded by now
        map_large_allocations()
        self.ready = True

    async def stop(self) -> None:
        self.ready = self.serving = False
        await self.trimmer.stop()
        await self.grpc.stop(self.grace_s)
        await self.runtime.stop()

    def _hook_sigterm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin the gRPC drain at SIGTERM, then hand the signal to the handler before ours
        (uvicorn's, which drains HTTP)."""
        if threading.current_thread() is not threading.main_thread():
            log.warning("not on the main thread: gRPC drains only after HTTP on SIGTERM")
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self.ready = False
            loop.call_soon_threadsafe(self.grpc.begin_stop, self.grace_s)
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)
