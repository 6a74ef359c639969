"""The in-process gRPC server: our services plus health and reflection, one error mapping.

BentoML 1.4's service API has no gRPC server, so each service starts this `grpc.aio` server in
its own worker process (from an on_startup hook) and both protocols call the same engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from safetypairs.contract.errors import (
    ERROR_KIND_METADATA_KEY,
    InvalidInput,
    Overloaded,
    SafetyPairsError,
)
from safetypairs.contract.request_id import REQUEST_ID_METADATA_KEY, incoming_request_id
from safetypairs.serving.admission import ByteBudget
from safetypairs.serving.auth import (
    GrpcAuthInterceptor,
    TokenAuth,
    server_credentials,
    token_auth,
)
from safetypairs.serving.logs import log_request
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import ServingSettings
from safetypairs.serving.status_labels import Status

log = logging.getLogger(__name__)

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


@dataclass(frozen=True)
class ServiceRegistration:
    """One gRPC service to serve: its full name and how to add its servicer."""

    name: str  # e.g. "safetypairs.v1.Guard"
    add: Callable[[grpc.aio.Server], None]


@dataclass(frozen=True)
class _Malformed:
    """A request whose bytes did not parse as the method's message."""

    reason: str


@dataclass(frozen=True)
class _OverBudget:
    """A request refused before parsing: its bytes would pass the in-flight byte budget."""

    size: int
    in_use: int
    limit: int


class _Held:
    """A parsed request and the budget bytes it holds, given back once: when the call's
    handler ends, or when grpc drops the request unhandled (a call cancelled meanwhile)."""

    def __init__(self, message: Any, size: int, budget: ByteBudget) -> None:
        self.message = message
        self.release = weakref.finalize(self, budget.give, size)


def _tolerant(
    deserialize: Callable[[bytes], Any] | None, budget: ByteBudget
) -> Callable[[bytes], Any] | None:
    """Wraps a request parser: a message over the byte budget is not parsed (_OverBudget);
    grpc answers a request that fails to parse with UNKNOWN ("Unexpected DecodeError"), so
    that becomes a _Malformed; the handler refuses either with the mapped error."""
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        size = len(data)
        if not budget.take(size):
            return _OverBudget(size, budget.in_use, budget.limit)
        try:
            return _Held(deserialize(data), size, budget)
        except DecodeError as exc:
            budget.give(size)
            return _Malformed(str(exc))

    return parse


def _parsed(name: str, request: Any) -> Any:
    """The request message, or the error its parsing found."""
    if isinstance(request, _Malformed):
        raise InvalidInput(f"the {name} request is not a valid protobuf message: {request.reason}")
    if isinstance(request, _OverBudget):
        raise Overloaded(
            f"server busy: the {name} request's {request.size} bytes would pass the "
            f"{request.limit} bytes of requests it handles at once ({request.in_use} in use); "
            "retry later or on another replica"
        )
    return request.message if isinstance(request, _Held) else request


def _release(request: Any) -> None:
    if isinstance(request, _Held):
        request.release()


class ErrorAndMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Maps SafetyPairsError to its status (with the error kind in trailing metadata), methods
    left to their generated base class to UNIMPLEMENTED, hides unexpected exceptions behind
    INTERNAL, and records every unary and server-streaming call in the metrics and the access
    log (a stream when it ends) under its request id, which goes back in trailing metadata."""

    def __init__(
        self, metrics: ServiceMetrics, prefixes: Sequence[str], budget: ByteBudget
    ) -> None:
        self._metrics = metrics
        self._budget = budget
        self._prefixes = tuple(f"/{p}/" for p in prefixes)
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(details)
        if handler is None or not method.startswith(self._prefixes):
            return handler  # health, reflection, unknown methods: untouched
        name = method.rsplit("/", 1)[-1]
        kw = {
            "request_deserializer": _tolerant(handler.request_deserializer, self._budget),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            wrapped = grpc.unary_unary_rpc_method_handler(
                self._wrap(name, handler.unary_unary), **kw
            )
        elif handler.unary_stream is not None:
            wrapped = grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(name, handler.unary_stream), **kw
            )
        else:
            return handler  # client-streaming methods: none of ours
        self._wrapped[method] = wrapped
        return wrapped

    @contextlib.asynccontextmanager
    async def _mapped(self, name: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """The one mapping from exceptions to statuses, and the call's metrics and log line."""
        started = time.perf_counter()
        status: Status = grpc.StatusCode.OK
        rid = incoming_request_id(context.invocation_metadata())
        echo = ((REQUEST_ID_METADATA_KEY, rid),)
        context.set_trailing_metadata(echo)  # kept by the aborts below that name none
        try:
            yield
        except SafetyPairsError as exc:
            status = exc
            await context.abort(
                exc.grpc_code,
                exc.message,
                trailing_metadata=((ERROR_KIND_METADATA_KEY, exc.kind), *echo),
            )
        except grpc.aio.AbortError:
            status = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except NotImplementedError:  # generated base-class methods we do not serve
            status = grpc.StatusCode.UNIMPLEMENTED
            await context.abort(status, f"{name} is not implemented by this server")
        except Exception:
            log.exception("unexpected error in %s", name)
            status = grpc.StatusCode.INTERNAL
            await context.abort(status, "internal error; see the server log")
        except BaseException:  # cancelled by the client or by shutdown
            status = grpc.StatusCode.CANCELLED
            raise
        finally:
            # Recorded once grpc has the answer: the metrics and the access-log line (0.2 ms
            # on 2 cores) run on the loop's next turn, while grpc sends, not before it.
            seconds = time.perf_counter() - started
            asyncio.get_running_loop().call_soon(self._account, name, status, seconds, rid)

    def _account(self, name: str, status: Status, seconds: float, request_id: str) -> None:
        self._metrics.record("grpc", name, status, seconds)
        log_request(self._metrics.service, "grpc", name, status, seconds, request_id)

    def _wrap(self, name: str, inner: Handler) -> Handler:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async with self._mapped(name, context):
                    return await inner(_parsed(name, request), context)
            finally:
                _release(request)

        return call

    def _wrap_stream(
        self, name: str, inner: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async with self._mapped(name, context):
                    async for response in inner(_parsed(name, request), context):
                        yield response
            finally:
                _release(request)

        return stream


class GrpcServer:
    """grpc.aio server with our services, grpc.health.v1 and reflection."""

    def __init__(
        self,
        services: Sequence[ServiceRegistration],
        metrics: ServiceMetrics,
        *,
        host: str,
        port: int,
        max_message_bytes: int,
        max_request_bytes_in_flight: int | None = None,
        max_concurrent_rpcs: int | None = None,
        auth: TokenAuth | None = None,
        exempt_probes: bool = True,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self._services = services
        self._address = f"{host}:{port}"
        self._credentials = credentials
        interceptors: list[grpc.aio.ServerInterceptor] = [
            ErrorAndMetricsInterceptor(
                metrics,
                [s.name for s in services],
                ByteBudget(max_request_bytes_in_flight or 2 * max_message_bytes),
            )
        ]
        if auth is not None:  # outermost: it must see every call (the next one caches)
            interceptors.insert(0, GrpcAuthInterceptor(auth, exempt_probes, metrics))
        self._server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                # Several BentoML workers bind one port; the kernel spreads connections.
                ("grpc.so_reuseport", 1),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        self.health = health.aio.HealthServicer()
        self.port = 0
        self._stopping: asyncio.Future[None] | None = None

    @classmethod
    def from_settings(
        cls,
        services: Sequence[ServiceRegistration],
        metrics: ServiceMetrics,
        settings: ServingSettings,
    ) -> GrpcServer:
        """The server a service runs: address, limits, authentication and TLS from settings."""
        return cls(
            services,
            metrics,
            host=settings.grpc_host,
            port=settings.grpc_port,
            max_message_bytes=settings.max_message_bytes,
            max_request_bytes_in_flight=settings.max_request_bytes_in_flight,
            max_concurrent_rpcs=settings.max_concurrent_rpcs,
            auth=token_auth(settings),
            exempt_probes=settings.auth_exempt_probes,
            credentials=server_credentials(settings),
        )

    async def start(self) -> int:
        for service in self._services:
            service.add(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names = [s.name for s in self._services]
        reflection.enable_server_reflection(
            [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        if self._credentials is not None:
            self.port = self._server.add_secure_port(self._address, self._credentials)
        else:
            self.port = self._server.add_insecure_port(self._address)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC server to {self._address}")
        await self._server.start()
        await self.set_serving(True)
        log.info("gRPC serving %s on port %d", ", ".join(names), self.port)
        return self.port

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *(s.name for s in self._services)):
            await self.health.set(name, status)

    def begin_stop(self, grace_s: float) -> None:
        """Start stopping (on the server's event loop); later calls join the first."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace_s))

    async def stop(self, grace_s: float) -> None:
        """Health NOT_SERVING first, then refuse new RPCs and let in-flight ones finish."""
        self.begin_stop(grace_s)
        assert self._stopping is not None
        await self._stopping

    async def _stop(self, grace_s: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
