"""A server of bench.py with its model work timed from inside (for breakdown.py): the guard
(`project HTTP_PORT`, in the project's environment) or KServe (`kserve ONNX GRPC HTTP`, in its
own). Each call's pixel work (decode and preprocess) and model run are timed where they
happen; at SIGTERM the durations go, as JSON, to the file named by BREAKDOWN_OUT."""

from __future__ import annotations

import atexit
import functools
import json
import os
import runpy
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TIMES: dict[str, list[float]] = {"pixels": [], "model": []}


def timed(owner: type, name: str, key: str) -> None:
    """Record each call of owner.name's duration under `key`."""
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[key].append(time.perf_counter() - started)

    setattr(owner, name, wrapper)


def dump() -> None:
    Path(os.environ["BREAKDOWN_OUT"]).write_text(json.dumps(TIMES))


def main() -> int:
    atexit.register(dump)
    which, args = sys.argv[1], sys.argv[2:]
    if which == "project":
        from safetypairs.guard.engine import GuardEngine
        from safetypairs.guard.runtime import GuardRuntime
        from safetypairs.serving.one_process import serve

        timed(GuardRuntime, "_prepare_sync", "pixels")
        timed(GuardEngine, "run", "model")
        return serve("safetypairs.guard.service:GuardService", "127.0.0.1", int(args[0]))
    sys.path.insert(0, str(HERE))
    from reference_guard import ReferenceGuard

    timed(ReferenceGuard, "pixels", "pixels")
    timed(ReferenceGuard, "probabilities", "model")  # pixels included: subtracted in breakdown
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.argv = [str(HERE / "serve_kserve.py"), *args]
    runpy.run_path(sys.argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
