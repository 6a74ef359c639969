"""The examples of README.md and docs/*.md, run as tests (the way LitServe tests its README).

Every `sh`/`bash`/`console`/`python` fence carries a marker on the line right before it
(docs/index.md, "The examples"):

    <!-- example: run -->                      run it
    <!-- example: run services=guard,judge -->  run it with those services up on their default ports
    <!-- example: not run: REASON -->          do not run it, for REASON
    <!-- example: setup -->                    run once; its files seed every example's folder

A fence without one fails. Shell blocks run under `bash` with `set -euo pipefail`, Python
blocks with this interpreter, each in a fresh folder holding what the set-up block made, with
this environment's bin/ first on PATH and the embedded default models built into a temporary
SAFETYPAIRS_HOME. The services an example names are started once (`safetypairs serve`, as the
docs show it) and stopped at the end; their default ports must be free.

Also checked, without running anything: every `safetypairs COMMAND --flag` in any shell example
(run or not) and in bin/demo names a real command and flag, and docs/settings.md lists every
service setting with its flag and default.

(Over 400 lines on purpose: the marker parser, the example runner, the services they need and
the checks that run nothing belong together, and each is shown failing on a planted error.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from safetypairs.serving import settings as settings_module
from safetypairs.serving.launcher import ServiceProcess

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
LANGS = {"sh", "bash", "console", "python"}
SHELLS = {"sh", "bash", "console"}
MARKER = re.compile(r"<!-- example: (?:(run)(?: services=([a-z,]+))?|(setup)|not run: (.+?)) -->")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
# name: (HTTP port, gRPC port, extra flags); the defaults the examples use
SERVICES = {
    "guard": (3000, 50051, []),
    "judge": (3001, 50052, ["--torch-threads", "1"]),
    "edit": (3002, 50053, ["--torch-threads", "1"]),
}
EXAMPLE_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    mode: str | None  # "run", "setup", "not run"; None = unmarked
    services: tuple[str, ...] = ()
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse(path: Path, root: Path = ROOT) -> tuple[list[Block], list[str]]:
    """The fenced blocks of one Markdown file, and the problems with its markers."""
    name = path.relative_to(root)
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    problems: list[str] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            text = lines[i].strip()
            if text.startswith("<!-- example:") and not MARKER.fullmatch(text):
                problems.append(f"{name}:{i + 1}: malformed marker {lines[i]!r}")
            i += 1
            continue
        indent, lang = opening.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        code = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end]) + "\n"
        marker = MARKER.fullmatch(lines[i - 1].strip()) if i > 0 else None
        if lang in LANGS:
            blocks.append(_block(path, i + 1, lang, code, marker))
        elif marker:
            problems.append(f"{name}:{i + 1}: a marker on a ```{lang} fence, which is never run")
        i = end + 1
    for n, line in enumerate(lines):
        if MARKER.fullmatch(line.strip()) and not (
            n + 1 < len(lines) and FENCE.match(lines[n + 1])
        ):
            problems.append(f"{name}:{n + 1}: a marker not followed by a fence")
    return blocks, problems


def _block(path: Path, line: int, lang: str, code: str, marker: re.Match[str] | None) -> Block:
    if marker is None:
        return Block(path, line, lang, code, None)
    run, services, setup, reason = marker.groups()
    if run:
        names = tuple(services.split(",")) if services else ()
        return Block(path, line, lang, code, "run", names)
    if setup:
        return Block(path, line, lang, code, "setup")
    return Block(path, line, lang, code, "not run", reason=reason.strip())


ALL: list[Block] = []
MARKER_PROBLEMS: list[str] = []
for _doc in DOCS:
    _blocks, _problems = parse(_doc)
    ALL += _blocks
    MARKER_PROBLEMS += _problems


def test_every_example_is_marked() -> None:
    unmarked = [f"{b.id} (```{b.lang})" for b in ALL if b.mode is None]
    assert not unmarked, "examples without a marker (docs/index.md says how):\n" + "\n".join(
        unmarked
    )
    assert not MARKER_PROBLEMS, "\n".join(MARKER_PROBLEMS)


def test_markers_are_well_formed() -> None:
    setups = [b.id for b in ALL if b.mode == "setup"]
    assert len(setups) == 1, f"exactly one setup block, found {setups}"
    for b in ALL:
        unknown = set(b.services) - set(SERVICES)
        assert not unknown, f"{b.id}: unknown services {sorted(unknown)}"
        assert b.mode != "not run" or len(b.reason) > 10, f"{b.id}: give a reason"


def test_the_parser_catches_an_unmarked_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- example: run -->\n```bash\ntrue\n```\n\n```python\nprint(1)\n```\n"
        "<!-- example: not run: x -->\n\n```json\n{}\n```\n"
    )
    blocks, problems = parse(page, root=tmp_path)
    assert [(b.line, b.mode) for b in blocks] == [(2, "run"), (6, None)]
    assert problems == ["page.md:9: a marker not followed by a fence"]


# -- the commands and flags the examples name ---------------------------------------------


HELP_SCRIPT = """
import contextlib, io, json, sys
from safetypairs.cli import main
out = {}
for command in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        try:
            main([*command, "--help"])
        except SystemExit as exc:
            out[" ".join(command)] = buf.getvalue() if exc.code == 0 else None
