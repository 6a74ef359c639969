"""Bounded `endpoint` labels on BentoML's own HTTP metrics.

BentoML's outermost middleware (RunnerTrafficMetricsMiddleware, 1.4.x) labels its request
counters and histograms with the raw request path, so every made-up path an anonymous caller
sends adds series to /metrics for ever (3,000 paths took it from 233 KB to 13.8 MB and a scrape
to 7 s). No middleware a service adds runs outside it, and `Service.to_asgi` is the only hook
that sees the built Starlette app: `bound_metric_labels` swaps the service's class for one
whose `to_asgi` replaces that middleware with `BoundedPathMetrics`, which labels a request by
the route it matches (its template, e.g. /v2/models/{model_name}/infer) or `unmatched`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

UNMATCHED = "unmatched"
_REAL_PATH = "safetypairs.real_path"


def route_label(routes: Sequence[BaseRoute], scope: Scope, prefix: str = "") -> str | None:
    """The template of the route `scope` goes to, None when no route matches."""
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        path = prefix + getattr(route, "path", "")
        if isinstance(route, Mount):
            inner = route_label(route.routes, {**scope, **child}, path)
            return inner if inner is not None else f"{path}/{UNMATCHED}"
        return path
    return None


class _RestorePath:
    """Inside the metrics middleware: hands the app the request's real path back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _REAL_PATH in scope:
            scope = {**scope, "path": scope[_REAL_PATH]}
            del scope[_REAL_PATH]
        await self.app(scope, receive, send)


def bounded_metrics_class(base: type) -> type:
    """A subclass of BentoML's metrics middleware `base` that sees the route template as the
    path (so labels it by that) while the app still gets the real path."""

    class BoundedPathMetrics(base):  # type: ignore[misc, valid-type]
        def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute], **kw: Any) -> None:
            super().__init__(_RestorePath(app), **kw)
            self._routes = routes

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] != "/metrics":
                label = route_label(self._routes, scope) or UNMATCHED
                if label != scope["path"]:
                    scope = {**scope, "path": label, _REAL_PATH: scope["path"]}
            await super().__call__(scope, receive, send)

    return BoundedPathMetrics


def _bound(app: Any) -> Any:
    """Replace BentoML's path-labelled metrics middleware in a built (not yet started)
    Starlette app: its middleware stack is built on the first request."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    for entry in getattr(app, "user_middleware", []):
        if entry.cls is RunnerTrafficMetricsMiddleware:
            entry.cls = bounded_metrics_class(RunnerTrafficMetricsMiddleware)
            entry.kwargs = {**entry.kwargs, "routes": app.routes}
            return app
    return app  # metrics disabled: no labels to bound


def bound_metric_labels(service: Any) -> None:
    """Make `service` (a bentoml.Service) build apps whose metrics labels are bounded."""
    base = type(service)

    class BoundedLabelsService(base):  # type: ignore[misc, valid-type]
        __slots__ = ()

        def to_asgi(self, *args: Any, **kw: Any) -> Any:
            return _bound(super().to_asgi(*args, **kw))

    service.__class__ = BoundedLabelsService
