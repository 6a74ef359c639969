"""The guard in Triton through PyTriton (the real tritonserver binary, the Python model behind
it), with Triton's dynamic batching up to 16.  python serve_pytriton.py ONNX GRPC HTTP METRICS"""

from __future__ import annotations

import os
import sys

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from reference_guard import ReferenceGuard

if __name__ == "__main__":
    onnx, grpc_port, http_port, metrics_port = sys.argv[1], *map(int, sys.argv[2:5])
    # Triton's Python-backend stub links libpython3.11.so from the loader's path; let it find
    # this interpreter's own (a system libpython of another 3.11 patch release breaks the
    # stub's multiprocessing at model start).
    lib = os.path.join(sys.base_prefix, "lib")
    os.environ["LD_LIBRARY_PATH"] = f"{lib}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    guard = ReferenceGuard(onnx)

    @batch
    def infer(images: np.ndarray) -> dict[str, np.ndarray]:
        return {"probabilities": guard.probabilities([bytes(b) for b in images.reshape(-1)])}

    config = TritonConfig(grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port)
    with Triton(config=config) as triton:
        triton.bind(
            model_name=guard.name,
            infer_func=infer,
            inputs=[Tensor(name="images", dtype=np.bytes_, shape=(1,))],
            outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(guard.categories,))],
            config=ModelConfig(max_batch_size=16, batcher=DynamicBatcher()),
            strict=False,
        )
        triton.serve()
