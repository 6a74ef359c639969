"""`untrained` travels: pairs labelled by an untrained judge -> `train-guard` -> the guard's card
-> the guard service's model info and every screen answer (gRPC and HTTP) ->
`evaluate` (its JSON, notes and printout). Real files, the real CLI, the real service."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import run_cli, start_guard_service

from safetypairs.client import GuardClient
from safetypairs.serving.launcher import ServiceProcess
from safetypairs.training.demo_data import make_training_set

JUDGE = "default-judge:1"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Labelled photos, pairs as a trained judge left them, and the same pairs as the
    untrained default judge and editor made them."""
    root = tmp_path_factory.mktemp("untrained-data")
    labelled, pairs = make_training_set(root)
    marked = root / "untrained" / "pairs.jsonl"
    marked.parent.mkdir()
    lines = []
    for line in pairs.read_text().splitlines():
        record = json.loads(line)
        for side in ("a", "b"):  # paths stay right from the new folder
            record[side]["image"] = str((pairs.parent / record[side]["image"]).resolve())
        record["models"] = {
            "judge": JUDGE,
            "edit": "default-editor:2",
            "judge_untrained": True,
            "edit_untrained": True,
        }
        lines.append(json.dumps(record))
    marked.write_text("\n".join(lines) + "\n")
    return {"labelled": labelled, "pairs": pairs, "untrained_pairs": marked}


def _train(data: dict[str, Path], pairs: Path, out: Path) -> str:
    done = run_cli(
        "train-guard",
        *("--data", str(data["labelled"]), "--pairs", str(pairs), "--out", str(out)),
        *("--cache", str(out.parent / "cache"), "--margin", "1"),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def guards(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("guards")
    printed = _train(data, data["untrained_pairs"], root / "untrained")
    assert "NOTE: UNTRAINED" in printed and f"judge: {JUDGE}" in printed
    assert "NOTE" not in _train(data, data["pairs"], root / "trained")
    return {"untrained": root / "untrained", "trained": root / "trained"}


def test_the_card_says_untrained_and_why(guards: dict[str, Path]) -> None:
    card = json.loads((guards["untrained"] / "guard.json").read_text())
    assert card["untrained"] is True
    assert (
        card["notice"].startswith("UNTRAINED")
        and f"judge: {JUDGE} (12 of 12 pairs)" in (card["notice"])
    )
    assert "edit: default-editor:2" in card["notice"]
    assert card["extra"]["training"]["untrained"] == [
        "trained on pairs made by untrained models: "
        f"edit: default-editor:2 (12 of 12 pairs), judge: {JUDGE} (12 of 12 pairs)"
    ]
    clean = json.loads((guards["trained"] / "guard.json").read_text())
    assert clean["untrained"] is False and clean["notice"] == ""
    assert clean["extra"]["training"]["untrained"] == []


@pytest.fixture(scope="module")
def service(
    guards: dict[str, Path], sp_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> ServiceProcess:
    log = tmp_path_factory.mktemp("logs") / "guard.log"
    running = start_guard_service(sp_home, log, model=str(guards["untrained"]))
    yield running
    assert running.stop() == 0


def test_the_service_says_so_in_model_info_and_every_answer(
    service: ServiceProcess, data: dict[str, Path]
) -> None:
    photo = next((data["labelled"].parent).rglob("*.png"))
    with GuardClient(service.grpc_target) as client:
        info = client.model_info()
        assert info.untrained and f"judge: {JUDGE}" in info.notice
        assert client.screen(photo).untrained
        assert all(r.verdict.untrained for r in client.screen_batch([photo, photo]))
    http = service.http_url
    body = httpx.post(f"{http}/v1/model_info", timeout=30).json()
    assert body["untrained"] is True and f"judge: {JUDGE}" in body["notice"]
    with photo.open("rb") as f:
        answer = httpx.post(f"{http}/v1/screen", files={"image": f}, timeout=30).json()
    assert answer["verdict"]["untrained"] is True


def _evaluate(args: list[str], out: Path) -> tuple[dict, str]:
    done = run_cli("evaluate", *args, "--resamples", "100", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "results.json").read_text()), done.stdout


def test_evaluate_flags_an_untrained_model_behind_the_service(
    service: ServiceProcess, data: dict[str, Path], tmp_path: Path
) -> None:
    results, printed = _evaluate(
        ["--data", str(data["labelled"]), "--guard-target", service.grpc_target], tmp_path
    )
    assert results["untrained"] is True and results["model"]["untrained"] is True
    [reason] = results["untrained_reasons"]
    assert reason.startswith("UNTRAINED model trained-guard:1: trained on pairs made by")
    assert JUDGE in reason and "note: UNTRAINED model trained-guard:1" in printed


def test_evaluate_flags_labels_from_an_untrained_judge(
    guards: dict[str, Path], data: dict[str, Path], tmp_path: Path
) -> None:
    """A trained model scored against pairs an untrained judge labelled: the figures measure
    nothing either, and the results say so though the model itself is fine."""
    args = ["--pairs", str(data["untrained_pairs"].parent), "--guard-model", str(guards["trained"])]
    results, printed = _evaluate(args, tmp_path / "labels")
    assert results["model"]["untrained"] is False and results["untrained"] is True
    assert results["dataset"]["made_by_untrained"] == [
        "edit: default-editor:2 (12 of 12 pairs)",
        f"judge: {JUDGE} (12 of 12 pairs)",
    ]
    assert results["notes"][0].startswith("UNTRAINED labels: pairs made by untrained models")
    assert "note: UNTRAINED labels: pairs made by untrained models" in printed
    clean, printed = _evaluate(
        ["--pairs", str(data["pairs"]), "--guard-model", str(guards["trained"])], tmp_path / "clean"
    )
    assert clean["untrained"] is False and clean["untrained_reasons"] == []
    assert "UNTRAINED" not in printed
