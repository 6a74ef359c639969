"""Shared fixtures: the embedded default guard built once per session, and a real guard
service (`bentoml serve`, HTTP + in-process gRPC) on loopback ports."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from safetypairs.guard.default_model import build_default_guard, default_guard_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SAFETYPAIRS_HOME holding the embedded default guard, built once."""
    home = tmp_path_factory.mktemp("sp-home")
    build_default_guard(default_guard_dir(str(home)))
    return home


@pytest.fixture(scope="session")
def default_guard_onnx(sp_home: Path) -> Path:
    return default_guard_dir(str(sp_home)) / "guard.onnx"


@dataclass
class RunningService:
    process: subprocess.Popen[bytes]
    http_url: str
    grpc_target: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_guard_service(
    home: Path, log_path: Path, extra_env: dict[str, str] | None = None
) -> RunningService:
    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "SAFETYPAIRS_HOME": str(home),
        "SAFETYPAIRS_GRPC_HOST": "127.0.0.1",
        "SAFETYPAIRS_GRPC_PORT": str(grpc_port),
        "BENTOML_HOME": str(home / "bentoml"),
        **(extra_env or {}),
    }
    if "SAFETYPAIRS_GUARD_MODEL" not in (extra_env or {}):
        env.pop("SAFETYPAIRS_GUARD_MODEL", None)  # no model configured: the embedded default
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "safetypairs.guard.service:GuardService",
         "--host", "127.0.0.1", "--port", str(http_port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    service = RunningService(
        process, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", log_path
    )
    deadline = time.monotonic() + 180
    with grpc.insecure_channel(service.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"guard service exited early:\n{service.log()[-4000:]}")
            try:
                ok = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if ok == health_pb2.HealthCheckResponse.SERVING and httpx.get(
                    f"{service.http_url}/readyz", timeout=2
                ).status_code == 200:
                    return service
            except (grpc.RpcError, httpx.HTTPError):
                pass
            if time.monotonic() > deadline:
                stop_service(service)
                raise RuntimeError(f"guard service not ready in time:\n{service.log()[-4000:]}")
            time.sleep(0.3)


def stop_service(service: RunningService, timeout: float = 30) -> int:
    if service.process.poll() is None:
        os.killpg(service.process.pid, signal.SIGTERM)
        try:
            service.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait()
    return service.process.returncode


@pytest.fixture(scope="session")
def guard_service(sp_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The guard on the embedded default (no model configured), with a small pixel limit and
    a batch window so concurrent calls visibly coalesce."""
    log_path = tmp_path_factory.mktemp("logs") / "guard.log"
    service = start_guard_service(
        sp_home,
        log_path,
        {
            "SAFETYPAIRS_MAX_IMAGE_PIXELS": str(4_000_000),
            "SAFETYPAIRS_MAX_IMAGE_BYTES": str(2 * 1024 * 1024),
            "SAFETYPAIRS_MAX_BATCH_WAIT_MS": "20",
            "SAFETYPAIRS_MAX_BATCH_SIZE": "16",
            "SAFETYPAIRS_MAX_IMAGES_PER_REQUEST": "32",
            "SAFETYPAIRS_MAX_MESSAGE_BYTES": str(8 * 1024 * 1024),
        },
    )
    yield service
    stop_service(service)


def png_bytes(size: tuple[int, int] = (96, 80), color: tuple[int, int, int] = (200, 30, 60),
              mode: str = "RGB", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else None).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def sample_photos() -> list[Path]:
    """Real photos scikit-image ships in its wheel."""
    import skimage

    data = Path(skimage.__file__).parent / "data"
    return [data / n for n in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")]
