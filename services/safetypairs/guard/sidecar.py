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

from safetypairs.contract.errors import ModelError

MANIFEST = "ensemble.json"  # an ensemble guard's manifest (ensemble.py), beside its members

FORMAT = "safetypairs-guard"
FORMAT_VERSION = 1
# shorter_side_center_crop: shorter side to `size`, centre crop; squash: both sides to `size`;
# squash_center_crop: both sides to `resize_to`, centre crop to `size` (Caffe-era models).
RESIZE_MODES = ("shorter_side_center_crop", "squash", "squash_center_crop")
OUTPUT_KINDS = ("probabilities", "logits")
LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class GuardInput:
    name: str
    size: int  # square side in pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "shorter_side_center_crop"
    resize_to: int = 0  # squash_center_crop only
    layout: str = "NCHW"
    channel_order: str = "RGB"
    # Pixels are scaled to [0, pixel_range] before mean/std: 1.0 for most models, 255.0 for
    # models trained on raw 8-bit values.
    pixel_range: float = 1.0
    # Round-trip through JPEG (quality 75) after resizing, as some reference pipelines do.
    jpeg_reencode: bool = False


@dataclass(frozen=True)
class GuardOutput:
    name: str
    kind: str = "probabilities"  # or "logits": the engine applies a sigmoid
    # category -> output column; None when column i is categories[i].
    columns: dict[str, int] | None = None


@dataclass(frozen=True)
class GuardCard:
    """What a guard tells its clients about itself (ModelInfo), for one model or an ensemble."""

    name: str
    version: str
    description: str
    untrained: bool
    notice: str
    weights: str
    training: str
    categories: tuple[str, ...]  # covered categories, in output order
    thresholds: dict[str, float]
    input_size: int  # largest input side any part of the model uses


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

    @property
    def card(self) -> GuardCard:
        return GuardCard(
            name=self.name,
            version=self.version,
            description=self.description,
            untrained=self.untrained,
            notice=self.notice,
            weights=self.weights,
            training=self.training,
            categories=self.categories,
            thresholds=self.thresholds,
            input_size=self.input.resize_to or self.input.size,
        )

    @property
    def column_of(self) -> dict[str, int]:
        if self.output.columns is not None:
            return dict(self.output.columns)
        return {c: i for i, c in enumerate(self.categories)}

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
            return cls.parse(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"guard sidecar {path} is invalid: {exc}") from None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> GuardSidecar:
        if data.get("format") != FORMAT:
            raise ValueError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {data.get('format_version')} is not supported")
        inp = _parse_input(data["input"])
        out = data["output"]
        if out.get("kind", "probabilities") not in OUTPUT_KINDS:
            raise ValueError(f"output.kind must be one of {OUTPUT_KINDS}")
        categories = tuple(str(c) for c in data["categories"])
        if not categories or len(set(categories)) != len(categories):
            raise ValueError("categories must be a non-empty list without repeats")
        columns = out.get("columns")
        if columns is not None:
            columns = {str(k): int(v) for k, v in columns.items()}
            if set(columns) != set(categories) or min(columns.values()) < 0:
                raise ValueError("output.columns must give a column >= 0 for every category")
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
            input=inp,
            output=GuardOutput(
                name=str(out["name"]), kind=str(out.get("kind", "probabilities")), columns=columns
            ),
            categories=categories,
            thresholds={c: thresholds.get(c, 0.5) for c in categories},
            opset=int(data.get("opset", 0)),
            weights=str(data.get("weights", "")),
            training=str(data.get("training", "")),
            notice=str(data.get("notice", "")),
            policy=data.get("policy"),
            extra=dict(data.get("extra", {})),
        )


def _parse_input(inp: dict[str, Any]) -> GuardInput:
    mean, std = tuple(map(float, inp["mean"])), tuple(map(float, inp["std"]))
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError("input.mean and input.std need 3 values, std positive")
    size = int(inp["size"])
    if size < 1:
        raise ValueError("input.size must be positive")
    resize = str(inp.get("resize", RESIZE_MODES[0]))
    if resize not in RESIZE_MODES:
        raise ValueError(f"input.resize must be one of {RESIZE_MODES}")
    resize_to = int(inp.get("resize_to", 0))
    if resize == "squash_center_crop" and resize_to < size:
        raise ValueError("input.resize_to must be at least input.size for squash_center_crop")
    layout, order = str(inp.get("layout", "NCHW")), str(inp.get("channel_order", "RGB"))
    if layout not in LAYOUTS:
        raise ValueError(f"input.layout must be one of {LAYOUTS}")
    if order not in CHANNEL_ORDERS:
        raise ValueError(f"input.channel_order must be one of {CHANNEL_ORDERS}")
    pixel_range = float(inp.get("pixel_range", 1.0))
    if pixel_range <= 0:
        raise ValueError("input.pixel_range must be positive")
    return GuardInput(
        name=str(inp["name"]),
        size=size,
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        resize=resize,
        resize_to=resize_to,
        layout=layout,
        channel_order=order,
        pixel_range=pixel_range,
        jpeg_reencode=bool(inp.get("jpeg_reencode", False)),
    )


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")
