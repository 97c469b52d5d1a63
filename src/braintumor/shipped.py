"""The model that ships inside the package, checked against the SHA-256 in its manifest."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint

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


def load_default() -> Checkpoint:
    """The shipped checkpoint; a damaged file gives a CheckpointError that says so."""
    m = manifest()
    return load_checkpoint(weights_dir() / m["file"], expected_sha256=m["sha256"])


def load(path: str | Path | None = None) -> Checkpoint:
    """A checkpoint by path, or the shipped one when ``path`` is None."""
    return load_default() if path is None else load_checkpoint(path)
