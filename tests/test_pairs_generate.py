"""Pair generation end to end: the real judge and edit services on loopback (embedded
defaults: untrained), the generator as a user runs it (CLI, its own process), and the dataset
it leaves on disk.

(Over 400 lines on purpose: every test here shares one pair stack of real services, started
once per module; splitting the file would start it again per file.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import free_port
from PIL import Image

from safetypairs.cli import main as cli_main
from safetypairs.client import EditClient, JudgeClient
from safetypairs.contract.pair_record import PairRecord, PromptVersions, to_json, to_line
from safetypairs.contract.policy import parse_policy
from safetypairs.contract.training_data import read_pairs
from safetypairs.pairs.config import NULL_INSTRUCTION, derive_seed
from safetypairs.pairs.criteria import CHANGED_TOO_MUCH, Criteria, rejection_reasons
from safetypairs.pairs.dataset import PairDataset, sha256
from safetypairs.serving.launcher import EDIT_SERVICE, ServiceProcess

pytestmark = pytest.mark.slow

POLICY_YAML = """name: two
version: "1"
categories:
  - {code: W, name: Weapons, should_not: [Show a weapon held to threaten someone.]}
  - {code: D, name: Drugs, should_not: [Show illegal drug use.]}
"""
SEED = 7


@pytest.fixture(scope="module")
def sources(tmp_path_factory, sample_photos) -> Path:
    """Five small real photos and one file that is no image."""
    folder = tmp_path_factory.mktemp("sources")
    for i, path in enumerate(sample_photos):
        Image.open(path).convert("RGB").resize((64, 64)).save(folder / f"{i}.png")
    Image.open(sample_photos[0]).convert("RGB").crop((0, 0, 200, 200)).resize((64, 64)).save(
        folder / "4.png"
    )
    (folder / "broken.png").write_bytes(b"these bytes are no image")
    return folder


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "two.yaml"
    path.write_text(POLICY_YAML)
    return path


@pytest.fixture(scope="module")
def threshold(pair_stack, sources) -> float:
    """The untrained judge gives every image P(unsafe) near 0.49, differing in the fourth
    decimal. A threshold at the median of the kept images' values (computed exactly as the
    generator will: the null edit with its derived seed, then the judge) puts some on each
    side, so the run exercises both directions and both outcomes."""
    judge_svc, edit_svc = pair_stack
    values = []
    with EditClient(edit_svc.grpc_target) as editor, JudgeClient(judge_svc.grpc_target) as judge:
        for path in sorted(sources.glob("[0-9].png")):
            data = path.read_bytes()
            seed = derive_seed(SEED, sha256(data), "null-edit")
            kept = editor.edit(data, NULL_INSTRUCTION, seed=seed, steps=2).image
            values.append(judge.rate(kept, policy=parse_policy(POLICY_YAML)).verdict.probability)
    ordered = sorted(values)
    middle = len(ordered) // 2
    return (ordered[middle - 1] + ordered[middle]) / 2  # between two values, equal to none


def generate_args(pair_stack, sources, policy_file, out, *extra) -> list[str]:
    judge_svc, edit_svc = pair_stack
    return [
        "generate",
        str(sources),
        "--out",
        str(out),
        "--policy",
        str(policy_file),
        "--judge-target",
        judge_svc.grpc_target,
        "--edit-target",
        edit_svc.grpc_target,
        "--seed",
        str(SEED),
        "--proposals",
        "2",
        "--attempts",
        "2",
        "--edit-steps",
        "2",
        "--max-backoff",
        "5",
        "--no-progress",
        *extra,
    ]


def loose(threshold: float) -> list[str]:
    """Criteria the untrained stack can meet: the calibrated threshold, no margin, and no
    preservation bound (the untrained editor repaints the whole image)."""
    return [
        "--threshold",
        f"{threshold:.9f}",
        "--margin",
        "0",
        "--max-changed",
        "1",
        "--min-ssim",
        "0",
    ]


@pytest.fixture(scope="module")
def reference(pair_stack, sources, policy_file, threshold, tmp_path_factory) -> Path:
    """An uninterrupted run with the loose criteria, in its own process."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    assert (
        run_cli(generate_args(pair_stack, sources, policy_file, out, *loose(threshold))).wait(300)
        == 1
    )  # broken.png
    return out


def without_failures(root: Path) -> list[str]:
    return [r for r in content(root) if '"status": "failed"' not in r]


