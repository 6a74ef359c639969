"""The real guard service (one process, HTTP + in-process gRPC) called by real clients."""

import asyncio
import re

import grpc
import httpx
import pytest
from conftest import group_rss_bytes, png_bytes
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hostile import ACCEPTED, NOT_IMAGES, REFUSED, check_http_refusal, truncated

from safetypairs.client import AsyncGuardClient, GuardClient
from safetypairs.contract.errors import InvalidInput, PayloadTooLarge, SafetyPairsError
from safetypairs.contract.policy import default_policy
from safetypairs.v1 import common_pb2, guard_pb2, guard_pb2_grpc


@pytest.fixture(scope="module")
def guard(guard_service):
    with GuardClient(guard_service.grpc_target, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def http(guard_service):
    with httpx.Client(base_url=guard_service.http_url, timeout=30) as client:
        yield client


def metric_samples(http: httpx.Client, name: str) -> dict[str, float]:
    text = http.get("/metrics").text
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(rf"^{name}(\{{[^}}]*\}}) (\S+)$", text, re.MULTILINE)
    }


# -- gRPC ------------------------------------------------------------------------------


CODES = default_policy().codes
COVERED = ["O3", "O4", "O6"]
NOT_COVERED = [c for c in CODES if c not in COVERED]


def test_screen_real_photos_over_grpc(guard, sample_photos):
    for photo in sample_photos:
        v = guard.screen(photo)
        assert [s.category for s in v.scores] == list(CODES)
        assert [s.category for s in v.scores if s.not_covered] == NOT_COVERED
        covered = [s for s in v.scores if not s.not_covered]
        assert all(0.0 <= s.probability <= 1.0 and s.threshold == 0.5 for s in covered)
        assert not v.untrained and v.model == "default-guard:3"
        assert v.probability == max(s.probability for s in covered)
        assert v.unsafe == any(s.flagged for s in covered)
        for s in v.scores:
            if s.not_covered:
                assert (s.probability, s.threshold, s.flagged) == (None, None, False)


def test_baseline_head_gives_a_real_signal(guard, sample_photos):
    """A real network on real photos: the rocket (ImageNet: missile, projectile) scores far
    higher on O6 than the cat or the coffee cup."""
    o6 = {p.name: guard.screen(p, categories=["O6"]).scores[0].probability for p in sample_photos}
    assert o6["rocket.jpg"] > 0.3
    assert o6["rocket.jpg"] > 20 * max(o6["chelsea.png"], o6["coffee.png"])


def test_same_image_same_scores_and_category_subset(guard, sample_photos):
    full = guard.screen(sample_photos[3])
    sub = guard.screen(sample_photos[3], categories=["O6", "O2"], thresholds={"O6": 0.0})
    assert [(s.category, s.not_covered) for s in sub.scores] == [("O6", False), ("O2", True)]
    by_code = {s.category: s.probability for s in full.scores}
    assert sub.scores[0].probability == pytest.approx(by_code["O6"], abs=1e-6)
    assert sub.scores[0].flagged and sub.unsafe and sub.category == "O6"


def test_only_uncovered_categories_is_a_safe_answer_with_nothing_scored(guard):
    v = guard.screen(png_bytes(), categories=["O1", "O2"])
    assert v.rating == "safe" and v.probability == 0.0
    assert all(s.not_covered for s in v.scores)


def test_screen_batch_mixes_good_and_bad_images(guard, sample_photos):
    images = [sample_photos[0], NOT_IMAGES["text"], png_bytes(), truncated("PNG")]
    results = guard.screen_batch(images, image_ids=["a", "b", "c", "d"])
    assert [r.image_id for r in results] == ["a", "b", "c", "d"]
    assert results[0].verdict and results[2].verdict
    assert isinstance(results[1].error, InvalidInput) and "image 1 (b)" in results[1].error.message
    assert isinstance(results[3].error, InvalidInput) and "truncated" in results[3].error.message
    single = guard.screen(sample_photos[0])
    assert results[0].verdict.scores == single.scores