print(json.dumps(out))
"""


def help_texts(commands: set[tuple[str, ...]]) -> dict[tuple[str, ...], str | None]:
    """`safetypairs COMMAND --help` for each command (None: no such command), in one process."""
    arg = json.dumps(sorted(commands))
    result = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, arg], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return {tuple(k.split(" ")): v for k, v in json.loads(result.stdout).items()}


SEPARATORS = {"|", "||", "&&", ";", "$(", ")", "then", "do", "!", "if", "time"}


def command_lines(code: str) -> Iterator[list[str]]:
    """Each `safetypairs ...` invocation in a shell text, as its words up to a pipe,
    redirection, `;`, `&&`, `)` or comment (continuation lines joined)."""
    for line in code.replace("\\\n", " ").splitlines():
        words = line.replace("$(", " $( ").replace(")", " ) ").split()
        for start, word in enumerate(words):
            before = words[start - 1] if start else ";"
            if word != "safetypairs" or not (
                before in SEPARATORS or re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", before)
            ):
                continue
            out: list[str] = []
            for w in words[start + 1 :]:
                if w in SEPARATORS or w.startswith(("#", ">", "2>")):
                    break
                out.append(w)
            yield out


def command_of(words: list[str]) -> tuple[str, ...]:
    if words and words[0] in {"judge", "serve"} and len(words) > 1:
        return tuple(words[:2])
    return tuple(words[:1])


def check_invocations(invocations: list[tuple[str, list[str]]]) -> list[str]:
    """Problems with `safetypairs ...` invocations given as (where, words)."""
    invocations = [(w, words) for w, words in invocations if words and words[0][0] != "-"]
    helps = help_texts({command_of(words) for _, words in invocations})
    problems = []
    for where, words in invocations:
        command = command_of(words)
        name = " ".join(command)
        if helps[command] is None:
            problems.append(f"{where}: no command `safetypairs {name}`")
            continue
        flags = {m for w in words for m in re.findall(r"^\[?(--[a-z][a-z0-9-]*)", w)}
        known = set(re.findall(r"(--[a-z][a-z0-9-]*)", helps[command]))
        problems += [f"{where}: `safetypairs {name}` has no {f}" for f in sorted(flags - known)]
    return problems


def test_shell_examples_name_real_commands_and_flags() -> None:
    invocations = [
        (b.id, words) for b in ALL if b.lang in SHELLS for words in command_lines(b.code)
    ]
    problems = check_invocations(invocations)
    assert not problems, "\n".join(problems)


def test_bin_demo_calls_real_commands_and_flags() -> None:
    """bin/demo is not run here (it holds the default ports for minutes); its commands and
    flags must exist."""
    demo = (ROOT / "bin" / "demo").read_text().replace('"$service"', "guard")
    invocations = [("bin/demo", words) for words in command_lines(demo)]
    assert len(invocations) >= 7, invocations  # builds, serve, wait, generate, screen, report
    problems = check_invocations(invocations)
    assert not problems, "\n".join(problems)


def test_the_flag_check_catches_a_wrong_flag() -> None:
    problems = check_invocations([("x", ["screen", "--jsn"]), ("y", ["scren"])])
    assert problems == ["x: `safetypairs screen` has no --jsn", "y: no command `safetypairs scren`"]


# -- links ----------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_resolve() -> None:
    problems = []
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                problems.append(f"{doc.relative_to(ROOT)}: {target}: no such file")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", file.read_text(), flags=re.M)
                if anchor not in {slug(h) for h in headings}:
                    problems.append(f"{doc.relative_to(ROOT)}: {target}: no such heading")
    assert not problems, "\n".join(problems)


# -- the settings page ----------------------------------------------------------------------


def settings_rows() -> dict[str, tuple[str, str]]:
    """docs/settings.md's table rows: env var -> (flag, default cell)."""
    rows = {}
    for line in (ROOT / "docs" / "settings.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"`SAFETYPAIRS_[A-Z0-9_]+`", cells[0]):
            rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[2])
    return rows


def documented_default(cell: str, value: object) -> bool:
    cell = cell.strip("`")
    if cell == "*(empty)*":
        return value == ""
    if isinstance(value, bool):
        return cell == str(value).lower()
    if isinstance(value, int | float):
        return float(cell) == value
    return cell == value


