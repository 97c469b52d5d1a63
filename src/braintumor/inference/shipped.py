"""The model that ships inside the package, checked against the SHA-256 in its manifest.

``weights/manifest.json`` names the checkpoint (``file``, ``sha256``), the similar-case index
(``index``) and the ONNX graphs the serving side runs (``graphs``: {kind: {"file", "sha256"}},
``weights``: the digest of the weights they were made from); ``braintumor export`` (training
install) writes the graphs and these entries. Loading reads the checkpoint's description only
(:class:`braintumor.inference.model_file.ModelFile`), never PyTorch.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import CheckpointError
from .model_file import ModelFile, read_model_file

MANIFEST = "manifest.json"


def weights_dir() -> Path:
    return Path(str(resources.files("braintumor") / "weights"))


def manifest() -> dict:
    path = weights_dir() / MANIFEST
    if not path.is_file():
        raise CheckpointError("no model ships with this installation; pass --model FILE")
    return json.loads(path.read_text())


def default_model_path() -> Path:
    return weights_dir() / manifest()["file"]


def default_index_path() -> Path | None:
    """The similar-case index of the Training images for the shipped model, where one ships."""
    try:
        name = manifest().get("index")
    except CheckpointError:
        return None
    path = weights_dir() / name if name else None
    return path if path is not None and path.is_file() else None


def is_shipped(mf: ModelFile) -> bool:
    """Whether ``mf`` is the package's own checkpoint file."""
    try:
        return mf.path is not None and mf.path.resolve() == default_model_path().resolve()
    except CheckpointError:
        return False


def load_default() -> ModelFile:
    """The shipped checkpoint; a damaged file gives a CheckpointError that says so."""
    m = manifest()
    return read_model_file(weights_dir() / m["file"], expected_sha256=m["sha256"])


def load(path: str | Path | None = None) -> ModelFile:
    """A checkpoint by path, or the shipped one when ``path`` is None."""
    return load_default() if path is None else read_model_file(path)


def update_manifest(**entries) -> None:
    """Write entries into the manifest (its other entries kept)."""
    path = weights_dir() / MANIFEST
    data = {**manifest(), **entries}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def record_graphs(record: dict) -> None:
    """Record the shipped model's ONNX graphs (``weights``, ``int8_recipe``, ``graphs``), replacing
    those recorded before, and remove graph files no longer named."""
    old = {g["file"] for g in (manifest().get("graphs") or {}).values()}
    update_manifest(**record)
    for name in old - {g["file"] for g in record["graphs"].values()}:
        (weights_dir() / name).unlink(missing_ok=True)
