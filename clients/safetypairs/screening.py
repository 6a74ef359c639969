"""Real-time screening: the guard first, the judge for the cases the guard is unsure of.

    async with AsyncScreener(AsyncGuardClient(g), AsyncJudgeClient(j)) as screener:
        decision = await screener.screen("photo.jpg")
        print(decision.rating, decision.decided_by, decision.reason)

A guard probability inside the uncertain band [low, high) for any category the guard covers
sends the image to the judge, with the same policy. The answer says which model decided and
why, carries both verdicts and each step's latency. Each call has one deadline: the judge gets
what is left of it (at most `judge_timeout_s`); if it cannot answer in time, or fails, the
guard's answer stands and says so. Decisions and escalations are Prometheus metrics in the
calling process (a registry of your choice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from safetypairs.client.base import ImageLike, image_message
from safetypairs.client.guard import AsyncGuardClient, GuardClient
from safetypairs.client.judge import AsyncJudgeClient, JudgeClient, PolicyLike
from safetypairs.contract.errors import DeadlineExceeded, InvalidInput, SafetyPairsError
from safetypairs.contract.results import Verdict

GUARD, JUDGE = "guard", "judge"


@dataclass(frozen=True)
class CascadeConfig:
    """`band`: guard probabilities in [low, high) are uncertain and escalate. `deadline_s`: the
    whole call. `judge_timeout_s`: the most the judge may take of what is left."""

    band: tuple[float, float] = (0.2, 0.8)
    deadline_s: float = 10.0
    judge_timeout_s: float = 5.0
    categories: tuple[str, ...] = ()
    policy: PolicyLike = None
    judge_rationale: bool = False

    def __post_init__(self) -> None:
        low, high = self.band
        if not 0.0 <= low <= high <= 1.0:
            raise InvalidInput(f"band {self.band} must satisfy 0 <= low <= high <= 1")
        if self.deadline_s <= 0 or self.judge_timeout_s <= 0:
            raise InvalidInput("deadline_s and judge_timeout_s must be positive")


@dataclass(frozen=True)
class Decision:
    image_id: str
    rating: str  # "safe" | "unsafe"
    category: str
    decided_by: str  # "guard" | "judge"
    reason: str
    guard: Verdict
    guard_ms: float
    escalated: bool = False
    judge: Verdict | None = None
    judge_ms: float = 0.0
    judge_error: str = ""  # why the judge did not decide an escalated image
    uncertain: tuple[str, ...] = field(default_factory=tuple)  # categories in the band

    @property
    def unsafe(self) -> bool:
        return self.rating == "unsafe"


def uncertain_categories(verdict: Verdict, band: tuple[float, float]) -> tuple[str, ...]:
    """The covered categories whose guard probability lies in [low, high)."""
    low, high = band
    return tuple(
        s.category for s in verdict.scores if not s.not_covered and low <= s.probability < high
    )


def _guard_decision(image_id: str, verdict: Verdict, ms: float, band) -> Decision:
    top = max(
        (s for s in verdict.scores if not s.not_covered), key=lambda s: s.probability, default=None
    )
    detail = f"max p={top.probability:.3f} ({top.category})" if top else "no covered category"
    return Decision(
        image_id,
        verdict.rating,
        verdict.category,
        GUARD,
        f"guard certain: {detail} outside the uncertain band [{band[0]}, {band[1]})",
        verdict,
        ms,
    )


def _escalated(
    base: Decision,
    uncertain: tuple[str, ...],
    judge: Verdict | None,
    judge_ms: float,
    error: SafetyPairsError | None,
) -> Decision:
    where = ", ".join(
        f"{s.category} p={s.probability:.3f}" for s in base.guard.scores if s.category in uncertain
    )
    if judge is not None:
        reason = (
            f"guard uncertain ({where}): the judge decided {judge.rating}"
            + (
                f" ({judge.category}, p(unsafe)={judge.probability:.3f})"
                if judge.unsafe
                else f" (p(unsafe)={judge.probability:.3f})"
            )
            + (" [judge UNTRAINED]" if judge.untrained else "")
        )
        return Decision(
            base.image_id,
            judge.rating,
            judge.category,
            JUDGE,
            reason,
            base.guard,
            base.guard_ms,
            True,
            judge,
            judge_ms,
            "",
            uncertain,
        )
    assert error is not None
    what = (
        "did not answer in time"
        if isinstance(error, DeadlineExceeded)
        else (f"failed ({error.kind}: {error.message})")
    )
    reason = f"guard uncertain ({where}): the judge {what}, so the guard's answer stands"
    return Decision(
        base.image_id,
        base.rating,
        base.category,
        GUARD,
        reason,
        base.guard,
        base.guard_ms,
        True,
        None,
        judge_ms,
        f"{error.kind}: {error.message}",
        uncertain,
    )


class CascadeMetrics:
    """Prometheus series of the cascade (needs prometheus_client; None disables them)."""

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as prom

        kw = {} if registry is None else {"registry": registry}
        self.decisions = prom.Counter(
            "safetypairs_screening_decisions_total",
            "Screening decisions, by the model that decided and the rating.",
            ["decided_by", "rating"],
            **kw,
        )
        self.escalations = prom.Counter(
            "safetypairs_screening_escalations_total",
            "Images escalated to the judge, by outcome (answered, timeout, error).",
            ["outcome"],
            **kw,
        )
        self.step_latency = prom.Histogram(
            "safetypairs_screening_step_duration_seconds",
            "Time of each cascade step.",
            ["step"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            **kw,
        )

    def record(self, d: Decision) -> None:
        self.decisions.labels(d.decided_by, d.rating).inc()
        self.step_latency.labels(GUARD).observe(d.guard_ms / 1000)
        if d.escalated:
            outcome = (
                "answered"
                if d.judge
                else ("timeout" if d.judge_error.startswith("DeadlineExceeded") else "error")
            )
            self.escalations.labels(outcome).inc()
            self.step_latency.labels(JUDGE).observe(d.judge_ms / 1000)


class _Attempt:
    """One image through the cascade, protocol-neutral: what to send each model and what
    their answers decide. The sync and async screeners differ only in how they call."""

    def __init__(self, config: CascadeConfig, image: ImageLike, image_id: str | None) -> None:
        self.config = config
        self.msg = image_message(image, image_id)  # read once, sent to both models
        self.started = time.perf_counter()
        self.base: Decision | None = None
        self.uncertain: tuple[str, ...] = ()
        self.judge_started = 0.0

    def guard_call(self) -> dict[str, Any]:
        c = self.config
        return {
            "image": self.msg.data,
            "image_id": self.msg.id,
            "categories": c.categories or None,
            "timeout": c.deadline_s,
        }

    def after_guard(self, verdict: Verdict, judge_available: bool) -> Decision | None:
        """The guard's decision when it stands; None when the image goes to the judge."""
        guard_ms = (time.perf_counter() - self.started) * 1000
        self.base = _guard_decision(self.msg.id, verdict, guard_ms, self.config.band)
        self.uncertain = uncertain_categories(verdict, self.config.band)
        return None if self.uncertain and judge_available else self.base

    def judge_call(self) -> dict[str, Any]:
        c = self.config
        self.judge_started = time.perf_counter()
        left = c.deadline_s - (self.judge_started - self.started)
        return {
            "image": self.msg.data,
            "image_id": self.msg.id,
            "policy": c.policy,
            "rationale": c.judge_rationale,
            "timeout": max(min(left, c.judge_timeout_s), 0.001),
        }

    def after_judge(self, judged: Verdict | None, error: SafetyPairsError | None) -> Decision:
        assert self.base is not None
        judge_ms = (time.perf_counter() - self.judge_started) * 1000
        return _escalated(self.base, self.uncertain, judged, judge_ms, error)


