"""The `bentoml` command line, with one Prometheus multiprocess directory per serving process.

BentoML keeps the metric files of its workers in BENTOML_HOME/prometheus_multiproc_dir and
empties that directory whenever a service starts. Two services sharing a BENTOML_HOME (and so
a model store), such as guard, judge and editor started side by side on one machine, would
wipe each other's metrics. So every serving process gets a directory of its own, removed on
exit (`own_prometheus_dir`): serving.one_process (what `safetypairs serve` runs for one worker)
takes one, and for more workers it hands over to BentoML's serve through this module. A worker
whose model cannot load ends this process with exit code 2 (see serving.worker_exit).

    python -m safetypairs.serving.bento_cli serve MODULE:Service --port 3000
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator


def bento_serve_command(bento: str, host: str, http_port: int) -> list[str]:
    """BentoML's serve command for `bento` (arbiter and workers), through this module."""
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


@contextlib.contextmanager
def own_prometheus_dir() -> Iterator[str]:
    """This process's Prometheus multiprocess directory (not created here), set in BentoML's
    configuration and removed on the way out."""
    # BentoML's container is the one place its CLI reads the directory from (1.4.x).
    from bentoml._internal.configuration.containers import BentoMLContainer

    home = BentoMLContainer.bentoml_home.get()
    directory = os.path.join(home, "prometheus_multiproc_dir", f"serve-{os.getpid()}")
    BentoMLContainer.prometheus_multiproc_dir.set(directory)
    try:
        yield directory
    finally:  # not atexit: serving.worker_exit may end the process from an exit handler
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    with own_prometheus_dir():
        from bentoml_cli.cli import cli

        cli()


if __name__ == "__main__":
    main()
