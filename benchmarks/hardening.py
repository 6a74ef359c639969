"""Issue 16 B and I repeated against a real guard with default settings: what a caller without
a token costs in memory, whether memory returns after bursts of cancelled calls, and what a
flood of made-up paths does to /metrics.

    python benchmarks/hardening.py [--env NAME=VALUE ...] [--no-auth]

Prints the guard's RSS (the serve process and its worker) at idle; its peak under 8
concurrent 120 MB calls without a token, and after; warm (after calls answered in full
batches, which grow onnxruntime's arena once to the largest batch); after each of 10 bursts
of 500 calls cancelled 50 ms after they were sent, and settled 12 s after the last (the
memory trim runs every 10 s); then /metrics size and scrape time before and after 3,000
requests to made-up paths. Aims: peak under the pod's 2 GiB limit, settled within 20% of
idle, /metrics under 2x its size. `--no-auth` runs without tokens (then every caller is
"without a token" and the byte budget is what bounds memory). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import pathlib
import tempfile
import threading
import time
import uuid

import grpc
import httpx
import numpy as np
from PIL import Image

from safetypairs.guard.default_model import ensure_default_guard
from safetypairs.serving.launcher import (
    GUARD_SERVICE,
    ServiceProcess,
    process_tree,
    resident_bytes,
)
from safetypairs.v1 import common_pb2, guard_pb2, guard_pb2_grpc

TOKEN = "benchmark-token-0123456789"
MIB = 1024 * 1024


class Peak:
    """Samples RSS every 5 ms in a thread while in use."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.value = pids, resident_bytes(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.value = max(self.value, resident_bytes(self.pids))
            time.sleep(0.005)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def large_calls(target: str, count: int, size: int) -> list[str]:
    payload = guard_pb2.ScreenRequest(image=common_pb2.Image(data=b"\0" * size)).SerializeToString()
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)]) as ch:
        call = ch.unary_unary("/safetypairs.v1.Guard/Screen")
        futures = [call.future(payload, timeout=120) for _ in range(count)]
        codes = []
        for f in futures:
            try:
                f.result()
                codes.append("OK")
            except grpc.RpcError as exc:
                codes.append(exc.code().name)
    return codes


def noise_png(side: int = 512) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


async def full_batches(target: str, calls: int, metadata: tuple) -> None:
    """Calls answered in full batches: onnxruntime's arena grows to the largest batch once."""
    request = guard_pb2.ScreenRequest(image=common_pb2.Image(data=noise_png()))
    async with grpc.aio.insecure_channel(target) as channel:
        stub = guard_pb2_grpc.GuardStub(channel)
        await asyncio.gather(
            *(stub.Screen(request, metadata=metadata, timeout=120) for _ in range(calls))
        )


async def cancelled_burst(target: str, calls: int, metadata: tuple) -> None:
    request = guard_pb2.ScreenRequest(image=common_pb2.Image(data=noise_png()))
    async with grpc.aio.insecure_channel(target) as channel:
        stub = guard_pb2_grpc.GuardStub(channel)
        tasks = [
            asyncio.ensure_future(stub.Screen(request, metadata=metadata, timeout=30))
            for _ in range(calls)
        ]
        await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def scrape(http: httpx.Client) -> tuple[int, float]:
    started = time.perf_counter()
    size = len(http.get("/metrics").content)
    return size, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the guard")
    parser.add_argument("--no-auth", action="store_true")
    parser.add_argument("--large-mb", type=int, default=120)
    args = parser.parse_args()
    home = pathlib.Path(tempfile.mkdtemp(prefix="hardening-"))
    sp_home = os.environ.get("SAFETYPAIRS_HOME") or str(home / "sp")
    ensure_default_guard(sp_home)
    env = {"SAFETYPAIRS_HOME": sp_home, "BENTOML_HOME": str(home / "bentoml")}
    env |= dict(e.split("=", 1) for e in args.env)
    metadata: tuple = ()
    if not args.no_auth:
        (home / "tokens").write_text(TOKEN + "\n")
        env["SAFETYPAIRS_AUTH_TOKENS_FILE"] = str(home / "tokens")
        metadata = (("authorization", f"Bearer {TOKEN}"),)
    print(f"guard: default settings, auth {'off' if args.no_auth else 'on'}, extra env {args.env}")
    service = ServiceProcess.start(GUARD_SERVICE, home / "guard.log", env)
    try:
        pids = process_tree(service.process.pid)
        time.sleep(2)
        idle = resident_bytes(pids)
        print(f"idle RSS {idle / MIB:.0f} MiB")

        with Peak(pids) as peak:
            codes = large_calls(service.grpc_target, 8, args.large_mb * MIB)
        time.sleep(3)
        print(
            f"8 x {args.large_mb} MB without a token: {sorted(set(codes))}; peak "
            f"{peak.value / MIB:.0f} MiB, after {resident_bytes(pids) / MIB:.0f} MiB"
        )

        asyncio.run(full_batches(service.grpc_target, 48, metadata))
        time.sleep(12)
        warm = resident_bytes(pids)
        print(f"warm RSS {warm / MIB:.0f} MiB (after 48 answered calls: full batches of 16)")

        with Peak(pids) as peak:
            for burst in range(10):
                asyncio.run(cancelled_burst(service.grpc_target, 500, metadata))
                time.sleep(0.5)
                print(f"  burst {burst + 1}: RSS {resident_bytes(pids) / MIB:.0f} MiB")
        time.sleep(12)
        settled = resident_bytes(pids)
        print(
            f"10 bursts of 500 cancelled calls: peak {peak.value / MIB:.0f} MiB, settled "
            f"{settled / MIB:.0f} MiB ({settled / idle - 1:+.0%} of idle, "
            f"{settled / warm - 1:+.0%} of warm)"
        )

        with httpx.Client(base_url=service.http_url, timeout=60) as http:
            before, before_s = scrape(http)
            for _ in range(3000):
                http.get(f"/{uuid.uuid4().hex}")
            after, after_s = scrape(http)
        print(
            f"/metrics {before / 1024:.0f} KB in {before_s * 1e3:.0f} ms before 3,000 made-up "
            f"paths, {after / 1024:.0f} KB in {after_s * 1e3:.0f} ms after ({after / before:.2f}x)"
        )
    finally:
        service.stop()


if __name__ == "__main__":
    main()
