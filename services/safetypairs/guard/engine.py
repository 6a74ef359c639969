"""The guard engine: an ONNX graph (image -> per-category probabilities) on onnxruntime.

No torch: this module imports onnxruntime, numpy and Pillow only, so the guard's container
stays small. It knows nothing of BentoML or gRPC; tests and benchmarks drive it directly.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from safetypairs.contract.errors import InvalidInput, ModelError
from safetypairs.contract.policy import Policy, default_policy, policy_from_dict
from safetypairs.contract.results import MemberInfo
from safetypairs.guard.outputs import ItemOutput
from safetypairs.guard.preprocess import preprocess
from safetypairs.guard.resize import Beside
from safetypairs.guard.sidecar import GuardCard, GuardSidecar, sidecar_path
from safetypairs.serving.cores import usable_cores

log = logging.getLogger(__name__)

# Best first; whichever of these the installed onnxruntime offers is used, CPU always last.
PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)


def choose_providers(requested: Sequence[str] = ()) -> list[str]:
    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise ModelError(
                f"onnxruntime execution provider(s) {', '.join(missing)} not available; "
                f"this onnxruntime offers: {', '.join(available)}"
            )
        chosen = list(requested)
    else:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")  # fallback for ops a GPU provider lacks
    return chosen


def _check_single_onnxruntime() -> None:
    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            installed.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        log.error(
            "both onnxruntime and onnxruntime-gpu are installed; they ship the same module and "
            "the GPU providers may silently be missing. Uninstall both and install one."
        )


def verify_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        raise ModelError(
            f"checksum mismatch: {path} has sha256 {digest.hexdigest()}, expected {expected}"
        )


def _session(
    onnx_path: Path, providers: Sequence[str], threads: int, *, spinning: bool
) -> ort.InferenceSession:
    """Threads sized from the cores the process may use (not the host's) and one inter-op
    thread. Without `spinning`, idle intra-op threads sleep at once: spinning ones would take
    the cores that request threads and other runs need (serving.cores). With it (a run alone)
    they spin between the run's operators, which saves a wake-up per operator, and stop when
    the run ends (`session.force_spinning_stop`), so they never spin idle."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if spinning:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"onnxruntime cannot load {onnx_path}: {exc}") from None


@dataclass(frozen=True)
class GuardEngine:
    onnx_path: Path
    sidecar: GuardSidecar
    policy: Policy
    session: ort.InferenceSession
    threads: int = 1  # intra-op threads of each session
    # The same graph for a run that has the cores to itself (one call in the service), once
    # open_alone_session has opened it: its intra-op threads spin between operators instead
    # of sleeping, and stop when the run ends.
    _alone: list[ort.InferenceSession] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def load(
        cls,
        onnx_path: Path,
        *,
        sidecar_file: Path | None = None,
        sha256: str | None = None,
        providers: Sequence[str] = (),
        intra_op_threads: int = 0,
    ) -> GuardEngine:
        """Load `onnx_path` with its sidecar (default: same stem, .json); with `sha256`, the
        file must have that digest. `intra_op_threads` 0: the cores this process may use
        (serving.cores)."""
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ModelError(f"guard model file {onnx_path} does not exist")
        if sha256:
            verify_sha256(onnx_path, sha256)
        sidecar = GuardSidecar.read(sidecar_file or sidecar_path(onnx_path))
        try:
            policy = (
                default_policy()
                if sidecar.policy is None
                else policy_from_dict(sidecar.policy, f"{onnx_path} sidecar policy")
            )
            policy.check_codes(sidecar.categories)
        except InvalidInput as exc:
            raise ModelError(f"guard {onnx_path}: {exc.message}") from None
        _check_single_onnxruntime()
        threads = intra_op_threads or usable_cores()
        chosen = choose_providers(providers)
        session = _session(onnx_path, chosen, threads, spinning=False)
        really = session.get_providers()
        engine = cls(onnx_path, sidecar, policy, session, threads)
        engine._check_signature()
        log.info("guard %s %s runs on %s", sidecar.name, sidecar.version, ", ".join(really))
        if really[0] != chosen[0]:
            log.warning("asked for %s but onnxruntime runs %s", chosen[0], really[0])
        return engine

    @property
    def alone_session(self) -> ort.InferenceSession | None:
        return self._alone[0] if self._alone else None

    def open_alone_session(self) -> None:
        """Open (and warm) the session `infer(..., alone=True)` runs on, where it can spin: on
        the CPU with more than one intra-op thread. Opened only where calls run alone (no
        batching): it costs a second session's memory (about 35 MB for EfficientNet-Lite0)."""
        if self._alone or self.threads < 2 or self.providers != ["CPUExecutionProvider"]:
            return
        self._alone.append(_session(self.onnx_path, self.providers, self.threads, spinning=True))
        self.infer([self._probe()], alone=True)
        log.info("guard %s: a second session spins for calls alone", self.sidecar.name)

    def _check_signature(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        name, out = self.sidecar.input.name, self.sidecar.output.name
        if name not in inputs:
            raise ModelError(f"guard graph has no input {name!r} (has {sorted(inputs)})")
        if out not in outputs:
            raise ModelError(f"guard graph has no output {out!r} (has {sorted(outputs)})")
        width = outputs[out].shape[-1]
        if not isinstance(width, int):
            return
        if self.sidecar.output.columns is None and width != len(self.sidecar.categories):
            raise ModelError(
                f"guard output {out!r} has {width} columns but the sidecar names "
                f"{len(self.sidecar.categories)} categories"
            )
        if max(self.sidecar.column_of.values()) >= width:
            raise ModelError(f"guard output {out!r} has {width} columns; the sidecar maps beyond")

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    @property
    def categories(self) -> tuple[str, ...]:
        return self.sidecar.categories

    @property
    def card(self) -> GuardCard:
        return self.sidecar.card

    def preprocess(self, img: Image.Image, beside: Beside | None = None) -> np.ndarray:
        """RGB image -> one float32 input array (CHW or HWC), as the sidecar describes;
        `beside`: idle threads that may share the resize."""
        return preprocess(img, self.sidecar.input, beside)

    def infer(self, batch: Sequence[np.ndarray], *, alone: bool = False) -> np.ndarray:
        """Preprocessed arrays -> (N, categories) probabilities, in `categories` order.
        `alone`: no other run needs the cores meanwhile (the alone session's, when open)."""
        x = np.stack(batch) if len(batch) > 1 else batch[0][None]
        session = self.alone_session if alone and self.alone_session else self.session
        (out,) = session.run([self.sidecar.output.name], {self.sidecar.input.name: x})
        out = np.asarray(out, dtype=np.float32)
        if self._columns is not None:
            out = out[:, self._columns]
        if self.sidecar.output.kind == "logits":
            out = 1.0 / (1.0 + np.exp(-out))
        return out

    def run(self, batch: Sequence[np.ndarray], *, alone: bool = False) -> list[ItemOutput]:
        return [ItemOutput(row) for row in self.infer(batch, alone=alone)]

    @property
    def members(self) -> tuple[MemberInfo, ...]:
        return ()

    @property
    def fusion(self) -> dict[str, str]:
        return {}

    def member_card(self, name: str) -> MemberInfo:
        """This model described as a member of an ensemble."""
        sc = self.sidecar
        return MemberInfo(
            name, sc.description, sc.categories, sc.weights, sc.training, tuple(self.providers)
        )

    @property
    def _columns(self) -> list[int] | None:
        if self.sidecar.output.columns is None:
            return None
        return [self.sidecar.output.columns[c] for c in self.sidecar.categories]

    def _probe(self) -> np.ndarray:
        return self.preprocess(Image.new("RGB", (self.card.input_size, self.card.input_size)))

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        x = self._probe()
        for n in batch_sizes:
            self.infer([x] * n)

    def release_arena(self) -> None:
        """Give back the host memory onnxruntime's arena grew to for batches larger than the
        ones served (the batching measurement's): one batch-1 run that shrinks it. Measured
        on this CPU: 245 MB after a batch of 16, 95 MB after the shrink."""
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        feed = {self.sidecar.input.name: self._probe()[None]}
        self.session.run([self.sidecar.output.name], feed, options)
