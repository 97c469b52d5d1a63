"""Self-describing checkpoints, the training side: the weights as PyTorch tensors, the network
built from them, and writing checkpoints (safetensors weights plus JSON metadata in one file).

Reading a checkpoint's metadata and the few weights the serving side needs is
:mod:`braintumor.inference.model_file`, which never imports PyTorch; :class:`Checkpoint` is that
description with the weights added, loaded on first use. Nothing is read with pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import CLASSES
from ..errors import CheckpointError, NeedsTrainingInstall
from ..inference.model_file import (FORMAT, PUBLIC_META_KEYS, ModelFile, public_meta, read_header,  # noqa: F401
                                   read_model_file, sha256_file)
from ..inference.preprocess import Preprocessing


@dataclass
class Checkpoint(ModelFile):
    """A checkpoint with its weights (``state_dict``: PyTorch tensors, read on first use)."""

    _state: dict | None = field(default=None, repr=False)

    @property
    def state_dict(self) -> dict:
        if self._state is None:
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise NeedsTrainingInstall("reading a checkpoint's weights into PyTorch") from None
            try:
                self._state = load_file(str(self.path))
            except Exception as exc:
                raise CheckpointError(f"{self.path}: cannot read weights ({exc})") from None
        return self._state

    def build(self):
        """The network (a ``torch.nn.Module``) in eval mode with these weights, float32 on the CPU."""
        from .models import build_model

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


def save_checkpoint(path: str | Path, model, arch: str, preprocessing: Preprocessing,
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


def load_checkpoint(path: str | Path, expected_sha256: str | None = None,
                    classes: tuple[str, ...] | None = None) -> Checkpoint:
    """Read a checkpoint with its weights; check its SHA-256 when one is given and its classes when
    asked."""
    mf = read_model_file(path, expected_sha256, classes)
    ck = Checkpoint(**{f: getattr(mf, f) for f in mf.__dataclass_fields__})
    ck.state_dict  # read now: the file may be rewritten later (update_meta)
    return ck


def update_meta(path: str | Path, **entries) -> str:
    """Add entries (temperature, thresholds, the gate) to a checkpoint's metadata. Only the
    safetensors header is rewritten: the tensor table and the weights' bytes stay as they are, so
    the weights digest (what the ONNX graphs and the similar-case index are keyed to) does not
    change. Written to a temporary file and renamed into place; returns the new SHA-256."""
    import json
    import os
    import struct

    from ..inference.model_file import _raw_header, sha256_file

    path = Path(path)
    table, start = _raw_header(path)
    header = json.loads(table["__metadata__"]["braintumor"])
    header["meta"] = {**header.get("meta", {}), **entries}
    table["__metadata__"] = {**table["__metadata__"], "braintumor": json.dumps(header)}
    raw = json.dumps(table, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    tmp = path.with_name(path.name + ".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        dst.write(struct.pack("<Q", len(raw)) + raw)
        src.seek(start)
        for block in iter(lambda: src.read(1 << 20), b""):
            dst.write(block)
    os.replace(tmp, path)
    return sha256_file(path)
