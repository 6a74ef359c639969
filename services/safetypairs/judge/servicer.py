"""gRPC adapter: the Judge service's RPCs call the shared JudgeRuntime, nothing more.
Errors are mapped once, by the server's interceptor."""

from __future__ import annotations

import grpc

from safetypairs.judge.runtime import JudgeRuntime
from safetypairs.serving.grpc_server import ServiceRegistration
from safetypairs.v1 import judge_pb2, judge_pb2_grpc

SERVICE_NAME = judge_pb2.DESCRIPTOR.services_by_name["Judge"].full_name


class JudgeServicer(judge_pb2_grpc.JudgeServicer):
    def __init__(self, runtime: JudgeRuntime) -> None:
        self._runtime = runtime

    async def Rate(self, request: judge_pb2.RateRequest, context: grpc.aio.ServicerContext):
        return await self._runtime.rate(request)

    async def RateBatch(
        self, request: judge_pb2.RateBatchRequest, context: grpc.aio.ServicerContext
    ):
        return await self._runtime.rate_batch(request)

    async def ProposeEdits(
        self, request: judge_pb2.ProposeEditsRequest, context: grpc.aio.ServicerContext
    ):
        return await self._runtime.propose_edits(request)

    async def ListCategories(self, request, context: grpc.aio.ServicerContext):
        return self._runtime.list_categories()

    async def GetModelInfo(self, request, context: grpc.aio.ServicerContext):
        return self._runtime.model_info()


def judge_registration(runtime: JudgeRuntime) -> ServiceRegistration:
    servicer = JudgeServicer(runtime)
    return ServiceRegistration(
        SERVICE_NAME, lambda server: judge_pb2_grpc.add_JudgeServicer_to_server(servicer, server)
    )