def content(root: Path) -> list[str]:
    """A dataset's records without their timings, in a fixed order."""
    rows = []
    for record in PairDataset.read(root).records():
        if isinstance(record, PairRecord):
            record = replace(record, timings=None)
        rows.append(to_line(record))
    return sorted(rows)


RECORD_FIELDS = {
    "status",
    "id",
    "unit",
    "attempt",
    "candidate",
    "final",
    "source",
    "direction",
    "category",
    "instruction",
    "action",
    "element",
    "seeds",
    "a",
    "b",
    "edited",
    "artifact_matched",
    "models",
    "prompt_versions",
    "similarity",
    "timings",
    "reasons",
}


def check_record(record: PairRecord, root: Path, criteria: Criteria) -> None:
    """The manifest schema, and that the decision recorded is the one the rules give."""
    assert set(to_json(record)) == RECORD_FIELDS, set(to_json(record)) ^ RECORD_FIELDS
    assert record.direction in ("to_safe", "to_unsafe") and record.category in ("W", "D")
    assert record.edited == "b" and record.artifact_matched == "null-edit"
    assert record.models.judge_untrained and record.models.edit_untrained
    assert record.prompt_versions == PromptVersions(rate="rate@1", propose="propose@1")
    assert set(to_json(record.seeds)) == {"propose", "edit", "null_edit"}
    for member in (record.a, record.b):
        image = root / member.image
        assert image.is_file() and image.name == sha256(image.read_bytes()) + ".png"
        assert 0.0 <= member.p_unsafe <= 1.0
    assert sorted(record.a.labels + record.b.labels) == [record.category]
    reasons = rejection_reasons(
        criteria,
        record.direction,
        record.category,
        record.a.rating,
        record.b.rating,
        record.similarity,
    )
    assert tuple(reasons) == record.reasons
    assert (record.status == "accepted") == (not reasons)
    assert set(record.timings.stages()) == {"rate_s", "propose_s", "edit_s", "total_s"}


def test_generation_end_to_end(pair_stack, sources, policy_file, threshold, tmp_path, capsys):
    out = tmp_path / "ds"
    code = cli_main(generate_args(pair_stack, sources, policy_file, out, *loose(threshold)))
    summary = json.loads(capsys.readouterr().out)
    assert code == 1  # broken.png failed, and the exit code says so
    ds = PairDataset.read(out)
    criteria = Criteria(threshold, 0.0, 0.0, 1.0)
    candidates = [r for r in ds.pairs() if r.instruction is not None]
    assert candidates
    for record in candidates:
        check_record(record, out, criteria)
    accepted = list(ds.pairs("accepted"))
    assert accepted and summary["accepted"] == len(accepted)
    assert {r.direction for r in candidates} == {"to_safe", "to_unsafe"}
    # Every unit ended: with an accepted pair, or rejected on its last attempt.
    units = {r.unit for r in candidates}
    assert units == ds.done_units() - {r.unit for r in ds.pairs() if r.instruction is None}
    # The broken file failed alone, with the judge's reason.
    (failed,) = list(ds.failures())
    assert failed.source.path.endswith("broken.png")
    assert failed.error.kind == "InvalidInput"
    assert "not a supported image" in failed.error.message
    # The accepted pairs are a training set as they are.
    pairs = read_pairs(out / "pairs.jsonl", parse_policy(POLICY_YAML))
    assert len(pairs) == len(accepted)


def test_an_edit_that_changes_everything_is_rejected_for_preservation(
    pair_stack, sources, policy_file, threshold, tmp_path, capsys
):
    """The untrained editor repaints the whole image: with the default preservation rules
    (at most 35% changed) no candidate can pass, whatever the judge says."""
    out = tmp_path / "ds"
    args = ["--threshold", repr(threshold), "--margin", "0", "--attempts", "1"]
    cli_main(generate_args(pair_stack, sources, policy_file, out, *args))
    capsys.readouterr()
    ds = PairDataset.read(out)
    candidates = [r for r in ds.pairs("rejected") if r.instruction is not None]
    assert candidates and not list(ds.pairs("accepted"))
    for r in candidates:
        assert CHANGED_TOO_MUCH in r.reasons and r.similarity.changed_fraction > 0.35


