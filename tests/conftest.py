"""Shared fixtures: the embedded default guard built once per session, and a real guard
service (serving.one_process: BentoML's worker, HTTP + in-process gRPC) on loopback ports."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from safetypairs.guard.default_model import build_default_guard, default_guard_dir
from safetypairs.judge.default_model import build_default_judge, default_judge_dir
from safetypairs.serving.launcher import (
    EDIT_SERVICE,
    GUARD_SERVICE,
    JUDGE_SERVICE,
    ServiceProcess,
    free_port,
)

__all__ = ["free_port"]


def run_cli(
    *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`safetypairs ARGS` in a process of its own, as a user runs it (env: added variables)."""
    return subprocess.run(
        [sys.executable, "-m", "safetypairs.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@dataclass
class TerminalRun:
    returncode: int
    output: str  # stdout and stderr together, as a terminal shows them


def run_cli_in_terminal(*args: str, timeout: float, cwd: Path | None = None) -> TerminalRun:
    """`safetypairs ARGS` on a pseudo-terminal, as a person at a terminal runs it."""
    return run_in_terminal([sys.executable, "-m", "safetypairs.cli", *args], timeout, cwd)


def run_in_terminal(argv: list[str], timeout: float, cwd: Path | None = None) -> TerminalRun:
    """`argv` with stdin, stdout and stderr on a pseudo-terminal of 120x40 characters."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        argv,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=cwd,
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(primary, 65536)
            except OSError:  # the child closed its end: all read
                break
            if not data:
                break
            chunks.append(data)
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)
    return TerminalRun(returncode, b"".join(chunks).decode("utf-8", "replace"))


def run_build_script(script: str, names: list[str], bentoml_home: Path, timeout: float) -> str:
    """`bin/SCRIPT NAMES...` (build-bentos, build-images) in this environment, into a fresh
    BENTOML_HOME; its stdout, once it has succeeded."""
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home), "SAFETYPAIRS_VENV": sys.prefix}
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [str(root / "bin" / script), *names],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stdout


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of every process in a process group (a service and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process went away meanwhile
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss in pages
    return total


@pytest.fixture(scope="session")
def sp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SAFETYPAIRS_HOME holding the embedded default guard, built once."""
    home = tmp_path_factory.mktemp("sp-home")
    build_default_guard(default_guard_dir(str(home)))
    return home


@pytest.fixture(scope="session")
def default_guard_manifest(sp_home: Path) -> Path:
    """The embedded default: an ensemble (imagenet-baseline + open-nsfw)."""
    return default_guard_dir(str(sp_home)) / "ensemble.json"


@pytest.fixture(scope="session")
def default_guard_onnx(sp_home: Path) -> Path:
    """The default ensemble's EfficientNet-Lite0 baseline member, a guard on its own."""
    return default_guard_dir(str(sp_home)) / "imagenet-baseline" / "guard.onnx"


@pytest.fixture(scope="session")
def tiny_guard_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight guard that covers all nine categories."""
    from tiny_models import build_tiny_clip_guard

    return build_tiny_clip_guard(tmp_path_factory.mktemp("tiny-guard"))


def start_guard_service(
    home: Path,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    model: str = "",
    grpc_credentials=None,
    http_tls=None,
) -> ServiceProcess:
    """The guard on `model`, by default none configured (so: the embedded default in `home`)."""
    env = {
        "SAFETYPAIRS_GUARD_MODEL": model,
        "SAFETYPAIRS_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        **(extra_env or {}),
    }
    return ServiceProcess.start(
        GUARD_SERVICE, log_path, env, grpc_credentials=grpc_credentials, http_tls=http_tls
    )


@pytest.fixture(scope="session")
def guard_service(
    sp_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The guard on the embedded default (no model configured), with small limits, batching
    pinned on and a batch window so concurrent calls visibly coalesce."""
    log_path = tmp_path_factory.mktemp("logs") / "guard.log"
    service = start_guard_service(
        sp_home,
        log_path,
        {
            "SAFETYPAIRS_MAX_IMAGE_PIXELS": str(4_000_000),
            "SAFETYPAIRS_MAX_IMAGE_BYTES": str(2 * 1024 * 1024),
            "SAFETYPAIRS_MAX_BATCH_WAIT_MS": "20",
            "SAFETYPAIRS_MAX_BATCH_SIZE": "16",
            "SAFETYPAIRS_BATCHING": "on",
            "SAFETYPAIRS_MAX_IMAGES_PER_REQUEST": "32",
            "SAFETYPAIRS_MAX_MESSAGE_BYTES": str(8 * 1024 * 1024),
            # As deployed: the request-id and Prometheus tests read its JSON access log.
            "SAFETYPAIRS_LOG_FORMAT": "json",
        },
    )
    yield service
    code = service.stop()
    assert code == 0, f"guard service exited {code} on SIGTERM:\n{service.log()[-3000:]}"


@pytest.fixture(scope="session")
def tiny_guard_service(
    sp_home: Path, tiny_guard_onnx: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The guard on a random-weight model given by reference (SAFETYPAIRS_GUARD_MODEL)."""
    log_path = tmp_path_factory.mktemp("logs") / "tiny-guard.log"
    service = start_guard_service(sp_home, log_path, model=str(tiny_guard_onnx.parent))
    yield service
    code = service.stop()
    assert code == 0, f"guard service exited {code} on SIGTERM:\n{service.log()[-3000:]}"


@pytest.fixture(scope="session")
def default_judge_dir_built(sp_home: Path) -> Path:
    """The embedded default judge (tiny LLaVA, random weights), built once into sp_home."""
    return build_default_judge(default_judge_dir(str(sp_home)))


@pytest.fixture(scope="session")
def judge_families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint of every judge model family (tests/tiny_judges.py), built once."""
    from tiny_judges import FAMILIES, build_family

    root = tmp_path_factory.mktemp("judge-families")
    return {name: build_family(name, root / name) for name in FAMILIES}


def start_judge_service(
    home: Path, log_path: Path, extra_env: dict[str, str] | None = None
) -> ServiceProcess:
    """The judge on the embedded default in `home` (already built)."""
    env = {
        "SAFETYPAIRS_JUDGE_MODEL": "",
        "SAFETYPAIRS_HOME": str(home),
        # Other services share the cores: one torch thread each (see the setting's help).
        "SAFETYPAIRS_TORCH_THREADS": "1",
        "BENTOML_HOME": str(home / "bentoml"),
        **(extra_env or {}),
    }
    return ServiceProcess.start(JUDGE_SERVICE, log_path, env)


@pytest.fixture(scope="session")
def judge_service(
    sp_home: Path, default_judge_dir_built: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The judge on the embedded default, with prompt and image limits a test can pass."""
    log_path = tmp_path_factory.mktemp("logs") / "judge.log"
    service = start_judge_service(
        sp_home,
        log_path,
        {
            "SAFETYPAIRS_JUDGE_MAX_PROMPT_CHARS": "12000",
            "SAFETYPAIRS_MAX_BATCH_WAIT_MS": "20",
            # the hostile corpus's limits (tests/hostile.py)
            "SAFETYPAIRS_MAX_IMAGE_BYTES": str(2 * 1024 * 1024),
            "SAFETYPAIRS_MAX_IMAGE_PIXELS": str(4_000_000),
        },
    )
    yield service
    code = service.stop()
    assert code == 0, f"judge service exited {code} on SIGTERM:\n{service.log()[-3000:]}"


@pytest.fixture(scope="session")
def default_editor_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SAFETYPAIRS_HOME holding only the embedded default editor (tiny InstructPix2Pix,
    random weights), built once."""
    from safetypairs.edit.default_model import build_default_editor, default_editor_dir

    home = tmp_path_factory.mktemp("edit-home")
    build_default_editor(default_editor_dir(str(home)))
    return home


@pytest.fixture(scope="session")
def pair_stack(
    sp_home: Path,
    default_judge_dir_built: Path,
    default_editor_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Judge and edit services on their embedded defaults, as pair generation uses them. The
    judge runs one image per forward pass so that every verdict is bit-identical from run to
    run (batched rows can differ in the last bits), which the resume tests compare."""
    logs = tmp_path_factory.mktemp("logs")
    judge = start_judge_service(
        sp_home, logs / "pair-judge.log", {"SAFETYPAIRS_MAX_BATCH_SIZE": "1"}
    )
    try:
        edit = ServiceProcess.start(
            EDIT_SERVICE,
            logs / "pair-edit.log",
            {
                "SAFETYPAIRS_EDIT_MODEL": "",
                "SAFETYPAIRS_HOME": str(default_editor_home),
                "BENTOML_HOME": str(default_editor_home / "bentoml"),
                "SAFETYPAIRS_EDIT_STEPS": "2",
                "SAFETYPAIRS_TORCH_THREADS": "1",
            },
        )
    except BaseException:
        judge.stop()
        raise
    yield judge, edit
    assert edit.stop() == 0, edit.log()[-3000:]
    assert judge.stop() == 0, judge.log()[-3000:]


def png_bytes(
    size: tuple[int, int] = (96, 80),
    color: tuple[int, int, int] = (200, 30, 60),
    mode: str = "RGB",
    fmt: str = "PNG",
) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else None).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def sample_photos() -> list[Path]:
    """Real photos scikit-image ships in its wheel."""
    from safetypairs.training.demo_data import sample_photos as photos

    return photos(4)
