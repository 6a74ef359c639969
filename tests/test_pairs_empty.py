"""A pair dataset without accepted pairs, as the untrained embedded default makes it: why it is
empty (reasons, counts, nearest misses, the flag to change), its export refused with the reason,
and evaluation and training saying what is wrong instead of "not a dataset layout"; resuming
with other settings names each one with its old and new value."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.pair_record import Member, PairRecord, Similarity
from safetypairs.contract.policy import default_policy
from safetypairs.contract.training_data import TrainingDataError, read_pairs
from safetypairs.evaluation.datasets_in import load_eval_set
from safetypairs.pairs.criteria import Criteria
from safetypairs.pairs.dataset import PairDataset
from safetypairs.pairs.explain import explain
from safetypairs.pairs.export import export_dataset

CRITERIA = Criteria(threshold=0.5, margin=0.1, min_ssim_outside=0.85, max_changed_fraction=0.35)
HEADER = {"run": {"seed": 1, "criteria": CRITERIA.to_json()}}


def ambiguous(p: float, n: int) -> PairRecord:
    return PairRecord(
        status="rejected",
        id=f"s{n}-source",
        unit=f"s{n}:source",
        final=True,
        reasons=("source_ambiguous",),
        a=Member(p_unsafe=p, category="O6"),
    )


def candidate(n: int, kept: float, edit: float, changed: float, ssim: float) -> PairRecord:
    reasons = []
    if not (edit >= 0.6 and kept <= 0.4):
        reasons.append("no_flip")
    if changed > 0.35:
        reasons.append("changed_too_much")
    if ssim < 0.85:
        reasons.append("not_preserved")
    return PairRecord(
        status="rejected",
        id=f"c{n}",
        unit=f"c{n}:to_unsafe:O6",
        final=True,
        direction="to_unsafe",
        category="O6",
        a=Member(p_unsafe=kept, category="O6", role="kept"),
        b=Member(p_unsafe=edit, category="O6", role="edit"),
        similarity=Similarity(ssim_outside=ssim, changed_fraction=changed),
        reasons=tuple(reasons),
    )


RECORDS = [
    ambiguous(0.49, 0),
    ambiguous(0.47, 1),
    candidate(2, kept=0.30, edit=0.55, changed=0.9, ssim=0.2),
    candidate(3, kept=0.35, edit=0.52, changed=0.6, ssim=0.5),
]


def test_every_reason_is_counted_with_its_nearest_miss() -> None:
    why = explain(RECORDS, CRITERIA)
    assert why["accepted"] == 0
    assert why["rejections"] == {
        "source_ambiguous": 2,
        "no_flip": 2,
        "changed_too_much": 2,
        "not_preserved": 2,
    }
    miss = why["nearest_miss"]
    # Sources: the farthest from the threshold is 0.47, 0.03 away; the margin asks 0.1.
    assert miss["source_ambiguous"]["seen"] == pytest.approx(0.03)
    assert "--margin 0.030" in miss["source_ambiguous"]["advice"]
    assert miss["source_ambiguous"]["needed"] == "P(unsafe) <= 0.400 or >= 0.600"
    # Candidates: c2 got 0.05 past the threshold on its weaker (unsafe) side.
    assert miss["no_flip"]["seen"] == pytest.approx(0.05)
    assert "--margin 0.050 would accept it" in miss["no_flip"]["advice"]
    assert miss["changed_too_much"]["seen"] == pytest.approx(0.6)
    assert "--max-changed 0.60" in miss["changed_too_much"]["advice"]
    assert miss["not_preserved"]["seen"] == pytest.approx(0.5)
    assert "--min-ssim 0.50" in miss["not_preserved"]["advice"]


def test_no_edit_across_the_threshold_says_so() -> None:
    why = explain([candidate(0, kept=0.49, edit=0.48, changed=0.1, ssim=0.9)], CRITERIA)
    assert why["nearest_miss"]["no_flip"]["seen"] == pytest.approx(-0.02)
    assert "no edit crossed the threshold" in why["nearest_miss"]["no_flip"]["advice"]


@pytest.fixture
def empty_dataset(tmp_path: Path) -> Path:
    """RECORDS with real images (an export writes image bytes): only rejected candidates."""
    kept, edit = (tmp_path / "kept.png", tmp_path / "edit.png")
    Image.new("RGB", (8, 8), "white").save(kept)
    Image.new("RGB", (8, 8), "red").save(edit)
    root = tmp_path / "ds"
    with PairDataset.open(root, HEADER) as ds:
        for record in RECORDS:
            if record.b is not None:
                record = replace(
                    record,
                    a=replace(record.a, image=ds.put_image(kept.read_bytes())),
                    b=replace(record.b, image=ds.put_image(edit.read_bytes())),
                )
            ds.commit([record])
    return root


@pytest.mark.parametrize("to", ["parquet", "hf"])
def test_an_export_without_rows_is_refused_with_the_reason(empty_dataset: Path, to: str) -> None:
    out = empty_dataset.parent / f"out-{to}"
    with pytest.raises(InvalidInput) as exc:
        export_dataset(empty_dataset, out, to)
    assert "nothing to export, so nothing was written" in exc.value.message
    assert "no accepted pairs (4 rejected candidates: --include-rejected exports them" in (
        exc.value.message
    )
    assert not out.exists()


def test_the_rejected_candidates_export_and_load_back(empty_dataset: Path) -> None:
    from datasets import load_dataset, load_from_disk

    parquet = empty_dataset.parent / "rejected.parquet"
    assert export_dataset(empty_dataset, parquet, "parquet", include_rejected=True)["rows"] == 4
    table = load_dataset("parquet", data_files=str(parquet), split="train")
    assert table["status"] == ["rejected"] * 4
    folder = empty_dataset.parent / "rejected-hf"
    export_dataset(empty_dataset, folder, "hf", include_rejected=True)
    assert len(load_from_disk(str(folder))) == 4


def test_evaluation_and_training_name_the_missing_pairs(empty_dataset: Path) -> None:
    for path in (empty_dataset, empty_dataset / "pairs.jsonl"):
        with pytest.raises(TrainingDataError, match="a pair dataset with no accepted pairs"):
            read_pairs(path, default_policy())
    with pytest.raises(TrainingDataError, match="a pair dataset with no accepted pairs"):
        load_eval_set([empty_dataset], default_policy())


def test_resuming_with_other_settings_names_old_and_new_values(empty_dataset: Path) -> None:
    other = Criteria(threshold=0.5, margin=0.0)
    with pytest.raises(InvalidInput) as exc:
        PairDataset.open(empty_dataset, {"run": {"seed": 2, "criteria": other.to_json()}})
    message = exc.value.message
    assert "criteria.margin: 0.1 in the dataset, 0.0 now" in message
    assert "seed: 1 in the dataset, 2 now" in message
    assert "threshold" not in message  # the same in both


def test_pairs_are_read_from_the_folder_or_its_file(tmp_path: Path) -> None:
    """`--pairs` takes either, in training as in evaluation (issue 19: one vocabulary)."""
    from safetypairs.training.demo_data import make_training_set

    _, pairs_file = make_training_set(tmp_path, pairs=2, singles=0)
    by_folder = read_pairs(pairs_file.parent, default_policy())
    by_file = read_pairs(pairs_file, default_policy())
    assert [p.id for p in by_folder] == [p.id for p in by_file] == ["p0", "p1"]
