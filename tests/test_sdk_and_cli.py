"""The SDK imports and works without torch, onnxruntime or bentoml; the CLI screens files."""

import json
import subprocess
import sys
import textwrap

from conftest import run_cli
from hostile import NOT_IMAGES

BLOCK_HEAVY = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        heavy = ("torch", "onnxruntime", "bentoml", "_bentoml_sdk", "_bentoml_impl",
                 "transformers", "numpy", "PIL")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.heavy:
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Block())
    """
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_HEAVY + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sdk_imports_and_calls_without_heavy_packages(guard_service, sample_photos):
    result = run_python(
        f"""
        import safetypairs.client, safetypairs.contract.policy, safetypairs.cli
        from safetypairs.client import GuardClient
        with GuardClient({guard_service.grpc_target!r}) as g:
            v = g.screen({str(sample_photos[0])!r})
        assert v.scores and not v.untrained
        heavy = [m for m in sys.modules if m.split(".")[0] in Block.heavy]
        assert not heavy, heavy
        print("ok", v.rating)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_the_block_really_blocks():
    result = run_python("import onnxruntime")
    assert result.returncode != 0 and "blocked in this test" in result.stderr


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=120)


def test_cli_screen_prints_a_table(guard_service, sample_photos):
    result = cli("screen", "--target", guard_service.grpc_target, *map(str, sample_photos[:2]))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "NOTE: BASELINE" in out and "not covered" in out
    assert str(sample_photos[0]) in out and str(sample_photos[1]) in out
    assert "O6 Weapons or Substance Abuse" in out
    assert out.count("probability  threshold  decision") == 2


def test_cli_screen_json_and_folders(guard_service, tmp_path, sample_photos):
    (tmp_path / "a.png").write_bytes(sample_photos[0].read_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jpg").write_bytes(sample_photos[3].read_bytes())
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    result = cli(
        "screen",
        "--json",
        "--categories",
        "O2,O6",
        "--target",
        guard_service.grpc_target,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["model"]["untrained"] is False
    assert [r["image"] for r in body["results"]] == [
        str(tmp_path / "a.png"),
        str(tmp_path / "sub" / "b.jpg"),
    ]
    scores = body["results"][0]["verdict"]["scores"]
    assert [(s["category"], s["not_covered"]) for s in scores] == [("O2", True), ("O6", False)]


def test_cli_marks_untrained_models(tiny_guard_service, sample_photos):
    result = cli("screen", "--target", tiny_guard_service.grpc_target, str(sample_photos[0]))
    assert result.returncode == 0, result.stderr
    assert "NOTE: UNTRAINED" in result.stdout and "tiny-clip-guard:1 (UNTRAINED)" in result.stdout


def test_cli_reports_bad_files_and_exits_nonzero(guard_service, tmp_path):
    bad = tmp_path / "fake.png"
    bad.write_bytes(NOT_IMAGES["html"])
    result = cli("screen", "--target", guard_service.grpc_target, str(bad))
    assert result.returncode == 1
    assert "ERROR InvalidInput" in result.stdout and "look like HTML" in result.stdout
    missing = cli("screen", "--target", guard_service.grpc_target, str(tmp_path / "nope.png"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_cli_unreachable_service_is_a_clear_error(tmp_path):
    from conftest import free_port, png_bytes

    img = tmp_path / "x.png"
    img.write_bytes(png_bytes())
    result = cli("screen", "--timeout", "3", "--target", f"127.0.0.1:{free_port()}", str(img))
    assert result.returncode == 2 and "error (Unavailable)" in result.stderr


def test_cli_wait_and_categories(guard_service):
    assert cli("wait", "--target", guard_service.grpc_target, "--timeout", "10").returncode == 0
    result = cli("categories", "--target", guard_service.grpc_target)
    assert result.returncode == 0 and result.stdout.splitlines()[0].startswith("O1  Hate")
