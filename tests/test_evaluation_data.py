"""Evaluation data in: every layout read into the same EvalSet, bad ones refused by name."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from safetypairs.contract.policy import default_policy
from safetypairs.contract.training_data import TrainingDataError, read_pairs
from safetypairs.evaluation.datasets_in import ReadOptions, load_eval_set

POLICY = default_policy()


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 20), color).save(buf, format="PNG")
    return buf.getvalue()


def _images(root: Path, n: int = 4) -> list[str]:
    (root / "img").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        name = f"img/{i}.png"
        (root / name).write_bytes(_png((40 * i, 200 - 30 * i, 90)))
        names.append(name)
    return names


def _labels(data) -> list[list[str]]:
    return [sorted(item.labels) for item in data.items]


def test_pair_format_with_edit_fields(tmp_path: Path) -> None:
    a, b, c, d = _images(tmp_path)
    records = [
        {"id": "p1", "a": {"image": a, "labels": []}, "b": {"image": b, "labels": ["O6"]}},
        {
            "id": "p2",
            "a": {"image": c, "labels": ["O2"], "role": "kept"},
            "b": {"image": d, "labels": [], "role": "edit"},
            "artifact_matched": "null-edit",
        },
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for path in (tmp_path / "pairs.jsonl", tmp_path):  # the file, or the folder holding it
        data = load_eval_set([path], POLICY)
        assert _labels(data) == [[], ["O6"], ["O2"], []]
        assert [(p.id, p.a, p.b) for p in data.pairs] == [("p1", 0, 1), ("p2", 2, 3)]
        assert [(p.edited, p.artifact_matched) for p in data.pairs] == [(None, None), ("b", True)]
    # The training reader keeps the fields too, and an explicit value wins.
    records[0] |= {"edited": "a", "artifact_matched": False}
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    pairs = read_pairs(tmp_path / "pairs.jsonl", POLICY)
    assert (pairs[0].edited, pairs[0].artifact_matched) == ("a", False)


def test_labelled_folder(tmp_path: Path) -> None:
    for sub, color in (("safe", (10, 200, 10)), ("O6", (200, 10, 10)), ("O1", (10, 10, 200))):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.png").write_bytes(_png(color))
    data = load_eval_set([tmp_path], POLICY)
    assert sorted(map(tuple, _labels(data))) == [(), ("O1",), ("O6",)]
    assert not data.pairs


def test_csv_tables_every_label_form(tmp_path: Path) -> None:
    names = _images(tmp_path)
    (tmp_path / "labels.csv").write_text(
        "file_name,labels\n" + f"{names[0]},\n{names[1]},O6\n{names[2]},O1;O6\n{names[3]},safe\n"
    )
    data = load_eval_set([tmp_path], POLICY)  # the folder holding labels.csv
    assert _labels(data) == [[], ["O6"], ["O1", "O6"], []]

    (tmp_path / "multi.csv").write_text(
        "image,O1,O6\n" + f"{names[0]},0,1\n{names[1]},1,1\n{names[2]},0,0\n"
    )
    assert _labels(load_eval_set([tmp_path / "multi.csv"], POLICY)) == [["O6"], ["O1", "O6"], []]

    (tmp_path / "binary.csv").write_text("path,label\n" + f"{names[0]},unsafe\n{names[1]},0\n")
    data = load_eval_set([tmp_path / "binary.csv"], POLICY, ReadOptions(unsafe_category="O6"))
    assert _labels(data) == [["O6"], []]
    with pytest.raises(TrainingDataError, match=r"binary.csv line 2: .*--unsafe-category"):
        load_eval_set([tmp_path / "binary.csv"], POLICY)


def test_jsonl_metadata_with_pair_ids(tmp_path: Path) -> None:
    names = _images(tmp_path)
    rows = [
        {"file_name": names[0], "label": "safe", "pair_id": "q1", "edited": False},
        {"file_name": names[1], "label": "O6", "pair_id": "q1", "edited": True},
        {"file_name": names[2], "labels": ["O7"]},
    ]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_eval_set([tmp_path], POLICY)
    assert _labels(data) == [[], ["O6"], ["O7"]]
    assert [(p.id, p.a, p.b, p.edited) for p in data.pairs] == [("q1", 0, 1, "b")]


def test_hugging_face_saved_to_disk(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["safe", "O6", "O1"])}
    )
    rows = {
        "image": [{"bytes": _png((i * 50, 20, 20)), "path": None} for i in range(4)],
        "label": [0, 1, 2, 1],
    }
    ds = datasets.Dataset.from_dict(rows, features=features)
    ds.save_to_disk(str(tmp_path / "one"))
    data = load_eval_set([tmp_path / "one"], POLICY)
    assert _labels(data) == [[], ["O6"], ["O1"], ["O6"]]
    assert data.items[1].read() == rows["image"][1]["bytes"]
    # Images held in memory are written once, named by their digest, for training.
    paths = data.materialise(tmp_path / "files")
    assert paths[1].read_bytes() == rows["image"][1]["bytes"] and paths[1].suffix == ".png"

    datasets.DatasetDict({"train": ds, "validation": ds}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(TrainingDataError, match=r"choose a split with --split \(train, valid"):
        load_eval_set([tmp_path / "two"], POLICY)
    data = load_eval_set([tmp_path / "two"], POLICY, ReadOptions(split="validation"))
    assert len(data.items) == 4 and "row 3" in data.items[3].record


def test_hugging_face_pair_export(tmp_path: Path) -> None:
    """The layout `safetypairs export --to hf` writes: images per member and the manifest
    record as JSON; rejected candidates skipped."""
    import datasets

    def record(i: int, status: str) -> str:
        return json.dumps(
            {
                "id": f"r{i}",
                "status": status,
                "edited": "b",
                "artifact_matched": "none",
                "a": {"image": "images/x.png", "labels": []},
                "b": {"image": "images/y.png", "labels": ["O6"]},
            }
        )

    features = datasets.Features(
        {
            "a_image": datasets.Image(),
            "b_image": datasets.Image(),
            "record": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {
            "a_image": [{"bytes": _png((i, 0, 0)), "path": None} for i in range(3)],
            "b_image": [{"bytes": _png((0, i, 200)), "path": None} for i in range(3)],
            "record": [record(0, "accepted"), record(1, "rejected"), record(2, "accepted")],
        },
        features=features,
    )
    ds.save_to_disk(str(tmp_path / "export"))
    data = load_eval_set([tmp_path / "export"], POLICY)
    assert [p.id for p in data.pairs] == ["r0", "r2"]
    assert [(p.edited, p.artifact_matched) for p in data.pairs] == [("b", False)] * 2
    assert _labels(data) == [[], ["O6"], [], ["O6"]]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labels.csv", "file_name,labels\nimg/0.png,O42\n", r"labels.csv line 2: .*'O42' not in"),
        ("labels.csv", "file_name,labels\nimg/nope.png,O6\n", r"labels.csv line 2: image .* not"),
        ("labels.csv", "name,labels\nimg/0.png,O6\n", r"labels.csv line 2: no image"),
        ("labels.csv", "file_name,kind\nimg/0.png,O6\n", r"labels.csv line 2: no labels"),
        ("labels.jsonl", '{"image": "img/0.png", "labels": []}\n{oops\n', r"line 2: not valid"),
        ("labels.csv", "image,O6\nimg/0.png,maybe\n", r"line 2: column O6 must be 0/1"),
        ("data.json", "{}", r"data.json: not a dataset file this reads"),
        (
            "pairs.jsonl",
            '{"id": "p", "a": {"image": "img/0.png", "labels": []},'
            ' "b": {"image": "img/1.png", "labels": ["O6"]}, "edited": "c"}\n',
            r"pairs.jsonl line 1 \(pair p\): 'edited' must be",
        ),
        (
            "metadata.jsonl",
            '{"file_name": "img/0.png", "label": "O6", "pair_id": "z"}\n',
            r"pair 'z' .*exactly two rows",
        ),
    ],
)
def test_bad_data_refused_by_name(tmp_path: Path, name: str, content: str, message: str) -> None:
    _images(tmp_path)
    (tmp_path / name).write_text(content)
    with pytest.raises(TrainingDataError, match=message):
        load_eval_set([tmp_path / name], POLICY)


def test_unknown_layouts_refused(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "x.png").write_bytes(_png((1, 2, 3)))
    with pytest.raises(TrainingDataError, match=r"not a dataset layout .*found folders: photos"):
        load_eval_set([tmp_path], POLICY)
    (tmp_path / "labels.csv").write_text("image,labels\n")
    (tmp_path / "metadata.jsonl").write_text("")
    with pytest.raises(TrainingDataError, match=r"holds metadata.jsonl, labels.csv; give one"):
        load_eval_set([tmp_path], POLICY)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "one.csv").write_text("image,labels\nbad.png,O6\n")
    with pytest.raises(TrainingDataError, match=r"one.csv line 2: image is unusable"):
        load_eval_set([tmp_path / "one.csv"], POLICY)
