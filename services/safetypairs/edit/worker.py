"""The editor's worker (serving.worker): its model, runtime and gRPC service."""

from __future__ import annotations

from safetypairs.edit.runtime import EditRuntime, load_configured_editor
from safetypairs.edit.servicer import edit_registration
from safetypairs.serving.worker import WorkerKind

EDIT = WorkerKind("edit", load_configured_editor, EditRuntime, (edit_registration,))
