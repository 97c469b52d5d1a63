"""A checkpoint file as the serving side reads it: its metadata, its SHA-256, the names of its
tensors and the few weights NumPy needs (the classifier's last layer), never through PyTorch.

A checkpoint is one safetensors file with the JSON metadata inside (architecture, classes,
preprocessing, calibration, validation figures), so loading one never needs another file and nothing
is unpickled. The training side (:mod:`braintumor.training.checkpoint`) writes these files and adds the
PyTorch weights to the same object.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .preprocess import Preprocessing

FORMAT = "braintumor-checkpoint/1"
# The classifier's last (linear) layer of each architecture family, by its name in the weights.
HEAD_LAYER = {"resnet": "fc", "efficientnet": "classifier.1"}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _raw_header(path: Path) -> tuple[dict, int]:
    """The safetensors header (tensor table and ``__metadata__``) and where the data begin."""
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n > 100_000_000:
                raise ValueError("header too large")
            return json.loads(f.read(n)), 8 + n
    except (OSError, ValueError, struct.error) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None


def read_header(path: str | Path) -> dict:
    """The checkpoint's own metadata (architecture, classes, preprocessing, meta)."""
    raw = (_raw_header(Path(path))[0].get("__metadata__") or {}).get("braintumor")
    if not raw:
        raise CheckpointError(f"{path}: safetensors file without braintumor metadata")
    header = json.loads(raw)
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {header.get('format')!r}")
    return header


def weights_digest(path: str | Path) -> str:
    """SHA-256 of what the ONNX graphs made from a checkpoint depend on: its architecture, its
    preprocessing (the normalisation is part of the graph) and its weights (the tensor table and
    the data), not the rest of its metadata. The graphs stay valid when only the metadata changes
    (temperature, thresholds, the gate), and are refused when the weights change."""
    path = Path(path)
    table, start = _raw_header(path)
    meta = json.loads((table.pop("__metadata__", None) or {}).get("braintumor") or "{}")
    h = hashlib.sha256(str(meta.get("arch")).encode())
    h.update(json.dumps(meta.get("preprocessing"), sort_keys=True).encode())
    h.update(json.dumps(table, sort_keys=True).encode())
    with open(path, "rb") as f:
        f.seek(start)
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelFile:
    """A checkpoint's description: what the Predictor needs besides the network's graphs."""

    arch: str
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    tensor_names: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)  # metrics, temperature, conformal threshold, run info
    path: Path | None = None
    sha256: str = ""

    @property
    def name(self) -> str:
        return self.meta.get("name") or (self.path.stem if self.path else self.arch)

    @property
    def temperature(self) -> float:
        """The calibration temperature in the metadata (logits / T before the softmax); 1 if none."""
        return float(self.meta.get("temperature", 1.0) or 1.0)

    @property
    def has_box_head(self) -> bool:
        return any(k.startswith("box_head.") for k in self.tensor_names)

    @property
    def has_box_refiner(self) -> bool:
        return self.refiner_stages > 0

    @property
    def refiner_stages(self) -> int:
        return refiner_stages(self.tensor_names)

    def weights_digest(self) -> str:
        if self.path is None:
            raise CheckpointError(f"{self.name}: a checkpoint held in memory has no file to read")
        return weights_digest(self.path)

    def head_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The classifier's last layer as float64 arrays: weight (K, C) and bias (K,)."""
        from safetensors import safe_open

        layer = next((v for k, v in HEAD_LAYER.items() if self.arch.startswith(k)), None)
        if layer is None or self.path is None:
            raise CheckpointError(f"{self.path or self.name}: no classifier layer is known for "
                                  f"architecture {self.arch!r}")
        try:
            with safe_open(str(self.path), framework="numpy") as f:
                w, b = f.get_tensor(f"{layer}.weight"), f.get_tensor(f"{layer}.bias")
        except Exception as exc:
            raise CheckpointError(f"{self.path}: cannot read the classifier's weights ({exc})") from None
        return w.astype(np.float64), b.astype(np.float64)


def refiner_stages(names) -> int:
    """How many stages the ``box_refiner.*`` tensors among ``names`` hold (0: no refiner)."""
    found = {int(k.split(".")[2]) for k in names if k.startswith("box_refiner.stages.")}
    return max(found) + 1 if found else 0


def read_model_file(path: str | Path, expected_sha256: str | None = None,
                    classes: tuple[str, ...] | None = None) -> ModelFile:
    """A checkpoint's description; its SHA-256 is checked when one is given, its classes when asked."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256:
        raise CheckpointError(
            f"{path}: SHA-256 {digest[:12]}... does not match the expected {expected_sha256[:12]}...; "
            "the file is damaged or was replaced (reinstall the package or retrain)"
        )
    header = read_header(path)
    table, _ = _raw_header(path)
    mf = ModelFile(
        arch=header["arch"],
        classes=tuple(header["classes"]),
        preprocessing=Preprocessing.from_dict(header["preprocessing"]),
        tensor_names=tuple(sorted(k for k in table if k != "__metadata__")),
        meta=header.get("meta", {}),
        path=path,
        sha256=digest,
    )
    if classes is not None and mf.classes != tuple(classes):
        raise CheckpointError(f"{path}: the checkpoint's classes {list(mf.classes)} differ from {list(classes)}")
    return mf


PUBLIC_META_KEYS = ("name", "version", "epoch", "val", "val_loss", "train_images", "training",
                    "temperature", "calibration", "conformal", "ood", "notumor_rule", "localization", "model_card")


def public_meta(meta: dict) -> dict:
    """The parts of a checkpoint's metadata that may be shown to anyone: figures and names, never
    the training paths, and no large arrays (long lists and long encoded strings are dropped)."""

    def big(v) -> bool:  # arrays, whether stored as lists or as encoded strings
        return (isinstance(v, (list, tuple)) and len(v) > 16) or (isinstance(v, str) and len(v) > 2000)

    def small(v):
        if isinstance(v, dict):
            return {k: small(x) for k, x in v.items() if not big(x)}
        if isinstance(v, (list, tuple)):
            return [small(x) for x in v if not big(x)]
        return v

    return {k: small(meta[k]) for k in PUBLIC_META_KEYS if k in meta}
