"""The guard model as each peer server runs it: the same ONNX file and sidecar, decoded and
preprocessed the plain way (Pillow, then numpy), with onnxruntime's default session options
(or, with PEER_ORT=tuned, the guard's own: the peers then differ from the guard only as servers).

Standalone on purpose (numpy, Pillow and onnxruntime only): the peers' virtual environments do
not install this project. It reproduces the guard's `shorter_side_center_crop` preprocessing
(the EfficientNet-Lite0 baseline guard's), which is all the benchmark serves.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


class ReferenceGuard:
    def __init__(self, onnx_path: str) -> None:
        sidecar = json.loads(Path(onnx_path).with_suffix(".json").read_text())
        spec = sidecar["input"]
        if spec["resize"] != "shorter_side_center_crop" or spec["layout"] != "NCHW":
            raise SystemExit(f"{onnx_path}: the peers serve shorter_side_center_crop NCHW guards")
        self.name = sidecar["name"]
        self.size = int(spec["size"])
        self.mean = np.asarray(spec["mean"], np.float32) * 255.0
        self.std = np.asarray(spec["std"], np.float32) * 255.0
        self.input = spec["name"]
        self.output = sidecar["output"]["name"]
        options = ort.SessionOptions()
        if os.environ.get("PEER_ORT") == "tuned":  # bench.py --peer-ort tuned
            # The guard's own session options (serving/cores.py): threads = usable cores, one
            # inter-op thread, no spinning; otherwise onnxruntime's defaults, as a user gets.
            options.intra_op_num_threads = len(os.sched_getaffinity(0))
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        self.categories = len(sidecar["categories"])

    def pixels(self, data: bytes) -> np.ndarray:
        img = Image.open(io.BytesIO(data))
        if img.format == "JPEG":
            img.draft("RGB", (2 * self.size, 2 * self.size))
        img = ImageOps.exif_transpose(img).convert("RGB")
        w, h = img.size
        scale = self.size / min(w, h)
        nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        img = img.crop((left, top, left + self.size, top + self.size))
        arr = (np.asarray(img, dtype=np.float32) - self.mean) / self.std
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def probabilities(self, blobs: list[bytes]) -> np.ndarray:
        x = np.stack([self.pixels(b) for b in blobs])
        (out,) = self.session.run([self.output], {self.input: x})
        return np.asarray(out, dtype=np.float32)
