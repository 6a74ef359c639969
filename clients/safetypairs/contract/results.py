"""Plain Python results the SDK returns, converted from the contract's messages."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from safetypairs.contract.enum_names import user_value
from safetypairs.contract.errors import SafetyPairsError, error_from_item
from safetypairs.v1 import common_pb2, guard_pb2, judge_pb2


@dataclass(frozen=True)
class CategoryScore:
    category: str
    probability: float | None  # None when not covered: no number, never a made-up 0
    threshold: float | None
    flagged: bool
    not_covered: bool = False  # the model has no output for this category

    @classmethod
    def from_proto(cls, s: common_pb2.CategoryScore) -> CategoryScore:
        if s.not_covered:
            return cls(s.category, None, None, False, True)
        return cls(s.category, s.probability, s.threshold, s.flagged)


@dataclass(frozen=True)
class MemberResult:
    """One ensemble member's own (pre-fusion) probabilities and its batch's time."""

    name: str
    latency_ms: float
    scores: dict[str, float]


@dataclass(frozen=True)
class Verdict:
    rating: str  # "safe" | "unsafe"
    category: str  # deciding category code; "" when safe
    probability: float
    scores: tuple[CategoryScore, ...]
    model: str
    untrained: bool
    rationale: str = ""
    members: tuple[MemberResult, ...] = ()  # only when asked for (member_details=True)

    @property
    def unsafe(self) -> bool:
        return self.rating == "unsafe"

    @classmethod
    def from_proto(cls, msg: common_pb2.Verdict) -> Verdict:
        return cls(
            rating=user_value(common_pb2.Rating, msg.rating),
            category=msg.category,
            probability=msg.probability,
            scores=tuple(CategoryScore.from_proto(s) for s in msg.scores),
            model=msg.model,
            untrained=msg.untrained,
            rationale=msg.rationale,
            members=tuple(
                MemberResult(m.name, m.latency_ms, {s.category: s.probability for s in m.scores})
                for m in msg.members
            ),
        )


@dataclass(frozen=True)
class ScreenResult:
    """One image of a batch: a verdict, or the error that image alone met."""

    image_id: str
    verdict: Verdict | None
    error: SafetyPairsError | None = None

    @classmethod
    def from_proto(cls, msg: guard_pb2.ScreenResult) -> ScreenResult:
        if msg.WhichOneof("outcome") == "error":
            return cls(msg.image_id, None, error_from_item(msg.error))
        return cls(msg.image_id, Verdict.from_proto(msg.verdict))


def _from_fields(cls: type, msg: Message, nested: dict[str, type] | None = None) -> Any:
    """A dataclass from the message fields of the same names: maps become dicts, repeated
    fields tuples, and fields named in `nested` are converted with that class's from_proto."""
    by_name = msg.DESCRIPTOR.fields_by_name
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value, spec = getattr(msg, f.name), by_name[f.name]
        if nested and f.name in nested:
            value = tuple(nested[f.name].from_proto(v) for v in value)
        elif spec.message_type is not None and spec.message_type.GetOptions().map_entry:
            value = dict(value)
        elif spec.is_repeated:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


@dataclass(frozen=True)
class MemberInfo:
    name: str
    description: str
    categories: tuple[str, ...]
    weights: str
    training: str
    providers: tuple[str, ...]

    @classmethod
    def from_proto(cls, msg: guard_pb2.MemberInfo) -> MemberInfo:
        return _from_fields(cls, msg)


@dataclass(frozen=True)
class BatchCost:
    batch_size: int
    ms_per_image: float

    @classmethod
    def from_proto(cls, msg: guard_pb2.BatchCost) -> BatchCost:
        return _from_fields(cls, msg)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    description: str
    untrained: bool
    notice: str
    categories: tuple[str, ...]
    thresholds: dict[str, float] = field(default_factory=dict)
    providers: tuple[str, ...] = ()
    runtime: str = ""
    input_size: int = 0
    max_batch_size: int = 0
    max_image_bytes: int = 0
    max_image_pixels: int = 0
    max_images_per_request: int = 0
    not_covered: tuple[str, ...] = ()
    weights: str = ""
    training: str = ""
    members: tuple[MemberInfo, ...] = ()  # an ensemble's members; empty for one model
    fusion: dict[str, str] = field(default_factory=dict)  # category -> fusion rule
    reference: str = ""  # the model reference the service runs (store tag with version, path)
    batching: str = ""  # the batching policy and why (measured or pinned)
    batch_costs: tuple[BatchCost, ...] = ()  # measured model cost per image by batch size

    @classmethod
    def from_proto(cls, msg: guard_pb2.ModelInfo) -> ModelInfo:
        return _from_fields(cls, msg, {"members": MemberInfo, "batch_costs": BatchCost})


@dataclass(frozen=True)
class Rated:
    """The judge's answer for one image: a verdict (or the error that image alone met) and the
    prompt template it came from ("rate@1")."""

    image_id: str
    verdict: Verdict | None
    prompt_version: str
    error: SafetyPairsError | None = None

    @classmethod
    def from_proto(cls, msg: Any, prompt_version: str) -> Rated:
        """From a RateResponse or a RateBatchResponse's RateResult."""
        if msg.DESCRIPTOR.oneofs_by_name.get("outcome") and msg.WhichOneof("outcome") == "error":
            return cls(msg.image_id, None, prompt_version, error_from_item(msg.error))
        return cls(msg.image_id, Verdict.from_proto(msg.verdict), prompt_version)


@dataclass(frozen=True)
class EditProposal:
    instruction: str
    action: str  # "add" | "remove" | "change"
    element: str
    category: str

    @classmethod
    def from_proto(cls, msg: judge_pb2.EditProposal) -> EditProposal:
        action = user_value(judge_pb2.EditAction, msg.action)
        return cls(msg.instruction, action, msg.element, msg.category)


@dataclass(frozen=True)
class Proposals:
    image_id: str
    proposals: tuple[EditProposal, ...]
    model: str
    untrained: bool
    prompt_version: str

    @classmethod
    def from_proto(cls, msg: judge_pb2.ProposeEditsResponse) -> Proposals:
        return _from_fields(cls, msg, {"proposals": EditProposal})


@dataclass(frozen=True)
class JudgeModelInfo:
    name: str
    reference: str
    architecture: str
    dtype: str
    device: str
    untrained: bool
    notice: str
    prompt_versions: tuple[str, ...]
    verdict_mode: str
    default_policy: str
    max_batch_size: int
    max_proposals: int
    max_prompt_chars: int
    runtime: str

    @classmethod
    def from_proto(cls, msg: judge_pb2.JudgeModelInfo) -> JudgeModelInfo:
        return _from_fields(cls, msg)