class _ScreenerBase:
    def __init__(self, config: CascadeConfig, metrics: CascadeMetrics | None) -> None:
        self.config = config
        self.metrics = metrics

    def _finish(self, decision: Decision) -> Decision:
        if self.metrics is not None:
            self.metrics.record(decision)
        return decision


class AsyncScreener(_ScreenerBase):
    """The cascade over asyncio clients; `judge=None` screens with the guard alone."""

    def __init__(
        self,
        guard: AsyncGuardClient,
        judge: AsyncJudgeClient | None = None,
        config: CascadeConfig | None = None,
        metrics: CascadeMetrics | None = None,
    ) -> None:
        super().__init__(config or CascadeConfig(), metrics)
        self.guard, self.judge = guard, judge

    async def screen(self, image: ImageLike, image_id: str | None = None) -> Decision:
        attempt = _Attempt(self.config, image, image_id)
        verdict = await self.guard.screen(**attempt.guard_call())
        decided = attempt.after_guard(verdict, self.judge is not None)
        if decided is not None or self.judge is None:
            return self._finish(decided)
        try:
            judged, error = (await self.judge.rate(**attempt.judge_call())).verdict, None
        except SafetyPairsError as exc:
            judged, error = None, exc
        return self._finish(attempt.after_judge(judged, error))

    async def screen_many(
        self, images: Iterable[ImageLike], concurrency: int = 8
    ) -> list[Decision | SafetyPairsError]:
        """Screen images with at most `concurrency` in flight; an image whose guard call
        fails gets its error in its place."""
        gate = asyncio.Semaphore(concurrency)

        async def one(image: ImageLike) -> Decision | SafetyPairsError:
            async with gate:
                try:
                    return await self.screen(image)
                except SafetyPairsError as exc:
                    return exc

        return list(await asyncio.gather(*(one(i) for i in images)))

    async def __aenter__(self) -> AsyncScreener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.guard.close()
        if self.judge is not None:
            await self.judge.close()


class Screener(_ScreenerBase):
    """The same cascade over blocking clients."""

    def __init__(
        self,
        guard: GuardClient,
        judge: JudgeClient | None = None,
        config: CascadeConfig | None = None,
        metrics: CascadeMetrics | None = None,
    ) -> None:
        super().__init__(config or CascadeConfig(), metrics)
        self.guard, self.judge = guard, judge

    def screen(self, image: ImageLike, image_id: str | None = None) -> Decision:
        attempt = _Attempt(self.config, image, image_id)
        verdict = self.guard.screen(**attempt.guard_call())
        decided = attempt.after_guard(verdict, self.judge is not None)
        if decided is not None or self.judge is None:
            return self._finish(decided)
        try:
            judged, error = self.judge.rate(**attempt.judge_call()).verdict, None
        except SafetyPairsError as exc:
            judged, error = None, exc
        return self._finish(attempt.after_judge(judged, error))

    def screen_many(self, images: Sequence[ImageLike]) -> list[Decision | SafetyPairsError]:
        out: list[Decision | SafetyPairsError] = []
        for image in images:
            try:
                out.append(self.screen(image))
            except SafetyPairsError as exc:
                out.append(exc)
        return out

    def __enter__(self) -> Screener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.guard.close()
        if self.judge is not None:
            self.judge.close()
