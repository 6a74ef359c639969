"""What the Open Inference Protocol v2 says about the guard's model, for both transports (gRPC:
oip.py, REST: oip_http.py): the tensor names, the metadata and the check of a requested model.

Light on purpose: the REST routes are mounted when the service module is imported, and BentoML's
arbiter imports that module too; it must not pay for importing the model runtime (onnxruntime,
numpy, tritonclient) that only the worker uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safetypairs import __version__
from safetypairs.contract.errors import NotFound

if TYPE_CHECKING:
    from safetypairs.guard.runtime import GuardRuntime

INPUT = "images"
OUTPUT = "probabilities"
PLATFORM = "onnxruntime_onnx"


def server_metadata() -> dict:
    return {"name": "safetypairs-guard", "version": __version__, "extensions": []}


def model_metadata(runtime: GuardRuntime) -> dict:
    """The model's OIP v2 metadata, the same over gRPC and REST."""
    card = runtime.engine.card
    return {
        "name": card.name,
        "versions": [card.version],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, len(card.categories)]}],
    }


def check_model(runtime: GuardRuntime, name: str, version: str) -> None:
    card = runtime.engine.card
    if name != card.name or version not in ("", card.version):
        raise NotFound(
            f"unknown model {name!r} version {version!r}; this server has "
            f"{card.name!r} version {card.version!r}"
        )
