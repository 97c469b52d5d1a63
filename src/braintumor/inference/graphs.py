"""Where a checkpoint's ONNX graphs come from, checked before they run.

A checkpoint's graphs (made by ``braintumor export``, :mod:`braintumor.training.conversion`) are recorded
with their SHA-256 and the digest of the weights they were made from: in the package's
``weights/manifest.json`` for the shipped model, in a sidecar ``<name>.onnx.json`` beside any other
checkpoint. A graph whose SHA-256 differs is refused (a damaged or replaced file); graphs made from
other weights are not used. Graphs the training install converts on first load are kept in the disk
cache (:func:`braintumor.config.cache_dir`), keyed by the weights and everything else they depend on.

The int8 network's activation ranges are calibrated on scans: the folder named by
$BRAINTUMOR_CALIBRATION, else the scans shipped in ``braintumor/sample``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..config import cache_dir
from ..errors import CheckpointError
from ..imaging import ImageInput, load_image
from .model_file import ModelFile
from .preprocess import Preprocessing

SIDECAR_FORMAT = "braintumor-graphs/1"
KINDS = ("int8", "onnx", "refiner")  # the int8 network, the float32 network, the float32 box refiner
INT8_RECIPE = "grey-stem/qdq/per-channel/minmax/float-stem/float-arch-blocks/float-box-head/float-pad-arithmetic"  # part of the cache key: change it with the recipe
CALIBRATION_MAX = 64  # images used to calibrate int8 activation ranges
CACHE_KEEP = 8  # converted graphs kept on disk


def default_calibration() -> list[Path]:
    """Scans to calibrate int8 activations: the folder named by $BRAINTUMOR_CALIBRATION, else the
    scans shipped with the package (``braintumor/sample/``); none when neither is there."""
    from importlib import resources

    from ..formats import IMAGE_SUFFIXES

    env = os.environ.get("BRAINTUMOR_CALIBRATION")
    root = Path(env) if env else Path(str(resources.files("braintumor") / "sample"))
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:CALIBRATION_MAX]


def calibration_inputs(prep: Preprocessing, images: Sequence[ImageInput]) -> np.ndarray:
    """Calibration images through load_image and the checkpoint's preprocessing, with their mirrors:
    the network pixels (2N, S, S) uint8."""
    pixels = np.stack([prep.pixels(load_image(im)) for im in images])
    return np.ascontiguousarray(np.concatenate([pixels, pixels[:, :, ::-1]]))


def sidecar_path(mf: ModelFile) -> Path:
    return mf.path.parent / f"{mf.path.stem}.onnx.json"


def write_sidecar(mf: ModelFile, record: dict) -> Path:
    """Record a user checkpoint's graphs beside it and them (``<name>.onnx.json``)."""
    path = sidecar_path(mf)
    body = {"format": SIDECAR_FORMAT, "checkpoint": mf.path.name, **record}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)
    return path


def _record(mf: ModelFile) -> tuple[dict | None, Path | None]:
    """The graphs recorded for this checkpoint (manifest or sidecar) and the folder they lie in."""
    from . import shipped

    if shipped.is_shipped(mf):
        return shipped.manifest(), shipped.weights_dir()
    if mf.path is None:
        return None, None
    side = sidecar_path(mf)
    if not side.is_file():
        return None, None
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{side}: not a readable graph record ({exc})") from None
    if data.get("format") != SIDECAR_FORMAT:
        raise CheckpointError(f"{side}: unknown graph record format {data.get('format')!r}")
    return data, side.parent


def recorded_graph(mf: ModelFile, kind: str) -> tuple[bytes | None, str]:
    """The checkpoint's recorded ``kind`` graph, its SHA-256 checked, or None and why not."""
    record, folder = _record(mf)
    entry = ((record or {}).get("graphs") or {}).get(kind)
    if not entry:
        return None, "no graph ships with it"
    if record.get("weights") != mf.weights_digest():
        return None, "its recorded graphs were made from other weights"
    path = folder / entry["file"]
    if not path.is_file():
        return None, f"its graph {path.name} is missing"
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.get("sha256"):
        raise CheckpointError(f"{path}: SHA-256 {digest[:12]}... does not match the recorded "
                              f"{str(entry.get('sha256'))[:12]}...; the file is damaged or was replaced "
                              "(reinstall the package, or run braintumor export again)")
    return data, ""


def cache_key(mf: ModelFile, kind: str, calibration: np.ndarray | None = None) -> str:
    """A cache file name: input size, kind and a hash of everything the graph depends on."""
    tag = f"{mf.weights_digest()}|{mf.preprocessing.to_dict()}|{kind}|grey-stem"
    if kind == "int8":
        tag += f"|{INT8_RECIPE}|{hashlib.sha256(np.ascontiguousarray(calibration).tobytes()).hexdigest()}"
    return f"{mf.preprocessing.img_size}-{kind}-{hashlib.sha256(tag.encode()).hexdigest()[:24]}"


def cached(key: str, build: Callable[[], bytes] | None) -> bytes | None:
    """The graph kept on disk under ``key``; else ``build()``, kept (the newest CACHE_KEEP files
    stay); None when it is not there and there is nothing to build it with."""
    folder = cache_dir()
    path = folder / f"{key}.onnx" if folder else None
    if path is not None and path.is_file():
        try:
            data = path.read_bytes()
            os.utime(path)  # recently used: kept when older files are pruned
            return data
        except OSError:
            pass
    if build is None:
        return None
    data = build()
    if path is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            old = sorted(folder.glob("*.onnx"), key=lambda f: f.stat().st_mtime, reverse=True)
            for stale in old[CACHE_KEEP:]:
                stale.unlink(missing_ok=True)
        except OSError:
            pass
    return data

