"""The training images decoded, squared and resized once (the serving preprocessing,
:func:`braintumor.inference.preprocess.prepare`), as one uint8 array, stored on disk and memory-mapped
on the next run with the same files, size and fit."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.folders import Sample
from ..errors import DataError
from ..imaging import ImageError, load_image
from ..inference.preprocess import prepare
from ..progress import progress


def _decode(args: tuple[str, int, str]) -> tuple[np.ndarray | None, str]:
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
    """Decode and resize every image once (squared by ``fit``: see :func:`braintumor.inference.preprocess.prepare`).
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
