"""The one BentoML service shell that the guard, the judge and the editor specialise.

A service class subclasses ServiceShell and names what differs: its `worker_kind` (the model,
the runtime built around it and the gRPC services: serving.worker) and its own HTTP APIs;
`bento_service(name=, settings=, timeout_s=)` then makes it a BentoML service
(safetypairs.judge.service is one in full).

BentoML 1.4 finds APIs (`@bentoml.api`), start-up and shutdown hooks and `__is_ready__` with
dir()/getattr on the decorated class, so what is defined here is inherited like any method;
only the leaf class is decorated (the decorator turns a class into a `bentoml.Service`, which
cannot be subclassed again).

Each worker process builds the shell once: it takes the worker that serving.one_process
started ahead of BentoML (gRPC already serving), or builds one (model and runtime), and its
on_startup hook starts what is not yet started (serving.lifecycle). A worker that fails either
step stops the whole `bentoml serve` with the reason (worker_exit) rather than being respawned.
Both protocols call the same runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import bentoml

from safetypairs.serving.auth import http_tls_config, protect_http
from safetypairs.serving.form_limits import FormLimitsMiddleware
from safetypairs.serving.http import answer
from safetypairs.serving.http_access import observe_http
from safetypairs.serving.http_paths import bound_metric_labels
from safetypairs.serving.logs import configure_logging
from safetypairs.serving.metrics import ServiceMetrics
from safetypairs.serving.settings import ServingSettings
from safetypairs.serving.worker import WorkerKind, worker_for
from safetypairs.serving.worker_exit import stop_serving_on_failure
from safetypairs.v1 import common_pb2

log = logging.getLogger(__name__)


class Runtime(Protocol):
    """What the shell needs of a runtime (serving.runtime_skeleton gives all but model_info)."""

    ready: bool

    def start(self) -> None: ...
    async def stop(self) -> None: ...
    def model_info(self) -> Any: ...


RuntimeT = TypeVar("RuntimeT", bound=Runtime)


class ServiceShell(Generic[RuntimeT]):
    # Set by bento_service:
    settings: ClassVar[ServingSettings]  # read once per process, from the environment
    # Set by the subclass: its model, runtime and gRPC services (serving.worker); its name
    # ("guard", "judge", "edit") is the metrics' and logs' service label.
    worker_kind: ClassVar[WorkerKind]

    def __init__(self) -> None:
        # BentoML's logging set-up ran since a worker started ahead configured ours.
        configure_logging(self.settings.log_format)
        worker = worker_for(self.worker_kind, self.settings)
        self.metrics = worker.metrics
        self.runtime: RuntimeT = worker.runtime
        self.lifecycle = worker.lifecycle

    @bentoml.on_startup
    async def start_worker(self) -> None:
        with stop_serving_on_failure(f"the {self.worker_kind.name} service could not start"):
            await self.lifecycle.start()  # a gRPC port taken by another program, say

    @bentoml.on_shutdown
    async def stop_worker(self) -> None:
        await self.lifecycle.stop()

    def __is_ready__(self) -> bool:
        """/readyz: 200 only once the model is loaded and both protocols serve (gRPC may
        have answered a moment earlier: serving.one_process)."""
        return self.lifecycle.ready

    @bentoml.api(route="/v1/model_info")
    async def model_info(self, ctx: bentoml.Context) -> dict[str, Any]:
        async def produce() -> Any:
            return self.runtime.model_info()

        return await answer(self.metrics, "model_info", produce, ctx.response)


class CategoriesApi:
    """/v1/categories, for the services that judge against a policy."""

    runtime: Any
    metrics: ServiceMetrics

    @bentoml.api(route="/v1/categories")
    async def categories(self, ctx: bentoml.Context) -> dict[str, Any]:
        async def produce() -> common_pb2.ListCategoriesResponse:
            return self.runtime.list_categories()

        return await answer(self.metrics, "categories", produce, ctx.response)


def bento_service(
    *, name: str, settings: ServingSettings, timeout_s: int
) -> Callable[[type[ServiceShell[Any]]], bentoml.Service[Any]]:
    """Make a ServiceShell subclass a BentoML service: its settings, its workers,
    request timeout and TLS, then request ids with the access log (outermost, so refused calls
    are logged too), the bearer-token check when tokens are set, and the form limits; BentoML's
    own HTTP metrics get bounded labels."""

    def decorate(cls: type[ServiceShell[Any]]) -> bentoml.Service[Any]:
        cls.settings = settings
        kind = cls.worker_kind.name
        service = bentoml.service(
            name=name,
            workers=settings.workers,
            traffic={"timeout": timeout_s},
            # Each call is logged once, by safetypairs.access (RequestIdMiddleware), under
            # the method and status the metrics use; BentoML's own access line would double it.
            logging={"access": {"enabled": False}},
            **http_tls_config(settings),
        )(cls)

        def metrics() -> ServiceMetrics:
            return ServiceMetrics.of_worker(kind)

        api_names = {api.route: api_name for api_name, api in service.apis.items()}
        observe_http(service, kind)
        protect_http(service, settings, metrics, api_names)
        service.add_asgi_middleware(FormLimitsMiddleware, metrics=metrics, api_names=api_names)
        bound_metric_labels(service)
        return service

    return decorate
