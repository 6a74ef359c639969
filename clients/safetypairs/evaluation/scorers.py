"""Score an EvalSet with a guard (ONNX artifact in-process, or a running service) or a judge
(running service): per image, a probability and a decision for every covered category, and
the overall P(unsafe) and verdict.

Categories a guard does not cover come back as `not_covered`; evaluation leaves them out
rather than counting them as wrong.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from safetypairs.client.backoff import call_with_backoff
from safetypairs.client.guard import GuardClient
from safetypairs.client.judge import JudgeClient, PolicyLike
from safetypairs.contract.errors import InvalidInput
from safetypairs.contract.images import decode_image
from safetypairs.contract.progress import task
from safetypairs.contract.results import Verdict
from safetypairs.contract.training_data import LIMITS
from safetypairs.evaluation.datasets_in import EvalSet


@dataclass(frozen=True)
class Scores:
    model: str
    kind: str  # "onnx-guard" | "guard-service" | "judge-service"
    untrained: bool
    notice: str
    categories: tuple[str, ...]  # covered categories: the columns below
    not_covered: tuple[str, ...]
    probabilities: np.ndarray  # (n, k) P(category)
    flagged: np.ndarray  # (n, k) the model's decision per category
    unsafe_probability: np.ndarray  # (n,) the verdict's probability
    unsafe: np.ndarray  # (n,) the verdict: unsafe or safe
    predicted: list[str] = field(default_factory=list)  # verdict category per image, "" = safe
    thresholds: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "name": self.model,
            "kind": self.kind,
            "untrained": self.untrained,
            "notice": self.notice,
            "covered": list(self.categories),
            "not_covered": list(self.not_covered),
            "thresholds": self.thresholds,
        }


def _chunks(n: int, size: int, what: str) -> Iterator[range]:
    """Index ranges of `size` over n images, shown as progress (`what` scores them)."""
    with task(f"scoring with {what}", n, "img") as shown:
        for i in range(0, n, size):
            yield range(i, min(n, i + size))
            shown.advance(min(n, i + size) - i)


def score_onnx_guard(data: EvalSet, ref: str, *, batch_size: int = 16) -> Scores:
    """The guard a reference names (a .onnx with sidecar, an ensemble, their folder), run
    in this process; decisions use the card's thresholds, as the service's do."""
    from safetypairs.guard.artifact import load_guard

    engine = load_guard(ref)
    card = engine.card
    probs = np.zeros((len(data.items), len(card.categories)), dtype=np.float64)
    for chunk in _chunks(len(data.items), batch_size, "the guard"):
        batch = [
            engine.preprocess(
                decode_image(data.items[i].read(), LIMITS, draft_size=2 * card.input_size)
            )
            for i in chunk
        ]
        for i, out in zip(chunk, engine.run(batch), strict=True):
            probs[i] = out.probabilities
    thresholds = np.array([card.thresholds[c] for c in card.categories])
    flagged = probs >= thresholds
    masked = np.where(flagged, probs, -1.0)
    predicted = [card.categories[int(np.argmax(r))] if r.max() >= 0 else "" for r in masked]
    return Scores(
        model=f"{card.name}:{card.version}",
        kind="onnx-guard",
        untrained=card.untrained,
        notice=card.notice,
        categories=tuple(card.categories),
        not_covered=tuple(c for c in engine.policy.codes if c not in card.categories),
        probabilities=probs,
        flagged=flagged,
        unsafe_probability=probs.max(1) if probs.size else np.zeros(len(data.items)),
        unsafe=flagged.any(1),
        predicted=predicted,
        thresholds=dict(card.thresholds),
    )


def _from_verdicts(
    verdicts: Sequence[Verdict], kind: str, untrained: bool, notice: str, model: str
) -> Scores:
    codes = [s.category for s in verdicts[0].scores]
    covered = tuple(s.category for s in verdicts[0].scores if not s.not_covered)
    probs = np.array(
        [[s.probability for s in v.scores if s.category in covered] for v in verdicts]
    ).reshape(len(verdicts), len(covered))
    flagged = np.array(
        [[s.flagged for s in v.scores if s.category in covered] for v in verdicts], dtype=bool
    ).reshape(len(verdicts), len(covered))
    return Scores(
        model=model,
        kind=kind,
        untrained=untrained,
        notice=notice,
        categories=covered,
        not_covered=tuple(c for c in codes if c not in covered),
        probabilities=probs,
        flagged=flagged,
        unsafe_probability=np.array([v.probability for v in verdicts]),
        unsafe=np.array([v.unsafe for v in verdicts], dtype=bool),
        predicted=[v.category for v in verdicts],
        thresholds={s.category: s.threshold for s in verdicts[0].scores if not s.not_covered},
    )


def _checked(results: Sequence, data: EvalSet, chunk: range, what: str) -> list[Verdict]:
    """Verdicts of a batch; an image the service refused stops the evaluation, named."""
    for i, r in zip(chunk, results, strict=True):
        if r.error is not None:
            item = data.items[i]
            raise InvalidInput(f"{what} refused {item.record} ({item.id}): {r.error.message}")
    return [r.verdict for r in results]


def score_guard_service(
    data: EvalSet, client: GuardClient, *, batch_size: int = 16, max_backoff_s: float = 120.0
) -> Scores:
    """A running guard service, through the SDK (ScreenBatch). A service that is overloaded
    or restarting is waited for up to `max_backoff_s` per call; a batch counts once it has
    been answered, so a restart loses or repeats nothing."""
    info = call_with_backoff(client.model_info, max_backoff_s)
    verdicts: list[Verdict] = []
    for chunk in _chunks(
        len(data.items), min(batch_size, info.max_images_per_request or 16), "the guard service"
    ):
        images = [data.items[i].read() for i in chunk]
        ids = [data.items[i].id for i in chunk]
        results = call_with_backoff(
            functools.partial(client.screen_batch, images, image_ids=ids), max_backoff_s
        )
        verdicts += _checked(results, data, chunk, "the guard service")
    return _from_verdicts(
        verdicts, "guard-service", info.untrained, info.notice, f"{info.name}:{info.version}"
    )


def score_judge_service(
    data: EvalSet,
    client: JudgeClient,
    *,
    policy: PolicyLike = None,
    threshold: float | None = None,
    batch_size: int = 8,
    max_backoff_s: float = 120.0,
) -> Scores:
    """A running judge, through the SDK (RateBatch). Per category, the probability is
    P(unsafe) x P(category | unsafe) and the decision is the verdict's category. Waits out
    an overloaded or restarting judge like score_guard_service."""
    info = call_with_backoff(client.model_info, max_backoff_s)
    verdicts: list[Verdict] = []
    for chunk in _chunks(
        len(data.items), min(batch_size, info.max_batch_size or batch_size), "the judge service"
    ):
        images = [data.items[i].read() for i in chunk]
        ids = [data.items[i].id for i in chunk]
        rated = call_with_backoff(
            functools.partial(
                client.rate_batch, images, image_ids=ids, policy=policy, threshold=threshold
            ),
            max_backoff_s,
        )
        verdicts += _checked(rated, data, chunk, "the judge service")
    return _from_verdicts(verdicts, "judge-service", info.untrained, info.notice, info.name)
