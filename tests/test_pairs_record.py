"""The typed pair record against a dataset written by the pipeline before the record existed
(tests/data/pairs_v1: main at efeaed4, judge and editor stubbed in process, 16x16 images): the
one reader opens it, the one writer gives back its lines byte for byte, and the report, export
and import, training's read_pairs and evaluation's loader all read the same values from it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from safetypairs.contract.jsonl import BadData, read_jsonl
from safetypairs.contract.pair_record import (
    FailedUnit,
    Member,
    PairRecord,
    Rating,
    Similarity,
    from_json,
    from_line,
    to_line,
)
from safetypairs.contract.policy import default_policy
from safetypairs.contract.training_data import TrainingDataError, read_pairs
from safetypairs.evaluation.datasets_in import load_eval_set
from safetypairs.pairs.dataset import PairDataset
from safetypairs.pairs.export import export_dataset, import_dataset
from safetypairs.pairs.merge import merge_datasets
from safetypairs.pairs.report import summarize, write_report

LEGACY = Path(__file__).parent / "data" / "pairs_v1"
MANIFESTS = ("pairs.jsonl", "rejected.jsonl", "failed.jsonl")
POLICY = default_policy()
ADD, REMOVE = "62e8209bccab-to_unsafe-O6-a0c1", "2bdffa2801d9-to_safe-O6-a0c0"
EVERYTHING, AMBIGUOUS = "62e8209bccab-to_unsafe-O6-a0c0", "46e4de10f560-source"


def remove_kept_image() -> str:
    return "images/7221270d354ddd85805e1a34cfc1dc1b471dc778422eac25d6110a5a8156ed08.png"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A copy: the report and import write beside the data."""
    return Path(shutil.copytree(LEGACY, tmp_path / "legacy"))


def test_the_reader_gives_the_values_written(legacy: Path) -> None:
    ds = PairDataset.read(legacy)
    add, remove = ds.pairs("accepted")
    assert (add.id, remove.id) == (ADD, REMOVE)
    assert (add.direction, add.category, add.instruction) == ("to_unsafe", "O6", "add a red disk")
    assert add.a == Member(
        image="images/f2acd9325d62d0f1cfb667000fd15190e8479203c386ff6cb7a2ed509ed3318c.png",
        labels=(),
        role="kept",
        p_unsafe=0.05,
        category="",
    )
    assert add.b.labels == ("O6",) and add.b.rating == Rating(0.6242, "O6")
    assert add.similarity == Similarity(
        ssim_outside=0.860125, changed_fraction=0.191406, change_bbox=(4, 4, 7, 7)
    )
    assert add.edited_member == "b" and add.is_artifact_matched is True
    assert add.seeds.null_edit == 2621383200544704779 and add.final is False
    assert add.models.untrained() == ["judge: tiny-judge"]
    assert remove.a.labels == ("O6",) and remove.b.labels == ()
    everything, ambiguous = ds.pairs("rejected")
    assert everything.id == EVERYTHING and everything.reasons == ("changed_too_much",)
    assert everything.similarity.ssim_outside is None  # nothing left outside the change
    assert ambiguous.id == AMBIGUOUS and ambiguous.b is None and ambiguous.final is True
    assert ambiguous.a == Member(p_unsafe=0.425, category="")
    assert ambiguous.reasons == ("source_ambiguous",)
    (failed,) = ds.failures()
    assert isinstance(failed, FailedUnit) and failed.unit == "source:/tmp/rec/src/missing.png"
    assert failed.error.kind == "SafetyPairsError" and "No such file" in failed.error.message
    assert ds.done_units() == {add.unit, remove.unit, ambiguous.unit}


def test_the_writer_gives_back_every_line_byte_for_byte() -> None:
    for name in MANIFESTS:
        lines = (LEGACY / name).read_text().splitlines()
        read = [to_line(from_json(data, where)) for where, data in read_jsonl(LEGACY / name)]
        assert read == lines, name


def test_unknown_fields_survive_at_every_level() -> None:
    line = json.dumps(
        {
            "id": "p",
            "a": {"image": "a.png", "labels": [], "note": {"by": "x"}},
            "b": {"image": "b.png", "labels": ["O6"]},
            "similarity": {"changed_fraction": 0.1, "lpips": 0.2},
            "future": [1, "two"],
        },
        sort_keys=True,
    )
    record = from_line(line, "here")
    assert record.extra == {"future": [1, "two"]} and record.a.extra == {"note": {"by": "x"}}
    # The figures write their nulls: an absent figure comes back as null, a known value stays.
    assert json.loads(to_line(record))["similarity"] == {
        "changed_fraction": 0.1,
        "lpips": 0.2,
        "ssim_outside": None,
        "change_bbox": None,
    }
    assert json.loads(to_line(record))["a"] == json.loads(line)["a"]


