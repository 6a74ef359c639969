"""What a generation run is asked to do (its settings, and the header that pins a dataset to
them), how far it got, and the seeds it derives: independent of order and concurrency."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from safetypairs.contract.policy import Policy
from safetypairs.pairs.criteria import TO_SAFE, TO_UNSAFE, Criteria
from safetypairs.pairs.dataset import sha256

NULL_INSTRUCTION = "Keep the image exactly as it is; change nothing."


@dataclass(frozen=True)
class GenerationConfig:
    policy: Policy
    categories: tuple[str, ...] = ()  # empty = every category of the policy
    directions: tuple[str, ...] = (TO_SAFE, TO_UNSAFE)
    proposals: int = 3  # candidate instructions per attempt
    attempts: int = 2  # per unit: new instructions and seeds each time
    seed: int = 0
    artifact_matched: bool = True  # the kept image is the source through the editor too
    null_instruction: str = NULL_INSTRUCTION
    criteria: Criteria = field(default_factory=Criteria)
    edit_steps: int | None = None  # None = the edit service's default
    judge_concurrency: int = 2
    edit_concurrency: int = 1
    units_in_flight: int = 4
    max_backoff_s: float = 120.0  # how long an overloaded or absent service is waited for
    shard: tuple[int, int] = (0, 1)  # (i, n): this process takes the sources with hash % n == i
    judge_timeout_s: float = 120.0
    edit_timeout_s: float = 600.0

    def run_header(self, judge_model: str, edit_model: str) -> dict[str, Any]:
        """What decides the dataset's content: resuming with anything else is refused."""
        return {
            "policy": f"{self.policy.name}@{self.policy.version}",
            "policy_sha256": sha256(json.dumps(self.policy.to_dict(), sort_keys=True).encode()),
            "categories": list(self.codes),
            "directions": list(self.directions),
            "proposals": self.proposals,
            "attempts": self.attempts,
            "seed": self.seed,
            "artifact_matched": self.artifact_matched,
            "null_instruction": self.null_instruction,
            "criteria": self.criteria.to_json(),
            "edit_steps": self.edit_steps,
            "shard": list(self.shard),
            "judge_model": judge_model,
            "edit_model": edit_model,
        }

    @property
    def codes(self) -> tuple[str, ...]:
        return self.policy.check_codes(self.categories) if self.categories else self.policy.codes


@dataclass
class Progress:
    sources_total: int = 0
    sources_done: int = 0
    accepted: int = 0
    rejected: int = 0  # candidates
    failed: int = 0  # units
    skipped: int = 0  # units already done in an earlier run
    backoffs: int = 0
    started: float = field(default_factory=time.monotonic)
    stage_seconds: dict[str, float] = field(
        default_factory=lambda: {"rate": 0.0, "propose": 0.0, "edit": 0.0}
    )


def derive_seed(base: int, *parts: object) -> int:
    """A seed per (run seed, unit, attempt, ...): independent of order and concurrency."""
    digest = hashlib.sha256(":".join(map(str, (base, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
