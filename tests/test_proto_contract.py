"""The proto contract follows buf's rules (proto/buf.yaml): `buf lint` with the STANDARD rules
passes, `buf breaking` finds no break against the contract of the previous commit (HEAD's first
parent: on main, main's previous commit), and the plain enum names users read (HTTP JSON, the
SDK) never change. Each check is also shown failing on a copy of the contract with a real fault.

buf comes from the @bufbuild/buf npm package; bin/test installs it into .tools/. Without it these
tests fail, never skip, so CI cannot pass without running them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from safetypairs.contract.enum_names import enum_prefix, plain_json, plain_name
from safetypairs.contract.results import EditProposal, Verdict
from safetypairs.serving.http import message_to_json  # the HTTP answers' JSON
from safetypairs.v1 import common_pb2, guard_pb2, judge_pb2

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto"
CONTRACT = "safetypairs/v1"

Buf = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="module")
def buf() -> Buf:
    local = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    path = str(local) if local.exists() else shutil.which("buf")
    assert path, "buf is missing: run bin/test, or npm install --prefix .tools @bufbuild/buf"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([path, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture(scope="module")
def previous_contract() -> str:
    """buf's input for proto/ as the previous commit had it."""
    rev = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "HEAD~1^{commit}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert rev.returncode == 0, (
        "no previous commit to compare the contract with (a shallow clone needs a fetch depth "
        "of at least 2)"
    )
    return f".git#ref={rev.stdout.strip()},subdir=proto"


@pytest.fixture
def edited(tmp_path) -> Callable[[str, str, str], Path]:
    """A copy of proto/ (buf.yaml included) with one replacement made in one file."""

    def edit(name: str, old: str, new: str) -> Path:
        copy = tmp_path / "proto"
        if not copy.exists():
            shutil.copytree(PROTO, copy)
        path = copy / CONTRACT / name
        text = path.read_text() if path.exists() else ""
        assert old in text, f"{old!r} is not in {name}"
        path.write_text(text.replace(old, new, 1))
        return copy

    return edit


def test_lint_passes(buf):
    result = buf("lint", "proto")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "old", "new", "finding"),
    [
        ("common.proto", "RATING_SAFE = 1;", "SAFE = 1;", 'should be prefixed with "RATING_"'),
        # The exceptions in buf.yaml are scoped to today's files: a new service gets every rule.
        (
            "extra.proto",
            "",
            'syntax = "proto3";\npackage safetypairs.v1;\nservice Extra {}\n',
            'Service name "Extra" should be suffixed with "Service"',
        ),
    ],
    ids=["unprefixed enum value", "new service without the suffix"],
)
def test_lint_fails_on_a_violation(buf, edited, name, old, new, finding):
    result = buf("lint", str(edited(name, old, new)))
    assert result.returncode != 0 and finding in result.stdout, result.stdout + result.stderr


def test_no_break_against_the_previous_commit(buf, previous_contract):
    result = buf("breaking", "proto", "--against", previous_contract)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "old", "new", "finding"),
    [
        (
            "common.proto",
            "float probability = 2;",
            "double probability = 2;",
            'changed type from "float" to "double"',
        ),
        ("guard.proto", "string image_id = 1;", "string image_id = 9;", "deleted"),
        # Binary-compatible but the HTTP JSON key changes: WIRE_JSON, not WIRE.
        ("judge.proto", "string prompt_version = 3;", "string template = 3;", "changed name"),
        (
            "edit.proto",
            "  rpc EditStream(EditRequest) returns (stream EditEvent);\n",
            "",
            'Previously present RPC "EditStream" on service "Edit" was deleted.',
        ),
        ("guard.proto", "service Guard {", "service GuardService {", 'service "Guard"'),
    ],
    ids=["field type", "field number", "field name", "rpc deleted", "service renamed"],
)
def test_breaking_fails_on_a_break(buf, edited, name, old, new, finding):
    result = buf("breaking", str(edited(name, old, new)), "--against", "proto")
    assert result.returncode != 0 and finding in result.stdout, result.stdout + result.stderr


def descriptor_set(buf: Buf, source: str, out: Path) -> descriptor_pb2.FileDescriptorSet:
    result = buf("build", source, "--as-file-descriptor-set", "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def plain_enum_names(files: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """ "package.Enum=number" -> the plain name users read, for every enum value, nested too."""
    names: dict[str, str] = {}

    def visit(scope: str, enums, messages) -> None:
        for enum in enums:
            for value in enum.value:
                names[f"{scope}.{enum.name}={value.number}"] = plain_name(enum.name, value.name)
        for message in messages:
            visit(f"{scope}.{message.name}", message.enum_type, message.nested_type)

    for file in files.file:
        visit(file.package, file.enum_type, file.message_type)
    return names


def renamed_plain_names(old: dict[str, str], new: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {key: (old[key], new[key]) for key in old.keys() & new.keys() if old[key] != new[key]}


def test_plain_enum_names_never_change(buf, previous_contract, tmp_path, edited):
    """buf.yaml lets proto names of enum values change (ENUM_VALUE_SAME_NAME is off) because
    users read the plain names; those are checked here instead."""
    old = plain_enum_names(descriptor_set(buf, previous_contract, tmp_path / "old.binpb"))
    new = plain_enum_names(descriptor_set(buf, "proto", tmp_path / "new.binpb"))
    assert old and new
    assert renamed_plain_names(old, new) == {}
    broken = edited("common.proto", "RATING_SAFE = 1;", "RATING_OK = 1;")
    changed = plain_enum_names(descriptor_set(buf, str(broken), tmp_path / "changed.binpb"))
    assert renamed_plain_names(new, changed) == {"safetypairs.v1.Rating=1": ("SAFE", "OK")}


def test_the_prefix_python_strips_is_the_one_buf_lint_enforces(buf, tmp_path):
    """The prefix the Python side strips is the one buf's lint enforces, for every value."""
    files = descriptor_set(buf, "proto", tmp_path / "contract.binpb")
    enums = [enum for file in files.file for enum in file.enum_type]
    assert {e.name for e in enums} >= {"Rating", "EditDirection", "EditAction", "OutputFormat"}
    for enum in enums:
        for value in enum.value:
            assert value.name.startswith(enum_prefix(enum.name)), (enum.name, value.name)


def test_users_read_one_word_for_an_enum_value_over_every_protocol_but_grpc():
    """HTTP JSON, the SDK and the CLI agree ("unsafe", "add"); gRPC keeps RATING_UNSAFE."""
    verdict = common_pb2.Verdict(rating=common_pb2.RATING_UNSAFE, category="O6")
    batch = guard_pb2.ScreenBatchResponse(results=[guard_pb2.ScreenResult(verdict=verdict)])
    proposals = judge_pb2.ProposeEditsResponse(
        proposals=[judge_pb2.EditProposal(action=judge_pb2.EDIT_ACTION_ADD)]
    )
    assert message_to_json(batch)["results"][0]["verdict"]["rating"] == "unsafe"
    assert message_to_json(proposals)["proposals"][0]["action"] == "add"
    assert plain_json(common_pb2.Verdict.DESCRIPTOR, {"rating": 7}) == {"rating": 7}
    assert Verdict.from_proto(verdict).rating == "unsafe"
    assert EditProposal.from_proto(proposals.proposals[0]).action == "add"
