"""Issue 16 A, B, D, I, J against a real guard with bearer tokens, probed as an attacker would:
raw sockets, raw gRPC bytes, made-up paths, hostile forms."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid

import grpc
import httpx
import pytest
from conftest import png_bytes, start_guard_service

from safetypairs.serving.grpc_server import GrpcServer, ServiceRegistration
from safetypairs.serving.launcher import process_tree, resident_bytes
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.v1 import common_pb2, guard_pb2, guard_pb2_grpc

TOKEN = "hardening-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SCREEN = "/safetypairs.v1.Guard/Screen"
GRACE_S = 3.0
_LEFT_OPEN: list[socket.socket] = []


@pytest.fixture(scope="module")
def guard(sp_home, tmp_path_factory):
    d = tmp_path_factory.mktemp("hardening")
    (d / "tokens").write_text(TOKEN + "\n")
    service = start_guard_service(
        sp_home,
        d / "guard.log",
        {
            "SAFETYPAIRS_AUTH_TOKENS_FILE": str(d / "tokens"),
            "SAFETYPAIRS_SHUTDOWN_GRACE_S": str(GRACE_S),
        },
    )
    yield service
    # A: a request with a bad header byte must not hold shutdown past the grace period.
    started = time.monotonic()
    assert service.stop() == 0
    assert time.monotonic() - started < GRACE_S + 15, "shutdown held up"


@pytest.fixture(scope="module")
def http(guard):
    with httpx.Client(base_url=guard.http_url, timeout=30) as client:
        yield client


def _raw_http(url: str, head: bytes, timeout: float = 10.0) -> bytes:
    """Send `head` (request line and headers, raw bytes) and return the status line."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head)
        return s.recv(65536).split(b"\r\n", 1)[0]


# -- A: non-UTF-8 header bytes ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers, status",
    [
        (b"X-Odd: caf\xe9\r\n", b"401"),  # no token
        (b"Authorization: Bearer \xff\xfe\r\n", b"401"),  # a token that is not text
        (b"X-Odd: caf\xe9\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n", b"200"),
    ],
)
def test_a_non_utf8_header_byte_gets_an_answer_at_once(guard, headers, status):
    head = (
        b"POST /v1/model_info HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        + headers
        + b"Connection: close\r\n\r\n"
    )
    started = time.monotonic()
    line = _raw_http(guard.http_url, head)
    assert status in line and time.monotonic() - started < 5


def test_a_request_left_open_with_a_bad_header_does_not_hang(guard):
    """The connection stays open, the request unanswered by the client side; the teardown of
    the module fixture checks that shutdown is not held up by it."""
    s = socket.create_connection(guard.http_url.removeprefix("http://").split(":"))
    s.sendall(b"POST /v1/screen HTTP/1.1\r\nHost: x\r\nX-Odd: \xff\r\nContent-Length: 10\r\n\r\n")
    s.settimeout(5)
    assert b"401" in s.recv(65536).split(b"\r\n", 1)[0]
    _LEFT_OPEN.append(s)  # closed by the server when it stops


# -- J: HTTP refusals counted ---------------------------------------------------------


def test_j_http_401_counted_like_grpc_refusals(http):
    assert http.post("/v1/screen", files={"image": ("x.png", png_bytes())}).status_code == 401
    text = http.get("/metrics").text
    assert any(
        line.startswith("safetypairs_requests_total{")
        and 'protocol="http"' in line
        and 'method="screen"' in line
        and 'code="401",grpc_code="UNAUTHENTICATED"' in line
        for line in text.splitlines()
    ), [x for x in text.splitlines() if x.startswith("safetypairs_requests_total")]


# -- I: /metrics under a path flood ----------------------------------------------------


def test_i_made_up_paths_do_not_grow_metrics(http):
    http.get("/no-such-path-warmup")  # the one "unmatched" series exists from here on
    before = len(http.get("/metrics").content)
    paths = [f"/flood-{uuid.uuid4().hex}" for _ in range(300)]
    for path in paths:
        assert http.get(path).status_code in (401, 404)
    text = http.get("/metrics").text
    assert not any(p in text for p in paths[:20])
    assert len(text) < before * 1.1, (before, len(text))


# -- D: hostile forms ------------------------------------------------------------------


