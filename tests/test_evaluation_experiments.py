"""The sample-efficiency experiment end to end on a small generated dataset (real training,
real EfficientNet-Lite0 features, real ONNX guards), and the confound check on pair sets
built so that the edited image does, or does not, carry a visible trace of the editor."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import skimage
from PIL import Image, ImageFilter

from safetypairs.cli import main as cli_main
from safetypairs.contract.errors import InvalidInput
from safetypairs.evaluation.confound import ConfoundConfig, run_confound_check
from safetypairs.training.demo_data import PHOTOS, _crop, _with_disk, make_training_set

pytestmark = pytest.mark.slow


def test_sample_efficiency_end_to_end(tmp_path: Path, capsys) -> None:
    labelled, pairs = make_training_set(tmp_path / "data", pairs=12, singles=16, seed=0)
    # As the embedded default judge left them: the curves must say they measure nothing.
    marked = [json.loads(line) for line in pairs.read_text().splitlines()]
    for record in marked:
        record["models"] = {"judge": "default-judge:1", "judge_untrained": True}
    pairs.write_text("".join(json.dumps(r) + "\n" for r in marked))
    out = tmp_path / "se"
    argv = ["sample-efficiency", "--data", str(labelled), "--pairs", str(pairs)]
    argv += ["--sizes", "4,8", "--seeds", "0,1", "--epochs", "100", "--out", str(out)]
    assert cli_main(argv) == 0
    result = json.loads((out / "sample_efficiency.json").read_text())
    assert result["untrained"] is True
    assert any(
        n.startswith("pairs made by UNTRAINED models") and "judge: default-judge:1 (12 of 12" in n
        for n in result["notes"]
    ), result["notes"]
    runs = result["runs"]
    assert len(runs) == 8 and not [r for r in runs if "error" in r]
    assert {(r["condition"], r["train_images"], r["pairs"]) for r in runs} == {
        ("labelled only", 4, 0),
        ("labelled only", 8, 0),
        ("with pairs", 4, 1),
        ("with pairs", 8, 2),
    }
    for condition in ("labelled only", "with pairs"):
        rows = result["summary"][condition]
        assert [r["train_images"] for r in rows] == [4, 8]
        for row in rows:
            assert row["seeds"] == 2 and all(0.0 <= v <= 1.0 for v in row["values"])
            assert row["min"] <= row["mean"] <= row["max"]
    # No test image was trained on, and a seed's subsets grow by prefix.
    test_images = set(result["test_set"]["sha256"])
    trained: dict[tuple[str, int, int], set[str]] = {}
    for r in runs:
        folder = Path(r["guard"]).parent
        lines = [
            json.loads(line)
            for name in ("train.jsonl", "pairs.jsonl")
            for line in (folder / name).read_text().splitlines()
        ]
        paths = [m["image"] for x in lines for m in ([x["a"], x["b"]] if "a" in x else [x])]
        digests = {hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}
        assert not digests & test_images
        assert len(digests) == r["train_images"]
        trained[(r["condition"], r["seed"], r["train_images"])] = digests
    for seed in (0, 1):
        assert trained[("labelled only", seed, 4)] < trained[("labelled only", seed, 8)]
    with Image.open(out / "sample_efficiency.png") as img:
        assert img.format == "PNG" and img.width >= 700 and img.height >= 450
        assert len(img.convert("RGB").getcolors(1 << 20) or []) > 50  # lines, bands, text
    printed = capsys.readouterr().out
    assert "labelled only: n=4:" in printed and "with pairs: n=4:" in printed


def _pair_set(root: Path, n: int, artifact: str, seed: int = 0) -> Path:
    """`n` pairs of photo crops with and without a red disk (labelled O6), edits both ways.
    artifact "none": the edited image is the plain result; "mixed": every edited image is
    blurred (the editor's trace), and in every other block of two pairs the kept image went
    through the same blur (artifact-matched)."""
    rng = random.Random(seed)
    data = Path(skimage.__file__).parent / "data"
    photos = [Image.open(data / p).convert("RGB") for p in PHOTOS]
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        clean = _crop(rng, photos)
        disk = _with_disk(clean, rng)
        to_unsafe = i % 2 == 0
        kept, edited = (clean, disk) if to_unsafe else (disk, clean)
        record: dict = {"id": f"p{i}", "edited": "b"}
        if artifact == "mixed":
            matched = i % 4 >= 2
            edited = edited.filter(ImageFilter.GaussianBlur(1.5))
            if matched:
                kept = kept.filter(ImageFilter.GaussianBlur(1.5))
            record["artifact_matched"] = matched
        kept.save(root / f"{i}_kept.png")
        edited.save(root / f"{i}_edit.png")
        record["a"] = {"image": f"{i}_kept.png", "labels": [] if to_unsafe else ["O6"]}
        record["b"] = {"image": f"{i}_edit.png", "labels": ["O6"] if to_unsafe else []}
        lines.append(json.dumps(record) + "\n")
    (root / "pairs.jsonl").write_text("".join(lines))
    return root / "pairs.jsonl"


def test_confound_check_finds_an_editor_trace_and_not_a_missing_one(tmp_path: Path, capsys) -> None:
    cache = tmp_path / "emb"
    mixed = _pair_set(tmp_path / "mixed", 32, "mixed")
    argv = ["confound-check", "--pairs", str(mixed), "--out", str(tmp_path / "m")]
    assert cli_main([*argv, "--cache", str(cache)]) == 0
    result = json.loads((tmp_path / "m" / "confound.json").read_text())
    plain, matched = result["groups"]["plain"], result["groups"]["artifact-matched"]
    assert plain["pairs"] == matched["pairs"] == 16
    # Only the edited image is blurred: the probe finds it.
    assert plain["accuracy"]["value"] > 0.8 and plain["accuracy"]["ci"][0] > 0.6
    # Both members blurred: the trace no longer tells them apart.
    low, high = matched["accuracy"]["ci"]
    assert low <= 0.5 <= high and matched["accuracy"]["value"] < 0.7
    assert set(plain["by_direction"]) == {"to safe", "to unsafe"}
    with Image.open(tmp_path / "m" / "confound.png") as img:
        assert img.format == "PNG" and img.width >= 400
    assert "plain: 16 pairs, accuracy" in capsys.readouterr().out

    clean = _pair_set(tmp_path / "clean", 24, "none", seed=1)
    result = run_confound_check(ConfoundConfig([clean], tmp_path / "c", cache=cache))
    acc = result["groups"]["all"]["accuracy"]
    assert acc["ci"][0] <= 0.5 <= acc["ci"][1] and acc["value"] < 0.7
    assert list(result["groups"]) == ["all"]  # the set does not say which pairs are matched


def test_confound_check_needs_the_edited_member_and_warns_on_one_way_edits(
    tmp_path: Path,
) -> None:
    _, pairs = make_training_set(tmp_path, pairs=6, singles=0)
    with pytest.raises(InvalidInput, match='needs "edited"'):
        run_confound_check(ConfoundConfig([pairs], tmp_path / "out"))
    records = [json.loads(line) | {"edited": "b"} for line in pairs.read_text().splitlines()]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run_confound_check(ConfoundConfig([pairs], tmp_path / "out"))
    # Every demo edit adds the disk: being edited and being unsafe cannot be told apart.
    assert any("every edit goes one way (to unsafe)" in note for note in result["notes"])
    assert result["groups"]["all"]["balanced_accuracy"]["value"] is None
