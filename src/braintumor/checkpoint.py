"""Self-describing checkpoints: safetensors weights plus JSON metadata in the same file.

The metadata holds the architecture, class names, preprocessing, calibration and validation
metrics, so a checkpoint never needs a second file to be used. Nothing is read with pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .config import CLASSES
from .models import build_model
from .inference.preprocess import Preprocessing

FORMAT = "braintumor-checkpoint/1"


@dataclass
class Checkpoint:
    arch: str
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    state_dict: dict[str, torch.Tensor]
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
        return any(k.startswith("box_head.") for k in self.state_dict)

    @property
    def has_box_refiner(self) -> bool:
        return self.refiner_stages > 0

    @property
    def refiner_stages(self) -> int:
        from .box_refine import refiner_stages

        return refiner_stages(self.state_dict)

    def build(self) -> nn.Module:
        """The network in eval mode with these weights, float32 on the CPU."""
        model = build_model(self.arch, len(self.classes), box_head=self.has_box_head,
                            box_refiner=self.refiner_stages)
        state = {k: v.float() if v.is_floating_point() else v for k, v in self.state_dict.items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{self.path or 'checkpoint'}: weights do not fit architecture {self.arch}: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        return model.eval()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, preprocessing: Preprocessing,
                    classes: tuple[str, ...] = CLASSES, meta: dict | None = None,
                    half: bool = False) -> str:
    """Write weights + metadata as one safetensors file; returns its SHA-256."""
    from safetensors.torch import save_file

    model = getattr(model, "module", model)  # DDP
    model = getattr(model, "_orig_mod", model)  # torch.compile
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu").contiguous()
        if half and v.is_floating_point() and "running_" not in k:
            v = v.half()
        state[k] = v.clone()
    header = {
        "format": FORMAT,
        "arch": arch,
        "classes": list(classes),
        "preprocessing": preprocessing.to_dict(),
        "meta": meta or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata={"braintumor": json.dumps(header)})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, readable as the user's umask allows
    tmp.replace(path)
    return sha256_file(path)


def read_header(path: str | Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("braintumor")
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if not raw:
        raise CheckpointError(f"{path}: safetensors file without braintumor metadata")
    header = json.loads(raw)
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {header.get('format')!r}")
    return header


def load_checkpoint(path: str | Path, expected_sha256: str | None = None,
                    classes: tuple[str, ...] | None = None) -> Checkpoint:
    """Read a checkpoint; check its SHA-256 when one is given and its classes when asked."""
    from safetensors.torch import load_file

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
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read weights ({exc})") from None
    ck = Checkpoint(
        arch=header["arch"],
        classes=tuple(header["classes"]),
        preprocessing=Preprocessing.from_dict(header["preprocessing"]),
        state_dict=state,
        meta=header.get("meta", {}),
        path=path,
        sha256=digest,
    )
    if classes is not None and ck.classes != tuple(classes):
        raise CheckpointError(
            f"{path}: the checkpoint's classes {list(ck.classes)} differ from {list(classes)}"
        )
    return ck


def update_meta(path: str | Path, **entries) -> str:
    """Add entries (temperature, thresholds) to a checkpoint's metadata, keeping its weights."""
    ck = load_checkpoint(path)
    meta = {**ck.meta, **entries}
    half = any(v.dtype == torch.float16 for v in ck.state_dict.values())
    model = ck.build()
    return save_checkpoint(path, model, ck.arch, ck.preprocessing, ck.classes, meta, half=half)


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
