"""The guard in MLServer as a custom runtime (gRPC OIP v2), MLServer's default settings but the
ports.  python serve_mlserver.py ONNX GRPC_PORT HTTP_PORT METRICS_PORT WORKDIR

Writes settings.json and model-settings.json into WORKDIR, then runs `mlserver start WORKDIR`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class GuardModel(MLModel):
    async def load(self) -> bool:
        from reference_guard import ReferenceGuard

        self.guard = ReferenceGuard(self.settings.parameters.uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        data = payload.inputs[0].data
        blobs = [bytes(b) for b in (data.root if hasattr(data, "root") else data)]
        probs = self.guard.probabilities(blobs)
        return InferenceResponse(
            model_name=self.name,
            id=payload.id,
            outputs=[
                ResponseOutput(
                    name="probabilities",
                    shape=list(probs.shape),
                    datatype="FP32",
                    data=probs.reshape(-1).tolist(),
                )
            ],
        )


if __name__ == "__main__":
    onnx, grpc_port, http_port, metrics_port = sys.argv[1], *map(int, sys.argv[2:5])
    work = Path(sys.argv[5])
    here = Path(__file__).resolve().parent
    name = json.loads(Path(onnx).with_suffix(".json").read_text())["name"]
    (work / "settings.json").write_text(
        json.dumps({"grpc_port": grpc_port, "http_port": http_port, "metrics_port": metrics_port})
    )
    (work / "model-settings.json").write_text(
        json.dumps(
            {
                "name": name,
                "implementation": "serve_mlserver.GuardModel",
                "parameters": {"uri": onnx},
            }
        )
    )
    os.environ["PYTHONPATH"] = f"{here}:{os.environ.get('PYTHONPATH', '')}"
    mlserver = Path(sys.executable).parent / "mlserver"
    os.execv(str(mlserver), [str(mlserver), "start", str(work)])
