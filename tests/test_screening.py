"""The screening cascade against the real guard and judge services on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import free_port
from prometheus_client import CollectorRegistry

from safetypairs.cli import main as cli_main
from safetypairs.client import AsyncGuardClient, AsyncJudgeClient, GuardClient, JudgeClient
from safetypairs.contract.errors import InvalidInput
from safetypairs.screening import AsyncScreener, CascadeConfig, CascadeMetrics, Screener

pytestmark = pytest.mark.slow


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def screener(guard_service, judge_target: str | None, registry, **config) -> Screener:
    judge = JudgeClient(judge_target) if judge_target else None
    return Screener(
        GuardClient(guard_service.grpc_target, timeout=30),
        judge,
        CascadeConfig(**config),
        CascadeMetrics(registry),
    )


def count(registry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_certain_guard_answers_alone(guard_service, judge_service, registry, sample_photos):
    chelsea = sample_photos[1]
    with screener(guard_service, judge_service.grpc_target, registry, band=(0.999, 1.0)) as s:
        d = s.screen(chelsea)
    assert (d.decided_by, d.escalated, d.judge, d.uncertain) == ("guard", False, None, ())
    assert "guard certain" in d.reason and d.guard_ms > 0 and d.judge_ms == 0
    assert d.rating == d.guard.rating
    assert (
        count(
            registry, "safetypairs_screening_decisions_total", decided_by="guard", rating=d.rating
        )
        == 1
    )
    assert count(registry, "safetypairs_screening_escalations_total", outcome="answered") == 0


def test_uncertain_guard_escalates_to_the_judge(
    guard_service, judge_service, registry, sample_photos
):
    chelsea = sample_photos[1]
    with screener(guard_service, judge_service.grpc_target, registry, band=(0.0, 1.0)) as s:
        d = s.screen(chelsea)
    assert d.escalated and d.decided_by == "judge" and d.judge is not None
    assert set(d.uncertain) == {"O3", "O4", "O6"}  # every category the default guard covers
    with JudgeClient(judge_service.grpc_target) as judge:
        direct = judge.rate(chelsea).verdict
    assert (d.rating, d.category) == (direct.rating, direct.category)
    assert d.judge.probability == pytest.approx(direct.probability, abs=1e-5)
    assert "the judge decided" in d.reason and "UNTRAINED" in d.reason
    assert d.judge_ms > 0 and d.guard.model  # both verdicts and both latencies are kept
    assert (
        count(
            registry, "safetypairs_screening_decisions_total", decided_by="judge", rating=d.rating
        )
        == 1
    )
    assert count(registry, "safetypairs_screening_escalations_total", outcome="answered") == 1
    assert count(registry, "safetypairs_screening_step_duration_seconds_count", step="judge") == 1


def test_judge_past_the_deadline_leaves_the_guards_answer(
    guard_service, judge_service, registry, sample_photos
):
    with screener(
        guard_service, judge_service.grpc_target, registry, band=(0.0, 1.0), judge_timeout_s=0.001
    ) as s:
        d = s.screen(sample_photos[1])
    assert d.escalated and d.decided_by == "guard" and d.judge is None
    assert d.rating == d.guard.rating and d.judge_error.startswith("DeadlineExceeded")
    assert "did not answer in time, so the guard's answer stands" in d.reason
    assert count(registry, "safetypairs_screening_escalations_total", outcome="timeout") == 1
    assert (
        count(
            registry, "safetypairs_screening_decisions_total", decided_by="guard", rating=d.rating
        )
        == 1
    )


def test_judge_down_leaves_the_guards_answer(guard_service, registry, sample_photos):
    dead = f"127.0.0.1:{free_port()}"
    with screener(guard_service, dead, registry, band=(0.0, 1.0), judge_timeout_s=2) as s:
        d = s.screen(sample_photos[1])
    assert d.decided_by == "guard" and d.judge is None
    assert d.judge_error.startswith(("Unavailable", "DeadlineExceeded"))
    assert (
        count(registry, "safetypairs_screening_escalations_total", outcome="error")
        + count(registry, "safetypairs_screening_escalations_total", outcome="timeout")
        == 1
    )


async def test_async_screener_screens_many_and_reports_bad_images(
    guard_service, judge_service, sample_photos
):
    config = CascadeConfig(band=(0.0, 1.0))
    async with AsyncScreener(
        AsyncGuardClient(guard_service.grpc_target),
        AsyncJudgeClient(judge_service.grpc_target),
        config,
    ) as s:
        out = await s.screen_many([sample_photos[0], b"not an image", sample_photos[2]], 4)
    assert out[0].decided_by == "judge" and out[2].decided_by == "judge"
    assert isinstance(out[1], InvalidInput) and "not a supported image" in out[1].message


def test_bad_band_is_refused() -> None:
    with pytest.raises(InvalidInput, match="band"):
        CascadeConfig(band=(0.8, 0.2))


def test_screen_cli_runs_the_cascade(
    guard_service, judge_service, sample_photos, capsys, tmp_path: Path
):
    args = [
        "screen",
        str(sample_photos[1]),
        "--target",
        guard_service.grpc_target,
        "--judge-target",
        judge_service.grpc_target,
        "--band",
        "0,1",
    ]
    assert cli_main(args) == 0
    assert "decided by judge" in capsys.readouterr().out
    assert cli_main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["band"] == [0.0, 1.0] and out["decisions"][0]["decided_by"] == "judge"
    assert cli_main([*args[:-1], "1,0"]) != 0
