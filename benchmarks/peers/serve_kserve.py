"""The guard in KServe's Python ModelServer (gRPC OIP v2), one model, no batching (KServe's
Python server has none).  python serve_kserve.py ONNX GRPC_PORT HTTP_PORT"""

from __future__ import annotations

import sys

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from reference_guard import ReferenceGuard


class GuardModel(Model):
    def __init__(self, onnx_path: str) -> None:
        self.guard = ReferenceGuard(onnx_path)
        super().__init__(self.guard.name)
        self.ready = True

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        blobs = [bytes(b) for b in np.asarray(payload.inputs[0].as_numpy()).reshape(-1)]
        probs = self.guard.probabilities(blobs)
        out = InferOutput(name="probabilities", shape=list(probs.shape), datatype="FP32")
        out.set_data_from_numpy(probs, binary_data=True)
        return InferResponse(
            model_name=self.name,
            infer_outputs=[out],
            response_id=payload.id,
            use_binary_outputs=True,
        )


if __name__ == "__main__":
    onnx, grpc_port, http_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ModelServer(grpc_port=grpc_port, http_port=http_port, workers=1).start([GuardModel(onnx)])