def test_batch_request_limits(guard):
    with pytest.raises(PayloadTooLarge, match="33 images in one request, over the limit of 32"):
        guard.screen_batch([png_bytes()] * 33)
    with pytest.raises(InvalidInput, match="no images"):
        guard.screen_batch([])


def test_list_categories_and_model_info(guard):
    cats = guard.list_categories()
    assert [c.code for c in cats] == list(CODES)
    assert cats[5].name == "Weapons or Substance Abuse" and cats[5].should_not
    info = guard.model_info()
    assert not info.untrained and info.notice.startswith("BASELINE")
    assert list(info.categories) == COVERED and list(info.not_covered) == NOT_COVERED
    assert "EfficientNet-Lite0 trained on ImageNet-1k" in info.weights
    assert "Yahoo open_nsfw" in info.weights and "sha256 864bb37b" in info.weights
    assert "no safety training" in info.training
    baseline, nsfw = info.members
    assert (baseline.name, baseline.categories) == ("imagenet-baseline", ("O6",))
    assert "assault rifle (413)" in baseline.description
    assert (nsfw.name, nsfw.categories) == ("open-nsfw", ("O3", "O4"))
    assert info.fusion == {
        "O3": "only open-nsfw",
        "O4": "only open-nsfw",
        "O6": "only imagenet-baseline",
    }
    assert info.providers == ("CPUExecutionProvider",)
    assert info.runtime.startswith("onnxruntime ")
    limits = (info.input_size, info.max_images_per_request, info.max_image_pixels)
    assert limits == (256, 32, 4_000_000)
    assert info.batching.startswith("pinned on: up to 16 images") and info.batch_costs == ()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_input_over_grpc(guard, sample_photos, name):
    data, error, phrase = REFUSED[name]
    with pytest.raises(error) as err:
        guard.screen(data)
    assert phrase in err.value.message
    assert guard.screen(sample_photos[0]).scores  # still serving


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_unusual_valid_images_are_screened(guard, name):
    assert guard.screen(ACCEPTED[name]).scores


def test_memory_stays_bounded_under_the_hostile_corpus(guard_service, guard, sample_photos):
    """Bombs are refused before decoding and nothing refused is kept: ten more rounds of the
    whole corpus after a first one add no more than a few MB to the service's memory."""
    bad = [d for d, _, _ in REFUSED.values()]

    def round_of_corpus() -> None:
        for data in bad:
            with pytest.raises(SafetyPairsError):
                guard.screen(data)
        for data in ACCEPTED.values():
            guard.screen(data)

    round_of_corpus()  # the first round may warm caches and allocator arenas
    before = group_rss_bytes(guard_service.process.pid)
    assert before > 0
    for _ in range(10):
        round_of_corpus()
    grown = group_rss_bytes(guard_service.process.pid) - before
    assert grown < 32 * 1024 * 1024, f"service memory grew by {grown / 2**20:.1f} MiB"
    assert guard.screen(sample_photos[0]).scores


def test_unknown_category_and_bad_threshold_over_grpc(guard):
    with pytest.raises(InvalidInput, match="unknown category 'O42'"):
        guard.screen(png_bytes(), categories=["O1", "O42"])
    with pytest.raises(InvalidInput, match=r"threshold for O6 is 2\.0"):
        guard.screen(png_bytes(), thresholds={"O6": 2.0})
    with pytest.raises(InvalidInput, match="unknown category 'Z'"):
        guard.screen(png_bytes(), thresholds={"Z": 0.5})
    with pytest.raises(InvalidInput, match="this guard does not cover O1"):
        guard.screen(png_bytes(), thresholds={"O1": 0.5})


def test_message_over_the_grpc_size_limit_is_resource_exhausted(guard_service):
    huge = b"\x00" * (9 * 1024 * 1024)  # the test server receives at most 8 MiB
    with (
        GuardClient(guard_service.grpc_target, timeout=30) as client,
        pytest.raises(PayloadTooLarge, match=r"(?i)larger than max"),
    ):
        client.screen(huge)


