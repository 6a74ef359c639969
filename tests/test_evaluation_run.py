"""`safetypairs evaluate` end to end: the embedded default guard in-process (ONNX) and as the
real service on loopback, and the real judge service; the figures checked against verdicts
the services give the SDK directly."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, start_guard_service
from PIL import Image

from safetypairs.cli import main as cli_main
from safetypairs.client.guard import GuardClient
from safetypairs.client.judge import JudgeClient
from safetypairs.contract.policy import default_policy
from safetypairs.evaluation.datasets_in import Item, load_eval_set
from safetypairs.evaluation.metrics import confusion_matrix
from safetypairs.evaluation.scorers import score_guard_service
from safetypairs.training.demo_data import make_training_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory: pytest.TempPathFactory, sample_photos: list[Path]) -> dict:
    """4 demo images, 3 demo pairs (a red disk labelled O6), and real photos, one of them
    labelled O1 (which the default guard does not cover)."""
    root = tmp_path_factory.mktemp("eval-data")
    labelled, pairs = make_training_set(root, pairs=3, singles=4, seed=5)
    photos = root / "photos.jsonl"
    labels = [["O1"], [], [], []]
    photos.write_text(
        "".join(
            json.dumps({"image": str(p), "labels": lab}) + "\n"
            for p, lab in zip(sample_photos, labels, strict=True)
        )
    )
    return {"args": ["--data", str(labelled), "--data", str(photos), "--pairs", str(pairs)]}


def _read(out: Path) -> tuple[dict, list[dict]]:
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    return json.loads((out / "results.json").read_text()), rows


def _check_pngs(out: Path) -> None:
    for name in ("per_category.png", "roc.png", "pr.png", "confusion.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width >= 400 and img.height >= 300, name


def _image_bytes(rows: list[dict], eval_root: Path) -> list[bytes]:
    """The scored images' bytes, in the order of scores.jsonl (pair members are ids p0/a...)."""
    pairs = {
        json.loads(line)["id"]: json.loads(line)
        for line in (eval_root / "pairs.jsonl").read_text().splitlines()
    }
    out = []
    for row in rows:
        pair_id, _, member = row["id"].partition("/")
        if pair_id in pairs and member in ("a", "b"):
            out.append((eval_root / pairs[pair_id][member]["image"]).read_bytes())
        else:
            out.append(Path(row["id"]).read_bytes())
    return out


def test_evaluate_guard_service_matches_in_process_and_direct_verdicts(
    guard_service, default_guard_manifest: Path, eval_data: dict, tmp_path: Path
) -> None:
    common = [*eval_data["args"], "--resamples", "200"]
    here, there = tmp_path / "onnx", tmp_path / "service"
    assert (
        cli_main(
            ["evaluate", *common, "--guard-model", str(default_guard_manifest), "--out", str(here)]
        )
        == 0
    )
    assert (
        cli_main(
            ["evaluate", *common, "--guard-target", guard_service.grpc_target, "--out", str(there)]
        )
        == 0
    )
    for out in (here, there):
        results, _ = _read(out)
        _check_pngs(out)
        assert results["model"]["covered"] == ["O3", "O4", "O6"]
        assert results["categories"]["O1"] == {"status": "not_covered"}
        assert results["dataset"] == results["dataset"] | {"images": 14, "pairs": 3}
        # The photo labelled O1 is left out of the overall figures, not counted as wrong.
        assert results["overall"]["images"]["images"] == 13
        assert any("not covered" in n for n in results["notes"])
        assert results["overall"]["pairs"]["pairs"] == 3
    rows_here, (r_there, rows_there) = _read(here)[1], _read(there)
    # The same model in-process and behind gRPC: the same scores.
    for a, b in zip(rows_here, rows_there, strict=True):
        assert a["id"] == b["id"]
        for code in ("O3", "O4", "O6"):
            assert a["probabilities"][code] == pytest.approx(b["probabilities"][code], abs=1e-4)
    # The O6 confusion matrix equals one counted from the service's own verdicts.
    images = _image_bytes(rows_there, Path(eval_data["args"][-1]).parent)
    with GuardClient(guard_service.grpc_target) as client:
        verdicts = [r.verdict for r in client.screen_batch(images)]
    flagged = np.array([next(s.flagged for s in v.scores if s.category == "O6") for v in verdicts])
    truth = np.array(["O6" in row["labels"] for row in rows_there])
    assert r_there["categories"]["O6"]["images"]["confusion"]["matrix"] == confusion_matrix(
        truth, flagged
    )


