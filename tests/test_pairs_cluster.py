"""Pair generation at cluster scale on loopback (issue 20): the shards of a Kubernetes Indexed
Job as real processes (JOB_COMPLETION_INDEX=0..2), a real S3-API server holding their
datasets, the tiny judge and editor services with two judge replicas behind one target
(`ipv4:a,b`, round robin), one shard SIGKILLed mid-run and restarted with an empty local disk,
then the merge step. The merged dataset must equal a single-process run over the same inputs.
Also: the SDK spreads calls over replicas and keeps going when one of them dies.

The services are the embedded defaults (untrained): what is compared is the pipeline's
bookkeeping (ids, units, seeds, verdicts, images), which does not depend on training.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import test_pairs_generate as single_host
from conftest import run_cli, start_judge_service
from s3_server import S3Server, serving
from tcp_proxy import Proxy

from safetypairs.client import JudgeClient
from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.pair_record import PairRecord, to_line
from safetypairs.pairs.dataset import sha256
from safetypairs.pairs.store import read_dataset
from safetypairs.serving.launcher import ServiceProcess

pytestmark = pytest.mark.slow
# The single-host tests' inputs and calibrated threshold (module fixtures, shared by name).
sources = single_host.sources
policy_file = single_host.policy_file
threshold = single_host.threshold
generate_args, loose = single_host.generate_args, single_host.loose
SHARDS = 3
LEASE_S = "4"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with serving(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def second_judge(pair_stack, sp_home, tmp_path_factory) -> Iterator[ServiceProcess]:
    """A second replica of pair_stack's judge: same model, same settings, its own port."""
    log = tmp_path_factory.mktemp("logs") / "judge-2.log"
    judge = start_judge_service(sp_home, log, {"SAFETYPAIRS_MAX_BATCH_SIZE": "1"})
    yield judge
    judge.stop()


def replicas(pair_stack, second_judge) -> str:
    """Both judges behind one target, in gRPC's address-list form."""
    return f"ipv4:{pair_stack[0].grpc_target},{second_judge.grpc_target}"


def cli_args(pair_stack, sources, policy_file, threshold, out: str, judge: str) -> list[str]:
    args = generate_args(pair_stack, sources, policy_file, out, *loose(threshold))
    args[args.index("--judge-target") + 1] = judge
    return [*args, "--lease-seconds", LEASE_S]


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "safetypairs.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        cwd=cwd,
        start_new_session=True,
    )


def content(url: str) -> list[str]:
    """A dataset's records without their timings (and without failures), sorted."""
    rows = []
    for record in read_dataset(url).records():
        if isinstance(record, PairRecord):
            rows.append(to_line(replace(record, timings=None)))
    return sorted(rows)


def wait_for_a_pair(process: subprocess.Popen[bytes], url: str) -> None:
    """Until the shard has committed a unit with a candidate (not only a failure)."""
    deadline = time.monotonic() + 300
    while True:
        try:
            if content(url):
                return
        except InvalidInput:  # no dataset.json yet
            pass
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no unit committed in 300 s"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def single(
    s3, pair_stack, sources, policy_file, threshold, tmp_path_factory
) -> Iterator[Callable[[], str]]:
    """A single-process run over the same inputs (one judge), started at once so that it runs
    beside the test that first needs it; calling the fixture waits for it and gives its URL."""
    url = "s3://pairs/single"
    args = cli_args(pair_stack, sources, policy_file, threshold, url, pair_stack[0].grpc_target)
    process = start(args, {}, tmp_path_factory.mktemp("single"))

    def done() -> str:
        code = process.wait(600)
        assert code == 1, process.stderr.read().decode()[-2000:]  # broken.png failed
        return url

    yield done
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)


