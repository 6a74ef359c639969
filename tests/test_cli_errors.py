"""The command line's one error handler (safetypairs.cli.errors): one line on stderr, the exit
status docs/api.md states, the traceback only with --debug; one-line usage errors; a missing
extra named; an old flag spelling still working and saying the new one."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_cli
from PIL import Image

from safetypairs.cli.errors import BUG, run


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_a_bad_setting_in_the_environment_is_one_line() -> None:
    """The settings page's own example value: a SettingsError (a ValueError, not a
    SafetyPairsError) before anything starts."""
    result = run_cli("serve", "guard", env={"SAFETYPAIRS_GRPC_PORT": "http"}, timeout=60)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line == "error (SettingsError): SAFETYPAIRS_GRPC_PORT='http' is not a valid int"


def test_debug_adds_the_traceback() -> None:
    result = run_cli("serve", "guard", "--debug", env={"SAFETYPAIRS_GRPC_PORT": "http"}, timeout=60)
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "SettingsError" in result.stderr


def test_a_bad_flag_value_is_one_line_naming_the_flag() -> None:
    result = run_cli("serve", "guard", "--auth-exempt-probes", "maybe", timeout=60)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "--auth-exempt-probes='maybe' is not a valid bool" in line
    assert "see safetypairs serve guard --help" in line


def test_a_missing_argument_is_one_line() -> None:
    result = run_cli("export", "somewhere", timeout=60)
    assert result.returncode == 2
    assert "the following arguments are required: --to, --out" in one_line(result.stderr)


def test_an_unexpected_exception_says_it_is_a_bug(capsys: pytest.CaptureFixture[str]) -> None:
    def cmd_broken(args: argparse.Namespace) -> int:
        return 1 // 0

    assert run(argparse.Namespace(func=cmd_broken), debug=False) == BUG
    line = one_line(capsys.readouterr().err)
    assert "ZeroDivisionError" in line and "--debug" in line


BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == sys.argv[1]:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, Block())
    from safetypairs.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.parametrize(
    ("module", "command", "extra"),
    [
        ("skimage", ["generate", "{images}", "--out", "{tmp}/ds"], "pairs"),
        ("pyarrow", ["export", "{tmp}/ds", "--to", "parquet", "--out", "{tmp}/x.parquet"], "eval"),
        ("torch", ["train-guard", "--data", "{tmp}/l.jsonl", "--out", "{tmp}/g"], "models"),
    ],
)
def test_a_client_only_install_is_told_which_extra_to_install(
    tmp_path: Path, module: str, command: list[str], extra: str
) -> None:
    """As a client-only install sees it: the module is not there (blocked at import)."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.png")
    if module == "pyarrow":  # export reads the dataset first: make one
        from sample_pairs import build_sample_dataset

        build_sample_dataset(tmp_path / "ds")
    args = [a.format(images=images, tmp=tmp_path) for a in command]
    result = subprocess.run(
        [sys.executable, "-c", BLOCK, module, *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert f"needs the '{extra}' extra (module {module} is not installed)" in line
    assert f"pip install 'safetypairs[{extra}]'" in line


def test_an_old_spelling_works_and_names_the_new_one(tmp_path: Path) -> None:
    """`generate --images DIR --quiet` (the old spellings) still parse, and say the new ones;
    the error that follows (nothing listens at port 9) is this run's only other line."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.png")
    result = run_cli(
        "generate",
        "--images",
        str(images),
        "--quiet",
        "--out",
        str(tmp_path / "ds"),
        "--judge-target",
        "127.0.0.1:9",
        "--edit-target",
        "127.0.0.1:9",
        "--max-backoff",
        "0",
        timeout=120,
    )
    assert "note: --images is now positional IMAGES" in result.stderr
    assert "note: --quiet is now --no-progress" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr


def test_old_spellings_are_hidden_from_help() -> None:
    from safetypairs.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    generate = sub.choices["generate"].format_help()
    assert "--no-progress" in generate and "--quiet" not in generate
    assert "--images" not in generate
    evaluate = sub.choices["evaluate"].format_help()
    assert "--guard-model" in evaluate and "--guard " not in evaluate


def test_guard_variant_refuses_to_overwrite_like_export(
    default_guard_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    out.mkdir()
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    result = run_cli(
        "guard-variant", str(default_guard_onnx), "--variant", "fp16", "--images", str(image),
        str(image), "--out", str(out), timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert one_line(result.stderr) == f"error: {out} exists: write the copy to a new folder"


def test_a_closed_pipe_ends_quietly_with_141(sp_home: Path) -> None:
    """`... | head` where the reader is gone before the (short) output is written. Buffered as
    a user's shell has it (no PYTHONUNBUFFERED): the write happens at the end, when the
    interpreter would otherwise report the broken pipe itself, with status 120."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    result = subprocess.run(
        [sys.executable, "-m", "safetypairs.cli", "build-default-guard", "--home", str(sp_home)],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env=env,
    )
    os.close(write_end)
    assert result.returncode == 141 and result.stderr == "", result.stderr
