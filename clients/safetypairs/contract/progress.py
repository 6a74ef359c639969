"""Progress of long work, for whoever shows it. Library code says what it is doing
(`track(items, "embedding images")`, `task("exporting ONNX")`); the command line installs a
reporter that draws bars (safetypairs.cli.progress). With none installed nothing is shown, so
library callers and the services see no output."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...

    def note(self, text: str) -> None:
        """A short status shown beside the count (figures so far, the current step)."""

    def close(self) -> None: ...


# (label, total or None when unknown, unit) -> a Task
Reporter = Callable[[str, "int | None", str], Task]


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


_reporter: Reporter | None = None


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Show the progress of work done inside the block with `reporter`."""
    global _reporter
    before, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = before


def start(label: str, total: int | None = None, unit: str = "it") -> Task:
    """A unit of long work the caller closes (`task` closes it for a block)."""
    return _reporter(label, total, unit) if _reporter is not None else _Silent()


@contextmanager
def task(label: str, total: int | None = None, unit: str = "it") -> Iterator[Task]:
    """A unit of long work: advance it as parts finish; closed when the block ends."""
    current = start(label, total, unit)
    try:
        yield current
    finally:
        current.close()


def track(
    items: Iterable[T], label: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """Iterate over `items`, advancing a task per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(label, total, unit) as t:
        for item in items:
            yield item
            t.advance()
