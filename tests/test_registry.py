"""Guards in the BentoML model store: register under a version tag, serve by tag."""

import json
import subprocess

import pytest
from conftest import run_cli, start_guard_service

from safetypairs.client import GuardClient


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=180, env=env)


def test_register_then_serve_by_tag(sp_home, default_guard_manifest, tmp_path, sample_photos):
    env = {"BENTOML_HOME": str(tmp_path / "bentoml")}
    first = cli("register-guard", str(default_guard_manifest.parent), "--name", "my-guard", env=env)
    assert first.returncode == 0, first.stderr
    tag = first.stdout.strip().splitlines()[-1]
    assert tag.startswith("my-guard:")
    second = cli(
        "register-guard", str(default_guard_manifest.parent), "--name", "my-guard", env=env
    )
    assert second.stdout.strip().splitlines()[-1] not in ("", tag)  # a new version each time

    service = start_guard_service(sp_home, tmp_path / "guard.log", env, model=tag)
    try:
        with GuardClient(service.grpc_target) as client:
            info = client.model_info()
            assert info.reference == tag and info.name == "default-guard"
            assert client.screen(sample_photos[0]).scores
    finally:
        assert service.stop() == 0


def test_embedded_default_reports_itself(guard_service):
    with GuardClient(guard_service.grpc_target) as client:
        assert client.model_info().reference == "embedded default"


def test_non_portable_ensemble_is_refused(default_guard_manifest, tmp_path):
    manifest = json.loads(default_guard_manifest.read_text())
    manifest["members"][0]["onnx"] = str(
        default_guard_manifest.parent / "imagenet-baseline" / "guard.onnx"
    )
    folder = tmp_path / "ensemble"
    folder.mkdir()
    (folder / "ensemble.json").write_text(json.dumps(manifest))
    (folder / "open-nsfw.json").write_text(
        (default_guard_manifest.parent / "open-nsfw.json").read_text()
    )
    result = cli("register-guard", str(folder), env={"BENTOML_HOME": str(tmp_path / "bentoml")})
    assert result.returncode == 2 and "lies outside" in result.stderr


@pytest.mark.parametrize("ref", ["no-such-guard:latest", "/no/such/path"])
def test_unknown_reference(ref, tmp_path):
    result = cli("register-guard", ref, env={"BENTOML_HOME": str(tmp_path / "bentoml")})
    assert result.returncode == 2 and "cannot resolve model reference" in result.stderr