def run_cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "safetypairs.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_killed_run_resumes_to_the_same_dataset(
    pair_stack, sources, policy_file, threshold, reference, tmp_path
):
    resumed = tmp_path / "resumed"
    process = run_cli(generate_args(pair_stack, sources, policy_file, resumed, *loose(threshold)))
    wait_for_a_commit(process, resumed)
    os.killpg(process.pid, signal.SIGKILL)  # mid-run: other units are in flight
    process.wait()
    partial = content(resumed)
    assert 0 < len(partial) < len(content(reference))
    assert (
        run_cli(generate_args(pair_stack, sources, policy_file, resumed, *loose(threshold))).wait(
            300
        )
        == 1
    )
    final = without_failures(resumed)
    ids = [json.loads(r)["id"] for r in final]
    assert len(ids) == len(set(ids))  # no duplicated pair or candidate
    assert final == without_failures(reference)
    for name in ("pairs.jsonl", "rejected.jsonl", "failed.jsonl"):
        for line in (resumed / name).read_text().splitlines():
            json.loads(line)  # no half-written record


def test_a_second_generator_into_the_same_folder_is_refused(
    pair_stack, sources, policy_file, threshold, tmp_path
):
    """Two writers used to both exit 0 with every record twice; the second now fails at once,
    naming the folder and the first one's pid, and the first one finishes undisturbed."""
    out = tmp_path / "ds"
    # More edit steps than the other tests: the first run must still hold the folder when the
    # second starts, however fast the machine (it came second once on an idle machine).
    slow = ("--edit-steps", "8")
    args = generate_args(pair_stack, sources, policy_file, out, *loose(threshold), *slow)
    first = run_cli(args)
    try:
        wait_for_the_lock(first, out)
        second = run_cli(args)
        assert second.wait(30) == 2
        err = second.stderr.read().decode().strip()
        assert err.startswith("error (FolderInUse): ") and "\n" not in err, err
        assert str(out) in err and f"pid {first.pid}" in err
        assert first.wait(300) == 1  # broken.png only
    finally:
        first.kill()
    ids = [json.loads(r)["id"] for r in without_failures(out)]
    assert len(ids) == len(set(ids))


def test_a_full_disk_stops_generation_with_one_line(
    pair_stack, sources, policy_file, threshold, tmp_path
):
    """A 64 KiB tmpfs (root mounts it; CI runs as root) fills up after a few images."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        out = disk / "ds"
        process = run_cli(generate_args(pair_stack, sources, policy_file, out, *loose(threshold)))
        assert process.wait(300) == 3
        err = process.stderr.read().decode().strip()
        assert err.startswith("error (DiskFull): cannot write ") and "\n" not in err, err
        assert str(out) in err
        assert list(out.rglob(".tmp-*")) == []
        records = [json.loads(r) for r in content(out)]  # what was committed reads whole
        assert len({r.get("id") or r["unit"] for r in records}) == len(records)
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def editor_env(home: Path, port: int) -> dict[str, str]:
    """An editor like pair_stack's (same steps and threads: thread count changes the floating
    point sums, so the pixels), on a fixed gRPC port it can be restarted on."""
    return {
        "SAFETYPAIRS_EDIT_MODEL": "",
        "SAFETYPAIRS_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "SAFETYPAIRS_EDIT_STEPS": "2",
        "SAFETYPAIRS_TORCH_THREADS": "1",
        "SAFETYPAIRS_GRPC_PORT": str(port),
    }


def wait_for_the_lock(process: subprocess.Popen, dataset: Path) -> None:
    """Until `process` holds the dataset's writer lock (its pid is in DATASET/.lock)."""
    deadline = time.monotonic() + 120
    lock = dataset / ".lock"
    while not (lock.exists() and lock.read_text().strip() == str(process.pid)):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the writer lock was not taken in 120 s"
        time.sleep(0.05)


def wait_for_a_commit(process: subprocess.Popen, dataset: Path) -> None:
    deadline = time.monotonic() + 120
    manifest = dataset / "rejected.jsonl"
    while not (manifest.exists() and manifest.stat().st_size):
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no unit committed in 120 s"
        time.sleep(0.05)


def test_an_editor_restarted_mid_run_is_waited_for_and_nothing_is_lost(
    pair_stack, sources, policy_file, threshold, reference, default_editor_home, tmp_path
):
    """The edit service stops mid-run (a rolling update) and comes back on the same address:
    the generator backs off, reconnects, and ends with the same dataset as without the
    restart, no unit failed and none done twice."""
    port = free_port()
    env = editor_env(default_editor_home, port)
    editor = ServiceProcess.start(EDIT_SERVICE, tmp_path / "edit-1.log", env)
    out = tmp_path / "ds"
    args = generate_args(pair_stack, sources, policy_file, out, *loose(threshold))
    args[args.index("--edit-target") + 1] = f"127.0.0.1:{port}"
    args[args.index("--max-backoff") + 1] = "120"
    args.remove("--no-progress")
    process = run_cli(args)
    try:
        wait_for_a_commit(process, out)
        assert editor.stop() == 0
        time.sleep(1.0)  # calls made now find nobody there
        editor = ServiceProcess.start(EDIT_SERVICE, tmp_path / "edit-2.log", env)
        assert process.wait(300) == 1  # broken.png only
    finally:
        editor.stop()
    summary = json.loads(process.stdout.read())
    assert summary["failed"] == 1 and summary["backoffs"] > 0
    assert without_failures(out) == without_failures(reference)


