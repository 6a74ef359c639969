"""The judge and editor on their embedded defaults (untrained), built into `home` when missing
and started on loopback: the services the pair-generation benchmarks run against."""

from __future__ import annotations

from pathlib import Path

from safetypairs.edit.default_model import ensure_default_editor
from safetypairs.judge.default_model import ensure_default_judge
from safetypairs.serving.launcher import EDIT_SERVICE, JUDGE_SERVICE, ServiceProcess


def start_tiny_services(
    home: Path, steps: int, torch_threads: int = 1
) -> tuple[ServiceProcess, ServiceProcess]:
    """(judge, editor); `torch_threads` each (0: torch's default, every core)."""
    ensure_default_judge(str(home))
    ensure_default_editor(str(home))
    env = {
        "SAFETYPAIRS_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "SAFETYPAIRS_EDIT_STEPS": str(steps),
        "SAFETYPAIRS_TORCH_THREADS": str(torch_threads),
    }
    judge = ServiceProcess.start(JUDGE_SERVICE, home / "judge.log", env)
    try:
        edit = ServiceProcess.start(EDIT_SERVICE, home / "edit.log", env)
    except BaseException:
        judge.stop()
        raise
    return judge, edit
