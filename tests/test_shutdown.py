"""SIGTERM with requests in flight: they all finish, and the service exits with code 0."""

import asyncio
import os
import signal

from conftest import start_guard_service

from safetypairs.client import AsyncGuardClient


def test_sigterm_finishes_in_flight_requests(sp_home, tmp_path, sample_photos):
    service = start_guard_service(sp_home, tmp_path / "guard.log")
    images = [p.read_bytes() for p in sample_photos] * 4  # 16 images per call, 64 in all

    async def run():
        async with AsyncGuardClient(service.grpc_target, timeout=60) as client:
            calls = [asyncio.ensure_future(client.screen_batch(images)) for _ in range(4)]
            await asyncio.sleep(0.3)  # the calls are queued or running now
            assert not any(c.done() for c in calls), "calls finished before the signal"
            os.killpg(service.process.pid, signal.SIGTERM)
            return await asyncio.gather(*calls, return_exceptions=True)

    try:
        results = asyncio.run(run())
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, failures
        assert all(len(r) == 16 and all(x.verdict for x in r) for r in results)
        assert service.process.wait(60) == 0, service.log()[-3000:]
    finally:
        service.stop()
