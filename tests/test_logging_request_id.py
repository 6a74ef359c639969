"""Request ids and the JSON access log, against the real guard service (`guard_service` runs
with SAFETYPAIRS_LOG_FORMAT=json, as the manifests do)."""

from __future__ import annotations

import json
import time

import grpc
import httpx
import pytest
from conftest import png_bytes

from safetypairs.client import GuardClient
from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.request_id import REQUEST_ID_METADATA_KEY, request_id
from safetypairs.serving.launcher import ServiceProcess
from safetypairs.v1 import common_pb2, guard_pb2, guard_pb2_grpc


def access_lines(service: ServiceProcess, rid: str, timeout_s: float = 5.0) -> list[dict]:
    """The service's JSON access-log lines for request id `rid` (waits for the log flush)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = []
        for line in service.log().splitlines():
            if line.startswith("{") and rid in line:
                entry = json.loads(line)
                if entry.get("logger") == "safetypairs.access":
                    lines.append(entry)
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_sdk_call_logs_the_given_request_id(guard_service: ServiceProcess) -> None:
    with GuardClient(guard_service.grpc_target, timeout=30) as guard, request_id("ticket-4711"):
        guard.screen(png_bytes())
    [entry] = access_lines(guard_service, "ticket-4711")
    assert entry["service"] == "guard"
    assert entry["protocol"] == "grpc"
    assert entry["method"] == "Screen"
    assert (entry["code"], entry["grpc_code"]) == ("200", "OK")
    assert entry["request_id"] == "ticket-4711"
    assert entry["level"] == "info" and entry["duration_ms"] > 0


def test_failed_sdk_call_carries_its_generated_request_id(guard_service: ServiceProcess) -> None:
    with (
        GuardClient(guard_service.grpc_target, timeout=30) as guard,
        pytest.raises(InvalidInput) as failed,
    ):
        guard.screen(b"not an image")
    rid = failed.value.request_id
    assert rid and len(rid) == 32  # the SDK's uuid4 hex, echoed in trailing metadata
    [entry] = access_lines(guard_service, rid)
    assert entry["grpc_code"] == "INVALID_ARGUMENT" and entry["method"] == "Screen"
    assert entry["code"] == "400"


def test_grpc_echoes_the_id_or_makes_one(guard_service: ServiceProcess) -> None:
    request = guard_pb2.ScreenRequest(image=common_pb2.Image(data=png_bytes()))
    with grpc.insecure_channel(guard_service.grpc_target) as channel:
        stub = guard_pb2_grpc.GuardStub(channel)
        _, given = stub.Screen.with_call(
            request, timeout=30, metadata=((REQUEST_ID_METADATA_KEY, "raw-call-1"),)
        )
        _, made = stub.Screen.with_call(request, timeout=30)
    assert (REQUEST_ID_METADATA_KEY, "raw-call-1") in given.trailing_metadata()
    made_ids = [v for k, v in made.trailing_metadata() if k == REQUEST_ID_METADATA_KEY]
    assert len(made_ids) == 1 and made_ids[0] != "raw-call-1"
    assert access_lines(guard_service, made_ids[0])


def test_http_echoes_and_logs_the_request_id(guard_service: ServiceProcess) -> None:
    url = f"{guard_service.http_url}/v1/categories"
    given = httpx.post(url, headers={"X-Request-ID": "http-call-1"}, timeout=30)
    made = httpx.post(url, timeout=30)
    assert given.status_code == 200 and given.headers["x-request-id"] == "http-call-1"
    assert made.headers["x-request-id"] and made.headers["x-request-id"] != "http-call-1"
    [entry] = access_lines(guard_service, "http-call-1")  # once: BentoML's own line is off
    assert (entry["protocol"], entry["method"], entry["path"]) == (
        "http",
        "categories",
        "/v1/categories",
    )
    assert (entry["code"], entry["grpc_code"]) == ("200", "OK")
    assert sum("http-call-1" in line for line in guard_service.log().splitlines()) == 1
    probe = httpx.get(f"{guard_service.http_url}/readyz", headers={"X-Request-ID": "probe-1"})
    assert probe.headers["x-request-id"] == "probe-1"
    assert not access_lines(guard_service, "probe-1", timeout_s=0.5)  # probes are not logged
