"""A full queue is refused at once over both protocols, and the service keeps serving."""

import asyncio
import concurrent.futures
import time

import httpx
import pytest
from conftest import start_guard_service

from safetypairs.client import NO_RETRY, AsyncGuardClient, ChannelOptions, GuardClient
from safetypairs.contract.errors import Overloaded


@pytest.fixture(scope="module")
def small_queue_service(sp_home, tmp_path_factory):
    log = tmp_path_factory.mktemp("logs") / "overload.log"
    service = start_guard_service(
        sp_home,
        log,
        {
            "SAFETYPAIRS_MAX_QUEUE": "2",
            "SAFETYPAIRS_MAX_BATCH_SIZE": "1",
            "SAFETYPAIRS_MAX_IMAGES_PER_REQUEST": "2",
        },
    )
    yield service
    assert service.stop() == 0


def test_full_queue_is_refused_at_once_over_grpc(small_queue_service, sample_photos):
    data = sample_photos[1].read_bytes()

    async def call(client):
        started = time.perf_counter()
        try:
            await client.screen(data)
            return "ok", time.perf_counter() - started
        except Overloaded as exc:
            assert "over" in exc.message or "overloaded" in exc.message
            return "refused", time.perf_counter() - started

    async def run():
        options = ChannelOptions(retry=NO_RETRY)
        async with AsyncGuardClient(small_queue_service.grpc_target, options=options) as client:
            return await asyncio.gather(*(call(client) for _ in range(40)))

    outcomes = asyncio.run(run())
    kinds = [k for k, _ in outcomes]
    assert kinds.count("refused") > 0 and kinds.count("ok") > 0
    ok_time = max(t for k, t in outcomes if k == "ok")
    refused_fast = sorted(t for k, t in outcomes if k == "refused")[0]
    assert refused_fast < ok_time  # refusals do not wait for the queue
    with GuardClient(small_queue_service.grpc_target) as client:
        assert client.screen(data).scores  # healthy afterwards


def test_full_queue_is_429_over_http(small_queue_service, sample_photos):
    data = sample_photos[1].read_bytes()

    def post(_):
        with httpx.Client(base_url=small_queue_service.http_url, timeout=60) as http:
            return http.post("/v1/screen", files={"image": ("c.png", data)})

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(post, range(48)))
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 429}, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["kind"] == "Overloaded"
