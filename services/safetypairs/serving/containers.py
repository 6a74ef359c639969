"""Run a service image (bin/build-images) with a container engine, podman or docker, as a
ServiceProcess: its two ports published on loopback, the root filesystem read-only, no
capabilities, and writable tmpfs only where the Kubernetes manifests mount emptyDirs. Used by
the image test and benchmark."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from safetypairs.serving.launcher import ServiceProcess, free_port

ENGINES = ("podman", "docker")
HTTP_PORT = 3000  # every image's HTTP port (its gRPC port is in the image's environment)
# The manifests' emptyDirs (BentoML's home, the models cache); the engines put a tmpfs on /tmp
# themselves with --read-only.
WRITABLE = ("/var/lib/bentoml", "/var/cache/safetypairs")
USER = "1034:1034"


def find_engine() -> str | None:
    """The first engine installed here that answers (a docker client without a daemon does
    not)."""
    for engine in ENGINES:
        if shutil.which(engine) is None:
            continue
        probe = subprocess.run([engine, "images", "-q"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return engine
    return None


def run_options(engine: str) -> list[str]:
    """Options every `run` needs on this host."""
    if engine != "podman":
        return []
    options = []
    if shutil.which("runc"):
        # crun, podman's default where installed, fails on hosts with hybrid cgroups.
        options += ["--runtime", "runc"]
    # podman asks for resource limits above the ones this process may raise to (where podman
    # itself runs in a sandbox): the host's own open-file limit, and a process cap that a
    # service (a few workers, their threads) stays far below.
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return [*options, "--ulimit", f"nofile={files}:{files}", "--ulimit", "nproc=4096:4096"]


@dataclass(frozen=True)
class ImageInfo:
    labels: dict[str, str]
    env: dict[str, str]
    exposed_ports: set[str]  # "3000/tcp", ...
    user: str
    size_bytes: int

    @property
    def grpc_port(self) -> int:
        return int(self.env["SAFETYPAIRS_GRPC_PORT"])


def inspect_image(engine: str, image: str) -> ImageInfo:
    out = subprocess.run(
        [engine, "image", "inspect", image], capture_output=True, text=True, check=True
    )
    data = json.loads(out.stdout)[0]
    config = data["Config"]
    return ImageInfo(
        labels=config.get("Labels") or {},
        env=dict(line.split("=", 1) for line in config.get("Env") or []),
        exposed_ports=set(config.get("ExposedPorts") or {}),
        user=config.get("User", ""),
        size_bytes=int(data["Size"]),
    )


def writable_mounts(engine: str) -> list[str]:
    """A tmpfs on each WRITABLE path that the image's user may write: podman's `U` option
    chowns it to that user; docker's tmpfs takes a mode."""
    suffix = ":U" if engine == "podman" else ":mode=1777"
    return [arg for path in WRITABLE for arg in ("--tmpfs", path + suffix)]


def run_image(
    engine: str,
    image: str,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    volumes: Sequence[tuple[Path, str]] = (),
    ready_timeout_s: float = 300.0,
) -> ServiceProcess:
    """`engine run` the service image in the foreground (the engine passes SIGTERM on to the
    service and exits with its code) and return once both protocols are ready. `volumes`:
    (host path, container path) pairs, mounted read-only."""
    info = inspect_image(engine, image)
    http_port, grpc_port = free_port(), free_port()
    command = [
        engine,
        "run",
        "--rm",
        *run_options(engine),
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        *writable_mounts(engine),
        "-p",
        f"127.0.0.1:{http_port}:{HTTP_PORT}",
        "-p",
        f"127.0.0.1:{grpc_port}:{info.grpc_port}",
    ]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    for host, inside in volumes:
        command += ["-v", f"{host}:{inside}:ro"]
    command.append(image)
    return ServiceProcess.launch(
        command, log_path, dict(os.environ), http_port, grpc_port, ready_timeout_s=ready_timeout_s
    )


def run_in_image(engine: str, image: str, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a one-off command in the image (as its user, root filesystem read-only)."""
    return subprocess.run(
        [engine, "run", "--rm", *run_options(engine), "--read-only", image, *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
