"""Issue 16 C and D against the real judge: requests built to stall it or to break its error
answers, sent with raw gRPC stubs and httpx as an attacker would."""

from __future__ import annotations

import json
import threading
import time

import grpc
import httpx
import pytest
import yaml
from conftest import png_bytes

from safetypairs.contract.errors import MAX_MESSAGE_CHARS
from safetypairs.contract.policy import default_policy
from safetypairs.v1 import common_pb2, judge_pb2, judge_pb2_grpc

KIND = "safetypairs-error-kind"


@pytest.fixture(scope="module")
def stub(judge_service):
    with grpc.insecure_channel(judge_service.grpc_target) as channel:
        yield judge_pb2_grpc.JudgeStub(channel)


@pytest.fixture(scope="module")
def http(judge_service):
    with httpx.Client(base_url=judge_service.http_url, timeout=120) as client:
        yield client


def _policy(n: int, code_chars: int = 8) -> common_pb2.Policy:
    return common_pb2.Policy(
        name="big",
        version="1",
        categories=[
            common_pb2.Category(
                code=f"C{i:0{code_chars - 1}d}", name=f"category {i}", should_not=["x"]
            )
            for i in range(n)
        ],
    )


def _rate(policy: common_pb2.Policy, categories: list[str]) -> judge_pb2.RateRequest:
    return judge_pb2.RateRequest(
        image=common_pb2.Image(data=png_bytes()),
        policy=judge_pb2.PolicyChoice(custom=policy),
        options=judge_pb2.RateOptions(categories=categories),
    )


def _refusal(stub, request) -> tuple[grpc.StatusCode, str | None, str, float]:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        stub.Rate(request, timeout=60)
    seconds = time.monotonic() - started
    err = refused.value
    return err.code(), dict(err.trailing_metadata() or ()).get(KIND), err.details(), seconds


def test_c_ten_thousand_category_codes_do_not_stall_the_judge(stub):
    """A policy of 2,000 categories and a request listing 10,000 codes: checked in O(1) per
    code before, refused at once now, while another call goes on unhindered."""
    policy = _policy(2000)
    codes = [c.code for c in policy.categories] * 5
    other: list[float] = []

    def meanwhile() -> None:
        for _ in range(10):
            started = time.monotonic()
            stub.ListCategories(common_pb2.ListCategoriesRequest(), timeout=30)
            other.append(time.monotonic() - started)
            time.sleep(0.05)

    side = threading.Thread(target=meanwhile)
    side.start()
    code, kind, _, seconds = _refusal(stub, _rate(policy, codes))
    side.join()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and kind == "PayloadTooLarge"
    assert seconds < 1.0 and max(other) < 1.0, (seconds, other)


def test_c_codes_are_checked_against_the_policy_cheaply(stub):
    """Within the limits: as many codes as the policy has, each once, one of them unknown."""
    policy = _policy(256)
    codes = [*(c.code for c in policy.categories[:-1]), "nope"]
    code, kind, message, seconds = _refusal(stub, _rate(policy, codes))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and kind == "InvalidInput"
    assert "'nope'" in message and seconds < 1.0


@pytest.mark.parametrize("n", [256, 2000])
def test_d_an_unknown_category_against_a_large_policy_keeps_its_kind(stub, n):
    """The message named every code of the policy: 68,931 characters broke the stream
    ("Stream removed") and the client lost the error's kind."""
    code, kind, message, _ = _refusal(stub, _rate(_policy(n, code_chars=32), ["nope"]))
    assert kind in ("InvalidInput", "PayloadTooLarge"), (code, message[:200])
    assert len(message) <= MAX_MESSAGE_CHARS + 40


def _post_rate(http, policy: str) -> httpx.Response:
    return http.post("/v1/rate", files={"image": ("x.png", png_bytes())}, data={"policy": policy})


def test_d_a_json_policy_over_http_is_accepted(http):
    policy = json.dumps(default_policy().to_dict())
    r = _post_rate(http, policy)
    assert r.status_code == 200, r.text
    assert [s["category"] for s in r.json()["verdict"]["scores"]] == list(default_policy().codes)


@pytest.mark.parametrize(
    "policy",
    [
        "[" * 3000 + "]" * 3000,  # JSON, nested
        "- " * 3000 + "x",  # YAML block sequences, nested
        "{a: " + "[" * 3000 + "]" * 3000 + "}",  # YAML flow, not JSON
        "name: p\ncategories:\n" + "  " + "- " * 3000 + "x",
    ],
    ids=["json", "yaml-block", "yaml-flow", "in-categories"],
)
def test_d_deeply_nested_policies_are_invalid_argument(http, stub, policy):
    r = _post_rate(http, policy)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["kind"] == "InvalidInput"


def test_c_a_large_yaml_policy_is_parsed_off_the_event_loop(http):
    """A 240 KB YAML policy: its parsing held the event loop for seconds; /livez goes on."""
    # Many small nodes: the pure-Python YAML composer's slowest kind of document.
    categories = [
        {"code": f"C{i}", "name": f"category {i}", "should_not": ["ab"] * 130} for i in range(250)
    ]
    policy = yaml.safe_dump({"name": "large", "version": "1", "categories": categories})
    assert 200_000 < len(policy) < 256 * 1024
    probes: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as side:
            while not done.is_set():
                started = time.monotonic()
                side.get("/livez")
                probes.append(time.monotonic() - started)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.2)
    try:
        r = _post_rate(http, policy)
    finally:
        done.set()
        prober.join()
    assert r.status_code == 400 and "prompt" in r.json()["error"]["message"], r.text[:300]
    assert max(probes) < 0.5, f"/livez waited {max(probes):.2f} s"
