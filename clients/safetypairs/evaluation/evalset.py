"""What evaluation scores: images with labels per category, and pairs of them."""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from safetypairs.contract.training_data import TrainingDataError, untrained_sources


@dataclass(frozen=True)
class Item:
    """One image to score: a file, or bytes held in memory (a Hugging Face dataset's)."""

    id: str
    labels: frozenset[str]
    record: str  # where it came from, for messages
    digest: str  # SHA-256 of the encoded image
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()  # type: ignore[union-attr]


@dataclass(frozen=True)
class EvalPair:
    id: str
    a: int  # index into EvalSet.items
    b: int
    edited: str | None = None  # "a" | "b" | None (not recorded)
    artifact_matched: bool | None = None
    untrained: tuple[str, ...] = ()  # "role: model" of untrained models that made the pair


@dataclass
class EvalSet:
    items: list[Item] = field(default_factory=list)
    pairs: list[EvalPair] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def extend(self, other: EvalSet) -> None:
        seen = {p.id for p in self.pairs}
        clash = [p.id for p in other.pairs if p.id in seen]
        if clash:
            raise TrainingDataError(f"pair id(s) {clash[:5]} appear in more than one source")
        offset = len(self.items)
        self.items += other.items
        self.pairs += [replace(p, a=p.a + offset, b=p.b + offset) for p in other.pairs]
        self.sources += other.sources

    def untrained_sources(self) -> list[str]:
        """Each untrained model that made some of the pairs (their labels or edits), with how
        many pairs it made: figures measured against such labels mean nothing about safety."""
        return untrained_sources([p.untrained for p in self.pairs])

    def materialise(self, folder: Path) -> list[Path]:
        """A file for every item (in-memory images written once, named by their digest):
        what training and the embedding cache read."""
        paths = []
        for item in self.items:
            if item.path is not None:
                paths.append(item.path)
                continue
            fmt = (Image.open(io.BytesIO(item.read())).format or "img").lower()
            path = Path(folder) / f"{item.digest}.{fmt}"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(item.read())
            paths.append(path)
        return paths


@dataclass(frozen=True)
class ReadOptions:
    unsafe_category: str = ""  # the code binary "unsafe" labels mean; "" = refuse them
    split: str = ""  # a DatasetDict's split; "" = "test", or the only one
    human_accepted_only: bool = False  # pair datasets: only pairs people accepted in review
