"""`safetypairs serve SERVICE`: validate the settings, resolve the model reference, then serve:
gRPC and BentoML's HTTP worker in this one process (serving.one_process; with more than one
worker, BentoML's serve with its arbiter).

The model is loaded once, by the server (each worker), not here: loading it here too would
double the start-up (the embedded default editor: about 16 s more on a 2-core machine) and
memory. A server that cannot load it exits with code 2 and the reason (serving.one_process,
serving.worker_exit), so a broken checkpoint fails start-up either way.

The test launcher and the service images run the same server (one_process) directly.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

from safetypairs.contract.errors import ModelError
from safetypairs.serving import settings as settings_module


def _check_guard(settings: Any) -> str:
    """Find the guard's artifact (building the embedded default if needed): a reference that
    does not resolve, or a directory without one guard in it, stops start-up here."""
    from safetypairs.guard.artifact import guard_artifact_path
    from safetypairs.guard.default_model import ensure_default_guard

    if settings.guard_model:
        return f"guard {settings.guard_model} ({guard_artifact_path(settings.guard_model)})"
    return f"guard embedded default ({ensure_default_guard(settings.home_dir())})"


def _resolve(ref: str, ensure_default: Callable[[str], Path], home: str, marker: str) -> str:
    """The configured model's reference and path (`ensure_default(home)` builds the embedded
    default if needed); ModelError when the reference does not resolve or the directory lacks
    the `marker` file every checkpoint of its kind has."""
    from safetypairs.serving.model_refs import configured_model

    path, reference = configured_model(ref, lambda: ensure_default(home))
    if not (path / marker).is_file():
        raise ModelError(f"{path} holds no {marker}: not a checkpoint this service loads")
    return f"{reference} ({path})"


def _check_judge(settings: Any) -> str:
    from safetypairs.judge.default_model import ensure_default_judge

    home = settings.home_dir()
    return f"judge {_resolve(settings.judge_model, ensure_default_judge, home, 'config.json')}"


def _check_edit(settings: Any) -> str:
    from safetypairs.edit.default_model import ensure_default_editor

    home = settings.home_dir()
    return f"edit {_resolve(settings.edit_model, ensure_default_editor, home, 'model_index.json')}"


@dataclass(frozen=True)
class ServiceSpec:
    bento: str  # the BentoML service, MODULE:Class
    settings_class: str  # its settings dataclass in safetypairs.serving.settings
    check: Callable[[Any], str]  # resolves the model before BentoML starts
    http_port: int  # the default HTTP port
    worker: str  # its serving.worker.WorkerKind, MODULE:NAME (importable without BentoML)

    def settings(self) -> type:
        return getattr(settings_module, self.settings_class)

    def worker_kind(self) -> Any:
        module, name = self.worker.split(":")
        return getattr(importlib.import_module(module), name)


SERVICES: dict[str, ServiceSpec] = {
    "guard": ServiceSpec(
        "safetypairs.guard.service:GuardService",
        "GuardSettings",
        _check_guard,
        3000,
        "safetypairs.guard.worker:GUARD",
    ),
    "judge": ServiceSpec(
        "safetypairs.judge.service:JudgeService",
        "JudgeSettings",
        _check_judge,
        3001,
        "safetypairs.judge.worker:JUDGE",
    ),
    "edit": ServiceSpec(
        "safetypairs.edit.service:EditService",
        "EditSettings",
        _check_edit,
        3002,
        "safetypairs.edit.worker:EDIT",
    ),
}


def service_spec(bento: str) -> ServiceSpec | None:
    """The spec of the service `bento` (MODULE:Class) names, if it is one of these."""
    return next((spec for spec in SERVICES.values() if spec.bento == bento), None)


def serve(service: str, host: str, http_port: int, overrides: Mapping[str, Any]) -> NoReturn:
    """Validate every setting (environment plus `overrides`, by setting name), resolve the
    model, then serve in this process (serving.one_process) until stopped."""
    spec = SERVICES[service]
    env = dict(os.environ)
    for f in fields(spec.settings()):
        if overrides.get(f.name) is not None:
            env[settings_module.env_name(f.name)] = str(overrides[f.name])
    settings = spec.settings().from_env(env)
    print(spec.check(settings))
    print(f"HTTP on {host}:{http_port}, gRPC on {settings.grpc_host}:{settings.grpc_port}")
    sys.stdout.flush()
    # The service module and BentoML read their settings from the environment: set only now,
    # once they are valid (a refused setting leaves the caller's environment as it was).
    os.environ.update(env)
    from safetypairs.serving.one_process import serve as serve_here

    raise SystemExit(serve_here(spec.bento, host, http_port))
