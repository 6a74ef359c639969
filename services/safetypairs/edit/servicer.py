"""gRPC adapter: the Edit service's RPCs call the shared EditRuntime, nothing more. Errors are
mapped once, by the server's interceptor (streams included)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from safetypairs.edit.runtime import EditRuntime
from safetypairs.serving.grpc_server import ServiceRegistration
from safetypairs.v1 import edit_pb2, edit_pb2_grpc

SERVICE_NAME = edit_pb2.DESCRIPTOR.services_by_name["Edit"].full_name


class EditServicer(edit_pb2_grpc.EditServicer):
    def __init__(self, runtime: EditRuntime) -> None:
        self._runtime = runtime

    async def Edit(self, request: edit_pb2.EditRequest, context: grpc.aio.ServicerContext):
        return await self._runtime.edit(request)

    async def EditStream(
        self, request: edit_pb2.EditRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[edit_pb2.EditEvent]:
        async for event in self._runtime.edit_events(request):
            yield event

    async def GetModelInfo(self, request, context: grpc.aio.ServicerContext):
        return self._runtime.model_info()


def edit_registration(runtime: EditRuntime) -> ServiceRegistration:
    servicer = EditServicer(runtime)
    return ServiceRegistration(
        SERVICE_NAME, lambda server: edit_pb2_grpc.add_EditServicer_to_server(servicer, server)
    )
