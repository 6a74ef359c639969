"""The JSON sidecar shipped next to a guard's .onnx file: how to feed it and read it.

    guard.onnx + guard.json  (same stem, same directory)

Only the standard library here: the sidecar is written by the export side (torch) and read by
the serving side (no torch).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetypairs.errors import ModelError

FORMAT = "safetypairs-guard"
FORMAT_VERSION = 1
RESIZE_MODES = ("shorter_side_center_crop", "squash")
OUTPUT_KINDS = ("probabilities", "logits")


@dataclass(frozen=True)
class GuardInput:
    name: str
    size: int  # square side in pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "shorter_side_center_crop"


@dataclass(frozen=True)
class GuardOutput:
    name: str
    kind: str = "probabilities"  # or "logits": the engine applies a sigmoid


@dataclass(frozen=True)
class GuardSidecar:
    name: str
    version: str
    description: str
    untrained: bool
    input: GuardInput
    output: GuardOutput
    categories: tuple[str, ...]
    thresholds: dict[str, float]
    opset: int
    weights: str = ""  # what the weights are (model card in brief)
    training: str = ""  # what the head was trained on
    notice: str = ""
    # The policy the categories come from, in the policy YAML schema; None = built-in O1..O9.
    policy: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, **data}
        return json.dumps(data, indent=2) + "\n"

    def write(self, path: Path) -> None:
        path.write_text(self.to_json())

    @classmethod
    def read(cls, path: Path) -> GuardSidecar:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(
                f"guard sidecar {path} is missing (expected next to the .onnx)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"guard sidecar {path} is unreadable: {exc}") from None
        try:
            return cls._parse(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"guard sidecar {path} is invalid: {exc}") from None

    @classmethod
    def _parse(cls, data: dict[str, Any]) -> GuardSidecar:
        if data.get("format") != FORMAT:
            raise ValueError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {data.get('format_version')} is not supported")
        inp = data["input"]
        mean, std = tuple(map(float, inp["mean"])), tuple(map(float, inp["std"]))
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError("input.mean and input.std need 3 values, std positive")
        if int(inp["size"]) < 1:
            raise ValueError("input.size must be positive")
        if inp.get("resize", RESIZE_MODES[0]) not in RESIZE_MODES:
            raise ValueError(f"input.resize must be one of {RESIZE_MODES}")
        out = data["output"]
        if out.get("kind", "probabilities") not in OUTPUT_KINDS:
            raise ValueError(f"output.kind must be one of {OUTPUT_KINDS}")
        categories = tuple(str(c) for c in data["categories"])
        if not categories or len(set(categories)) != len(categories):
            raise ValueError("categories must be a non-empty list without repeats")
        thresholds = {str(k): float(v) for k, v in data.get("thresholds", {}).items()}
        unknown = set(thresholds) - set(categories)
        if unknown:
            raise ValueError(f"thresholds name unknown categories {sorted(unknown)}")
        if any(not 0.0 <= t <= 1.0 for t in thresholds.values()):
            raise ValueError("thresholds must lie in [0, 1]")
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            description=str(data.get("description", "")),
            untrained=bool(data["untrained"]),
            input=GuardInput(
                name=str(inp["name"]),
                size=int(inp["size"]),
                mean=mean,  # type: ignore[arg-type]
                std=std,  # type: ignore[arg-type]
                resize=str(inp.get("resize", RESIZE_MODES[0])),
            ),
            output=GuardOutput(name=str(out["name"]), kind=str(out.get("kind", "probabilities"))),
            categories=categories,
            thresholds={c: thresholds.get(c, 0.5) for c in categories},
            opset=int(data.get("opset", 0)),
            weights=str(data.get("weights", "")),
            training=str(data.get("training", "")),
            notice=str(data.get("notice", "")),
            policy=data.get("policy"),
            extra=dict(data.get("extra", {})),
        )


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")
