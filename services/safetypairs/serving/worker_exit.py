"""A worker whose model cannot load ends the whole `bentoml serve` with the reason and exit
code 2, instead of leaving a server without a worker.

BentoML runs each worker as a child of its arbiter (circus). Outside a container the arbiter
respawns a worker that exits, again and again; inside one (Kubernetes) it does not respawn,
and the arbiter idles with no worker. Neither says why, neither exits. So the failing worker:

1. logs the reason with its traceback,
2. leaves the reason in a note named after the arbiter's pid,
3. sends the arbiter SIGTERM, which stops every worker as Ctrl-C does,
4. exits (uvicorn's "Application startup failed").

The arbiter imported this module too (BentoML imports the service module to configure it), so
it registered `_exit_if_a_worker_failed` at exit: finding the note, it prints the reason and
exits with code 2 (the command line's code for an error), whether it runs through
serving.bento_cli or as plain `bentoml serve` in a Bento's container.

Served in one process (serving.one_process, what `safetypairs serve` runs for one worker) there
is no arbiter: the failure only propagates, and `failure_reason()` gives one_process the reason
to print before it exits with code 2.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from safetypairs.contract.errors import SafetyPairsError

log = logging.getLogger(__name__)

EXIT_CODE = 2
# The module BentoML 1.4 runs each worker as (`python -m _bentoml_impl.worker.service`).
_WORKER_MAIN = "_bentoml_impl.worker.service"
_failures: list[str] = []


def _note(arbiter_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"safetypairs-serve-{arbiter_pid}.failed"


def _is_bentoml_worker() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name == _WORKER_MAIN


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SafetyPairsError):
        return f"{exc.kind}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def stop_serving_on_failure(what: str) -> Iterator[None]:
    """Around a worker's model load: an exception stops the whole serve (in a BentoML worker;
    elsewhere, such as a test building the service in process, it only propagates)."""
    try:
        yield
    except Exception as exc:
        reason = f"{what}: {_describe(exc)}"
        log.error("%s; stopping the server", reason, exc_info=True)
        _failures.append(reason)
        if _is_bentoml_worker():
            arbiter = os.getppid()
            try:
                _note(arbiter).write_text(reason)
            except OSError as note_error:  # the server still stops, only its exit code is 0
                log.warning("cannot leave the reason for the server: %s", note_error)
            os.kill(arbiter, signal.SIGTERM)
        raise


def failure_reason() -> str | None:
    """Why this process's service could not start (the first reason), or None."""
    return _failures[0] if _failures else None


def _exit_if_a_worker_failed() -> None:
    note = _note(os.getpid())
    try:
        reason = note.read_text()
    except FileNotFoundError:
        return
    note.unlink(missing_ok=True)
    print(f"error: {reason}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    # The only way to set the exit status from an exit handler (SystemExit is ignored there);
    # the handlers registered before this one (BentoML's, the interpreter's) are skipped.
    os._exit(EXIT_CODE)


if not _is_bentoml_worker():  # the process that may be an arbiter
    _note(os.getpid()).unlink(missing_ok=True)  # a stale note of an earlier process
    atexit.register(_exit_if_a_worker_failed)