def test_three_indexed_shards_with_a_kill_merge_to_the_single_process_dataset(
    s3, pair_stack, second_judge, sources, policy_file, threshold, single, tmp_path
):
    judge = replicas(pair_stack, second_judge)
    # The shard that gets the most sources is the one killed (it has units left to redo).
    counts = Counter(int(sha256(p.read_bytes()), 16) % SHARDS for p in sources.iterdir())
    victim = counts.most_common(1)[0][0]
    shards: dict[int, subprocess.Popen[bytes]] = {}
    for index in range(SHARDS):
        disk = tmp_path / f"pod-{index}"
        disk.mkdir()
        out = f"s3://pairs/cluster/shard-{index}"
        env = {"JOB_COMPLETION_INDEX": str(index), "SAFETYPAIRS_SHARDS": str(SHARDS)}
        args = cli_args(pair_stack, sources, policy_file, threshold, out, judge)
        shards[index] = start(args, env, disk)
    try:
        wait_for_a_pair(shards[victim], f"s3://pairs/cluster/shard-{victim}")
        os.killpg(shards[victim].pid, signal.SIGKILL)  # mid-run: other units are in flight
        shards[victim].wait()
        partial = len(content(f"s3://pairs/cluster/shard-{victim}"))
        # Rescheduled onto a fresh node: an empty working directory, the same command.
        fresh = tmp_path / f"pod-{victim}-rescheduled"
        fresh.mkdir()
        env = {"JOB_COMPLETION_INDEX": str(victim), "SAFETYPAIRS_SHARDS": str(SHARDS)}
        out = f"s3://pairs/cluster/shard-{victim}"
        shards[victim] = start(
            cli_args(pair_stack, sources, policy_file, threshold, out, judge), env, fresh
        )
        codes = {i: p.wait(600) for i, p in shards.items()}
    finally:
        for p in shards.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    errors = {i: shards[i].stderr.read().decode()[-2000:] for i in shards}
    assert set(codes.values()) <= {0, 1} and sorted(codes.values()).count(1) == 1, errors
    summaries = {i: json.loads(shards[i].stdout.read()) for i in shards}
    assert summaries[victim]["skipped"] >= 1 and partial >= 1  # resumed, not redone
    for index, summary in summaries.items():
        header = read_dataset(f"s3://pairs/cluster/shard-{index}").header
        assert header["run"]["shard"] == [index, SHARDS] and summary["dataset"].endswith(
            f"shard-{index}"
        )

    merged = "s3://pairs/cluster/merged"
    shard_urls = [f"s3://pairs/cluster/shard-{i}" for i in range(SHARDS)]
    result = run_cli("merge-datasets", merged, *shard_urls, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["duplicates"] == 0
    # The same dataset as one process made: same ids, same records, no duplicates.
    assert content(merged) == content(single())
    ids = Counter(json.loads(line)["id"] for line in content(merged))
    assert ids and set(ids.values()) == {1}
    ds = read_dataset(merged)
    for record in ds.pairs():
        for member in (record.a, record.b):
            if member is not None and member.image:
                ds.read_image(member.image)  # present, and its bytes match its name
    assert len(list(ds.failures())) == 1  # broken.png, from its one shard

    # The merge step's other outputs: the report and the Parquet export, next to the shards.
    assert run_cli("report", merged, timeout=300).returncode == 0
    parquet = "s3://pairs/cluster/export/pairs.parquet"
    result = run_cli("export", merged, "--to", "parquet", "--out", parquet, timeout=300)
    assert result.returncode == 0, result.stderr
    from datasets import load_dataset

    local = tmp_path / "pairs.parquet"
    local.write_bytes(
        s3.client().get_object(Bucket="pairs", Key="cluster/export/pairs.parquet")["Body"].read()
    )
    loaded = load_dataset("parquet", data_files=str(local), split="train")
    assert sorted(loaded["id"]) == sorted(r.id for r in ds.pairs("accepted"))


def test_a_store_cut_mid_run_stops_generation_and_the_rerun_adds_the_rest(
    s3, pair_stack, sources, policy_file, threshold, single, tmp_path
):
    """The path to the store is cut while a generator runs: it stops with one StorageError line
    and exit 3 (a Job retries that); with the path back, the same command resumes and the
    dataset equals the uninterrupted run: nothing lost, nothing committed twice."""
    proxy = Proxy(int(s3.endpoint.rsplit(":", 1)[1])).start()
    env = s3.env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", AWS_MAX_ATTEMPTS="2")
    url = "s3://pairs/cut"
    args = cli_args(pair_stack, sources, policy_file, threshold, url, pair_stack[0].grpc_target)
    try:
        process = start(args, env, tmp_path)
        wait_for_a_pair(process, url)
        proxy.kill()
        assert process.wait(600) == 3
        err = process.stderr.read().decode().strip()
        assert err.startswith(f"error (StorageError): {url}") and "\n" not in err, err
        proxy.start()
        resumed = start(args, env, tmp_path)
        assert resumed.wait(600) == 1, resumed.stderr.read().decode()[-2000:]  # broken.png
    finally:
        proxy.kill()
    final = content(url)
    ids = Counter(json.loads(line)["id"] for line in final)
    assert set(ids.values()) == {1}
    assert final == content(single())


def requests_served(service: ServiceProcess) -> float:
    """The service's own count of answered calls (its Prometheus endpoint)."""
    with urllib.request.urlopen(f"{service.http_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^safetypairs_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )


def test_calls_spread_over_replicas_and_go_on_when_one_dies(
    pair_stack, second_judge, sample_photos
):
    """Last in this module: it kills the second replica."""
    image = sample_photos[0].read_bytes()
    first, second = pair_stack[0], second_judge
    before = requests_served(first), requests_served(second)
    with JudgeClient(replicas(pair_stack, second_judge), timeout=120) as judge:
        for _ in range(8):
            judge.rate(image)
        after = requests_served(first), requests_served(second)
        assert after[0] > before[0] and after[1] > before[1], (before, after)  # both served
        os.killpg(second.process.pid, signal.SIGKILL)  # dies, without a goodbye
        second.process.wait()
        verdicts = [judge.rate(image).verdict for _ in range(8)]
    assert all(v is not None for v in verdicts)
    assert requests_served(first) > after[0]  # the survivor answered them
