"""Finding labelled images on disk and caching them, decoded and resized once, as uint8 arrays."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .. import formats
from ..config import CLASSES
from ..imaging import ImageError, load_image


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int

    def rel(self, root: Path) -> str:
        return self.path.relative_to(root).as_posix()


def resolve_root(data: str | Path, part: str) -> Path:
    """A class-folder root: ``data`` itself, or ``data/<part>`` (Training or Testing)."""
    root = Path(data)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"not a folder: {root}")
    for candidate in (part, part.lower()):
        sub = root / candidate
        if sub.is_dir() and not (root / CLASSES[0]).is_dir():
            return sub
    return root


def list_samples(root: str | Path, classes: tuple[str, ...] = CLASSES, require_all: bool = True) -> list[Sample]:
    """All images and DICOM files (:func:`braintumor.formats.is_slice_file`) under ``root/<class>/``,
    in class order then name order.

    Raises DataError for no class folders, unknown class folders or, with ``require_all`` (training
    from scratch needs every class), a missing or empty class."""
    root = Path(root)
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        raise DataError(f"{root} has no class folders; expected {', '.join(classes)}")
    unknown = [d for d in subdirs if d not in classes]
    if unknown:
        raise DataError(
            f"{root}: unknown class folder(s) {', '.join(unknown)}; expected {', '.join(classes)}"
        )
    missing = [c for c in classes if c not in subdirs]
    if missing and require_all:
        raise DataError(f"{root}: class folder(s) missing: {', '.join(missing)}")
    samples = []
    for label, cls in enumerate(classes):
        inside = (root / cls).rglob("*") if cls in subdirs else ()
        files = sorted(p for p in inside if formats.is_slice_file(p))
        if not files and require_all:
            raise DataError(f"{root / cls}: the class folder holds no images")
        samples.extend(Sample(p, label) for p in files)
    if not samples:
        raise DataError(f"{root}: no images in the class folders {', '.join(subdirs)}")
    return samples


def progress(iterable=None, total=None, desc="", unit="img", disable=None):
    """A tqdm bar on stderr (rate and time left), hidden when stderr is not a terminal in CI logs."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = os.environ.get("BRAINTUMOR_NO_PROGRESS") == "1"
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable,
                dynamic_ncols=True, leave=False)


def _decode(args: tuple[str, int, str]) -> tuple[np.ndarray | None, str]:
    from ..inference.preprocess import prepare

    path, size, fit = args
    try:
        return prepare(load_image(path), size, fit), ""
    except ImageError as exc:
        return None, str(exc)


def _cache_key(samples: list[Sample], size: int, fit: str = "crop") -> str:
    h = hashlib.sha256(str(size).encode() if fit == "crop" else f"{size}|{fit}".encode())
    for s in samples:
        st = s.path.stat()
        h.update(f"{s.path}|{s.label}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


@dataclass
class ImageCache:
    """Prepared images as one (N, size, size) uint8 array (memory-mapped from disk when cached)."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]
    skipped: list[tuple[str, str]]  # (path, reason) of images that could not be read


def build_cache(samples: list[Sample], size: int, cache_dir: str | Path | None = None,
                workers: int = 0, desc: str = "decode", fit: str = "crop") -> ImageCache:
    """Decode and resize every image once (squared by ``fit``: see :func:`braintumor.training.transforms.prepare`).
    With ``cache_dir`` the result is stored as ``.npy`` and memory-mapped on the next call with the
    same files, size and fit."""
    key = _cache_key(samples, size, fit)
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        arr_path, idx_path = cache_dir / f"images-{size}-{key}.npy", cache_dir / f"index-{size}-{key}.json"
        if arr_path.is_file() and idx_path.is_file():
            idx = json.loads(idx_path.read_text())
            return ImageCache(np.load(arr_path, mmap_mode="r"), np.array(idx["labels"], dtype=np.int64),
                              idx["paths"], [tuple(s) for s in idx["skipped"]])
    jobs = [(str(s.path), size, fit) for s in samples]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as ex:
            results = list(progress(ex.map(_decode, jobs, chunksize=32), total=len(jobs), desc=desc))
    else:
        results = [_decode(j) for j in progress(jobs, desc=desc)]
    images, labels, paths, skipped = [], [], [], []
    for s, (arr, err) in zip(samples, results):
        if arr is None:
            skipped.append((str(s.path), err))
            print(f"warning: skipped unreadable image {err}", file=sys.stderr)
            continue
        images.append(arr)
        labels.append(s.label)
        paths.append(str(s.path))
    if not images:
        raise DataError("no readable images")
    arr = np.stack(images)
    cache = ImageCache(arr, np.array(labels, dtype=np.int64), paths, skipped)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(arr_path, arr)
        idx_path.write_text(json.dumps({"labels": labels, "paths": paths, "skipped": skipped}))
    return cache
