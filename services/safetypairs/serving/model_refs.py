"""Model references, resolved the same way by every service.

A reference is a local path, a BentoML model-store tag (`name` or `name:version`), or a
Hugging Face id (`org/name`, from the local Hugging Face cache or the hub when the machine
reaches it). Nothing here runs at import time; resolution happens when a service starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from safetypairs.contract.errors import ModelError

# A config attribute that model builders set on random-weight checkpoints (the embedded default
# judge and editor, the tests' tiny towers), so that everything they produce is marked untrained.
UNTRAINED_MARK = "safetypairs_untrained"

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_BENTO_TAG = re.compile(r"^[a-z0-9][a-z0-9._-]*(:[A-Za-z0-9._-]+)?$")


def resolve_model_ref(ref: str) -> Path:
    """Return the local directory or file a reference points to, or raise ModelError."""
    path = Path(ref).expanduser()
    if path.exists():
        return path
    tried = [f"local path {path} does not exist"]
    if _BENTO_TAG.match(ref):
        try:
            import bentoml
        except ImportError:
            tried.append("BentoML is not installed, so it is no model-store tag")
        else:
            try:
                return Path(bentoml.models.get(ref).path)
            except bentoml.exceptions.NotFound:
                tried.append(f"no BentoML model {ref!r} in the local store")
    if _HF_ID.match(ref):
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            tried.append("huggingface_hub is not installed, so it is no Hugging Face id")
        else:
            try:
                return Path(snapshot_download(ref))
            except Exception as exc:  # offline, unknown repo, auth: all say why in the message
                tried.append(f"Hugging Face {ref!r}: {type(exc).__name__}: {exc}")
    raise ModelError(f"cannot resolve model reference {ref!r}: " + "; ".join(tried))


def configured_model(ref: str, ensure_default: Callable[[], Path]) -> tuple[Path, str]:
    """Where a service's configured model is and how to name it; with no reference set, the
    embedded default (`ensure_default` builds it on first use)."""
    if ref:
        return resolve_model_ref(ref), ref
    path = ensure_default()
    return path, f"embedded default ({path})"
