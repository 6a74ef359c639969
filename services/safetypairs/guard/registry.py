"""Guard artifacts in the BentoML model store: register a guard under a versioned tag, so the
service can be pointed at `name:version` (or `name:latest`) like any other model reference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetypairs.contract.errors import ModelError
from safetypairs.guard.artifact import guard_artifact_path, load_guard
from safetypairs.guard.sidecar import MANIFEST, sidecar_path


def _portable(manifest: Path) -> None:
    """An ensemble is copied as its folder: members must live inside it or in a package."""
    for member in json.loads(manifest.read_text()).get("members", []):
        for key in ("onnx", "sidecar"):
            spec = str(member.get(key, ""))
            if (
                spec
                and not spec.startswith("package:")
                and (Path(spec).is_absolute() or ".." in Path(spec).parts)
            ):
                raise ModelError(
                    f"ensemble member {member.get('name')!r} {key} {spec!r} lies outside "
                    f"{manifest.parent}; copy it inside before registering"
                )


def register_guard(ref: str, name: str) -> str:
    """Copy the guard `ref` names into the model store as `name:<new version>`, check that the
    stored copy loads, and return the full tag."""
    import bentoml

    path = guard_artifact_path(ref)
    model = load_guard(str(path))  # refuse to store what cannot serve
    card = model.card
    if path.suffix == ".json":
        _portable(path)
    with bentoml.models.create(
        name,
        labels={"kind": "safetypairs-guard"},
        metadata={
            "guard": f"{card.name}:{card.version}",
            "categories": list(card.categories),
            "untrained": card.untrained,
            "source": str(path),
        },
    ) as stored:
        target = Path(stored.path)
        if path.suffix == ".json":
            shutil.copytree(path.parent, target, dirs_exist_ok=True)
            stored_path = target / MANIFEST
        else:
            shutil.copy2(path, target / path.name)
            shutil.copy2(sidecar_path(path), target / sidecar_path(path).name)
            stored_path = target / path.name
        load_guard(str(stored_path))
        tag = str(stored.tag)
    return tag


def describe_ref(ref: str) -> str:
    """The reference as it resolves now: a store tag with its exact version, else as given."""
    try:
        import bentoml
    except ImportError:
        return ref
    if Path(ref).expanduser().exists():
        return ref
    try:
        return str(bentoml.models.get(ref).tag)
    except Exception:  # not a store tag (a path, a hub id): keep it as written
        return ref
