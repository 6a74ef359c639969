"""The pair dataset against crashes, a second writer, a tampered folder and a full disk
(issue 16, parts E, F and H): real processes killed with SIGKILL, real locks held by other
processes, real symbolic links, and a real full file system (a small tmpfs, mounted here: the
tests and CI run as root)."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sample_pairs import build_sample_dataset
from writers import kill_mid_run
from writers import start_writer as start_writer_at

from safetypairs.contract.errors import SafetyPairsError
from safetypairs.contract.pair_record import Member, PairRecord, to_line
from safetypairs.pairs.dataset import PairDataset
from safetypairs.pairs.export import export_dataset
from safetypairs.pairs.merge import merge_datasets
from safetypairs.pairs.report import write_report

HEADER = {"run": {"seed": 1}}
LEGACY = Path(__file__).parent / "data" / "pairs_v1"
UNITS = 400


def start_writer(root: Path) -> subprocess.Popen:
    return start_writer_at(str(root), UNITS)


def test_a_writer_killed_anywhere_resumes_without_duplicates(tmp_path: Path) -> None:
    """SIGKILL at random moments, resume, and again: every unit ends up committed once, with
    both of its records (the old code wrote a unit's rejected record again after a kill
    between its two manifest writes)."""
    rng = random.Random(16)
    kills = rounds = 0
    while kills < 40 and rounds < 40:  # rounds until 40 kills, whatever the disk's speed
        root = tmp_path / f"ds{rounds}"
        rounds += 1
        kills += kill_mid_run(lambda root=root: start_writer(root), rng, 0.05, 40 - kills)
        assert start_writer(root).wait(60) == 0  # the resume that finishes the round
        ids = Counter(r.id for r in PairDataset.read(root).pairs())
        assert [i for i, n in ids.items() if n > 1] == []  # no duplicate ids
        assert len(ids) == 2 * UNITS
    assert kills >= 40, f"the writer finished {UNITS} units too fast to be killed mid-run"


def test_a_dataset_from_before_the_journal_reads_whole_and_gets_one(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(LEGACY, tmp_path / "legacy"))
    before = {to_line(r) for r in PairDataset.read(copy).records()}
    assert before and not (copy / "commits.jsonl").exists()
    with open(copy / "rejected.jsonl", "a") as f:
        f.write('{"status": "rejected", "id": "cut by a ki')  # an old writer killed mid-line
    new = PairRecord(status="accepted", id="new", unit="n")
    with PairDataset.open(copy) as ds:
        ds.commit([new])
    assert {to_line(r) for r in PairDataset.read(copy).records()} == before | {to_line(new)}
    assert len((copy / "commits.jsonl").read_text().splitlines()) == 2  # the start, one unit


def test_a_second_writer_is_refused_at_once_naming_the_holder(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom safetypairs.pairs.dataset import PairDataset\n"
            "ds = PairDataset.open(sys.argv[1], {'run': {}})\nprint('ready', flush=True)\n"
            "time.sleep(600)",
            str(root),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        images = tmp_path / "images"
        images.mkdir()
        Image.new("RGB", (8, 8)).save(images / "0.png")
        # No services listen at these addresses: the lock is taken before anything is asked.
        generate = [sys.executable, "-m", "safetypairs.cli", "generate", "--no-progress"]
        generate += [str(images), "--out", str(root), "--max-backoff", "1"]
        generate += ["--judge-target", "127.0.0.1:9", "--edit-target", "127.0.0.1:9"]
        started = time.monotonic()
        second = subprocess.run(generate, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert time.monotonic() - started < 10
        err = second.stderr.strip()
        assert err.startswith("error (FolderInUse): ") and "\n" not in err, err
        assert str(root) in err and f"pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the lock with its holder: the next writer gets past it.
    after = subprocess.run(generate, capture_output=True, text=True, timeout=60)
    assert "FolderInUse" not in after.stderr


# -- F: symbolic links and tampered images -------------------------------------------------


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, str]:
    """A sample dataset and the path of an image an accepted pair uses."""
    root = tmp_path / "ds"
    records = build_sample_dataset(root)
    return root, records[0]["b"]["image"]


def assert_refused(exc: pytest.ExceptionInfo[SafetyPairsError], path: Path, why: str) -> None:
    assert exc.value.kind == "TamperedFile", exc.value
    assert str(path) in exc.value.message and why in exc.value.message, exc.value.message


def test_export_and_merge_refuse_an_image_that_is_a_symbolic_link(
    dataset: tuple[Path, str], tmp_path: Path
) -> None:
    root, rel = dataset
    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4), "white").save(secret)  # a real image: only the link gives it away
    (root / rel).unlink()
    (root / rel).symlink_to(secret)
    out = tmp_path / "out.parquet"
    with pytest.raises(SafetyPairsError) as exc:
        export_dataset(root, out, "parquet")
    assert_refused(exc, root / rel, "symbolic link")
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(SafetyPairsError) as exc:
        merge_datasets(tmp_path / "merged", [root])
    assert_refused(exc, root / rel, "symbolic link")
    assert not (tmp_path / "merged" / rel).exists()


def test_export_refuses_an_image_whose_bytes_do_not_match_its_name(
    dataset: tuple[Path, str], tmp_path: Path
) -> None:
    root, rel = dataset
    Image.new("RGB", (4, 4), "black").save(root / rel)  # another valid PNG in its place
    with pytest.raises(SafetyPairsError) as exc:
        export_dataset(root, tmp_path / "out.parquet", "parquet")
    assert_refused(exc, root / rel, "do not match the SHA-256")


def test_export_refuses_a_file_that_is_no_image(tmp_path: Path) -> None:
    """Named by its true hash, so only decoding it tells."""
    root = tmp_path / "ds"
    with PairDataset.open(root, HEADER) as ds:
        rel = ds.put_image(b"#!/bin/sh\necho these bytes are no image\n")
        ds.commit([PairRecord(status="accepted", id="p", unit="u", b=Member(image=rel))])
    with pytest.raises(SafetyPairsError) as exc:
        export_dataset(root, tmp_path / "out.parquet", "parquet")
    assert_refused(exc, root / rel, "is not an image")


def test_report_shows_a_link_and_a_tampered_image_as_refused(
    dataset: tuple[Path, str], tmp_path: Path
) -> None:
    root, rel = dataset
    (root / rel).unlink()
    (root / rel).symlink_to("/etc/passwd")
    page = write_report(root).read_text()
    assert f'src="{rel}"' not in page  # not linked: the browser would follow the link
    assert f"refused image {rel}" in page and "symbolic link" in page


# -- H: a full disk -------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of its own (mount needs root, which the tests and CI have)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Use up every free block; the filler file, to delete to make room again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob(".tmp-*")]


def test_report_on_a_full_disk_is_one_line_and_leaves_nothing(small_disk: Path) -> None:
    root = small_disk / "ds"
    build_sample_dataset(root)
    fill(small_disk)
    result = subprocess.run(
        [sys.executable, "-m", "safetypairs.cli", "report", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    err = result.stderr.strip()
    assert err.startswith("error (DiskFull): ") and "\n" not in err, err
    assert str(root / ".tmp-report.html") in err
    assert leftovers(root) == [] and not (root / "report.html").exists()


def test_writes_on_a_full_disk_fail_whole_and_name_the_file(small_disk: Path) -> None:
    root = small_disk / "ds"
    with PairDataset.open(root, HEADER) as ds:
        ds.commit([PairRecord(status="accepted", id="before", unit="u0")])
        filler = fill(small_disk)
        with pytest.raises(SafetyPairsError) as exc:
            ds.put_image(os.urandom(64 << 10))
        assert exc.value.kind == "DiskFull" and str(root / "images") in exc.value.message
        big = PairRecord(status="rejected", id="big", unit="u1", instruction="x" * (64 << 10))
        with pytest.raises(SafetyPairsError) as exc:
            ds.commit([big, PairRecord(status="accepted", id="after", unit="u1")])
        assert exc.value.kind == "DiskFull" and str(root) in exc.value.message
        assert leftovers(root) == []
        assert [r.id for r in PairDataset.read(root).pairs()] == ["before"]  # nothing of u1
        filler.unlink()
        ds.commit([big, PairRecord(status="accepted", id="after", unit="u1")])
    assert sorted(r.id for r in PairDataset.read(root).pairs()) == ["after", "before", "big"]
    for name in ("pairs.jsonl", "rejected.jsonl"):
        for line in (root / name).read_text().splitlines():
            json.loads(line)  # the failed append left no fragment behind
