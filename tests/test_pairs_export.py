"""Export of a pair dataset to Parquet and to a Hugging Face `datasets` folder, import back,
and the round trip export -> import -> export; bad files to import get a clear error."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, Image, load_from_disk
from PIL import Image as PILImage
from sample_pairs import build_sample_dataset

from safetypairs.cli import main
from safetypairs.contract.errors import InvalidInput
from safetypairs.pairs import export
from safetypairs.pairs.export import export_dataset, import_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("pairs") / "dataset"
    return root, build_sample_dataset(root)


@pytest.fixture(scope="module")
def parquet(dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "pairs.parquet"
    export_dataset(dataset[0], out, "parquet", include_rejected=True)
    return out


def assert_same_dataset(a: Path, b: Path) -> None:
    """Same manifests and header byte for byte, and the same image files."""
    for name in ("dataset.json", "pairs.jsonl", "rejected.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    images = sorted(p.name for p in (a / "images").iterdir())
    assert images == sorted(p.name for p in (b / "images").iterdir())
    for name in images:
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()


def test_parquet_round_trip(dataset, parquet: Path, tmp_path: Path, monkeypatch) -> None:
    root, records = dataset
    monkeypatch.setattr(export, "BATCH_ROWS", 2)  # several row groups and import batches
    summary = import_dataset(parquet, tmp_path / "imported")
    assert summary["accepted"] == 2 and summary["rejected"] == 3
    assert_same_dataset(root, tmp_path / "imported")
    assert not (tmp_path / "imported" / "failed.jsonl").exists()  # failed units are not pairs
    again = tmp_path / "again.parquet"
    export_dataset(tmp_path / "imported", again, "parquet", include_rejected=True)
    first, second = pq.read_table(parquet), pq.read_table(again)
    assert first.equals(second) and first.schema.metadata == second.schema.metadata
    assert first.num_rows == len(records) and pq.ParquetFile(again).num_row_groups == 3


def test_parquet_columns(dataset, parquet: Path, tmp_path: Path) -> None:
    root, records = dataset
    rows = pq.read_table(parquet).to_pylist()
    first, odd = rows[0], rows[-1]
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert first["category"] == "O6" and first["status"] == "accepted"
    assert first["b_p_unsafe"] == pytest.approx(0.85) and first["b_labels"] == ["O6"]
    assert first["change_bbox"] == [64, 32, 40, 48] and first["seed_null_edit"] is None
    assert first["judge_untrained"] is True and first["edit_s"] == pytest.approx(2.0)
    assert first["b_image"]["bytes"] == (root / records[0]["b"]["image"]).read_bytes()
    assert first["b_image"]["path"] == records[0]["b"]["image"]
    assert odd["element"] is None and odd["reasons"] == ["wrong_category"]
    assert json.loads(odd["record"]) == records[-1]  # unknown fields kept verbatim
    # The file is a `datasets` Parquet file: image columns come back as images.
    hf = Dataset.from_parquet(str(parquet), cache_dir=str(tmp_path / "cache"))
    assert isinstance(hf.features["a_image"], Image)
    assert hf[0]["b_image"].size == (160, 112)


def test_hf_round_trip(dataset, tmp_path: Path, monkeypatch) -> None:
    root, records = dataset
    monkeypatch.setattr(export, "BATCH_ROWS", 2)
    first = tmp_path / "hf"
    export_dataset(root, first, "hf", include_rejected=True)
    hf = load_from_disk(str(first))
    assert len(hf) == len(records) and isinstance(hf.features["source_image"], Image)
    shown = hf[1]["a_image"]  # the coffee pair
    assert isinstance(shown, PILImage.Image) and shown.size == (160, 120)
    import_dataset(first, tmp_path / "imported")
    assert_same_dataset(root, tmp_path / "imported")
    second = tmp_path / "hf-again"
    export_dataset(tmp_path / "imported", second, "hf", include_rejected=True)
    table = load_from_disk(str(second)).with_format("arrow")[:]
    assert table.equals(hf.with_format("arrow")[:])
    assert (first / "safetypairs.json").read_text() == (second / "safetypairs.json").read_text()


def test_rejected_only_with_the_flag(dataset, tmp_path: Path) -> None:
    root, _ = dataset
    out = tmp_path / "accepted.parquet"
    assert export_dataset(root, out, "parquet")["rows"] == 2
    assert pq.read_table(out).column("status").to_pylist() == ["accepted", "accepted"]
    import_dataset(out, tmp_path / "imported")
    assert (tmp_path / "imported" / "pairs.jsonl").read_bytes() == (
        root / "pairs.jsonl"
    ).read_bytes()
    assert not (tmp_path / "imported" / "rejected.jsonl").exists()


def _rewrite(parquet: Path, out: Path, row: int, column: str, value: Any) -> Path:
    table = pq.read_table(parquet)
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    field = table.schema.field(index)
    pq.write_table(table.set_column(index, field, pa.array(values, field.type)), out)
    return out


def test_bad_files_to_import(parquet: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet")
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), other)
    png_column = pq.read_table(parquet).column("a_image").to_pylist()[0]
    not_png = _rewrite(
        parquet,
        tmp_path / "not-png.parquet",
        1,
        "a_image",
        {"bytes": b"GIF89a not a png", "path": png_column["path"]},
    )
    no_bytes = _rewrite(parquet, tmp_path / "no-bytes.parquet", 0, "b_image", None)
    bad_record = _rewrite(parquet, tmp_path / "bad-record.parquet", 2, "record", "{oops")
    (tmp_path / "broken-hf").mkdir()
    (tmp_path / "broken-hf" / "dataset_info.json").write_text("not json")
    (tmp_path / "plain").mkdir()
    cases = {
        tmp_path / "missing.parquet": "does not exist",
        garbage: "is not a readable Parquet file",
        other: "is not a pair-dataset export: no column record, source_image",
        not_png: "row 1: a_image is not a png file",
        no_bytes: "row 0: b_image is empty but the record names images/",
        bad_record: "row 2, column record: not valid JSON",
        tmp_path / "broken-hf": "is not a readable datasets folder",
        tmp_path / "plain": "neither a Parquet file nor a datasets save_to_disk folder",
    }
    for src, message in cases.items():
        out = tmp_path / f"out-{src.name}"
        with pytest.raises(InvalidInput, match=message):
            import_dataset(src, out)
        assert not out.exists(), "a failed import leaves nothing behind"
        assert not list(tmp_path.glob(".tmp-*"))


def test_import_refuses_a_folder_in_use(parquet: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        import_dataset(parquet, tmp_path / "busy")
    assert import_dataset(parquet, tmp_path / "empty-ok")["accepted"] == 2


def test_export_errors(dataset, parquet: Path, tmp_path: Path) -> None:
    root, records = dataset
    with pytest.raises(InvalidInput, match="exists: export to a new path"):
        export_dataset(root, parquet, "parquet")
    with pytest.raises(InvalidInput, match="unknown export format 'csv'"):
        export_dataset(root, tmp_path / "x.csv", "csv")
    with pytest.raises(InvalidInput, match="not a pair dataset"):
        export_dataset(tmp_path, tmp_path / "x.parquet", "parquet")
    # A manifest naming an image that is not there, or a path outside images/.
    copy = tmp_path / "copy"
    import_dataset(parquet, copy)
    (copy / records[0]["a"]["image"]).unlink()
    with pytest.raises(InvalidInput, match=f"record '{records[0]['id']}': cannot read"):
        export_dataset(copy, tmp_path / "y.parquet", "parquet")
    assert not (tmp_path / "y.parquet").exists() and not list(tmp_path.glob(".tmp-*"))
    lines = (copy / "pairs.jsonl").read_text().replace(records[0]["a"]["image"], "../x.png")
    (copy / "pairs.jsonl").write_text(lines)
    (copy / "commits.jsonl").unlink()  # edited by hand: the manifests are taken as they are
    with pytest.raises(InvalidInput, match=r"a\.image '\.\./x\.png' is not an images/"):
        export_dataset(copy, tmp_path / "z.parquet", "hf")


def test_cli_export_and_import(dataset, tmp_path: Path, capsys) -> None:
    root, _ = dataset
    out = tmp_path / "cli.parquet"
    assert (
        main(["export", str(root), "--to", "parquet", "--out", str(out), "--include-rejected"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["rows"] == 5
    assert main(["import", str(out), "--out", str(tmp_path / "ds")]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "out": str(tmp_path / "ds"),
        "accepted": 2,
        "rejected": 3,
    }
    assert main(["import", str(tmp_path / "nothing"), "--out", str(tmp_path / "ds2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    shot = io.BytesIO((tmp_path / "ds" / "images").iterdir().__next__().read_bytes())
    assert PILImage.open(shot).format == "PNG"
