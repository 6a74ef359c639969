"""gRPC adapter: the Guard service's RPCs call the shared GuardRuntime, nothing more.
Errors are mapped once, by the server's interceptor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from safetypairs.serving.grpc_server import ServiceRegistration
from safetypairs.v1 import guard_pb2, guard_pb2_grpc

if TYPE_CHECKING:
    from safetypairs.guard.runtime import GuardRuntime

SERVICE_NAME = guard_pb2.DESCRIPTOR.services_by_name["Guard"].full_name


class GuardServicer(guard_pb2_grpc.GuardServicer):
    def __init__(self, runtime: GuardRuntime) -> None:
        self._runtime = runtime

    async def Screen(self, request: guard_pb2.ScreenRequest, context: grpc.aio.ServicerContext):
        return await self._runtime.screen(request)

    async def ScreenBatch(
        self, request: guard_pb2.ScreenBatchRequest, context: grpc.aio.ServicerContext
    ):
        return await self._runtime.screen_batch(request)

    async def ListCategories(self, request, context: grpc.aio.ServicerContext):
        return self._runtime.list_categories()

    async def GetModelInfo(self, request, context: grpc.aio.ServicerContext):
        return self._runtime.model_info()


def guard_registration(runtime: GuardRuntime) -> ServiceRegistration:
    servicer = GuardServicer(runtime)
    return ServiceRegistration(
        SERVICE_NAME, lambda server: guard_pb2_grpc.add_GuardServicer_to_server(servicer, server)
    )
