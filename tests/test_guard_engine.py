"""The guard engine and artifact loading, driven directly (no server)."""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from safetypairs.contract.errors import ModelError
from safetypairs.contract.policy import default_policy
from safetypairs.guard.artifact import guard_artifact_path
from safetypairs.guard.engine import GuardEngine, choose_providers
from safetypairs.guard.sidecar import GuardSidecar


@pytest.fixture(scope="module")
def engine(default_guard_onnx):
    return GuardEngine.load(default_guard_onnx)


def test_default_guard_card(engine):
    sc = engine.sidecar
    assert not sc.untrained and sc.notice.startswith("BASELINE")
    assert sc.categories == ("O6",) and engine.policy == default_policy()
    assert sc.input.size == 224 and sc.input.mean == (0.5, 0.5, 0.5)
    assert sc.opset == 18 and sc.extra["parity_max_abs_diff"] < 1e-5
    assert sc.extra["class_map"]["categories"]["O6"][0] == [413, "assault rifle"]


def test_tiny_guard_is_marked_untrained(tiny_guard_onnx):
    sc = GuardEngine.load(tiny_guard_onnx).sidecar
    assert sc.untrained and sc.categories == default_policy().codes


def test_runs_on_cpu_here(engine):
    assert engine.providers == ["CPUExecutionProvider"]
    assert choose_providers() == [
        p
        for p in ort.get_available_providers()
        if p in ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    ]


def test_unavailable_provider_is_refused_by_name():
    with pytest.raises(ModelError, match="CUDAExecutionProvider not available"):
        choose_providers(["CUDAExecutionProvider"])


def test_dynamic_batch_and_batch_independence(engine):
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)) for _ in range(5)]
    x = [engine.preprocess(i) for i in imgs]
    assert x[0].shape == (3, 224, 224) and x[0].dtype == np.float32
    together = engine.infer(x)
    alone = np.concatenate([engine.infer([xi]) for xi in x])
    assert together.shape == (5, 1)
    assert np.all((together >= 0) & (together <= 1))
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_run_alone_spins_on_a_second_session_with_the_same_answers(default_guard_onnx):
    """The session for calls alone spins between operators and stops when its run ends; the
    first never spins. Both run the same graph: the same answers."""
    engine = GuardEngine.load(default_guard_onnx, intra_op_threads=2)
    engine.open_alone_session()
    spin = "session.intra_op.allow_spinning"
    plain = engine.session.get_session_options()
    alone = engine.alone_session.get_session_options()
    assert plain.get_session_config_entry(spin) == "0"
    assert alone.get_session_config_entry(spin) == "1"
    assert alone.get_session_config_entry("session.force_spinning_stop") == "1"
    assert alone.intra_op_num_threads == plain.intra_op_num_threads == 2
    rng = np.random.default_rng(1)
    x = [engine.preprocess(Image.fromarray(rng.integers(0, 255, (90, 120, 3), np.uint8)))]
    np.testing.assert_allclose(engine.infer(x, alone=True), engine.infer(x), atol=1e-6)


def test_no_second_session_where_it_cannot_spin_or_is_not_asked_for(default_guard_onnx):
    assert GuardEngine.load(default_guard_onnx, intra_op_threads=2).alone_session is None
    one = GuardEngine.load(default_guard_onnx, intra_op_threads=1)
    one.open_alone_session()
    assert one.alone_session is None  # one thread: nothing to spin


def test_preprocess_center_crops_the_shorter_side(engine):
    # Left third red, rest green, on a 3:1 wide image: the centre crop sees only green.
    img = Image.new("RGB", (672, 224), (0, 255, 0))
    img.paste((255, 0, 0), (0, 0, 224, 224))
    x = engine.preprocess(img)
    mean, std = engine.sidecar.input.mean, engine.sidecar.input.std
    red = x[0] * std[0] + mean[0]
    assert red.max() < 0.05 and x.shape == (3, 224, 224)


def test_reference_forms(default_guard_onnx, default_guard_manifest, tmp_path, monkeypatch):
    assert guard_artifact_path(str(default_guard_onnx)) == default_guard_onnx
    assert guard_artifact_path(str(default_guard_onnx.parent)) == default_guard_onnx
    assert guard_artifact_path(str(default_guard_manifest.parent)) == default_guard_manifest
    # A BentoML model-store tag resolves to the stored copy.
    import bentoml

    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.bentoml_home.set(str(tmp_path / "bentoml"))
    with bentoml.models.create("guard-under-test") as model:
        for name in ("guard.onnx", "guard.json"):
            shutil.copy(default_guard_onnx.parent / name, model.path_of(name))
    resolved = guard_artifact_path("guard-under-test:latest")
    assert resolved.name == "guard.onnx" and str(tmp_path) in str(resolved)
    assert GuardEngine.load(resolved).sidecar.name == "imagenet-baseline-guard"


def test_unresolvable_reference_says_what_was_tried():
    with pytest.raises(ModelError, match="local path /nonexistent/guard does not exist"):
        guard_artifact_path("/nonexistent/guard")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.pop("categories"), "invalid"),
        (
            lambda d: d.update(categories=["O1", "O6"], thresholds={}),
            "has 1 columns but the sidecar names 2",
        ),
        (lambda d: d.update(categories=["O1"] * 9), "without repeats"),
        (
            lambda d: d.update(categories=[f"X{i}" for i in range(9)], thresholds={}),
            "unknown category 'X0'",
        ),
        (lambda d: d["input"].update(std=[0, 1, 1]), "std positive"),
        (lambda d: d["output"].update(name="nope"), "no output 'nope'"),
        (lambda d: d.update(thresholds={"O6": 1.5}), "thresholds must lie in [0, 1]"),
        (lambda d: d.update(format_version=99), "format_version 99"),
    ],
)
def test_bad_sidecars_stop_loading_with_a_clear_message(default_guard_onnx, tmp_path, edit, needle):
    shutil.copy(default_guard_onnx, tmp_path / "guard.onnx")
    data = json.loads((default_guard_onnx.with_suffix(".json")).read_text())
    edit(data)
    (tmp_path / "guard.json").write_text(json.dumps(data))
    with pytest.raises(ModelError) as err:
        GuardEngine.load(tmp_path / "guard.onnx")
    assert needle in err.value.message


def test_missing_sidecar(default_guard_onnx, tmp_path):
    shutil.copy(default_guard_onnx, tmp_path / "guard.onnx")
    with pytest.raises(ModelError, match=r"sidecar .* is missing"):
        GuardEngine.load(tmp_path / "guard.onnx")


def test_sidecar_round_trip(engine):
    again = GuardSidecar.parse(json.loads(engine.sidecar.to_json()))
    assert again == engine.sidecar
