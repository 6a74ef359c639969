"""Building model directories atomically: a crash never leaves half a model behind, and
concurrent builders (several workers starting at once) never see each other's partial files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_atomically(out_dir: Path, build: Callable[[Path], None], marker: str) -> Path:
    """Run `build(work_dir)` in a temporary sibling of `out_dir` and rename it into place.
    `marker` is a file a finished build holds: losing the rename race to a finished build is
    fine."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        build(work)
        try:
            work.chmod(0o755)
            os.rename(work, out_dir)
        except OSError:
            if not (out_dir / marker).exists():
                raise
        # TemporaryDirectory's cleanup tolerates the directory having been renamed away.
    return out_dir
