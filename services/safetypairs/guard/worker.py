"""The guard's worker (serving.worker): its model, runtime and gRPC services (its own and
Open Inference Protocol v2). The model runtime (onnxruntime, numpy, Pillow, OpenCV,
tritonclient) is imported only when the worker is built: BentoML's arbiter imports the service
module, and so this one, only to read the service's configuration (a test keeps both light)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safetypairs.guard.servicer import guard_registration
from safetypairs.serving.grpc_server import ServiceRegistration
from safetypairs.serving.settings import GuardSettings
from safetypairs.serving.worker import WorkerKind

if TYPE_CHECKING:
    from safetypairs.guard.outputs import GuardModel
    from safetypairs.guard.runtime import GuardRuntime


def _load_model(settings: GuardSettings) -> tuple[GuardModel, str]:
    from safetypairs.guard.artifact import load_configured_guard
    from safetypairs.guard.registry import describe_ref

    engine = load_configured_guard(settings)  # warmed up by the batching measurement
    model = settings.guard_model
    return engine, describe_ref(model) if model else "embedded default"


def _runtime(*args: Any) -> GuardRuntime:
    from safetypairs.guard.runtime import GuardRuntime

    return GuardRuntime(*args)


def _oip_registration(runtime: GuardRuntime) -> ServiceRegistration:
    from safetypairs.guard.oip import oip_registration

    return oip_registration(runtime)


GUARD = WorkerKind("guard", _load_model, _runtime, (guard_registration, _oip_registration))
