"""The SafetyPairs method over gRPC: judge rates the source, proposes edits toward the other
label, the editor applies them (seeded), the judge rates each result, and a candidate is kept
only when the label flipped in the requested category and the rest of the image stayed put.

Work is split into units, one per (source image, direction, category). A unit ends with an
accepted pair or after its attempts are used up; its records are committed together, so a run
killed at any point and started again with the same arguments redoes at most the units in
flight, with the same seeds, and repeats no accepted work. Units run concurrently: while the
editor works on one, the judge rates another; each service sees at most its own concurrency
limit, and an overloaded service slows the run down (jittered backoff) instead of failing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from safetypairs.client.backoff import TRANSIENT, Backoff
from safetypairs.client.edit import AsyncEditClient
from safetypairs.client.judge import AsyncJudgeClient
from safetypairs.contract.errors import SafetyPairsError
from safetypairs.contract.pair_record import (
    ACCEPTED,
    REJECTED,
    ErrorInfo,
    FailedUnit,
    Member,
    Models,
    PairRecord,
    PromptVersions,
    Rating,
    Record,
    Seeds,
    Source,
    Timings,
)
from safetypairs.pairs.config import GenerationConfig, Progress, derive_seed
from safetypairs.pairs.criteria import SOURCE_AMBIGUOUS, TO_SAFE, TO_UNSAFE, rejection_reasons
from safetypairs.pairs.dataset import Dataset, sha256
from safetypairs.pairs.lease import DEFAULT_LEASE_S
from safetypairs.pairs.similarity import compare
from safetypairs.pairs.store import open_dataset, take_writer

T = TypeVar("T")


@dataclass
class _Source:
    path: str
    data: bytes
    sha: str


@dataclass(frozen=True)
class _Kept:
    """A source's unedited pair member, rated: shared by the source's units."""

    data: bytes
    rating: Rating
    null_seed: int | None  # None: the source itself, not its null edit
    edit_s: float
    rate_s: float


class _DatasetFailed(Exception):
    """The dataset could not store or commit (a full disk, a store gone, credentials revoked):
    not a unit's failure to record but the end of the run. Not a SafetyPairsError, so the
    per-unit handlers let it through; `run` raises the error it carries."""

    def __init__(self, error: SafetyPairsError) -> None:
        super().__init__(error.message)
        self.error = error


class PairGenerator:
    def __init__(
        self,
        judge: AsyncJudgeClient,
        editor: AsyncEditClient,
        out: str | Path,
        config: GenerationConfig,
        on_progress: Callable[[Progress], None] | None = None,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        """`out`: a folder or an object store URL (pairs/store.py); `lease_s`: the writer
        lease's duration there."""
        self.judge, self.editor, self.out, self.config = judge, editor, out, config
        self.lease_s = lease_s
        self.dataset: Dataset | None = None
        self.progress = Progress()
        self._on_progress = on_progress or (lambda p: None)
        self._judge_gate = asyncio.Semaphore(config.judge_concurrency)
        self._edit_gate = asyncio.Semaphore(config.edit_concurrency)
        self._kept: dict[str, asyncio.Task] = {}
        self._models = Models()
        self._writer: ThreadPoolExecutor | None = None  # the dataset's writer thread, per run

    async def _store(self, write: Callable[..., T], *args: Any) -> T:
        """Run a dataset write on the one writer thread: off the event loop (an object store
        put takes a network round trip, during which the loop keeps the services busy), one
        at a time and in order (the dataset has one writer)."""
        assert self._writer is not None, "dataset writes happen within run()"
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer, write, *args)
        except SafetyPairsError as exc:
            raise _DatasetFailed(exc) from None

    async def _put(self, data: bytes, suffix: str = ".png") -> str:
        return await self._store(self.dataset.put_image, data, suffix)

    # -- service calls ---------------------------------------------------------------------

    async def _call(self, gate: asyncio.Semaphore, stage: str, fn: Callable[[], Any]) -> Any:
        """Call a service within its concurrency limit; back off and retry while it is
        overloaded or unreachable, up to max_backoff_s, then let the error through."""
        backoff = Backoff(self.config.max_backoff_s)
        while True:
            async with gate:
                started = time.perf_counter()
                try:
                    return await fn()
                except TRANSIENT:
                    pause = backoff.next_pause()
                    if pause is None:
                        raise
                finally:
                    self.progress.stage_seconds[stage] += time.perf_counter() - started
            self.progress.backoffs += 1
            await asyncio.sleep(pause)

    async def _rate(self, image: bytes) -> tuple[Rating, str, float]:
        c = self.config
        started = time.perf_counter()
        rated = await self._call(
            self._judge_gate,
            "rate",
            lambda: self.judge.rate(
                image, policy=c.policy, threshold=c.criteria.threshold, timeout=c.judge_timeout_s
            ),
        )
        v = rated.verdict
        return (
            Rating(v.probability, v.category),
            rated.prompt_version,
            time.perf_counter() - started,
        )

    async def _edit(self, source: bytes, instruction: str, seed: int) -> tuple[bytes, float]:
        c = self.config
        started = time.perf_counter()
        result = await self._call(
            self._edit_gate,
            "edit",
            lambda: self.editor.edit(
                source, instruction, seed=seed, steps=c.edit_steps, timeout=c.edit_timeout_s
            ),
        )
        return result.image, time.perf_counter() - started

    # -- per source ----------------------------------------------------------------------

    async def _kept_image(self, src: _Source) -> _Kept:
        """The pair's unedited member (the source, or its null edit when artifact-matched),
        rated once per source and shared by its units."""
        if src.sha not in self._kept:
            self._kept[src.sha] = asyncio.ensure_future(self._make_kept(src))
        return await self._kept[src.sha]

    async def _make_kept(self, src: _Source) -> _Kept:
        c = self.config
        data, edit_s, null_seed = src.data, 0.0, None
        if c.artifact_matched:
            null_seed = derive_seed(c.seed, src.sha, "null-edit")
            data, edit_s = await self._edit(src.data, c.null_instruction, null_seed)
        rating, _, rate_s = await self._rate(data)
        return _Kept(data, rating, null_seed, edit_s, rate_s)

    def _units(self, kept: Rating) -> list[tuple[str, str]]:
        """(direction, category) pairs a source takes part in, from how its kept image is
        rated: an unsafe one can be made safe in its category, a safe one unsafe in each."""
        c = self.config
        if c.criteria.unsafe(kept.p_unsafe):
            ok = TO_SAFE in c.directions and kept.category in c.codes
            return [(TO_SAFE, kept.category)] if ok else []
        if c.criteria.safe(kept.p_unsafe) and TO_UNSAFE in c.directions:
            return [(TO_UNSAFE, code) for code in c.codes]
        return []  # too close to the threshold to be either side of a pair

    # -- per unit ------------------------------------------------------------------------

    async def _unit(
        self,
        src: _Source,
        source_image: str,
        kept: _Kept,
        direction: str,
        category: str,
        unit: str,
    ) -> None:
        c = self.config
        started = time.perf_counter()
        unsafe_kept = direction == TO_SAFE
        kept_member = Member(
            image=await self._put(kept.data),
            labels=(category,) if unsafe_kept else (),
            role="kept" if c.artifact_matched else "source",
            p_unsafe=kept.rating.p_unsafe,
            category=kept.rating.category,
        )
        records: list[PairRecord] = []
        timings = {"rate_s": kept.rate_s, "propose_s": 0.0, "edit_s": kept.edit_s}
        for attempt in range(c.attempts):
            propose_seed = derive_seed(c.seed, unit, attempt, "propose")
            t = time.perf_counter()
            answer = await self._call(
                self._judge_gate,
                "propose",
                lambda seed=propose_seed: self.judge.propose_edits(
                    src.data,
                    direction,
                    category=category,
                    count=c.proposals,
                    seed=seed,
                    policy=c.policy,
                    timeout=c.judge_timeout_s,
                ),
            )
            timings["propose_s"] += time.perf_counter() - t
            for k, proposal in enumerate(answer.proposals):
                edit_seed = derive_seed(c.seed, unit, attempt, k, "edit")
                edited, edit_s = await self._edit(src.data, proposal.instruction, edit_seed)
                rating, rate_prompt, rate_s = await self._rate(edited)
                timings["edit_s"] += edit_s
                timings["rate_s"] += rate_s
                similarity = compare(kept.data, edited)
                reasons = rejection_reasons(
                    c.criteria, direction, category, kept.rating, rating, similarity
                )
                record = PairRecord(
                    status=REJECTED if reasons else ACCEPTED,
                    id=f"{src.sha[:12]}-{direction}-{category}-a{attempt}c{k}",
                    unit=unit,
                    attempt=attempt,
                    candidate=k,
                    final=False,
                    direction=direction,
                    category=category,
                    instruction=proposal.instruction,
                    action=proposal.action,
                    element=proposal.element,
                    source=Source(path=src.path, sha256=src.sha, image=source_image),
                    a=kept_member,
                    b=Member(
                        image=await self._put(edited),
                        labels=() if unsafe_kept else (category,),
                        role="edit",
                        p_unsafe=rating.p_unsafe,
                        category=rating.category,
                    ),
                    edited="b",
                    artifact_matched="null-edit" if c.artifact_matched else "none",
                    models=self._models,
                    seeds=Seeds(propose=propose_seed, edit=edit_seed, null_edit=kept.null_seed),
                    prompt_versions=PromptVersions(rate=rate_prompt, propose=answer.prompt_version),
                    similarity=similarity,
                    timings=Timings(
                        **{k2: round(v, 4) for k2, v in timings.items()},
                        total_s=round(time.perf_counter() - started, 4),
                    ),
                    reasons=tuple(reasons),
                )
                records.append(record)
                if not reasons:
                    await self._commit(records)
                    return
        if records:
            records[-1] = replace(records[-1], final=True)
        await self._commit(records)

    async def _commit(self, records: Sequence[Record]) -> None:
        await self._store(self.dataset.commit, records)
        for r in records:
            if r.status == ACCEPTED:
                self.progress.accepted += 1
            elif r.status == REJECTED:
                self.progress.rejected += 1
            else:
                self.progress.failed += 1
        self._on_progress(self.progress)

    async def _ambiguous(self, src: _Source, kept: _Kept, done: set[str]) -> None:
        """A source whose kept image is neither clearly safe nor clearly unsafe (or unsafe in a
        category not asked for) makes no unit; the record says why."""
        unit = f"{src.sha[:16]}:source"
        if unit in done:
            return
        rating = kept.rating
        await self._commit(
            [
                PairRecord(
                    status=REJECTED,
                    unit=unit,
                    id=f"{src.sha[:12]}-source",
                    final=True,
                    source=Source(path=src.path, sha256=src.sha),
                    reasons=(SOURCE_AMBIGUOUS,),
                    a=Member(p_unsafe=rating.p_unsafe, category=rating.category),
                    models=self._models,
                )
            ]
        )

    async def _fail(self, unit: str, path: str, exc: SafetyPairsError) -> None:
        error = ErrorInfo(kind=exc.kind, message=exc.message)
        await self._commit([FailedUnit(unit=unit, source=Source(path=path), error=error)])

    async def _source(self, path: str, done: set[str], gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                await self._fail(
                    f"source:{path}", path, SafetyPairsError(f"cannot read {path}: {exc.strerror}")
                )
                return
            src = _Source(path, data, sha256(data))
            i, n = self.config.shard
            if int(src.sha, 16) % n != i:
                return
            try:
                kept = await self._kept_image(src)
                units = [
                    (d, cat, f"{src.sha[:16]}:{d}:{cat}") for d, cat in self._units(kept.rating)
                ]
                if not units:
                    await self._ambiguous(src, kept, done)
                todo = [u for u in units if u[2] not in done]
                self.progress.skipped += len(units) - len(todo)
                source_image = await self._put(data, Path(path).suffix.lower() or ".img")
                for direction, category, unit in todo:
                    try:
                        await self._unit(src, source_image, kept, direction, category, unit)
                    except SafetyPairsError as exc:
                        await self._fail(unit, path, exc)
            except SafetyPairsError as exc:  # the source itself: unreadable, or rating failed
                await self._fail(f"source:{src.sha[:16]}", path, exc)
        self.progress.sources_done += 1
        self._on_progress(self.progress)

    async def run(self, paths: Sequence[str | Path]) -> Progress:
        """Generate into the dataset, continuing a run with the same arguments. The writer
        lock (or lease) is taken first, so a second writer fails before any work."""
        lock = take_writer(self.out, self.lease_s)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset")
        try:
            judge_info = await self.judge.model_info()
            edit_info = await self.editor.model_info()
            self._models = Models(
                judge=judge_info.reference or judge_info.name,
                edit=f"{edit_info.name}:{edit_info.version}",
                judge_untrained=judge_info.untrained,
                edit_untrained=edit_info.untrained,
            )
            header = {
                "run": self.config.run_header(self._models.judge, self._models.edit),
                "policy": self.config.policy.to_dict(),
            }
            self.dataset = open_dataset(self.out, header, self.lease_s, lock)
            done = self.dataset.done_units()
            self.progress.sources_total = len(paths)
            self._on_progress(self.progress)
            gate = asyncio.Semaphore(self.config.units_in_flight)
            tasks = [asyncio.ensure_future(self._source(str(p), done, gate)) for p in paths]
            try:
                await asyncio.gather(*tasks)
            except BaseException as exc:  # the dataset failed: stop every unit, then the lock
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if isinstance(exc, _DatasetFailed):
                    raise exc.error from None
                raise
        finally:
            self._writer.shutdown(wait=True)  # a write under way ends before the lock goes
            lock.release()
        return self.progress


def summary(progress: Progress) -> dict[str, Any]:
    return {k: v for k, v in asdict(progress).items() if k != "started"}
