"""Prometheus metrics shared by both protocols.

The metric classes come from a factory with prometheus_client's interface: prometheus_client
itself. In a worker (`of_worker`) it is first imported after PROMETHEUS_MULTIPROC_DIR is set
(by serving.one_process or BentoML), so the series join BentoML's multiprocess `/metrics`.
Tests and benchmarks that drive the parts directly pass a registry of their own.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from safetypairs.contract.errors import SafetyPairsError
from safetypairs.serving.status_labels import Status, status_labels

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    # Edits on large images and many steps take minutes.
    60.0,
    120.0,
    300.0,
    600.0,
)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


class ServiceMetrics:
    """Requests by protocol, method and status code; latency; batch sizes; queue depth."""

    def __init__(self, service: str, factory: ModuleType | Any, registry: Any = None) -> None:
        kw = {} if registry is None else {"registry": registry}
        self.service = service
        self.requests = factory.Counter(
            name="safetypairs_requests_total",
            documentation="Requests handled, by protocol, method and status (code: the HTTP "
            "status, grpc_code: the gRPC status name, both for calls of either protocol).",
            labelnames=["service", "protocol", "method", "code", "grpc_code"],
            **kw,
        )
        self.latency = factory.Histogram(
            name="safetypairs_request_duration_seconds",
            documentation="Request latency from arrival to answer, by protocol and method.",
            labelnames=["service", "protocol", "method"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.batch_size = factory.Histogram(
            name="safetypairs_batch_size",
            documentation="Images per model call made by the micro-batcher.",
            labelnames=["service"],
            buckets=BATCH_BUCKETS,
            **kw,
        )
        self.batch_latency = factory.Histogram(
            name="safetypairs_batch_duration_seconds",
            documentation="Model time per micro-batch.",
            labelnames=["service"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.member_latency = factory.Histogram(
            name="safetypairs_member_duration_seconds",
            documentation="Time each member of an ensemble model took per micro-batch.",
            labelnames=["service", "member"],
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.queue = factory.Gauge(
            name="safetypairs_queue_depth",
            documentation="Images waiting for the model.",
            labelnames=["service"],
            multiprocess_mode="livesum",
            **kw,
        )

    # BatchObserver
    def batch_done(self, size: int, seconds: float) -> None:
        self.batch_size.labels(self.service).observe(size)
        self.batch_latency.labels(self.service).observe(seconds)

    def member_done(self, member: str, seconds: float) -> None:
        self.member_latency.labels(self.service, member).observe(seconds)

    def queue_depth(self, depth: int) -> None:
        self.queue.labels(self.service).set(depth)

    def record(self, protocol: str, method: str, status: Status, seconds: float) -> None:
        self.requests.labels(self.service, protocol, method, *status_labels(status)).inc()
        if protocol == "http":
            recorded_http_call(method, status)
        self.latency.labels(self.service, protocol, method).observe(seconds)

    @classmethod
    def of_worker(cls, service: str) -> ServiceMetrics:
        """The process's one ServiceMetrics for `service`: a registry takes each metric name
        once, and the HTTP middlewares count into the same series as the handlers."""
        if service not in _WORKER:
            import prometheus_client  # here: only once the multiprocess directory is set

            _WORKER[service] = cls(service, prometheus_client)
        return _WORKER[service]

    @contextlib.contextmanager
    def track_http(self, method: str) -> Iterator[None]:
        """Time an HTTP handler; the status is 200, or its SafetyPairsError's."""
        started = time.perf_counter()
        status: Status = 200
        try:
            yield
        except SafetyPairsError as exc:
            status = exc
            raise
        except BaseException:
            status = 500
            raise
        finally:
            self.record("http", method, status, time.perf_counter() - started)


_WORKER: dict[str, ServiceMetrics] = {}

# The HTTP call in progress, filled in by `record`: the access-log middleware (which sees only
# a path and a status number) logs the call under the metric's own method and status. A dict
# in a context variable, so a handler that runs in a copied context still fills the
# middleware's.
_HTTP_CALL: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("http_call")


def recorded_http_call(method: str, status: Status) -> None:
    call = _HTTP_CALL.get(None)
    if call is not None:
        call.update(method=method, status=status)


def watch_http_call() -> dict[str, Any]:
    """A fresh record of this HTTP call: empty until the call's metrics are recorded."""
    call: dict[str, Any] = {}
    _HTTP_CALL.set(call)
    return call