def test_evaluate_judge_service(judge_service, eval_data: dict, tmp_path: Path) -> None:
    out = tmp_path / "judge"
    args = ["evaluate", *eval_data["args"], "--resamples", "200", "--out", str(out)]
    assert cli_main([*args, "--judge-target", judge_service.grpc_target]) == 0
    results, rows = _read(out)
    _check_pngs(out)
    assert results["model"]["kind"] == "judge-service" and results["model"]["untrained"]
    assert results["untrained"] and results["notes"][0].startswith("UNTRAINED model default-judge")
    assert len(results["model"]["covered"]) == 9 and not results["model"]["not_covered"]
    assert results["overall"]["images"]["images"] == 14  # the judge covers O1: nothing left out
    images = _image_bytes(rows, Path(eval_data["args"][-1]).parent)
    with JudgeClient(judge_service.grpc_target) as client:
        direct = [r.verdict for r in client.rate_batch(images)]
    assert [row["unsafe"] for row in rows] == [v.unsafe for v in direct]
    assert [row["unsafe_probability"] for row in rows] == pytest.approx(
        [v.probability for v in direct], abs=1e-5
    )
    truth = np.array([bool(row["labels"]) for row in rows])
    pred = np.array([row["unsafe"] for row in rows])
    assert results["overall"]["images"]["confusion"]["matrix"] == confusion_matrix(truth, pred)


def test_evaluate_onnx_artifact_on_pairs(
    default_guard_onnx: Path, eval_data: dict, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "member"
    pairs = eval_data["args"][-2:]
    assert (
        cli_main(["evaluate", *pairs, "--guard-model", str(default_guard_onnx), "--out", str(out)])
        == 0
    )
    results, rows = _read(out)
    assert results["model"]["kind"] == "onnx-guard" and len(rows) == 6
    o6 = results["categories"]["O6"]
    assert o6["pairs"]["pairs"] == 3
    # Recompute pair accuracy and flip rate from the per-image scores written beside them.
    by_id = {row["id"]: row for row in rows}
    both_right = flips = 0
    for k in range(3):
        safe, unsafe = by_id[f"p{k}/a"], by_id[f"p{k}/b"]
        both_right += ("O6" not in safe["flagged"]) and ("O6" in unsafe["flagged"])
        flips += unsafe["probabilities"]["O6"] > safe["probabilities"]["O6"]
    assert o6["pairs"]["pair_accuracy"]["value"] == pytest.approx(both_right / 3)
    assert o6["pairs"]["flip_rate"]["value"] == pytest.approx(flips / 3)
    printed = capsys.readouterr().out
    assert "pair accuracy" in printed and "95% CI" in printed


def test_evaluate_refuses_unclear_model_choice(eval_data: dict, tmp_path: Path, capsys) -> None:
    out = ["--out", str(tmp_path / "x")]
    assert cli_main(["evaluate", *eval_data["args"], *out]) == 2
    assert (
        cli_main(
            ["evaluate", *eval_data["args"], "--guard-model", "a", "--judge-target", "b", *out]
        )
        == 2
    )
    assert cli_main(["evaluate", "--guard-model", "g", *out]) == 2
    err = capsys.readouterr().err
    assert "exactly one of --guard-model, --guard-target, --judge-target" in err
    assert "give --data and/or --pairs" in err


def test_evaluation_waits_out_a_guard_restarted_mid_run(
    guard_service, sp_home, eval_data: dict, tmp_path: Path
) -> None:
    """The guard stops mid-evaluation (a rolling update) and comes back on the same address:
    the evaluator backs off, reconnects, and scores every image once, as a stable guard does."""
    data = load_eval_set(eval_data["args"][1::2], default_policy())
    with GuardClient(guard_service.grpc_target) as client:
        reference = score_guard_service(data, client, batch_size=2)

    reached, resume = threading.Event(), threading.Event()

    class PausingItem(Item):
        """Holds the evaluation mid-run until the test has stopped the service."""

        def read(self) -> bytes:
            reached.set()
            assert resume.wait(120)
            return super().read()

    k = len(data.items) // 2
    data.items[k] = PausingItem(**{f.name: getattr(data.items[k], f.name) for f in fields(Item)})
    port = free_port()
    env = {"SAFETYPAIRS_GRPC_PORT": str(port)}
    service = start_guard_service(sp_home, tmp_path / "guard-1.log", env)
    outcome: dict = {}

    def evaluate() -> None:
        try:
            with GuardClient(f"127.0.0.1:{port}") as client:
                outcome["scores"] = score_guard_service(data, client, batch_size=2)
        except Exception as exc:  # reported by the assertions below
            outcome["error"] = exc

    worker = threading.Thread(target=evaluate)
    worker.start()
    try:
        assert reached.wait(120), "the evaluation never reached the middle"
        assert service.stop() == 0
        resume.set()  # the next batch finds nobody there
        time.sleep(1.0)
        service = start_guard_service(sp_home, tmp_path / "guard-2.log", env)
        worker.join(180)
    finally:
        resume.set()
        service.stop()
    assert not worker.is_alive() and "error" not in outcome, outcome
    scores = outcome["scores"]
    assert scores.probabilities.shape == reference.probabilities.shape
    np.testing.assert_allclose(scores.probabilities, reference.probabilities, atol=1e-4)
    assert scores.predicted == reference.predicted
