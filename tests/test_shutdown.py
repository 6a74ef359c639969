"""SIGTERM with requests in flight: they all finish, and the service exits with code 0."""

import asyncio
import os
import signal

import grpc
import httpx
from conftest import start_guard_service
from grpc_health.v1 import health_pb2, health_pb2_grpc

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


async def _late_grpc_outcome(target: str) -> str:
    """What a newcomer meets on the gRPC port: the health status, or the refusal code."""
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def test_sigterm_turns_grpc_away_while_http_still_drains(sp_home, tmp_path, sample_photos):
    """BentoML drains HTTP before its shutdown hooks run; gRPC must not take new calls (or
    report SERVING) meanwhile. In-flight calls on both protocols finish."""
    service = start_guard_service(sp_home, tmp_path / "guard.log", {"SAFETYPAIRS_MAX_QUEUE": "256"})
    images = [p.read_bytes() for p in sample_photos] * 4  # 16 per call, 128 in all
    upload = {"image": ("chelsea.png", sample_photos[1].read_bytes(), "image/png")}

    async def run():
        async with (
            AsyncGuardClient(service.grpc_target, timeout=60) as client,
            httpx.AsyncClient(base_url=service.http_url, timeout=60) as http,
        ):
            before = await _late_grpc_outcome(service.grpc_target)
            grpc_calls = [asyncio.ensure_future(client.screen_batch(images)) for _ in range(8)]
            await asyncio.sleep(0.3)
            # Queued behind the gRPC batches: HTTP is still draining when the newcomer comes.
            http_calls = [
                asyncio.ensure_future(http.post("/v1/screen", files=upload)) for _ in range(4)
            ]
            await asyncio.sleep(0.3)
            os.killpg(service.process.pid, signal.SIGTERM)
            await asyncio.sleep(0.5)
            late = await _late_grpc_outcome(service.grpc_target)
            http_in_flight = not all(c.done() for c in http_calls)
            grpc_done = await asyncio.gather(*grpc_calls, return_exceptions=True)
            http_done = await asyncio.gather(*http_calls, return_exceptions=True)
            return before, late, http_in_flight, grpc_done, http_done

    try:
        before, late, http_in_flight, grpc_done, http_done = asyncio.run(run())
        assert before == "SERVING"
        assert http_in_flight, "HTTP had drained before the check: the test saw nothing"
        assert late in ("NOT_SERVING", "UNAVAILABLE"), late
        failures = [r for r in [*grpc_done, *http_done] if isinstance(r, BaseException)]
        assert not failures, failures
        assert all(len(r) == 16 for r in grpc_done)
        assert all(r.status_code == 200 for r in http_done), [r.text for r in http_done]
        assert service.process.wait(60) == 0, service.log()[-3000:]
    finally:
        service.stop()
