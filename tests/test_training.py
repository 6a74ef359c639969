"""Guard training end to end: real photos made into a labelled set and pairs, a frozen encoder,
a trained and calibrated head, ONNX export with parity, and the result served."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import run_cli, start_guard_service
from tiny_models import save_tiny_siglip

from safetypairs.client import GuardClient
from safetypairs.contract.errors import InvalidInput, ModelError
from safetypairs.contract.policy import default_policy
from safetypairs.contract.training_data import TrainingDataError, read_labelled, read_pairs
from safetypairs.guard.export import export_guard
from safetypairs.guard.sidecar import GuardInput, GuardOutput, GuardSidecar
from safetypairs.training.demo_data import make_training_set
from safetypairs.training.encoders import load_encoder
from safetypairs.training.train import (
    LeakageError,
    TrainConfig,
    check_no_leakage,
    split_groups,
    train_guard,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("train-data"))


def cli(*args):
    return run_cli(*args, timeout=300)


def test_train_export_serve(dataset, tmp_path, sp_home):
    labelled, pairs = dataset
    out, cache = tmp_path / "guard", tmp_path / "cache"
    args = [
        "train-guard",
        "--encoder",
        "efficientnet-lite0",
        "--data",
        str(labelled),
        "--pairs",
        str(pairs),
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--margin",
        "1",
    ]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert "embedded 40 images, 0 from the cache" in first.stdout
    sidecar = json.loads((out / "guard.json").read_text())
    assert sidecar["categories"] == ["O6"] and not sidecar["untrained"]
    assert sidecar["extra"]["parity_max_abs_diff"] < 1e-4
    summary = sidecar["extra"]["training"]
    assert (summary["images"], summary["pairs"]) == (40, 12)
    assert summary["calibration"]["O6"]["calibrated"]
    # A second run re-embeds nothing.
    second = cli(*args[:-6], "--out", str(tmp_path / "again"), "--cache", str(cache))
    assert second.returncode == 0 and "embedded 0 images, 40 from the cache" in second.stdout

    held_out, _ = make_training_set(tmp_path / "held-out", pairs=0, singles=10, seed=99)
    records = [json.loads(line) for line in held_out.read_text().splitlines()]
    service = start_guard_service(sp_home, tmp_path / "guard.log", model=str(out))
    try:
        with GuardClient(service.grpc_target) as client:
            info = client.model_info()
            assert info.name == "trained-guard" and info.categories == ("O6",)
            assert "12 pairs in all" in info.training and "validation precision" in info.training
            assert info.reference == str(out) and "efficientnet-lite0" in info.description
            scores = {True: [], False: []}
            for r in records:
                v = client.screen(held_out.parent / r["image"], categories=["O6"])
                scores[bool(r["labels"])].append(v.scores[0].probability)
        # held-out photos with the red disk score higher than those without
        assert np.mean(scores[True]) > np.mean(scores[False]) + 0.3, scores
    finally:
        assert service.stop() == 0


def test_pairs_never_straddle_the_split(dataset):
    labelled, pairs = dataset
    policy = default_policy()
    examples = read_labelled(labelled, policy) + [
        ex for p in read_pairs(pairs, policy) for ex in (p.a, p.b)
    ]
    for seed in range(5):
        train, val = split_groups(examples, 0.3, seed)
        check_no_leakage(examples, train, val)
        assert sorted(train + val) == list(range(len(examples)))
    pair_a = next(i for i, ex in enumerate(examples) if ex.group.startswith("pair:"))
    partner = next(
        i for i, ex in enumerate(examples) if ex.group == examples[pair_a].group and i != pair_a
    )
    train, val = split_groups(examples, 0.3, 0)
    leaky_train = [i for i in train if i not in (pair_a, partner)] + [pair_a]
    leaky_val = [i for i in val if i not in (pair_a, partner)] + [partner]
    with pytest.raises(LeakageError):
        check_no_leakage(examples, leaky_train, leaky_val)


def test_the_same_picture_under_two_names_is_one_group(dataset, tmp_path):
    labelled, _ = dataset
    records = [json.loads(line) for line in labelled.read_text().splitlines()]
    for name in ("copy_1.png", "copy_2.png"):
        shutil.copy(labelled.parent / records[0]["image"], tmp_path / name)
    data = tmp_path / "dup.jsonl"
    data.write_text(
        "".join(json.dumps({"image": n, "labels": []}) + "\n" for n in ("copy_1.png", "copy_2.png"))
        + "".join(
            json.dumps({"image": str(labelled.parent / r["image"]), "labels": r["labels"]}) + "\n"
            for r in records[1:]
        )
    )
    examples = read_labelled(data, default_policy())
    train, val = split_groups(examples, 0.5, 0)
    assert (0 in train) == (1 in train)
    check_no_leakage(examples, train, val)


def test_export_refuses_to_write_when_parity_fails(tmp_path):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 1),
        torch.nn.Sigmoid(),
    )
    sidecar = GuardSidecar(
        name="t",
        version="1",
        description="",
        untrained=True,
        input=GuardInput("pixel_values", 16, (0.5,) * 3, (0.5,) * 3),
        output=GuardOutput("probabilities"),
        categories=("O6",),
        thresholds={"O6": 0.5},
        opset=0,
    )
    with pytest.raises(ModelError, match="nothing written"):
        export_guard(
            model, sidecar, tmp_path / "guard.onnx", example=torch.randn(2, 3, 16, 16), atol=-1.0
        )
    assert list(tmp_path.iterdir()) == []


def _write(path, lines):
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def test_bad_training_input_names_the_record_and_keeps_the_cache(dataset, tmp_path):
    labelled, _ = dataset
    cache = tmp_path / "cache"
    train_guard(
        TrainConfig(encoder="efficientnet-lite0", out=tmp_path / "ok", data=[labelled], cache=cache)
    )
    cached = sorted(cache.rglob("*.npy"))
    assert len(cached) == 16
    img = str(labelled.parent / json.loads(labelled.read_text().splitlines()[0])["image"])
    (tmp_path / "text.png").write_text("not an image")
    cases = [
        (
            "data",
            [{"image": "missing.png", "labels": []}],
            "line 1: image .*missing.png does not exist",
        ),
        (
            "data",
            [{"image": str(tmp_path / "text.png"), "labels": []}],
            "line 1: image .*unusable: not a supported image",
        ),
        ("data", [{"image": img, "labels": ["O42"]}], "line 1: label\\(s\\) 'O42' not in policy"),
        ("data", ["{broken json"], "line 1: not valid JSON"),
        (
            "pairs",
            [
                {
                    "id": "x",
                    "a": {"image": img, "labels": ["O6"]},
                    "b": {"image": img, "labels": ["O6"]},
                }
            ],
            "line 1 \\(pair x\\): both images have the labels \\['O6'\\]",
        ),
    ]
    for kind, lines, needle in cases:
        bad = _write(tmp_path / f"bad-{kind}.jsonl", lines)
        config = TrainConfig(
            encoder="efficientnet-lite0",
            out=tmp_path / "bad",
            cache=cache,
            data=[labelled] + ([bad] if kind == "data" else []),
            pairs=[bad] if kind == "pairs" else [],
        )
        with pytest.raises(TrainingDataError, match=needle):
            train_guard(config)
    with pytest.raises(InvalidInput, match="category O1 has 0 positive examples"):
        train_guard(
            TrainConfig(
                encoder="efficientnet-lite0",
                out=tmp_path / "bad",
                cache=cache,
                data=[labelled],
                categories=["O1", "O6"],
            )
        )
    assert sorted(cache.rglob("*.npy")) == cached  # nothing cached was lost
    assert not (tmp_path / "bad").exists()


def test_clip_and_siglip_towers_as_encoders(tiny_guard_onnx, tmp_path, dataset):
    clip = load_encoder(str(tiny_guard_onnx.parent / "encoder"))
    siglip = load_encoder(str(save_tiny_siglip(tmp_path / "siglip")))
    for enc, kind in ((clip, "clip"), (siglip, "siglip")):
        assert enc.untrained and enc.key.startswith(f"hf-{kind}") and enc.dim == 64
        with torch.no_grad():
            assert enc.module(torch.zeros(2, 3, enc.input.size, enc.input.size)).shape == (2, 64)
    assert siglip.input.mean == (0.5, 0.5, 0.5)
    labelled, pairs = dataset
    result = train_guard(
        TrainConfig(
            encoder=str(tmp_path / "siglip"),
            out=tmp_path / "g",
            data=[labelled],
            pairs=[pairs],
            cache=tmp_path / "c",
        )
    )
    assert result.sidecar.untrained and "RANDOM" in result.sidecar.weights
