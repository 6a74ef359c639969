"""The embedded default models (guard, judge, editor): where each is cached under
SAFETYPAIRS_HOME, and building one (atomically) when a service, a benchmark or `safetypairs
build-default-*` needs it and it is not there yet. Each service's default_model module
describes its model with one DefaultModel and writes its files."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from safetypairs.contract.errors import ModelError
from safetypairs.serving.builds import build_atomically

log = logging.getLogger(__name__)

# The module describing each service's default model, as its DEFAULT.
_MODULES = {
    "guard": "safetypairs.guard.default_model",
    "judge": "safetypairs.judge.default_model",
    "edit": "safetypairs.edit.default_model",
}


@dataclass(frozen=True)
class DefaultModel:
    service: str  # guard, judge or edit: names its model setting in the messages
    name: str
    version: str  # of the build recipe: bump it and cached builds are rebuilt
    marker: str  # the file a finished build holds, inside its directory
    write: Callable[[Path], None]  # writes the model's files into an empty folder
    requires: tuple[str, ...]  # modules the build imports (the `models` extra)
    reference_is_marker: bool = False  # referenced by its marker file (a manifest), not its dir

    def directory(self, home: str | Path) -> Path:
        return Path(home) / "models" / f"{self.name}-v{self.version}"

    def build(self, out_dir: str | Path) -> Path:
        """Build the model into `out_dir` (atomically); return its reference."""
        out = build_atomically(Path(out_dir), self.write, self.marker)
        log.info("built the embedded default %s in %s", self.service, out)
        return self._reference(out)

    def ensure(self, home: str | Path, rebuild: bool = False) -> Path:
        """The model's reference (its directory, or its manifest where it is referenced so),
        building it into `home` first when it is not there yet or `rebuild` asks."""
        out = self.directory(home)
        if rebuild:
            shutil.rmtree(out, ignore_errors=True)
        if not (out / self.marker).is_file():
            missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
            if missing:
                raise ModelError(
                    f"no {self.service} model configured and the embedded default is not built "
                    f"in {home}; building it needs {', '.join(missing)}: install the `models` "
                    f"extra and run `safetypairs {BUILD_COMMANDS[self.service]}`, or set "
                    f"SAFETYPAIRS_{self.service.upper()}_MODEL"
                )
            self.build(out)
        return self._reference(out)

    def _reference(self, out: Path) -> Path:
        return out / self.marker if self.reference_is_marker else out


# The CLI command that builds each service's default ahead of time.
BUILD_COMMANDS = {
    "guard": "build-default-guard",
    "judge": "build-default-judge",
    "edit": "build-default-editor",
}


def default_model(service: str) -> DefaultModel:
    """The embedded default model of `service` (guard, judge or edit)."""
    return importlib.import_module(_MODULES[service]).DEFAULT
