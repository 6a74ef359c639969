"""The package's layers, enforced on the source: every `import safetypairs...` in clients/ and
services/ must point down or sideways within its room (DESIGN.md decision 12).

    contract     safetypairs (the package root), safetypairs.v1, safetypairs.contract
    sdk          safetypairs.client, safetypairs.pairs, safetypairs.screening,
                 safetypairs.review (the human review page and its figures)
    services     safetypairs.serving, .guard, .judge, .edit, .vision
    training     safetypairs.training   (builds guard models with the guard's own export and
                                         preprocessing, so it sits on the services)
    evaluation   safetypairs.evaluation (scores services through the SDK; scores artifacts and
                                         trains guards in process, importing those only inside
                                         the functions that need them)
    cli          safetypairs.cli        (the command line: one entry, one module per room; the
                                         services, training and evaluation only inside the
                                         functions that run or register their commands)

The services never import the SDK, pairs, screening or evaluation; the SDK never imports a
service. A module of the evaluation or cli room imports service code only inside a function,
so that a client-only install can import every client module.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = (ROOT / "clients", ROOT / "services")

ROOMS: dict[str, tuple[str, ...]] = {
    "contract": ("safetypairs.v1", "safetypairs.contract"),
    "sdk": (
        "safetypairs.client",
        "safetypairs.pairs",
        "safetypairs.screening",
        "safetypairs.review",
    ),
    "services": (
        "safetypairs.serving",
        "safetypairs.guard",
        "safetypairs.judge",
        "safetypairs.edit",
        "safetypairs.vision",
    ),
    "training": ("safetypairs.training",),
    "evaluation": ("safetypairs.evaluation",),
    "cli": ("safetypairs.cli",),
}

# Which rooms a room may import at module level, and which more only inside functions.
ALLOWED: dict[str, set[str]] = {
    "contract": {"contract"},
    "sdk": {"contract", "sdk"},
    "services": {"contract", "services"},
    "training": {"contract", "services", "training"},
    "evaluation": {"contract", "sdk", "evaluation"},
    "cli": {"contract", "sdk", "cli"},
}
ALLOWED_LAZILY: dict[str, set[str]] = {
    "evaluation": {"services", "training"},
    "cli": set(ROOMS),
}


def room_of(module: str) -> str:
    if module in {"safetypairs", "safetypairs.__version__"}:
        return "contract"
    for room, prefixes in ROOMS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return room
    raise LookupError(f"module {module} is in no room: add it to ROOMS in {__file__}")


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    importer: str
    imported: str
    lazy: bool

    def __str__(self) -> str:
        where = "inside a function" if self.lazy else "at module level"
        return (
            f"{self.path}:{self.line}: {self.importer} ({room_of(self.importer)}) imports "
            f"{self.imported} ({room_of(self.imported)}) {where}"
        )


def module_name(path: Path, source_root: Path) -> str:
    parts = list(path.relative_to(source_root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(tree: ast.Module) -> list[tuple[int, str, bool]]:
    """(line, imported module, inside a function) for every import of safetypairs."""
    found: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                base = child.module
                # `from safetypairs import x` names a submodule when x is one.
                names = (
                    [f"{base}.{a.name}" for a in child.names] if base == "safetypairs" else [base]
                )
                found.extend((child.lineno, n, lazy) for n in names)
            visit(child, inner)

    visit(tree, False)
    return [(line, name, lazy) for line, name, lazy in found if name.split(".")[0] == "safetypairs"]


def layer_violations(source_roots: tuple[Path, ...] = SOURCE_ROOTS) -> list[Violation]:
    violations = []
    for source_root in source_roots:
        for path in sorted(source_root.rglob("safetypairs/**/*.py")):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            importer = module_name(path, source_root)
            room = room_of(importer)
            for line, imported, lazy in imports_of(ast.parse(path.read_text(), str(path))):
                target = room_of(imported)
                allowed = ALLOWED[room] | (ALLOWED_LAZILY.get(room, set()) if lazy else set())
                if target not in allowed:
                    violations.append(Violation(path, line, importer, imported, lazy))
    return violations


def test_every_import_points_down_or_within_its_room() -> None:
    violations = layer_violations()
    assert not violations, "wrong arrows between layers:\n" + "\n".join(map(str, violations))


def test_a_servicer_importing_the_sdk_is_caught(tmp_path: Path) -> None:
    services = tmp_path / "services" / "safetypairs" / "guard"
    services.mkdir(parents=True)
    (services / "servicer.py").write_text(
        "from safetypairs.contract.errors import InvalidInput\n"
        "from safetypairs.client.guard import GuardClient\n"
    )
    clients = tmp_path / "clients" / "safetypairs" / "evaluation"
    clients.mkdir(parents=True)
    (clients / "scorers.py").write_text(
        "from safetypairs.guard.artifact import load_guard\n"  # a service at module level
        "def score():\n    from safetypairs.guard.artifact import load_guard\n"  # allowed
    )
    commands = tmp_path / "clients" / "safetypairs" / "cli"
    commands.mkdir(parents=True)
    (commands / "serve.py").write_text(
        "from safetypairs.client.guard import GuardClient\n"  # the SDK: allowed
        "from safetypairs.serving.serve import serve\n"  # a service at module level
        "def cmd_serve(args):\n    from safetypairs.serving.serve import serve\n"  # allowed
    )
    found = sorted(
        str(v).split(": ", 1)[1]
        for v in layer_violations((tmp_path / "clients", tmp_path / "services"))
    )
    assert found == [
        "safetypairs.cli.serve (cli) imports safetypairs.serving.serve (services) at module level",
        "safetypairs.evaluation.scorers (evaluation) imports safetypairs.guard.artifact "
        "(services) at module level",
        "safetypairs.guard.servicer (services) imports safetypairs.client.guard (sdk) "
        "at module level",
    ]


def test_pyproject_names_every_package_folder() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        module_name(init, source_root)
        for source_root in SOURCE_ROOTS
        for init in source_root.rglob("safetypairs/**/__init__.py")
    } | {"safetypairs"}
    assert listed == on_disk
    for package in on_disk:  # and each folder is where its import path says
        room_root = "services" if room_of(package) in {"services", "training"} else "clients"
        path = ROOT / room_root / package.replace(".", "/")
        assert (path / "__init__.py").is_file(), f"{package} is not under {room_root}/"