def test_resuming_with_other_arguments_is_refused(
    pair_stack, sources, policy_file, threshold, tmp_path, capsys
):
    out = tmp_path / "ds"
    cli_main(
        generate_args(pair_stack, sources, policy_file, out, *loose(threshold), "--attempts", "1")
    )
    capsys.readouterr()
    code = cli_main(generate_args(pair_stack, sources, policy_file, out, *loose(threshold)))
    assert code == 2 and "attempts" in capsys.readouterr().err


def test_an_editor_that_dies_for_good_fails_the_rest_with_a_reason(
    pair_stack, sources, policy_file, threshold, default_editor_home, tmp_path
):
    """The edit service stops mid-run and does not come back: once the backoff is spent, each
    remaining unit fails with the reason, the committed work stays, and a later run with the
    service back would redo only the failed units."""
    port = free_port()
    env = editor_env(default_editor_home, port)
    editor = ServiceProcess.start(EDIT_SERVICE, tmp_path / "edit.log", env)
    out = tmp_path / "ds"
    args = generate_args(pair_stack, sources, policy_file, out, *loose(threshold))
    args[args.index("--edit-target") + 1] = f"127.0.0.1:{port}"
    process = run_cli(args)
    try:
        wait_for_a_commit(process, out)
    finally:
        editor.stop()
    assert process.wait(300) == 1
    failed = list(PairDataset.read(out).failures())
    assert len(failed) >= 2  # broken.png and at least one unit the editor did not serve
    # broken.png fails as InvalidInput when the judge reached it before the editor went away,
    # else, unreached, with the others (its place in the queue varies with the machine's speed).
    kinds = {f.error.kind for f in failed}
    reasons = [(f.error.kind, f.error.message) for f in failed]
    assert "Unavailable" in kinds and kinds <= {"InvalidInput", "Unavailable"}, reasons
    assert all(f.error.message for f in failed)
    assert content(out)  # what was committed before is still there


def test_shards_merge_into_the_whole_without_duplicates(
    pair_stack, sources, policy_file, threshold, reference, tmp_path, capsys
):
    shards = []
    for i in range(2):
        shards.append(tmp_path / f"shard{i}")
        cli_main(
            generate_args(
                pair_stack,
                sources,
                policy_file,
                shards[-1],
                *loose(threshold),
                "--shard",
                f"{i}/2",
            )
        )
    assert all(content(s) for s in shards)  # both shards got work
    merged = tmp_path / "merged"
    assert cli_main(["merge-datasets", str(merged), *map(str, shards)]) == 0
    assert cli_main(["merge-datasets", str(merged), *map(str, shards)]) == 0  # again: no-op
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1])["added"] == 0
    assert without_failures(merged) == without_failures(reference)


def test_a_service_down_fails_its_units_with_a_reason(
    pair_stack, sources, policy_file, tmp_path, capsys
):
    out = tmp_path / "ds"
    args = generate_args(pair_stack, sources, policy_file, out, "--max-backoff", "1")
    args[args.index("--edit-target") + 1] = f"127.0.0.1:{free_port()}"
    # The edit service is asked for its model first: nothing can start without it.
    assert cli_main(args) == 2
    assert "Unavailable" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("policy_text", "needle"),
    [(None, "cannot read policy file"), ("categories: [\n", "policy")],
)
def test_a_missing_or_broken_policy_is_named_before_anything_starts(
    sources, tmp_path, capsys, policy_text, needle
):
    policy = tmp_path / "policy.yaml"
    if policy_text is not None:
        policy.write_text(policy_text)
    out = tmp_path / "ds"
    args = ["generate", str(sources), "--policy", str(policy), "--out", str(out)]
    assert cli_main([*args, "--categories", "O6", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "InvalidInput" in err and needle in err and str(policy) in err
    assert not out.exists()  # nothing written
