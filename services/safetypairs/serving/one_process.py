"""A BentoML service served by one process: BentoML's own worker (the service's ASGI app under
uvicorn, and the gRPC server the service starts in it) without BentoML's arbiter.

    python -m safetypairs.serving.one_process MODULE:Service|BENTO_DIR [--host H] [--port P]

`safetypairs serve`, the test launcher and the service images run this. `bentoml serve` is two
Python processes started one after the other: circus's arbiter, which imports BentoML and the
service module to read its configuration and holds the port, then the worker, which imports them
again and loads the model. With one worker the arbiter serves no request; it costs start-up time
and memory (the guard: 84 MB, and its image was ready in 5.2 s with it, 2.8 s without, on a
2-core machine: benchmarks/RESULTS.md), and it restarts nothing an orchestrator would not:
inside a container it does not respawn a worker at all (serving.worker_exit). Here this process
binds the HTTP port, loads the service once and runs BentoML's worker entry point on that socket,
with the arguments `bentoml serve` would give it (backlog, TLS, worker id 1).

With the service's `workers` setting above 1 this hands over to BentoML's serve
(serving.bento_cli), whose arbiter shares the port among the workers.

Exit status: 0 after a stop (SIGTERM or Ctrl-C, in-flight calls drained); 2 with `error: REASON`
when the model cannot load, a setting is refused or the port cannot be bound.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path
from typing import NoReturn

from safetypairs.serving.bento_cli import bento_serve_command, own_prometheus_dir
from safetypairs.serving.worker_exit import EXIT_CODE, failure_reason


def one_process_command(bento: str, host: str, http_port: int) -> list[str]:
    """The command that serves `bento` (MODULE:Service or a Bento's directory) this way."""
    return [
        sys.executable,
        "-m",
        "safetypairs.serving.one_process",
        bento,
        "--host",
        host,
        "--port",
        str(http_port),
    ]


def _fail(reason: str) -> NoReturn:
    print(f"error: {reason}", file=sys.stderr)
    sys.stderr.flush()
    raise SystemExit(EXIT_CODE)


def _stopped(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """The HTTP socket, bound here so that a port in use is an error naming it before any
    model loads, and inherited by nothing (the worker runs in this process)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=backlog)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        _fail(f"cannot serve HTTP on {host}:{port}: {reason}")


def _worker_arguments(bento: str, fd: int) -> list[str]:
    """What `bentoml serve` passes its worker, from the service's configuration (which
    `inject_config` has put in BentoML's container): backlog and TLS."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml.serving import construct_ssl_args

    ssl = BentoMLContainer.ssl
    return [
        bento,
        "--fd",
        str(fd),
        "--worker-id",
        "1",
        "--backlog",
        str(BentoMLContainer.api_server_config.backlog.get()),
        *construct_ssl_args(
            ssl_certfile=ssl.certfile.get(),
            ssl_keyfile=ssl.keyfile.get(),
            ssl_keyfile_password=ssl.keyfile_password.get(),
            ssl_version=ssl.version.get(),
            ssl_cert_reqs=ssl.cert_reqs.get(),
            ssl_ca_certs=ssl.ca_certs.get(),
            ssl_ciphers=ssl.ciphers.get(),
        ),
    ]


def serve(bento: str, host: str, port: int) -> int:
    """Serve `bento` on HTTP host:port (and gRPC where its settings say) until stopped."""
    if Path(bento).exists():  # BentoML's loader changes directory into a Bento it loads
        bento = str(Path(bento).resolve())
    from _bentoml_impl.loader import load

    try:
        service = load(bento, standalone_load=True)
    except Exception as exc:  # the service module refused its settings, or no such service
        _fail(failure_reason() or f"cannot load {bento}: {exc}")
    if service.config.get("workers", 1) != 1:
        os.execv(sys.executable, bento_serve_command(bento, host, port))
    service.inject_config()
    from bentoml._internal.configuration.containers import BentoMLContainer

    listener = _listen(host, port, BentoMLContainer.api_server_config.backlog.get())
    with own_prometheus_dir() as metrics_dir:
        os.makedirs(metrics_dir, exist_ok=True)
        # prometheus_client reads this when first imported (by the worker, below).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        from _bentoml_impl.worker.service import main as worker

        print(f"serving {bento} on {host}:{port} (HTTP) in one process", flush=True)
        # uvicorn drains on SIGTERM or Ctrl-C, then raises the signal again for the handler that
        # was there before it: the default one would end a clean stop with "killed by SIGTERM".
        # This one ends it with status 0, and stops a start-up still loading the model.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, _stopped)
        try:
            worker.main(args=_worker_arguments(bento, listener.fileno()), standalone_mode=False)
        except (Exception, SystemExit) as exc:  # uvicorn exits 3 when the app cannot start
            if reason := failure_reason():
                _fail(reason)
            if isinstance(exc, SystemExit):
                raise
            _fail(f"{type(exc).__name__}: {exc}")
        if reason := failure_reason():
            _fail(reason)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m safetypairs.serving.one_process")
    parser.add_argument("bento", help="MODULE:Service or a Bento's directory")
    parser.add_argument("--host", default=os.environ.get("BENTOML_HOST") or "0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENTOML_PORT") or 3000))
    args = parser.parse_args(argv)
    return serve(args.bento, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