def _form(parts: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    boundary = "hardeningboundary"
    body = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


IMAGE = ("images", png_bytes(), "x.png")


@pytest.mark.parametrize(
    "parts, status",
    [
        ([IMAGE] + [("image_ids", b"a", None)] * 1001, 413),  # too many fields
        ([IMAGE] * 1001, 413),  # too many files
        ([IMAGE, ("categories", b"O1," * 400_000, None)], 413),  # a text field over 1 MiB
        ([IMAGE, ("thresholds", b"[" * 3000 + b"]" * 3000, None)], 400),  # RecursionError
    ],
    ids=["fields", "files", "big-field", "nested"],
)
def test_d_hostile_forms_are_named_not_500(http, parts, status):
    body, content_type = _form(parts)
    r = http.post("/v1/screen_batch", content=body, headers={**AUTH, "content-type": content_type})
    assert r.status_code == status, r.text[:500]
    error = r.json()["error"]
    assert error["kind"] in ("PayloadTooLarge", "InvalidInput") and error["message"]


def test_d_a_lone_surrogate_in_a_name_is_named_not_500(http):
    """BentoML reads the field as JSON: "\\udc80" becomes a lone surrogate, which protobuf
    cannot carry."""
    body, content_type = _form([("image", png_bytes(), "x.png"), ("image_id", b'"\\udc80"', None)])
    r = http.post("/v1/screen", content=body, headers={**AUTH, "content-type": content_type})
    assert r.status_code == 400 and r.json()["error"]["kind"] == "InvalidInput", r.text
    assert "udc80" in r.json()["error"]["message"]


def test_d_a_fine_form_still_works(http):
    body, content_type = _form([IMAGE, IMAGE, ("image_ids", b'["a", "b"]', None)])
    r = http.post("/v1/screen_batch", content=body, headers={**AUTH, "content-type": content_type})
    assert r.status_code == 200, r.text
    assert [x["image_id"] for x in r.json()["results"]] == ["a", "b"]


# -- B: unauthenticated memory ---------------------------------------------------------


def settled_rss(pids: list[int]) -> int:
    """The service's RSS once it has stopped moving: a worker that has just started still
    grows for a moment, which is not what the test measures (it failed once so, as the first
    test against a fresh service)."""
    last = resident_bytes(pids)
    for _ in range(40):
        time.sleep(0.25)
        now = resident_bytes(pids)
        if abs(now - last) < 2 * 1024 * 1024:
            return now
        last = now
    return last


def test_b_unauthenticated_large_messages_are_never_buffered(guard):
    """8 concurrent 64 MB calls without a token: refused from the metadata alone, so the
    guard's memory hardly moves (it grew by the messages' size before)."""
    payload = guard_pb2.ScreenRequest(
        image=common_pb2.Image(data=b"\0" * (64 * 1024 * 1024))
    ).SerializeToString()
    pids = process_tree(guard.process.pid)
    idle = settled_rss(pids)
    peak = idle
    codes: list[grpc.StatusCode] = []
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, resident_bytes(pids))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with grpc.insecure_channel(
            guard.grpc_target, options=[("grpc.max_send_message_length", -1)]
        ) as channel:
            call = channel.unary_unary(SCREEN)
            futures = [call.future(payload, timeout=60) for _ in range(8)]
            for f in futures:
                with pytest.raises(grpc.RpcError) as refused:
                    f.result()
                codes.append(refused.value.code())
    finally:
        stop.set()
        watcher.join()
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 8
    print(f"guard RSS idle {idle >> 20} MiB, peak {peak >> 20} MiB")
    assert peak - idle < 64 * 1024 * 1024, f"grew {(peak - idle) >> 20} MiB"


class _SlowGuard(guard_pb2_grpc.GuardServicer):
    def __init__(self, release: asyncio.Event) -> None:
        self.release = release

    async def Screen(self, request, context):
        await self.release.wait()
        return guard_pb2.ScreenResponse(image_id=request.image.id)


def test_b_request_bytes_in_flight_are_bounded():
    """A second large message while the first is held: refused at once, before parsing, with
    RESOURCE_EXHAUSTED; once the first is done the budget is back."""

    async def scenario() -> list[str]:
        release = asyncio.Event()
        servicer = _SlowGuard(release)
        server = GrpcServer(
            [
                ServiceRegistration(
                    "safetypairs.v1.Guard",
                    lambda s: guard_pb2_grpc.add_GuardServicer_to_server(servicer, s),
                )
            ],
            _metrics(),
            host="127.0.0.1",
            port=0,
            max_message_bytes=8 * 1024 * 1024,
            max_request_bytes_in_flight=8 * 1024 * 1024,
        )
        port = await server.start()
        big = guard_pb2.ScreenRequest(image=common_pb2.Image(data=b"x" * (5 << 20), id="a"))
        outcomes = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = guard_pb2_grpc.GuardStub(channel)
            first = asyncio.ensure_future(stub.Screen(big, timeout=20))
            await asyncio.sleep(0.5)
            try:
                await stub.Screen(big, timeout=20)
            except grpc.aio.AioRpcError as exc:
                outcomes.append(exc.code().name)
                outcomes.append(dict(exc.trailing_metadata()).get("safetypairs-error-kind"))
            release.set()
            outcomes.append((await first).image_id)
            outcomes.append((await stub.Screen(big, timeout=20)).image_id)
        await server.stop(1)
        return outcomes

    assert asyncio.run(scenario()) == ["RESOURCE_EXHAUSTED", "Overloaded", "a", "a"]


def _metrics() -> ServiceMetrics:
    import prometheus_client

    return ServiceMetrics(
        "guard", prometheus_client, registry=prometheus_client.CollectorRegistry()
    )


def test_d_error_messages_are_capped_and_keep_their_kind():
    from safetypairs.contract.errors import MAX_MESSAGE_CHARS, InvalidInput

    err = InvalidInput("x" * 100_000 + "\udc80")
    assert len(err.message) < MAX_MESSAGE_CHARS + 50 and err.kind == "InvalidInput"
    json.dumps(err.message).encode()  # sendable


def test_b_memory_freed_after_a_burst_goes_back_to_the_system():
    """glibc keeps freed heap pages below a live allocation: RSS stayed at each burst's peak
    (1,374 MiB settled against 398 idle after 10 bursts of cancelled calls) until trimmed."""
    from safetypairs.serving.memory import MemoryTrimmer

    me = [os.getpid()]
    blobs = [bytearray(64 << 10) for _ in range(4096)]  # 256 MiB below the mmap threshold
    pin = bytearray(64 << 10)  # a live allocation above them keeps the heap from shrinking
    del blobs
    before = resident_bytes(me)

    async def trim_once() -> None:
        trimmer = MemoryTrimmer(0.05)
        trimmer.start()
        await asyncio.sleep(0.5)
        await trimmer.stop()

    asyncio.run(trim_once())
    after = resident_bytes(me)
    assert before - after > 128 * 1024 * 1024, (before >> 20, after >> 20)
    del pin