def test_bad_images_do_not_poison_concurrent_good_ones(guard_service, sample_photos):
    good = sample_photos[1].read_bytes()
    bad = [d for d, _, _ in REFUSED.values()]

    async def run():
        async with AsyncGuardClient(guard_service.grpc_target, timeout=60) as client:
            calls = [client.screen(good) for _ in range(12)] + [client.screen(b) for b in bad]
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(run())
    assert all(not isinstance(o, BaseException) for o in outcomes[:12])
    assert all(isinstance(o, InvalidInput | PayloadTooLarge) for o in outcomes[12:])


def test_concurrent_calls_coalesce_into_batches(guard_service, http, sample_photos):
    before = metric_samples(http, "safetypairs_batch_size_count")
    images = [p.read_bytes() for p in sample_photos] * 8

    async def run():
        async with AsyncGuardClient(guard_service.grpc_target, timeout=60) as client:
            return await asyncio.gather(*(client.screen(img) for img in images))

    verdicts = asyncio.run(run())
    assert len(verdicts) == 32
    after_count = metric_samples(http, "safetypairs_batch_size_count")
    buckets = metric_samples(http, "safetypairs_batch_size_bucket")
    key = '{service="guard"}'
    batches = after_count[key] - before.get(key, 0)
    assert batches < 32, f"32 concurrent calls made {batches} model calls: no coalescing"
    single = buckets['{le="1.0",service="guard"}']
    assert after_count[key] > single, "the batch-size histogram shows no batch larger than 1"


