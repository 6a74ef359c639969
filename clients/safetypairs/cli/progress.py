"""Progress bars for the command line, with tqdm: a redrawn bar on a terminal, and in a pipe
or a log file plain lines (no carriage returns) at most every PIPE_INTERVAL_S seconds, plus the
first and the last. Work nested inside other work (a training run inside sample-efficiency)
gets its own bar on a terminal and no lines in a pipe."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO

from tqdm import tqdm

from safetypairs.contract import progress
from safetypairs.contract.progress import Task

PIPE_INTERVAL_S = 10.0
# Rate estimate: an exponential moving average over updates, weighted this much to the
# latest. Low, because units of work differ in cost (a source's first unit also pays for its
# null edit): the ETA should not swing with each one.
SMOOTHING = 0.05


class _Lines:
    """A file for tqdm outside a terminal: each redraw becomes one plain line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class _Bar:
    def __init__(self, bar: tqdm, depth: list[int]) -> None:
        self.bar, self._depth = bar, depth

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def note(self, text: str) -> None:
        self.bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        self.bar.close()
        self._depth[0] -= 1


class Bars:
    """A progress reporter (safetypairs.contract.progress.Reporter) drawing on `stream`."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self._depth = [0]

    def __call__(self, label: str, total: int | None, unit: str) -> Task:
        nested = self._depth[0] > 0
        self._depth[0] += 1
        # A step of unknown length: its name and the time it took, not "0it".
        form = {"bar_format": "{desc}: {elapsed}{postfix}"} if total is None else {}
        if self.terminal:
            bar = tqdm(
                **form,
                total=total,
                desc=label,
                unit=unit,
                file=self.stream,
                leave=not nested,
                smoothing=SMOOTHING,
                dynamic_ncols=True,
            )
        else:
            bar = tqdm(
                **form,
                total=total,
                desc=label,
                unit=unit,
                file=_Lines(self.stream),
                disable=nested,
                mininterval=PIPE_INTERVAL_S,
                maxinterval=PIPE_INTERVAL_S,
                smoothing=SMOOTHING,
                ncols=0,  # the count, times and rate, no bar
            )
        return _Bar(bar, self._depth)


@contextmanager
def counter(label: str, unit: str) -> Iterator[Callable[..., None]]:
    """A task fed with running totals: `report(done, total, note="")`. It starts with the
    first report (when the work knows its size and has really begun: a run refused before
    that shows no bar) and ends with the block."""
    with ExitStack() as stack:
        started: list[Task] = []
        shown = [0]

        def report(done: int, total: int, note: str = "") -> None:
            if not started:
                started.append(stack.enter_context(progress.task(label, total, unit)))
            if note:
                started[0].note(note)
            started[0].advance(done - shown[0])
            shown[0] = done

        yield report


@contextmanager
def shown(enabled: bool = True) -> Iterator[None]:
    """Show the progress of the library work done inside the block (nothing if not enabled)."""
    with progress.reporting(Bars() if enabled else None):
        yield
