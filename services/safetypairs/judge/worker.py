"""The judge's worker (serving.worker): its model, runtime and gRPC service."""

from __future__ import annotations

from safetypairs.judge.runtime import JudgeRuntime, load_configured_judge
from safetypairs.judge.servicer import judge_registration
from safetypairs.serving.worker import WorkerKind

JUDGE = WorkerKind("judge", load_configured_judge, JudgeRuntime, (judge_registration,))
