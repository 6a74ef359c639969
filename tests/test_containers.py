"""The three service images, built by bin/build-images and run with podman or docker the way
the Kubernetes manifests run them (read-only root filesystem, no capabilities, non-root user,
writable tmpfs only where the manifests mount emptyDirs), called with real clients.

bin/test installs podman (with runc and mmdebstrap, which makes the Debian base image) where it
can; the module is skipped only where no container engine works."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from conftest import run_build_script
from grpc_health.v1 import health_pb2, health_pb2_grpc

from safetypairs.client import AsyncGuardClient, GuardClient
from safetypairs.contract.images import ImageLimits, decode_image
from safetypairs.serving.containers import (
    find_engine,
    inspect_image,
    run_image,
    run_in_image,
)
from safetypairs.serving.launcher import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
GRPC_PORTS = {"guard": 50051, "judge": 50052, "edit": 50053}
GUARD_MODEL = "/home/bentoml/bento/src/build/models/guard"  # the embedded default, in the Bento

pytestmark = pytest.mark.slow

ENGINE = find_engine()
if ENGINE is None:
    pytest.skip(
        "no container engine works here (podman or docker); bin/test installs podman with "
        "apt-get where it can",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The three images, built once: their references by service."""
    home = tmp_path_factory.mktemp("bentoml-home")
    stdout = run_build_script("build-images", list(GRPC_PORTS), home, timeout=1800)
    built = dict(re.findall(r"^__image__:(\w+):(\S+)$", stdout, re.MULTILINE))
    assert built == {name: f"safetypairs-{name}:{VERSION}" for name in GRPC_PORTS}, stdout
    return built


@pytest.fixture(scope="module")
def guard(
    images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The guard image running with no model mounted."""
    service = run_image(ENGINE, images["guard"], tmp_path_factory.mktemp("logs") / "guard.log")
    yield service
    assert service.stop() == 0, service.log()[-3000:]


def health(target: str) -> str:
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def copy_out(image: str, path: str, dest: Path) -> Path:
    """`path` from inside `image`, copied to `dest` (a new folder)."""
    container = subprocess.run(
        [ENGINE, "create", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run([ENGINE, "cp", f"{container}:{path}", str(dest)], check=True)
    finally:
        subprocess.run([ENGINE, "rm", container], capture_output=True, check=True)
    return dest


def test_the_guard_image_serves_its_embedded_default_with_no_mount(
    guard: ServiceProcess, images: dict[str, str], sample_photos, tmp_path
) -> None:
    from safetypairs.guard.artifact import load_guard

    assert health(guard.grpc_target) == "SERVING"
    with GuardClient(guard.grpc_target, timeout=30) as client:
        verdict = client.screen(sample_photos[0])
    # The same model, copied out of the image and run here in-process.
    engine = load_guard(str(copy_out(images["guard"], GUARD_MODEL, tmp_path / "guard")))
    image = decode_image(sample_photos[0].read_bytes(), ImageLimits(10**8, 10**8))
    (expected,) = engine.run([engine.preprocess(image)])
    served = {s.category: s.probability for s in verdict.scores if not s.not_covered}
    assert set(served) == set(engine.card.categories)
    got = np.array([served[c] for c in engine.card.categories])
    np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)

    assert httpx.get(f"{guard.http_url}/readyz", timeout=10).status_code == 200
    metrics = httpx.get(f"{guard.http_url}/metrics", timeout=10).text
    assert re.search(r'^safetypairs_requests_total\{.*service="guard"', metrics, re.MULTILINE)
    assert "safetypairs_batch_size_bucket" in metrics


@pytest.mark.parametrize("name", list(GRPC_PORTS))
def test_each_image_is_lean_and_locked_down(images: dict[str, str], name: str) -> None:
    info = inspect_image(ENGINE, images[name])
    assert info.exposed_ports == {"3000/tcp", f"{GRPC_PORTS[name]}/tcp"}
    assert info.user == "1034:1034"
    labels = info.labels
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == f"safetypairs-{name}"
    assert "org.opencontainers.image.source" in labels and labels["io.safetypairs.model.reference"]
    # What each image may import: one runtime, and nothing of the other services'.
    probe = (
        "import importlib.util as u, sys; "
        "print(' '.join(m for m in sys.argv[1:] if u.find_spec(m)))"
    )
    present = run_in_image(
        ENGINE, images[name], "python", "-c", probe,
        "torch", "onnxruntime", "diffusers", "lmformatenforcer", "num2words", "pip",
    )  # fmt: skip
    assert present.returncode == 0, present.stderr
    expected = {"guard": {"onnxruntime"}, "judge": {"torch", "lmformatenforcer", "num2words"}}
    assert set(present.stdout.split()) == expected.get(name, {"torch", "diffusers"})
    compilers = run_in_image(
        ENGINE, images[name], "sh", "-c", "command -v gcc cc c++ g++ clang make || true"
    )
    assert compilers.stdout.strip() == ""
    if name != "guard":  # the CPU build of torch: no CUDA libraries in a CPU image
        probe = "import torch; print(torch.version.cuda)"
        cuda = run_in_image(ENGINE, images[name], "python", "-c", probe)
        assert cuda.stdout.strip() == "None", cuda.stderr


def test_a_mounted_guard_overrides_the_embedded_default(
    images: dict[str, str], tiny_guard_onnx: Path, tmp_path: Path, sample_photos
) -> None:
    # Readable by the image's user (uid 1034), as a volume's files would be.
    model = shutil.copytree(tiny_guard_onnx.parent, tmp_path / "model")
    for path in (tmp_path, model, *model.iterdir()):
        path.chmod(0o755)
    service = run_image(
        ENGINE,
        images["guard"],
        tmp_path / "guard.log",
        env={"SAFETYPAIRS_GUARD_MODEL": "/models/guard"},
        volumes=[(model, "/models/guard")],
    )
    try:
        with GuardClient(service.grpc_target, timeout=30) as client:
            verdict = client.screen(sample_photos[0])
        assert verdict.untrained and "tiny-clip-guard" in verdict.model, verdict.model
    finally:
        assert service.stop() == 0, service.log()[-3000:]


def test_sigterm_lets_a_call_in_flight_finish_and_exits_0(
    images: dict[str, str], tmp_path: Path, sample_photos
) -> None:
    service = run_image(ENGINE, images["guard"], tmp_path / "guard.log")
    photos = [p.read_bytes() for p in sample_photos] * 8  # 32 images in one call

    async def run():
        async with AsyncGuardClient(service.grpc_target, timeout=60) as client:
            call = asyncio.ensure_future(client.screen_batch(photos))
            await asyncio.sleep(0.2)  # the call is queued or running now
            assert not call.done(), "the call finished before the signal"
            # To the engine's process: it passes the signal on to the service in the container.
            os.killpg(service.process.pid, signal.SIGTERM)
            return await call

    try:
        results = asyncio.run(run())
        assert len(results) == len(photos) and all(r.verdict for r in results)
        assert service.process.wait(60) == 0, service.log()[-3000:]
    finally:
        service.stop()


@pytest.mark.parametrize("name", ["judge", "edit"])
def test_the_judge_and_edit_images_serve(images: dict[str, str], name: str, tmp_path: Path) -> None:
    """Each on its embedded default (untrained, built at start into the writable cache)."""
    service = run_image(ENGINE, images[name], tmp_path / f"{name}.log")
    try:
        assert health(service.grpc_target) == "SERVING"
        assert httpx.get(f"{service.http_url}/readyz", timeout=10).status_code == 200
    finally:
        assert service.stop() == 0, service.log()[-3000:]
