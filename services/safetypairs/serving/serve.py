"""`safetypairs serve SERVICE`: validate the settings, check that the model loads, then become
BentoML's serve command (HTTP and gRPC in one process tree).

The test launcher builds its command line here too, so both start a service the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, NoReturn

from safetypairs.contract.errors import ModelError
from safetypairs.serving import settings as settings_module


def _check_guard(settings: Any) -> str:
    """Load the guard once, so that a model that cannot load (missing file, checksum
    mismatch, bad sidecar) stops start-up with its message and exit code 2 instead of BentoML
    restarting a failing worker every few seconds."""
    from safetypairs.guard.artifact import load_configured_guard

    card = load_configured_guard(settings).card
    return f"guard {card.name}:{card.version} ({settings.guard_model or 'embedded default'})"


def _check_judge(settings: Any) -> str:
    """Resolve the judge's model (building the embedded default if needed) without loading its
    weights twice: a reference that does not resolve stops start-up here."""
    from safetypairs.judge.default_model import ensure_default_judge
    from safetypairs.serving.model_refs import resolve_model_ref

    if settings.judge_model:
        path = resolve_model_ref(settings.judge_model)
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} holds no config.json: not a transformers checkpoint")
        return f"judge {settings.judge_model} ({path})"
    return f"judge embedded default ({ensure_default_judge(settings.home_dir())})"


def _check_edit(settings: Any) -> str:
    """Load the editor once (as the guard): a reference that does not resolve, an unsupported
    pipeline or a bad scheduler or attention setting stops start-up here with its message."""
    from safetypairs.edit.runtime import load_configured_editor

    engine, reference = load_configured_editor(settings)
    return f"edit {engine.family.pipeline} {reference} on {engine.device}"


@dataclass(frozen=True)
class ServiceSpec:
    bento: str  # the BentoML service, MODULE:Class
    settings_class: str  # its settings dataclass in safetypairs.serving.settings
    check: Callable[[Any], str]  # loads or resolves the model before BentoML starts
    http_port: int  # the default HTTP port

    def settings(self) -> type:
        return getattr(settings_module, self.settings_class)


SERVICES: dict[str, ServiceSpec] = {
    "guard": ServiceSpec(
        "safetypairs.guard.service:GuardService", "GuardSettings", _check_guard, 3000
    ),
    "judge": ServiceSpec(
        "safetypairs.judge.service:JudgeService", "JudgeSettings", _check_judge, 3001
    ),
    "edit": ServiceSpec("safetypairs.edit.service:EditService", "EditSettings", _check_edit, 3002),
}


def bento_serve_command(bento: str, host: str, http_port: int) -> list[str]:
    """BentoML's serve command for `bento`, through our wrapper (bento_cli.py says why)."""
    return [
        sys.executable,
        "-m",
        "safetypairs.serving.bento_cli",
        "serve",
        bento,
        "--host",
        host,
        "--port",
        str(http_port),
    ]


def serve(service: str, host: str, http_port: int, overrides: Mapping[str, Any]) -> NoReturn:
    """Validate every setting (environment plus `overrides`, by setting name), check the model,
    then replace this process with BentoML's serve command."""
    spec = SERVICES[service]
    env = dict(os.environ)
    for f in fields(spec.settings()):
        if overrides.get(f.name) is not None:
            env[settings_module.env_name(f.name)] = str(overrides[f.name])
    settings = spec.settings().from_env(env)
    print(spec.check(settings))
    print(f"HTTP on {host}:{http_port}, gRPC on {settings.grpc_host}:{settings.grpc_port}")
    sys.stdout.flush()
    os.execve(sys.executable, bento_serve_command(spec.bento, host, http_port), env)