def test_settings_page_lists_every_setting() -> None:
    rows = settings_rows()
    classes = [
        c
        for c in vars(settings_module).values()
        if isinstance(c, type) and issubclass(c, settings_module.ServingSettings)
    ]
    assert len(classes) >= 3  # the shared settings and at least guard and judge
    fields = {settings_module.env_name(f.name): f for c in classes for f in dataclasses.fields(c)}
    problems = []
    for env, f in fields.items():
        if env not in rows:
            problems.append(f"{env} is not in docs/settings.md")
            continue
        flag, default = rows[env]
        if flag != settings_module.flag_name(f.name):
            problems.append(f"{env}: flag {flag!r}, the code's {settings_module.flag_name(f.name)}")
        # the gRPC port differs per service and `home` has a computed default: both in words
        if f.name not in {"grpc_port", "home"} and not documented_default(default, f.default):
            problems.append(f"{env}: default {default!r}, the code's is {f.default!r}")
    sources = "".join(
        p.read_text()
        for root in ("clients", "bin")
        for p in (ROOT / root).rglob("*")
        if p.is_file()
    )
    problems += [
        f"docs/settings.md lists {env}, which nothing reads"
        for env in rows
        if env not in fields and env not in sources
    ]
    assert not problems, "\n".join(problems)


# -- running the examples -------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs-home")


def example_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SAFETYPAIRS_") or k == "SAFETYPAIRS_VENV"
    }
    return {
        **env,
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "SAFETYPAIRS_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "NO_PROXY": "localhost,127.0.0.1",
        "no_proxy": "localhost,127.0.0.1",
    }


@pytest.fixture(scope="module")
def samples(docs_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the set-up block filled."""
    (setup,) = [b for b in ALL if b.mode == "setup"]
    folder = tmp_path_factory.mktemp("docs-samples")
    run_block(setup, folder, example_env(docs_home))
    return folder


class Services:
    """The services the examples name, each started once on its default ports."""

    def __init__(self, home: Path, logs: Path) -> None:
        self.home, self.logs = home, logs
        self.running: dict[str, ServiceProcess] = {}

    def ensure(self, names: tuple[str, ...]) -> None:
        starting = [n for n in names if n not in self.running]
        for name in starting:
            http, grpc_port, _ = SERVICES[name]
            for port in (http, grpc_port):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        pytest.fail(f"port {port} ({name}) is taken: the docs examples need it")
        for name in starting:  # side by side: they build and load their models in parallel
            self.running[name] = self._start(name)
        for name in starting:
            self._wait_ready(name, self.running[name])

    def _start(self, name: str) -> ServiceProcess:
        http, grpc_port, extra = SERVICES[name]
        log_path = self.logs / f"{name}.log"
        command = [str(BIN / "safetypairs"), "serve", name, "--host", "127.0.0.1"]
        command += ["--http-port", str(http), "--grpc-host", "127.0.0.1"]
        command += ["--grpc-port", str(grpc_port), *extra]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                env=example_env(self.home),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return ServiceProcess(
            process, f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc_port}", log_path
        )

    @staticmethod
    def _wait_ready(name: str, service: ServiceProcess, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                pytest.fail(f"the {name} service exited early:\n{service.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{service.http_url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        pytest.fail(f"the {name} service was not ready in {timeout_s}s:\n{service.log()[-3000:]}")

    def stop(self) -> dict[str, int]:
        return {name: service.stop() for name, service in self.running.items()}


@pytest.fixture(scope="module")
def services(
    docs_home: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Services]:
    """Every service the selected examples need, started at once (they load side by side)."""
    needed: set[str] = set()
    for item in request.session.items:
        block = getattr(item, "callspec", None) and item.callspec.params.get("block")
        if isinstance(block, Block) and block.mode == "run":
            needed |= set(block.services)
    running = Services(docs_home, tmp_path_factory.mktemp("docs-logs"))
    try:
        running.ensure(tuple(sorted(needed)))
        yield running
    finally:
        codes = running.stop()
    failed = {n: c for n, c in codes.items() if c != 0}
    assert not failed, f"services exited non-zero on SIGTERM: {failed}"


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.lang == "python":
        script = cwd / "example.py"
        script.write_text(block.code)
        command = [sys.executable, str(script)]
    else:
        code = block.code
        if block.lang == "console":  # only the prompted lines are commands
            lines = code.splitlines()
            code = "\n".join(line[2:] for line in lines if line.startswith("$ ")) + "\n"
        command = ["bash", "-c", "set -euo pipefail\n" + code]
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S
    )
    assert result.returncode == 0, (
        f"{block.id} exited {result.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.parametrize(
    "block", [b for b in ALL if b.mode in {"run", "not run"}], ids=lambda b: b.id
)
def test_example(
    block: Block, samples: Path, services: Services, docs_home: Path, tmp_path: Path
) -> None:
    if block.mode == "not run":
        pytest.skip(block.reason)
    services.ensure(block.services)
    shutil.copytree(samples, tmp_path, dirs_exist_ok=True)
    result = run_block(block, tmp_path, example_env(docs_home))
    print(result.stdout[-4000:])  # shown with `pytest -rP`: what the reader would see
