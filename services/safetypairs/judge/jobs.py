"""What the judge engine is asked and what it answers (plain data, no torch)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from safetypairs.contract.policy import Category, Policy


@dataclass(frozen=True)
class RateJob:
    image: Image.Image
    policy: Policy
    threshold: float
    rationale: bool
    cancelled: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class RateOutput:
    unsafe: bool
    p_unsafe: float
    # P(category | unsafe) for each code of the policy (the "none applies" answer takes the rest).
    category_probs: dict[str, float]
    category: str  # the deciding code when unsafe, else ""
    rationale: str = ""
    source: str = "forward"  # how the verdict was read: forward, json, partial-json, text, logits


@dataclass(frozen=True)
class ProposeJob:
    image: Image.Image
    policy: Policy
    category: Category
    direction: str  # TO_SAFE or TO_UNSAFE
    count: int
    seed: int
    cancelled: Callable[[], bool] = lambda: False


@dataclass(frozen=True)
class Proposal:
    action: str
    element: str
    instruction: str
    category: str


@dataclass(frozen=True)
class JudgeCard:
    name: str
    architecture: str
    dtype: str
    device: str
    untrained: bool
    notice: str
