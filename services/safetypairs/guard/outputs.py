"""What a guard model gives the runtime, whether one ONNX graph or an ensemble of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from safetypairs.contract.policy import Policy
from safetypairs.contract.results import MemberInfo
from safetypairs.guard.resize import Beside
from safetypairs.guard.sidecar import GuardCard


@dataclass(frozen=True)
class MemberRow:
    """One ensemble member on one image: its own probabilities and its batch's time."""

    name: str
    seconds: float
    categories: tuple[str, ...]
    probabilities: np.ndarray  # (len(categories),)


@dataclass(frozen=True)
class ItemOutput:
    probabilities: np.ndarray  # (len(card.categories),)
    members: tuple[MemberRow, ...] = ()


class GuardModel(Protocol):
    """The runtime's view of a guard: GuardEngine and EnsembleEngine both fit it."""

    @property
    def policy(self) -> Policy: ...
    @property
    def card(self) -> GuardCard: ...
    @property
    def providers(self) -> list[str]: ...
    @property
    def members(self) -> tuple[MemberInfo, ...]: ...
    @property
    def fusion(self) -> dict[str, str]: ...
    def preprocess(self, img: Image.Image, beside: Beside | None = None) -> Any: ...
    def run(self, batch: Sequence[Any], *, alone: bool = False) -> list[ItemOutput]: ...
    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None: ...
    def release_arena(self) -> None: ...
    def open_alone_session(self) -> None: ...
