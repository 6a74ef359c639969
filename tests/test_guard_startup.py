"""Start-up does no work twice: before the worker loads the model, `safetypairs serve` (which
resolves the guard's artifact) and BentoML's arbiter (which imports the service module to read
its configuration) import no model runtime; only the worker does, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("onnxruntime", "numpy", "PIL", "cv2", "tritonclient", "torch")


def imported_runtimes(code: str, env: dict[str, str] | None = None) -> list[str]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_guard_service_module_imports_no_model_runtime():
    assert imported_runtimes("import safetypairs.guard.service") == []


def test_serve_resolves_the_guard_without_the_model_runtime(sp_home: Path, default_guard_manifest):
    code = (
        "from safetypairs.serving.serve import SERVICES\n"
        "from safetypairs.serving.settings import GuardSettings\n"
        "print(SERVICES['guard'].check(GuardSettings.from_env()))"
    )
    assert imported_runtimes(code, {"SAFETYPAIRS_HOME": str(sp_home)}) == []
