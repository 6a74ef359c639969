"""The KServe Open Inference Protocol v2 (`inference.GRPCInferenceService`) on the guard's gRPC
port, so Triton and KServe clients (`tritonclient.grpc`) work unchanged.

The message and service definitions are the ones the `tritonclient` package ships (Triton's
superset of the OIP v2 protocol), so the wire format is exactly what those clients speak.
One model: the guard, under its card name. Input `images`: a BYTES tensor of encoded image
files, shape [N] or [N, 1]. Output `probabilities`: FP32 [N, C] in `raw_output_contents`, C the
categories the guard covers in `categories` order (the model config's `categories` parameter).
Triton-only RPCs (repository, shared memory, statistics, trace, logging, streaming) answer
UNIMPLEMENTED.
"""

from __future__ import annotations

import math
import struct

import grpc
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from safetypairs.contract.errors import InvalidInput, Unavailable
from safetypairs.guard.oip_model import (
    INPUT,
    OUTPUT,
    PLATFORM,
    check_model,
    model_metadata,
    server_metadata,
)
from safetypairs.guard.runtime import GuardRuntime
from safetypairs.serving.grpc_server import ServiceRegistration

SERVICE_NAME = "inference.GRPCInferenceService"


def decode_bytes_tensor(raw: bytes) -> list[bytes]:
    """OIP v2 BYTES raw contents: each element a 4-byte little-endian length, then the bytes."""
    items, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"{INPUT}: BYTES tensor is truncated at offset {offset}")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidInput(
                f"{INPUT}: BYTES element {len(items)} claims {size} bytes, past the end"
            )
        items.append(raw[offset : offset + size])
        offset += size
    return items


class OipServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, runtime: GuardRuntime) -> None:
        self._runtime = runtime
        card = runtime.engine.card
        self._name, self._version = card.name, card.version
        self._categories = card.categories

    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self._runtime.ready)

    async def ModelReady(self, request, context):
        check_model(self._runtime, request.name, request.version)
        return pb.ModelReadyResponse(ready=self._runtime.ready)

    async def ServerMetadata(self, request, context):
        return json_format.ParseDict(server_metadata(), pb.ServerMetadataResponse())

    async def ModelMetadata(self, request, context):
        check_model(self._runtime, request.name, request.version)
        return json_format.ParseDict(model_metadata(self._runtime), pb.ModelMetadataResponse())

    async def ModelConfig(self, request, context):
        check_model(self._runtime, request.name, request.version)
        info = self._runtime.model_info()
        parameters = {
            "categories": ",".join(self._categories),
            "not_covered": ",".join(info.not_covered),
            "untrained": str(info.untrained).lower(),
            "notice": info.notice,
            "weights": info.weights,
            "training": info.training,
            **{f"member.{m.name}": ",".join(m.categories) for m in info.members},
            **{f"fusion.{code}": rule for code, rule in info.fusion.items()},
        }
        config = mc.ModelConfig(
            name=self._name,
            platform=PLATFORM,
            max_batch_size=self._runtime.settings.max_images_per_request,
            input=[mc.ModelInput(name=INPUT, data_type=mc.TYPE_STRING, dims=[1])],
            output=[
                mc.ModelOutput(name=OUTPUT, data_type=mc.TYPE_FP32, dims=[len(self._categories)])
            ],
            parameters={k: mc.ModelParameter(string_value=v) for k, v in parameters.items()},
        )
        return pb.ModelConfigResponse(config=config)

    async def ModelInfer(self, request, context):
        check_model(self._runtime, request.model_name, request.model_version)
        if not self._runtime.ready:
            raise Unavailable("the guard is not ready")
        if len(request.inputs) != 1 or request.inputs[0].name != INPUT:
            names = [t.name for t in request.inputs]
            raise InvalidInput(f"expected one input tensor {INPUT!r} (BYTES), got {names}")
        tensor = request.inputs[0]
        if tensor.datatype != "BYTES":
            raise InvalidInput(
                f"input {INPUT!r} must be BYTES (encoded images), not {tensor.datatype}"
            )
        wanted = [o.name for o in request.outputs]
        if any(n != OUTPUT for n in wanted):
            raise InvalidInput(
                f"unknown output(s) {[n for n in wanted if n != OUTPUT]}; the model has {OUTPUT!r}"
            )
        if request.raw_input_contents:
            images = decode_bytes_tensor(request.raw_input_contents[0])
        else:
            images = list(tensor.contents.bytes_contents)
        # math.prod, not numpy's: np.prod on a protobuf field builds an array (0.1 ms a call).
        count = math.prod(tensor.shape) if tensor.shape else 0
        if count != len(images):
            raise InvalidInput(
                f"input shape {list(tensor.shape)} holds {count} elements, got {len(images)}"
            )
        probs = await self._runtime.probabilities(images)
        output = pb.ModelInferResponse.InferOutputTensor(
            name=OUTPUT, datatype="FP32", shape=list(probs.shape)
        )
        return pb.ModelInferResponse(
            model_name=self._name,
            model_version=self._version,
            id=request.id,
            outputs=[output],
            raw_output_contents=[probs.astype("<f4").tobytes()],
        )


def oip_registration(runtime: GuardRuntime) -> ServiceRegistration:
    servicer = OipServicer(runtime)

    def add(server: grpc.aio.Server) -> None:
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)

    return ServiceRegistration(SERVICE_NAME, add)
