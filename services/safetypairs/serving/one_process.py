"""A safetypairs service served by one process: its worker (model, runtime, gRPC) started
first, then BentoML's HTTP worker (the service's ASGI app under uvicorn) on the same event loop,
without BentoML's arbiter.

    python -m safetypairs.serving.one_process MODULE:Service|BENTO_DIR [--host H] [--port P]

`safetypairs serve` (in its own process), the test launcher and the service images run this.

* **One process.** `bentoml serve` is two Python processes started one after the other:
  circus's arbiter, which imports BentoML and the service module to read its configuration and
  holds the port, then the worker, which imports them again and loads the model. With one worker
  the arbiter serves no request; it costs start-up time and memory (the guard: 84 MB, and its
  image was ready in 5.2 s with it, 2.8 s without, on a 2-core machine: benchmarks/RESULTS.md),
  and it restarts nothing an orchestrator would not: inside a container it does not respawn a
  worker at all (serving.worker_exit).
* **gRPC first.** BentoML's imports take about half a second on 2 cores, more than the guard's
  model load. So the worker is built and serves gRPC (health SERVING, Open Inference Protocol
  ready) before BentoML is imported, and BentoML is imported in a thread while gRPC answers.
  HTTP follows; /readyz, what the Kubernetes probes ask, says ready only once both serve.
* The HTTP socket is bound first, so that a port in use is an error naming it before any model
  loads. BentoML's worker entry point itself cannot be called (uvicorn would start an event loop
  of its own), so `_http_server` does what it does for worker 1.

With the service's `workers` setting above 1 this hands over to BentoML's serve
(serving.bento_cli), whose arbiter shares the port among the workers.

Exit status: 0 after a stop (SIGTERM or Ctrl-C, in-flight calls drained); 2 with `error: REASON`
when the model cannot load, a setting is refused or the port cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from safetypairs.serving.bento_cli import bento_serve_command, own_prometheus_dir
from safetypairs.serving.serve import SERVICES, service_spec
from safetypairs.serving.settings import ServingSettings, SettingsError
from safetypairs.serving.worker import WorkerKind, serve_ahead
from safetypairs.serving.worker_exit import EXIT_CODE, failure_reason

DEFAULT_BACKLOG = 2048  # BentoML's; the service's own is set once its configuration is read


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


def _service_of(bento: str) -> str:
    """The service a Bento's directory serves (bento.yaml's `service`), or `bento` itself."""
    manifest = Path(bento) / "bento.yaml"
    if not manifest.is_file():
        return bento
    import yaml

    return str(yaml.safe_load(manifest.read_text())["service"])


def _load_service(bento: str) -> Any:
    from _bentoml_impl.loader import load

    try:
        return load(bento, standalone_load=True)
    except Exception as exc:  # the service module refused its settings, or no such service
        _fail(failure_reason() or f"cannot load {bento}: {exc}")


def _http_server(service: Any, listener: socket.socket) -> Any:
    """What BentoML's worker entry point (`_bentoml_impl.worker.service.main`, BentoML 1.4)
    does for worker 1 of the entry service, which `bentoml serve` runs under its arbiter: the
    server context, BentoML's logging, the ASGI app, and uvicorn on `listener` with the
    service's backlog and TLS. Returned to be served on this process's running event loop,
    where the worker started ahead already serves gRPC (uvicorn's own `run` would start
    another loop)."""
    import uvicorn
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.context import server_context
    from bentoml._internal.log import configure_server_logging
    from bentoml._internal.utils.uri import join_paths

    configure_server_logging()
    server_context.worker_index = 1
    server_context.service_type = "entry_service"
    server_context.service_name = service.name
    server_context.service_routes = [
        join_paths(service.path_prefix, api.route) for api in service.apis.values()
    ]
    tag = service.bento.tag if service.bento is not None else None
    server_context.bento_name = tag.name if tag else service.name
    server_context.bento_version = (tag.version if tag else None) or "not available"
    backlog = BentoMLContainer.api_server_config.backlog.get()
    listener.listen(backlog)  # bound before BentoML's configuration was read
    ssl = BentoMLContainer.ssl
    # As BentoML passes them: unset or zero leaves uvicorn's default.
    tls_choices = {
        "ssl_version": ssl.version.get(),
        "ssl_cert_reqs": ssl.cert_reqs.get(),
        "ssl_ciphers": ssl.ciphers.get(),
    }
    config = uvicorn.Config(
        app=service.to_asgi(is_main=True),
        backlog=backlog,
        log_config=None,
        workers=1,
        ssl_certfile=ssl.certfile.get() or None,
        ssl_keyfile=ssl.keyfile.get() or None,
        ssl_keyfile_password=ssl.keyfile_password.get() or None,
        ssl_ca_certs=ssl.ca_certs.get() or None,
        timeout_keep_alive=5,
        server_header=False,
        **{name: value for name, value in tls_choices.items() if value},
    )
    return uvicorn.Server(config)


async def _serve(
    kind: WorkerKind, settings: ServingSettings, bento: str, listener: socket.socket
) -> None:
    """gRPC first, then BentoML and HTTP: the worker is built and serves gRPC before BentoML
    is imported, and BentoML's imports run in a thread so that gRPC answers meanwhile."""
    await serve_ahead(kind, settings)
    service = await asyncio.to_thread(_load_service, bento)
    service.inject_config()
    await _http_server(service, listener).serve(sockets=[listener])


def serve(bento: str, host: str, port: int) -> int:
    """Serve `bento` on HTTP host:port (and gRPC where its settings say) until stopped."""
    if Path(bento).exists():  # BentoML's loader changes directory into a Bento it loads
        bento = str(Path(bento).resolve())
    spec = service_spec(_service_of(bento))
    if spec is None:
        _fail(f"{bento} is not a safetypairs service ({', '.join(SERVICES)})")
    try:
        settings = spec.settings().from_env()
    except SettingsError as exc:
        _fail(str(exc))
    if settings.workers != 1:
        os.execv(sys.executable, bento_serve_command(bento, host, port))
    listener = _listen(host, port, DEFAULT_BACKLOG)
    with own_prometheus_dir() as metrics_dir:
        os.makedirs(metrics_dir, exist_ok=True)
        # prometheus_client reads this when first imported (by the worker, below).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        print(f"serving {bento} on {host}:{port} (HTTP) in one process", flush=True)
        # uvicorn drains on SIGTERM or Ctrl-C, then raises the signal again for the handler that
        # was there before it: the default one would end a clean stop with "killed by SIGTERM".
        # This one ends it with status 0, and stops a start-up still loading the model.
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, _stopped)
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(_serve(spec.worker_kind(), settings, bento, listener))
        except (Exception, SystemExit) as exc:  # uvicorn exits 3 when the app cannot start
            if reason := failure_reason():
                _fail(reason)
            if isinstance(exc, SystemExit):
                raise
            _fail(f"{type(exc).__name__}: {exc}")
        if reason := failure_reason():
            _fail(reason)
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop uvicorn would pick for itself (uvloop where it is installed)."""
    import uvicorn

    return uvicorn.Config(app=None, loop="auto").get_loop_factory()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m safetypairs.serving.one_process")
    parser.add_argument("bento", help="MODULE:Service or a Bento's directory")
    parser.add_argument("--host", default=os.environ.get("BENTOML_HOST") or "0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENTOML_PORT") or 3000))
    args = parser.parse_args(argv)
    return serve(args.bento, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