def test_report_of_the_legacy_dataset(legacy: Path) -> None:
    page = write_report(legacy).read_text()
    for pair_id in (ADD, REMOVE, EVERYTHING, AMBIGUOUS):
        assert f"<code>{pair_id}</code>" in page
    assert "paint &lt;b&gt;everything&lt;/b&gt; red" in page and "<b>everything" not in page
    ds = PairDataset.read(legacy)
    s = summarize(list(ds.pairs()), list(ds.failures()))
    assert (s.accepted, s.rejected, s.failed) == (2, 2, 1)
    assert s.categories["O6"].acceptance_rate == pytest.approx(2 / 3)
    assert dict(s.reasons) == {"changed_too_much": 1, "source_ambiguous": 1}
    assert s.stages["total_s"].n == 3 and s.untrained == ["judge: tiny-judge"]


def test_export_and_import_of_the_legacy_dataset(legacy: Path, tmp_path: Path) -> None:
    out = tmp_path / "legacy.parquet"
    assert export_dataset(legacy, out, "parquet", include_rejected=True)["rows"] == 4
    rows = {r["id"]: r for r in pq.read_table(out).to_pylist()}
    assert rows[ADD]["b_p_unsafe"] == pytest.approx(0.6242) and rows[ADD]["b_labels"] == ["O6"]
    assert rows[ADD]["artifact_matched"] == "null-edit" and rows[ADD]["judge_untrained"] is True
    assert rows[EVERYTHING]["ssim_outside"] is None
    assert rows[EVERYTHING]["change_bbox"] == [0, 0, 16, 16]
    assert rows[AMBIGUOUS]["a_image"] is None and rows[AMBIGUOUS]["a_p_unsafe"] == 0.425
    assert import_dataset(out, tmp_path / "back") == {
        "out": str(tmp_path / "back"),
        "accepted": 2,
        "rejected": 2,
    }
    for name in MANIFESTS[:2]:
        assert (tmp_path / "back" / name).read_bytes() == (LEGACY / name).read_bytes()
    # A merge writes the records back through the same writer.
    assert merge_datasets(tmp_path / "merged", [legacy])["added"] == 5
    for name in MANIFESTS:
        assert (tmp_path / "merged" / name).read_bytes() == (LEGACY / name).read_bytes()


def test_training_and_evaluation_read_the_legacy_pairs(legacy: Path, tmp_path: Path) -> None:
    pairs = read_pairs(legacy / "pairs.jsonl", POLICY)
    assert [p.id for p in pairs] == [ADD, REMOVE]
    assert [(sorted(p.a.labels), sorted(p.b.labels)) for p in pairs] == [([], ["O6"]), (["O6"], [])]
    assert all(p.edited == "b" and p.artifact_matched is True for p in pairs)
    assert pairs[1].a.path == (legacy / remove_kept_image()).resolve()
    for source in (legacy, legacy / "pairs.jsonl"):
        data = load_eval_set([source], POLICY)
        assert [sorted(i.labels) for i in data.items] == [[], ["O6"], ["O6"], []]
        assert [(p.id, p.edited, p.artifact_matched) for p in data.pairs] == [
            (ADD, "b", True),
            (REMOVE, "b", True),
        ]
    # The same pairs through a Hugging Face export (rejected candidates are skipped).
    export_dataset(legacy, tmp_path / "hf", "hf", include_rejected=True)
    data = load_eval_set([tmp_path / "hf"], POLICY)
    assert [(p.id, p.edited, p.artifact_matched) for p in data.pairs] == [
        (ADD, "b", True),
        (REMOVE, "b", True),
    ]


def test_bad_records_are_named_by_file_and_line(legacy: Path) -> None:
    good = (legacy / "pairs.jsonl").read_text().splitlines()[0]
    bad = legacy / "bad.jsonl"  # beside the images the good line names
    cases = {
        '{"id": "x", "a": {"image": 3, "labels": []}}': r"line 2 \(pair x\): 'a.image' must be",
        '{"id": "x", "a": {"image": "a.png", "labels": ["O6"]}, "attempt": 1.5}': (
            r"line 2 \(pair x\): 'attempt' must be an integer, not 1.5"
        ),
        '{"id": "y", "status": "maybe"}': r"line 2: 'status' must be accepted, rejected or",
        '{"id": "y", "a": {}': r"line 2: not valid JSON",
        "[1, 2]": r"line 2: must be a JSON object, not list",
    }
    for line, message in cases.items():
        bad.write_text(f"{good}\n{line}\n")
        with pytest.raises(TrainingDataError, match=f"{re.escape(str(bad))} {message}"):
            read_pairs(bad, POLICY)
    (legacy / "rejected.jsonl").write_text(f"{good}\n" + '{"status": "rejected", "reasons": "x"}\n')
    with pytest.raises(BadData, match=r"rejected.jsonl line 2: 'reasons' must be a list"):
        list(PairDataset.read(legacy).pairs())
    assert isinstance(from_line(good, "x"), PairRecord)
