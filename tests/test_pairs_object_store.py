"""Pair datasets in an object store (issue 20): a real S3-API server on loopback (moto's
standalone server, tests/s3_server.py) holds them. Writers are real processes killed with
SIGKILL; the lease is held by another real process; wrong credentials, a missing bucket and a
store that is not there are met by the command line as a user runs it."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from s3_server import S3Server, serving
from sample_pairs import build_sample_dataset
from tcp_proxy import Proxy
from writers import kill_mid_run
from writers import start_writer as start_writer_at

from safetypairs.cli.common import local_pair_datasets
from safetypairs.contract.errors import FolderInUse, InvalidInput
from safetypairs.contract.pair_record import PairRecord, to_line
from safetypairs.pairs.export import export_dataset, import_dataset
from safetypairs.pairs.merge import merge_datasets
from safetypairs.pairs.report import write_report
from safetypairs.pairs.store import open_dataset, read_dataset
from safetypairs.serving.launcher import free_port

HEADER = {"run": {"seed": 1}}
UNITS = 400


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """The server, and this process's environment pointing at it (as a pod's would)."""
    with serving(tmp_path_factory.mktemp("s3")) as server:
        yield server


_counter = iter(range(1_000_000))


@pytest.fixture
def url(s3: S3Server) -> str:
    """A fresh dataset location in the bucket."""
    return f"s3://pairs/t{next(_counter)}-{random.randrange(1 << 30):x}"


def unit_records(n: int) -> list[PairRecord]:
    unit = f"u{n}"
    return [
        PairRecord(status="rejected", id=f"{unit}-0", unit=unit, reasons=("no_flip",)),
        PairRecord(status="accepted", id=f"{unit}-1", unit=unit),
    ]


def test_commits_read_back_resume_and_refuse_other_settings(url: str) -> None:
    with open_dataset(url, HEADER) as ds:
        image = ds.put_image(b"\x89PNG not really")
        for n in range(3):
            ds.commit(unit_records(n))
    ds = read_dataset(url)
    assert ds.done_units() == {"u0", "u1", "u2"}
    assert [r.id for r in ds.pairs("accepted")] == ["u0-1", "u1-1", "u2-1"]
    assert ds.read_image(image) == b"\x89PNG not really" and ds.image_names() == [image]
    with pytest.raises(InvalidInput, match=r"other settings \(seed: 1 in the dataset, 2 now\)"):
        open_dataset(url, {"run": {"seed": 2}})
    with open_dataset(url, HEADER) as again:  # a resume on a machine with an empty disk
        assert again.done_units() == {"u0", "u1", "u2"}
        again.commit(unit_records(3))
    assert len(list(read_dataset(url).records())) == 8


def start_writer(url: str, lease_s: float = 2.5, units: int = UNITS) -> subprocess.Popen[str]:
    """A writer with a short lease: each restart waits out the killed one's."""
    return start_writer_at(url, units, lease_s)


def test_a_writer_killed_anywhere_resumes_without_duplicates(url: str) -> None:
    """SIGKILL at random moments (mid-put included), resume on a fresh process (nothing
    local survives), and again: every unit is committed once, with both of its records."""
    rng = random.Random(20)
    kills = kill_mid_run(lambda: start_writer(url), rng, 0.4, 8)
    assert start_writer(url).wait(120) == 0
    ids = Counter(r.id for r in read_dataset(url).pairs())
    assert [i for i, n in ids.items() if n > 1] == []
    assert len(ids) == 2 * UNITS
    assert kills >= 4, f"the writer finished {UNITS} units too fast to be killed mid-run"


