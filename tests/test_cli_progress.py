"""Progress as the command line shows it (safetypairs.cli.progress over contract.progress): a
redrawn tqdm bar on a terminal, plain lines without carriage returns in a pipe, nothing from
library code when no command line listens."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import TerminalRun, run_in_terminal

WORK = textwrap.dedent(
    """
    import sys, time
    from safetypairs.cli.progress import shown
    from safetypairs.contract.progress import task, track

    with shown(sys.argv[1] == "on"):
        for _ in track(range(4), "embedding images", unit="img"):
            time.sleep(0.05)
        with task("exporting the ONNX graph") as step:
            with task("inner work", 2) as inner:  # nested: a bar on a terminal, no lines in a pipe
                inner.advance(2)
            step.note("parity ok")
    print("done")
    """
)


def run_python(*args: str, terminal: bool) -> TerminalRun | subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", WORK, *args]
    if terminal:
        return run_in_terminal(argv, timeout=60)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_a_pipe_gets_plain_lines() -> None:
    result = run_python("on", terminal=False)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("embedding images:   0% 0/4")
    assert lines[1].startswith("embedding images: 100% 4/4")
    assert lines[-1].startswith("exporting the ONNX graph: 00:00") and "parity ok" in lines[-1]
    assert not any("inner work" in line for line in lines)  # nested: no lines in a pipe
    assert result.stdout == "done\n"


def test_a_terminal_gets_a_redrawn_bar() -> None:
    result = run_python("on", terminal=True)
    assert result.returncode == 0, result.output
    assert "\rembedding images: 100%|" in result.output and "█" in result.output
    assert "inner work" in result.output


def test_nothing_is_shown_unless_asked() -> None:
    result = run_python("off", terminal=False)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "done\n"
