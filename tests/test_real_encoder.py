"""EfficientNet-Lite0 with its packaged ImageNet weights: real predictions, ONNX parity,
safe weight loading, the baseline class map, and the perceptual distance."""

import pickle
import socket

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image, ImageFilter

from safetypairs.contract.errors import InvalidInput, ModelError
from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.contract.policy import default_policy
from safetypairs.guard.artifact import load_guard
from safetypairs.guard.baseline_head import (
    ImageNetBaselineHead,
    default_class_map,
    imagenet_class_names,
    parse_class_map,
)
from safetypairs.guard.default_model import build_default_guard
from safetypairs.guard.engine import GuardEngine
from safetypairs.vision import efficientnet
from safetypairs.vision.perceptual import PerceptualDistance

LIMITS = ImageLimits(max_bytes=10**8, max_pixels=10**8)


@pytest.fixture(scope="module")
def net():
    return efficientnet.load_efficientnet_lite0()


@pytest.fixture(scope="module")
def engine(default_guard_onnx):
    return GuardEngine.load(default_guard_onnx)


def pixels(engine, path) -> np.ndarray:
    return engine.preprocess(decode_image(path.read_bytes(), LIMITS))


# ImageNet-1k indices: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso;
# 657 missile, 744 projectile, 812 space shuttle.
KNOWN = {"chelsea.png": {281, 282, 285}, "coffee.png": {967}, "rocket.jpg": {657, 744, 812}}


def test_top1_on_bundled_photos(net, engine, sample_photos):
    names = imagenet_class_names()
    for photo in sample_photos:
        if photo.name not in KNOWN:
            continue
        with torch.no_grad():
            logits = net(torch.from_numpy(pixels(engine, photo))[None])[0]
        top1 = int(logits.argmax())
        assert top1 in KNOWN[photo.name], f"{photo.name}: top-1 {top1} {names[top1]}"


def test_onnx_guard_matches_torch_on_real_photos(net, engine, sample_photos, default_guard_onnx):
    x = np.stack([pixels(engine, p) for p in sample_photos])
    head = ImageNetBaselineHead(net, default_class_map(default_policy())).eval()
    with torch.no_grad():
        expected = head(torch.from_numpy(x)).numpy()
    got = engine.infer(list(x))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    inputs = [i.shape[0] for i in ort.InferenceSession(str(default_guard_onnx)).get_inputs()]
    assert inputs == ["batch"]  # dynamic batch axis


def test_pooled_features_are_1280_d(net, engine, sample_photos):
    x = torch.from_numpy(np.stack([pixels(engine, p) for p in sample_photos[:2]]))
    with torch.no_grad():
        feats = efficientnet.PooledFeatures(net)(x)
    assert feats.shape == (2, efficientnet.FEATURE_DIM) and torch.isfinite(feats).all()


def test_weights_are_loaded_without_running_pickled_code(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "weights.pth"
    bad.write_bytes(pickle.dumps({"_conv_stem.weight": Evil()}, protocol=2))
    monkeypatch.setattr(efficientnet, "weights_path", lambda: bad)
    with pytest.raises(ModelError, match="cannot load EfficientNet-Lite0 weights"):
        efficientnet.load_efficientnet_lite0()
    assert not marker.exists()


def test_building_the_default_touches_no_network(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access during the build: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    manifest = build_default_guard(tmp_path / "guard")
    assert load_guard(str(manifest)).card.categories == ("O3", "O4", "O6")


# -- the class map --------------------------------------------------------------------


def test_default_class_map_is_the_documented_one():
    cmap = default_class_map(default_policy())
    assert cmap.codes == ("O6",)
    assert [i for i, _ in cmap.categories["O6"]] == [413, 763, 764, 597, 471, 657, 744, 845, 720]
    assert dict(cmap.categories["O6"])[845] == "syringe"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("categories: {O6: [[1000, rifle]]}", "class index 1000 is outside 0..999"),
        (
            "categories: {O6: [[764, revolver]]}",
            "class 764 is 'rifle' in ImageNet-1k, not 'revolver'",
        ),
        ("categories: {O42: [[764, rifle]]}", "unknown category 'O42'"),
        ("categories: {O6: [[764, rifle], [764, rifle]]}", "lists class 764 twice"),
        ("categories: {O6: [764]}", "is not [index, name]"),
        ("categories: {O6: []}", "non-empty list"),
        ("name: x", "needs a 'categories' mapping"),
    ],
)
def test_bad_class_maps_are_refused_by_name(text, needle):
    with pytest.raises(InvalidInput) as err:
        parse_class_map(text, default_policy(), imagenet_class_names(), "map.yaml")
    assert needle in err.value.message and err.value.message.startswith("map.yaml:")


# -- perceptual distance --------------------------------------------------------------


@pytest.fixture(scope="module")
def distance(net):
    return PerceptualDistance(net)


def test_perceptual_distance_orders_changes(distance, sample_photos):
    cat = Image.open(sample_photos[1]).convert("RGB")
    patched = cat.copy()
    patched.paste((255, 0, 0), (300, 50, 420, 170))
    outside = np.ones((cat.size[1], cat.size[0]))
    outside[30:190, 280:440] = 0  # the patch and a margin
    other = Image.open(sample_photos[2]).convert("RGB").resize(cat.size)
    same = distance(cat, cat)
    masked = distance(cat, patched, outside)
    blur = distance(cat, cat.filter(ImageFilter.GaussianBlur(1)))
    patch = distance(cat, patched)
    different = distance(cat, other)
    assert same == 0.0
    assert masked < blur < patch < different
    assert masked < 0.25 * patch


def test_perceptual_distance_input_errors(distance):
    a = Image.new("RGB", (32, 24))
    with pytest.raises(ValueError, match="differ in size"):
        distance(a, Image.new("RGB", (24, 32)))
    with pytest.raises(ValueError, match="mask is"):
        distance(a, a, np.ones((10, 10)))
    with pytest.raises(ValueError, match="selects no pixels"):
        distance(a, a, np.zeros((24, 32)))
