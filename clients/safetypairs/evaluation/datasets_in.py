"""Evaluation data in: every layout read into one EvalSet (images, labels per category, pairs).

Layouts, told apart by what the path holds:
  * the project's pair dataset: `pairs.jsonl` (or a folder holding it), read by
    safetypairs.contract.training_data.read_pairs, optional "edited" / "artifact_matched"
    fields kept;
  * the project's labelled folder: <root>/<category code or "safe">/<images>;
  * a table of images with labels, JSONL or CSV (a file, or a folder holding exactly one of
    metadata.jsonl, metadata.csv, labels.jsonl, labels.csv), image paths relative to the table:
      image column: image | file_name | filename | file | path | image_path
      labels: "labels" (a list of codes, or codes joined by , ; or |, "" or "safe" = safe),
              "label" (a code, "safe", or with --unsafe-category also unsafe/1/true and
              safe/0/false), or one 0/1 column per category code (O1, O6, ...);
      optional "pair_id": two rows sharing one form a pair; optional "edited" (true/false);
  * a Hugging Face `datasets` directory written by save_to_disk (a Dataset, or a DatasetDict
    and a split): an Image column (or a path column), label columns as above (ClassLabel
    values are read as their names); or a pair dataset exported by `safetypairs export --to hf`
    (columns a_image, b_image and the manifest record; accepted pairs only).
Anything else, and any bad record, raises TrainingDataError naming the file and line (or row).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from safetypairs.contract.jsonl import read_jsonl
from safetypairs.contract.pair_record import is_pair_row
from safetypairs.contract.policy import Policy
from safetypairs.contract.training_data import TrainingDataError, read_labelled, read_pairs
from safetypairs.evaluation.datasets_hf import from_hf
from safetypairs.evaluation.evalset import EvalPair, EvalSet, Item, ReadOptions
from safetypairs.evaluation.tables import csv_rows, from_table

__all__ = ["EvalPair", "EvalSet", "Item", "ReadOptions", "load_eval_set"]

TABLE_NAMES = ("metadata.jsonl", "metadata.csv", "labels.jsonl", "labels.csv")


def load_eval_set(
    paths: Iterable[Path | str], policy: Policy, options: ReadOptions | None = None
) -> EvalSet:
    """Every path read and checked (images decoded, labels in the policy) into one set."""
    options = options or ReadOptions()
    if options.unsafe_category:
        policy.check_codes([options.unsafe_category])
    out = EvalSet()
    for path in paths:
        out.extend(_load_one(Path(path), policy, options))
    if not out.items:
        raise TrainingDataError("no images to evaluate")
    return out


def _load_one(path: Path, policy: Policy, options: ReadOptions) -> EvalSet:
    if path.is_file():
        if path.suffix == ".jsonl":
            first = next((d for _, d in read_jsonl(path)), {})
            if is_pair_row(first):
                return _from_pairs(path, policy, options.human_accepted_only)
            return from_table(path, read_jsonl(path), policy, options)
        if path.suffix == ".csv":
            return from_table(path, csv_rows(path), policy, options)
        raise TrainingDataError(
            f"{path}: not a dataset file this reads (pairs.jsonl, a labels .jsonl or .csv)"
        )
    if not path.is_dir():
        raise TrainingDataError(f"{path}: no such file or folder")
    if (path / "pairs.jsonl").is_file() or (path / "dataset.json").is_file():
        return _from_pairs(path, policy, options.human_accepted_only)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return from_hf(path, policy, options)
    tables = [path / n for n in TABLE_NAMES if (path / n).is_file()]
    if len(tables) > 1:
        raise TrainingDataError(
            f"{path}: holds {', '.join(t.name for t in tables)}; give one of them as the path"
        )
    if tables:
        return _load_one(tables[0], policy, options)
    subs = [p.name for p in path.iterdir() if p.is_dir()]
    if subs and all(s == "safe" or s in policy.codes for s in subs):
        return _from_examples(read_labelled(path, policy), str(path))
    raise TrainingDataError(
        f"{path}: not a dataset layout this reads: expected pairs.jsonl, one of "
        f"{', '.join(TABLE_NAMES)}, a Hugging Face save_to_disk folder (state.json or "
        f"dataset_dict.json), or folders named 'safe' / {', '.join(policy.codes)} "
        f"(found folders: {', '.join(sorted(subs)) or 'none'})"
    )


def _from_examples(examples: Sequence[Any], source: str) -> EvalSet:
    items = [Item(str(ex.path), ex.labels, ex.record, ex.digest, path=ex.path) for ex in examples]
    return EvalSet(items, [], [source])


def _from_pairs(path: Path, policy: Policy, human_accepted_only: bool = False) -> EvalSet:
    out = EvalSet(sources=[str(path)])
    for pair in read_pairs(path, policy, human_accepted_only):
        for ex, member in ((pair.a, "a"), (pair.b, "b")):
            out.items.append(
                Item(f"{pair.id}/{member}", ex.labels, ex.record, ex.digest, path=ex.path)
            )
        n = len(out.items)
        out.pairs.append(
            EvalPair(pair.id, n - 2, n - 1, pair.edited, pair.artifact_matched, pair.untrained)
        )
    return out
