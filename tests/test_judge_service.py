"""The real judge service (one process, HTTP + in-process gRPC) on the embedded default
(tiny LLaVA, random weights), called by real clients. Every answer must be schema-valid."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

import grpc
import httpx
import pytest
from conftest import png_bytes, start_judge_service
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hostile import ACCEPTED, REFUSED, check_http_refusal
from test_guard_service import metric_samples

from safetypairs.cli import main as cli_main
from safetypairs.client import JudgeClient, Rated
from safetypairs.contract.errors import DeadlineExceeded, InvalidInput, Overloaded
from safetypairs.contract.policy import Category, Policy, default_policy
from safetypairs.v1 import common_pb2, judge_pb2, judge_pb2_grpc

pytestmark = pytest.mark.slow
CODES = default_policy().codes
RED = png_bytes((96, 80), (200, 30, 60))


@pytest.fixture(scope="module")
def judge(judge_service):
    with JudgeClient(judge_service.grpc_target, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def http(judge_service):
    with httpx.Client(base_url=judge_service.http_url, timeout=60) as client:
        yield client


def check_verdict(rated: Rated, codes=CODES) -> None:
    """The schema every verdict keeps, whatever the weights."""
    assert rated.error is None and rated.prompt_version == "rate@1"
    v = rated.verdict
    assert v is not None and v.rating in ("safe", "unsafe")
    assert 0.0 <= v.probability <= 1.0
    assert [s.category for s in v.scores] == list(codes)
    assert all(0.0 <= s.probability <= v.probability + 1e-6 for s in v.scores)
    if v.unsafe:
        assert v.category in codes and [s.category for s in v.scores if s.flagged] == [v.category]
    else:
        assert v.category == "" and not any(s.flagged for s in v.scores)
    assert v.untrained and v.model


# -- gRPC ------------------------------------------------------------------------------


def test_health_and_model_info(judge_service, judge) -> None:
    with grpc.insecure_channel(judge_service.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="safetypairs.v1.Judge"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    info = judge.model_info()
    assert info.untrained and "UNTRAINED" in info.notice
    assert info.architecture == "LlavaForConditionalGeneration"
    assert info.prompt_versions == ("rate@1", "propose@1") and info.verdict_mode == "forward"
    assert [c.code for c in judge.list_categories()] == list(CODES)


def test_rate_over_grpc_is_schema_valid(judge, sample_photos) -> None:
    for path in sample_photos[:2]:
        check_verdict(judge.rate(path))
    rated = judge.rate(RED, image_id="red", rationale=True)
    check_verdict(rated)
    assert rated.image_id == "red" and isinstance(rated.verdict.rationale, str)


def test_rate_against_some_categories_and_a_custom_policy(judge) -> None:
    check_verdict(judge.rate(RED, categories=["O2", "O6"]), codes=("O2", "O6"))
    custom = Policy(
        "shop",
        "3",
        (
            Category("K", "Knives", ("Show a knife held as a weapon.",)),
            Category("F", "Fire", ("Show an uncontrolled fire.",), ("Show a campfire.",)),
        ),
    )
    check_verdict(judge.rate(RED, policy=custom), codes=("K", "F"))
    check_verdict(judge.rate(RED, policy="llavaguard"))


def test_rate_batch_shares_passes_and_isolates_a_bad_image(judge, sample_photos) -> None:
    results = judge.rate_batch(
        [sample_photos[0], b"not an image", RED], image_ids=["a", "bad", "red"]
    )
    assert [r.image_id for r in results] == ["a", "bad", "red"]
    check_verdict(results[0])
    check_verdict(results[2])
    assert isinstance(results[1].error, InvalidInput)
    assert "image 1 (bad)" in results[1].error.message


@pytest.mark.parametrize("direction", ["to_safe", "to_unsafe"])
def test_propose_edits_over_grpc_is_schema_valid_and_seeded(judge, direction: str) -> None:
    answer = judge.propose_edits(RED, direction, category="O6", count=3, seed=5)
    assert answer.untrained and answer.prompt_version == "propose@1"
    assert len(answer.proposals) == 3
    allowed = {"to_safe": {"remove", "change"}, "to_unsafe": {"add", "change"}}[direction]
    for p in answer.proposals:
        assert p.action in allowed and p.category == "O6" and p.instruction and p.element
    again = judge.propose_edits(RED, direction, category="O6", count=3, seed=5)
    assert again.proposals == answer.proposals


def test_to_safe_without_a_category_lets_the_judge_name_it(judge) -> None:
    answer = judge.propose_edits(RED, "to_safe", count=1)
    assert len(answer.proposals) == 1 and answer.proposals[0].category in CODES


def _policy_with(should_not: str) -> common_pb2.Policy:
    return common_pb2.Policy(
        name="p", categories=[common_pb2.Category(code="X", name="X", should_not=[should_not])]
    )


BAD_REQUESTS = {
    "not an image": (
        judge_pb2.RateRequest(image=common_pb2.Image(data=b"%PDF-1.4 ...")),
        "look like PDF",
    ),
    "empty policy": (
        judge_pb2.RateRequest(
            image=common_pb2.Image(data=RED),
            policy=judge_pb2.PolicyChoice(custom=common_pb2.Policy(name="empty")),
        ),
        "policy.categories must be a non-empty list",
    ),
    "unknown category": (
        judge_pb2.RateRequest(
            image=common_pb2.Image(data=RED), options=judge_pb2.RateOptions(categories=["O42"])
        ),
        "unknown category 'O42'",
    ),
    "unknown policy name": (
        judge_pb2.RateRequest(
            image=common_pb2.Image(data=RED), policy=judge_pb2.PolicyChoice(name="nope")
        ),
        "unknown policy 'nope'",
    ),
    "prompt over the size limit": (
        judge_pb2.RateRequest(
            image=common_pb2.Image(data=RED),
            policy=judge_pb2.PolicyChoice(custom=_policy_with("no " * 5000)),
        ),
        "over the limit of 12000",
    ),
    "threshold out of range": (
        judge_pb2.RateRequest(
            image=common_pb2.Image(data=RED), options=judge_pb2.RateOptions(threshold=1.5)
        ),
        "threshold 1.5",
    ),
    "count zero": (
        judge_pb2.ProposeEditsRequest(
            image=common_pb2.Image(data=RED),
            direction=judge_pb2.EDIT_DIRECTION_TO_UNSAFE,
            category="O6",
        ),
        "count is 0; it must lie in 1..8",
    ),
    "count too large": (
        judge_pb2.ProposeEditsRequest(
            image=common_pb2.Image(data=RED),
            direction=judge_pb2.EDIT_DIRECTION_TO_UNSAFE,
            category="O6",
            count=99,
        ),
        "count is 99",
    ),
    "no direction": (
        judge_pb2.ProposeEditsRequest(image=common_pb2.Image(data=RED), count=1),
        "direction must be EDIT_DIRECTION_TO_SAFE or EDIT_DIRECTION_TO_UNSAFE",
    ),
    "to_unsafe without category": (
        judge_pb2.ProposeEditsRequest(
            image=common_pb2.Image(data=RED), direction=judge_pb2.EDIT_DIRECTION_TO_UNSAFE, count=1
        ),
        "TO_UNSAFE needs the category",
    ),
    "proposal for an unknown category": (
        judge_pb2.ProposeEditsRequest(
            image=common_pb2.Image(data=RED),
            direction=judge_pb2.EDIT_DIRECTION_TO_SAFE,
            category="Q",
            count=1,
        ),
        "unknown category 'Q'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_invalid_argument_and_the_server_keeps_serving(
    judge_service, judge, case: str
) -> None:
    request, phrase = BAD_REQUESTS[case]
    with grpc.insecure_channel(judge_service.grpc_target) as channel:
        stub = judge_pb2_grpc.JudgeStub(channel)
        method = stub.Rate if isinstance(request, judge_pb2.RateRequest) else stub.ProposeEdits
        with pytest.raises(grpc.RpcError) as err:
            method(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert phrase in err.value.details()
    check_verdict(judge.rate(RED))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_images_are_refused_by_name_over_both_protocols(judge, http, name) -> None:
    data, error, phrase = REFUSED[name]
    with pytest.raises(error) as err:
        judge.rate(data)
    assert phrase in err.value.message
    r = http.post("/v1/rate", files={"image": ("x", data)})
    check_http_refusal(r, error, phrase)
    check_verdict(judge.rate(RED))  # still serving


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_unusual_valid_images_are_rated(judge, name) -> None:
    check_verdict(judge.rate(ACCEPTED[name]))


# -- HTTP ------------------------------------------------------------------------------


def test_rate_and_propose_over_http(http, judge) -> None:
    r = http.post(
        "/v1/rate",
        files={"image": ("red.png", RED, "image/png")},
        data={"image_id": "red", "categories": "O1,O6", "rationale": "true"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompt_version"] == "rate@1" and body["image_id"] == "red"
    verdict = body["verdict"]
    assert verdict["rating"] in ("safe", "unsafe") and verdict["untrained"] is True
    assert [s["category"] for s in verdict["scores"]] == ["O1", "O6"]
    grpc_verdict = judge.rate(RED, categories=["O1", "O6"]).verdict
    assert verdict["probability"] == pytest.approx(grpc_verdict.probability, abs=1e-5)

    r = http.post(
        "/v1/propose_edits",
        files={"image": ("red.png", RED, "image/png")},
        data={"direction": "to_unsafe", "category": "O6", "count": "2", "seed": "5"},
    )
    assert r.status_code == 200, r.text
    proposals = r.json()["proposals"]
    assert len(proposals) == 2 and all(p["action"] in ("add", "change") for p in proposals)
    grpc_answer = judge.propose_edits(RED, "to_unsafe", category="O6", count=2, seed=5)
    assert [p["instruction"] for p in proposals] == [p.instruction for p in grpc_answer.proposals]


def test_custom_policy_document_over_http(http) -> None:
    policy = "name: shop\ncategories:\n  - {code: K, name: Knives, should_not: [Show knives.]}\n"
    r = http.post(
        "/v1/rate", files={"image": ("red.png", RED, "image/png")}, data={"policy": policy}
    )
    assert r.status_code == 200, r.text
    assert [s["category"] for s in r.json()["verdict"]["scores"]] == ["K"]


@pytest.mark.parametrize(
    ("route", "files", "data", "phrase"),
    [
        ("/v1/rate", {"image": ("x.png", b"<svg></svg>", "image/png")}, {}, "look like SVG"),
        ("/v1/rate", {"image": ("x.png", RED, "image/png")}, {"categories": "O42"}, "O42"),
        (
            "/v1/rate",
            {"image": ("x.png", RED, "image/png")},
            {"policy": "a: &x [1]\nb: *x\n"},
            "alias",
        ),
        (
            "/v1/propose_edits",
            {"image": ("x.png", RED, "image/png")},
            {"direction": "sideways"},
            "to_safe or to_unsafe",
        ),
        (
            "/v1/propose_edits",
            {"image": ("x.png", RED, "image/png")},
            {"direction": "to_unsafe", "category": "O6", "count": "9"},
            "1..8",
        ),
    ],
)
def test_bad_input_over_http_is_400_with_the_reason(http, route, files, data, phrase) -> None:
    r = http.post(route, files=files, data=data)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "INVALID_ARGUMENT" and phrase in error["message"]


# -- CLI -------------------------------------------------------------------------------


def test_judge_cli_prints_verdicts_and_proposals(judge_service, tmp_path: Path, capsys) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(RED)
    assert (
        cli_main(["judge", "rate", str(image), "--target", judge_service.grpc_target, "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["untrained"] and out["results"][0]["prompt_version"] == "rate@1"
    assert cli_main(["judge", "rate", str(image), "--target", judge_service.grpc_target]) == 0
    text = capsys.readouterr().out
    assert "UNTRAINED" in text and "p(unsafe)=" in text
    assert (
        cli_main(
            [
                "judge",
                "propose",
                str(image),
                "--direction",
                "to_unsafe",
                "--category",
                "O6",
                "--count",
                "2",
                "--target",
                judge_service.grpc_target,
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "1. [" in text and "2. [" in text and "untrained" in text


# -- overload and deadlines ------------------------------------------------------------


@pytest.fixture(scope="module")
def small_judge(sp_home, default_judge_dir_built, tmp_path_factory):
    """A judge that admits at most two images at once."""
    log_path = tmp_path_factory.mktemp("logs") / "small-judge.log"
    service = start_judge_service(
        sp_home,
        log_path,
        {"SAFETYPAIRS_MAX_QUEUE": "2", "SAFETYPAIRS_MAX_IMAGES_PER_REQUEST": "2"},
    )
    yield service
    assert service.stop() == 0


def test_overload_is_refused_at_once_with_resource_exhausted(small_judge) -> None:
    with (
        JudgeClient(small_judge.grpc_target, timeout=60) as judge,
        concurrent.futures.ThreadPoolExecutor(16) as pool,
    ):
        outcomes = list(pool.map(lambda _: _try(lambda: judge.rate(RED)), range(16)))
    refused = [o for o in outcomes if isinstance(o, Overloaded)]
    answered = [o for o in outcomes if isinstance(o, Rated)]
    assert refused and answered and len(refused) + len(answered) == 16
    assert "server overloaded" in refused[0].message


def _try(fn):
    try:
        return fn()
    except Exception as exc:  # the outcome is what the test looks at
        return exc


def test_a_request_past_its_deadline_is_cancelled_and_frees_its_slot(small_judge) -> None:
    with JudgeClient(small_judge.grpc_target, timeout=60) as judge:
        with pytest.raises(DeadlineExceeded):
            judge.rate_batch([RED, RED], rationale=True, timeout=0.05)
        # The batch held both admission slots; once cancelled they are free again.
        deadline = time.monotonic() + 20
        while True:
            outcome = _try(lambda: judge.rate_batch([RED, RED]))
            refused = isinstance(outcome, Overloaded) or (
                isinstance(outcome, list) and any(isinstance(r.error, Overloaded) for r in outcome)
            )
            if not refused or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert isinstance(outcome, list), outcome
        for rated in outcome:
            check_verdict(rated)
    with httpx.Client(base_url=small_judge.http_url) as http:
        samples = metric_samples(http, "safetypairs_requests_total")
    cancelled = [k for k in samples if 'method="RateBatch"' in k and "CANCELLED" in k]
    assert cancelled and samples[cancelled[0]] >= 1
