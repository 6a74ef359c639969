"""The `bentoml` command line, with one Prometheus multiprocess directory per serving process.

BentoML keeps the metric files of its workers in BENTOML_HOME/prometheus_multiproc_dir and
empties that directory whenever a service starts. Two services sharing a BENTOML_HOME (and so
a model store), such as guard, judge and editor started side by side on one machine, would
wipe each other's metrics. Every `safetypairs serve` (and the test launcher) therefore runs
BentoML through this module, which gives each process a directory of its own and removes it
on exit. A worker whose model cannot load ends this process with exit code 2 (see
serving.worker_exit).

    python -m safetypairs.serving.bento_cli serve MODULE:Service --port 3000
"""

from __future__ import annotations

import os
import shutil


def main() -> None:
    # BentoML's container is the one place its CLI reads the directory from (1.4.x).
    from bentoml._internal.configuration.containers import BentoMLContainer

    home = BentoMLContainer.bentoml_home.get()
    directory = os.path.join(home, "prometheus_multiproc_dir", f"serve-{os.getpid()}")
    BentoMLContainer.prometheus_multiproc_dir.set(directory)
    from bentoml_cli.cli import cli

    try:
        cli()
    finally:  # not atexit: serving.worker_exit may end the process from an exit handler
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