def test_health_and_reflection(guard_service):
    with grpc.insecure_channel(guard_service.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "safetypairs.v1.Guard"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
        assert {"safetypairs.v1.Guard", "grpc.health.v1.Health"} <= names


def test_raw_stub_error_carries_status_and_kind(guard_service):
    with grpc.insecure_channel(guard_service.grpc_target) as channel:
        stub = guard_pb2_grpc.GuardStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.Screen(guard_pb2.ScreenRequest(image=common_pb2.Image(data=b"nope")), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("safetypairs-error-kind", "InvalidInput") in err.value.trailing_metadata()


# -- HTTP ------------------------------------------------------------------------------


def test_screen_over_http(http, sample_photos):
    files = {"image": ("chelsea.png", sample_photos[1].read_bytes(), "image/png")}
    r = http.post("/v1/screen", files=files, data={"image_id": "cat"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image_id"] == "cat"
    assert body["verdict"]["untrained"] is False
    assert body["verdict"]["rating"] in ("safe", "unsafe")  # as the SDK and CLI say it
    scores = body["verdict"]["scores"]
    assert [s["category"] for s in scores] == list(CODES)
    assert [s["category"] for s in scores if s["not_covered"]] == NOT_COVERED
    for s in scores:  # no number for a category the model does not cover, never 0.0
        covered = not s["not_covered"]
        assert (s["probability"] is not None, s["threshold"] is not None) == (covered, covered)


def test_http_and_grpc_agree(http, guard, sample_photos):
    data = sample_photos[2].read_bytes()
    over_http = http.post("/v1/screen", files={"image": ("c.png", data)}).json()["verdict"]
    over_grpc = guard.screen(data)
    assert over_http["rating"] == over_grpc.rating
    for h, g in zip(over_http["scores"], over_grpc.scores, strict=True):
        assert h["not_covered"] == g.not_covered
        if g.not_covered:
            assert h["probability"] is None and g.probability is None
        else:
            assert h["probability"] == pytest.approx(g.probability, abs=1e-6)


def test_screen_batch_over_http(http, sample_photos):
    files = [
        ("images", ("a.png", sample_photos[0].read_bytes())),
        ("images", ("b.txt", NOT_IMAGES["text"])),
    ]
    r = http.post("/v1/screen_batch", files=files)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["verdict"]["scores"]
    assert results[1]["error"]["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    # Without image_ids, each answer is named by the file name it was uploaded under.
    assert [x["image_id"] for x in results] == ["a.png", "b.txt"]
    named = http.post("/v1/screen_batch", files=files[:1], data={"image_ids": '["given"]'})
    assert named.json()["results"][0]["image_id"] == "given"


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_bad_input_over_http(http, name):
    data, error, phrase = REFUSED[name]
    r = http.post("/v1/screen", files={"image": ("x", data)})
    check_http_refusal(r, error, phrase)


def test_unknown_category_over_http(http):
    r = http.post(
        "/v1/screen", files={"image": ("x.png", png_bytes())}, data={"categories": "O1,O99"}
    )
    assert r.status_code == 400 and "unknown category 'O99'" in r.json()["error"]["message"]


def test_http_options(http):
    r = http.post(
        "/v1/screen",
        files={"image": ("x.png", png_bytes())},
        data={"categories": "O6,O2", "thresholds": '{"O6": 0.0}'},
    )
    verdict = r.json()["verdict"]
    assert [s["category"] for s in verdict["scores"]] == ["O6", "O2"]
    assert verdict["scores"][1]["not_covered"] is True
    assert verdict["category"] == "O6" and verdict["scores"][0]["threshold"] == 0.0


def test_categories_and_model_info_over_http(http):
    cats = http.post("/v1/categories").json()["categories"]
    assert [c["code"] for c in cats] == list(CODES)
    info = http.post("/v1/model_info").json()
    assert info["untrained"] is False and info["providers"] == ["CPUExecutionProvider"]
    assert info["not_covered"] == NOT_COVERED


def test_metrics_count_both_protocols_by_code(http, guard):
    """Each label one vocabulary whatever the protocol: `code` the HTTP status, `grpc_code`
    the gRPC status name."""
    with pytest.raises(InvalidInput):
        guard.screen(b"")
    http.post("/v1/screen", files={"image": ("x", b"")})
    series = [
        dict(re.findall(r'(\w+)="([^"]*)"', k))
        for k in metric_samples(http, "safetypairs_requests_total")
    ]
    bad = {"code": "400", "grpc_code": "INVALID_ARGUMENT"}
    assert any(s.items() >= {"protocol": "grpc", "method": "Screen", **bad}.items() for s in series)
    assert any(s.items() >= {"protocol": "http", "method": "screen", **bad}.items() for s in series)
    assert any(
        s.items() >= {"protocol": "grpc", "code": "200", "grpc_code": "OK"}.items() for s in series
    )
    assert all(s["code"].isdigit() and s["grpc_code"].isupper() for s in series), series
    assert metric_samples(http, "safetypairs_request_duration_seconds_count")
    assert '{service="guard"}' in metric_samples(http, "safetypairs_queue_depth")
    text = http.get("/metrics").text
    assert "bentoml_service_request_total" in text or "bentoml_" in text  # BentoML's own stay


# -- a guard given by reference, with random weights -----------------------------------


def test_untrained_model_says_so_in_every_answer(tiny_guard_service, sample_photos):
    with GuardClient(tiny_guard_service.grpc_target) as client:
        info = client.model_info()
        assert info.name == "tiny-clip-guard" and info.untrained and "UNTRAINED" in info.notice
        assert info.not_covered == () and len(info.categories) == 9
        # Batching measured at start-up (not pinned): the policy and the table it came from.
        assert info.batching.startswith("auto: ") and info.batch_costs[0].batch_size == 1
        assert all(c.ms_per_image > 0 for c in info.batch_costs)
        v = client.screen(sample_photos[0])
        assert v.untrained and not any(s.not_covered for s in v.scores)
        results = client.screen_batch(sample_photos[:2])
        assert all(r.verdict.untrained for r in results)
    body = httpx.post(
        f"{tiny_guard_service.http_url}/v1/screen",
        files={"image": ("a.png", sample_photos[0].read_bytes())},
        timeout=30,
    ).json()
    assert body["verdict"]["untrained"] is True