def test_a_live_writer_is_refused_within_a_third_of_its_lease(url: str) -> None:
    """The holder renews every third of its lease: a newcomer sees the renewal and is refused
    instead of taking the lease over; once the holder is killed, its lease expires and the
    newcomer takes it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from safetypairs.pairs.store import open_dataset\n"
            "ds = open_dataset(sys.argv[1], {'run': {'seed': 1}}, lease_s=3.0)\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n",
            url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        started = time.monotonic()
        with pytest.raises(FolderInUse, match=r"being written by another process"):
            open_dataset(url, HEADER, lease_s=3.0)
        assert time.monotonic() - started < 30  # refused, not waited on for ever
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with open_dataset(url, HEADER, lease_s=3.0) as ds:  # the killed holder's lease expired
        ds.commit(unit_records(0))
    assert read_dataset(url).done_units() == {"u0"}


def test_a_unit_a_second_writer_repeated_counts_once(url: str, s3: S3Server) -> None:
    """Should two writers ever commit one unit (one paused past its lease), readers keep the
    first segment that holds it."""
    with open_dataset(url, HEADER) as ds:
        ds.commit(unit_records(0))
        ds.commit(unit_records(1))
    body = "".join(to_line(r) + "\n" for r in unit_records(1)).encode()
    bucket, prefix = url.removeprefix("s3://").split("/", 1)
    s3.client().put_object(Bucket=bucket, Key=f"{prefix}/segments/000000099.jsonl", Body=body)
    ids = Counter(r.id for r in read_dataset(url).records())
    assert ids == Counter({"u0-0": 1, "u0-1": 1, "u1-0": 1, "u1-1": 1})


def test_merge_report_export_and_import_through_the_store(url: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    build_sample_dataset(local)
    count = len(list(read_dataset(local).records()))  # pairs, candidates and a failed unit
    assert merge_datasets(url, [local])["added"] == count
    assert merge_datasets(url, [local]) == {"added": 0, "duplicates": count}
    on_s3 = read_dataset(url)
    assert sorted(to_line(r) for r in on_s3.records()) == sorted(
        to_line(r) for r in read_dataset(local).records()
    )
    for rel in on_s3.image_names():
        assert on_s3.read_image(rel) == read_dataset(local).read_image(rel)
    page = write_report(url)
    assert page == f"{url}/report.html"
    html = read_dataset(url).store.read("report.html").decode()  # type: ignore[attr-defined]
    assert html.count('class="card') == len(list(on_s3.pairs()))
    # Parquet export onto the store; `datasets` loads it.
    summary = export_dataset(url, f"{url}-export/pairs.parquet", "parquet")
    with pytest.raises(InvalidInput, match="exists"):
        export_dataset(url, f"{url}-export/pairs.parquet", "parquet")
    import fsspec
    from datasets import load_dataset

    parquet = tmp_path / "pairs.parquet"
    fsspec.filesystem("s3").get(f"{url}-export/pairs.parquet", str(parquet))
    loaded = load_dataset("parquet", data_files=str(parquet), split="train")
    assert len(loaded) == summary["rows"] == len(list(on_s3.pairs("accepted")))
    assert loaded[0]["a_image"].size[0] > 0  # an image column, decoded
    # Import back into a new location on the store: the same accepted pairs.
    imported = import_dataset(parquet, f"{url}-imported")
    assert imported["accepted"] == summary["rows"]
    assert {r.id for r in read_dataset(f"{url}-imported").pairs()} == {
        r.id for r in on_s3.pairs("accepted")
    }


def test_pairs_on_the_store_are_read_from_a_local_copy(url: str, tmp_path: Path) -> None:
    """evaluate / train-guard / confound-check read `--pairs s3://...` from a local copy."""
    local = tmp_path / "local"
    build_sample_dataset(local)
    merge_datasets(url, [local])
    args = type("Args", (), {"pairs": [url, str(local / "pairs.jsonl")]})()
    with local_pair_datasets(args):
        copy, given = Path(args.pairs[0]), args.pairs[1]
        assert copy.name == "pairs.jsonl" and given == str(local / "pairs.jsonl")
        assert copy.read_text().splitlines() == (local / "pairs.jsonl").read_text().splitlines()
    assert args.pairs == [url, str(local / "pairs.jsonl")] and not copy.exists()


def one_line(result: subprocess.CompletedProcess[str], kind: str) -> str:
    err = result.stderr.strip()
    assert err.startswith(f"error ({kind}): ") and "\n" not in err, err
    return err


def test_wrong_credentials_a_missing_bucket_and_no_store_each_say_so(
    s3: S3Server, url: str, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    build_sample_dataset(local)
    merge_datasets(url, [local])
    # Wrong credentials: the store refuses them; exit 2 (a retry would meet them again).
    wrong = s3.env(AWS_SECRET_ACCESS_KEY="not-the-secret")
    result = run_cli("report", url, timeout=120, env=wrong)
    assert result.returncode == 2
    err = one_line(result, "Unauthenticated")
    assert url in err and "AWS_ACCESS_KEY_ID" in err
    result = run_cli("merge-datasets", f"{url}-m", str(local), timeout=120, env=wrong)
    assert result.returncode == 2 and one_line(result, "Unauthenticated")
    # A bucket that is not there: exit 2, naming it, for a reader and for a writer.
    result = run_cli("report", "s3://no-such-bucket/ds", timeout=120, env=s3.env())
    assert result.returncode == 2
    assert "bucket" in one_line(result, "NotFound") and "no-such-bucket" in result.stderr
    result = run_cli(
        "merge-datasets", "s3://no-such-bucket/ds", str(local), timeout=120, env=s3.env()
    )
    assert result.returncode == 2 and "no-such-bucket" in one_line(result, "NotFound")
    # Nobody listening at the endpoint: a storage failure, exit 3 (a retry may succeed).
    gone = s3.env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_MAX_ATTEMPTS="2")
    result = run_cli("report", url, timeout=300, env=gone)
    assert result.returncode == 3
    assert url in one_line(result, "StorageError")
    # None of this committed anything: the refused merge made no dataset.
    assert len(list(read_dataset(url).records())) == len(list(read_dataset(local).records()))
    with pytest.raises(InvalidInput, match="not a pair dataset"):
        read_dataset(f"{url}-m")


def test_a_store_that_goes_away_mid_merge_commits_nothing_twice(
    tmp_path: Path, s3: S3Server
) -> None:
    """The path to the store is cut while a merge of many sources runs: the merge stops with
    one StorageError line and exit 3; with the path back, the same command adds the sources
    the first run had not committed, and none twice."""
    sources = []
    for i in range(40):
        root = tmp_path / f"src{i}"
        with open_dataset(root, HEADER) as ds:
            ds.put_image(bytes([i]) * 20000)
            ds.commit(unit_records(i))
        sources.append(str(root))
    s3.create_bucket("cut")
    # The path goes away after about a quarter of the merge's uploads (each source sends a
    # 20 kB image and its records), wherever the merge is when that happens.
    proxy = Proxy(int(s3.endpoint.rsplit(":", 1)[1])).start(cut_after_bytes=250_000)
    env = s3.env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_MAX_ATTEMPTS="2")
    command = [sys.executable, "-m", "safetypairs.cli", "merge-datasets", "s3://cut/merged"]
    try:
        process = subprocess.Popen(
            [*command, *sources], stderr=subprocess.PIPE, text=True, env={**os.environ, **env}
        )
        proxy.wait_cut(300)
        assert process.wait(300) == 3
        assert process.stderr is not None
        err = process.stderr.read().strip()
        assert err.startswith("error (StorageError): s3://cut/merged") and "\n" not in err, err
        before = len(list(read_dataset("s3://cut/merged").records()))
        assert 0 < before < 80, f"{before} of 80 records committed before the cut"
        proxy.start()
        result = run_cli("merge-datasets", "s3://cut/merged", *sources, timeout=300, env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"added": 80 - before, "duplicates": before}
    finally:
        proxy.kill()
    ids = Counter(r.id for r in read_dataset("s3://cut/merged").records())
    assert len(ids) == 80 and set(ids.values()) == {1}


def test_review_refuses_a_dataset_in_a_store_naming_the_way_out(capsys) -> None:
    """The review log is appended: reviews work on folders, and the message says how to get
    one."""
    from safetypairs.cli import main

    for command in ("review", "review-stats"):
        assert main([command, "s3://pairs/somewhere"]) == 2
        err = capsys.readouterr().err
        assert "merge-datasets FOLDER s3://pairs/somewhere" in err, err


def test_plain_paths_and_file_urls_are_folders(tmp_path: Path) -> None:
    """A folder keeps its journal and flock whichever way it is named."""
    with open_dataset(f"file://{tmp_path}/ds", HEADER) as ds:
        ds.commit(unit_records(0))
    assert (tmp_path / "ds" / "commits.jsonl").is_file() and (tmp_path / "ds" / ".lock").exists()
    assert (
        read_dataset(tmp_path / "ds").done_units()
        == read_dataset(str(tmp_path / "ds")).done_units()
        == {"u0"}
    )
