"""What one worker process serves, whoever starts it: the model, the runtime around it, the
metrics and the gRPC server, with their start and stop (serving.lifecycle).

Each service names its kind of worker (a WorkerKind, in a module that imports no BentoML:
safetypairs.guard.worker, .judge.worker, .edit.worker). serving.one_process builds and starts
the worker before it imports BentoML, so gRPC answers while BentoML (about half a second of
imports on 2 cores) and HTTP come up; the BentoML service (serving.bento_shell) then takes that
worker. Under `bentoml serve` the service builds its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from safetypairs.serving.grpc_server import GrpcServer, ServiceRegistration
from safetypairs.serving.lifecycle import WorkerLifecycle
from safetypairs.serving.logs import configure_logging
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import ServingSettings
from safetypairs.serving.worker_exit import stop_serving_on_failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerKind:
    """What differs between the services' workers."""

    name: str  # "guard", "judge", "edit": the metrics' and logs' service label
    load_model: Callable[[Any], tuple[Any, str]]  # settings -> (engine, its reference)
    runtime_class: Callable[..., Any]  # (engine, settings, metrics, reference) -> runtime
    grpc_services: tuple[Callable[[Any], ServiceRegistration], ...]  # runtime -> registration


class ServiceWorker:
    """One worker's model, runtime, metrics and gRPC server; a model that cannot load or a
    runtime that cannot start stops the server with the reason (serving.worker_exit)."""

    def __init__(self, kind: WorkerKind, settings: ServingSettings) -> None:
        configure_logging(settings.log_format)
        self.kind, self.settings = kind, settings
        self.metrics = ServiceMetrics.of_worker(kind.name)
        with stop_serving_on_failure(f"the {kind.name} service could not load its model"):
            engine, reference = kind.load_model(settings)
        with stop_serving_on_failure(f"the {kind.name} service could not start"):
            # a default policy the model cannot read, say
            self.runtime = kind.runtime_class(engine, settings, self.metrics, reference)
            registrations = [register(self.runtime) for register in kind.grpc_services]
            self.grpc = GrpcServer.from_settings(registrations, self.metrics, settings)
        self.lifecycle = WorkerLifecycle(
            self.runtime, self.grpc, settings.shutdown_grace_s, settings.memory_trim_interval_s
        )
        if engine.card.notice:
            log.warning(engine.card.notice)

    async def serve(self) -> None:
        """Start the runtime and gRPC (a gRPC port taken by another program stops the server)."""
        with stop_serving_on_failure(f"the {self.kind.name} service could not start"):
            await self.lifecycle.serve()


_STARTED: dict[str, ServiceWorker] = {}


async def serve_ahead(kind: WorkerKind, settings: ServingSettings) -> ServiceWorker:
    """Build and start this process's worker of `kind` before its BentoML service exists."""
    worker = ServiceWorker(kind, settings)
    await worker.serve()
    _STARTED[kind.name] = worker
    return worker


def worker_for(kind: WorkerKind, settings: ServingSettings) -> ServiceWorker:
    """The worker this process started ahead (serve_ahead), or a new one."""
    return _STARTED.pop(kind.name, None) or ServiceWorker(kind, settings)
