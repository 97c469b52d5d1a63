"""Exact and near-duplicate detection: the one method used by the audit and by the training split.

Each image gets a *fingerprint*: the SHA-256 of its bytes, and a small descriptor that survives
re-encoding, resizing, shifts, intensity changes and horizontal flips:

1. grayscale, then cropped to the bounding box of its foreground (so a shift or a border changes
   nothing);
2. resized to ``THUMB`` x ``THUMB`` pixels;
3. centred and scaled to unit length (so brightness and contrast change nothing).

Two images are near-duplicates when the cosine similarity of their descriptors, or of one and
the other's mirror image, reaches ``threshold``. Candidate pairs come from a k-d tree over a
PCA projection of the descriptors (a projection never lengthens a distance, so no pair within the
threshold is missed) and are then checked on the full descriptors: far fewer than all pairs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .imaging import ImageError, load_image

THUMB = 24  # side of the descriptor thumbnail
DEFAULT_THRESHOLD = 0.93  # cosine similarity from which two images count as near-duplicates
PCA_DIMS = 24


@dataclass
class Fingerprints:
    paths: list[str]
    sha256: list[str]
    vectors: np.ndarray  # (N, THUMB*THUMB) float32, unit length
    flipped: np.ndarray  # the same for the mirror images
    unreadable: list[tuple[str, str]]  # (path, reason)
    sizes: list[tuple[int, int]]
    modes: list[str]


def foreground_box(arr: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (top, bottom, left, right) of pixels brighter than a tenth of the 99th percentile."""
    lo, hi = float(np.percentile(arr, 2)), float(np.percentile(arr, 99))
    mask = arr > lo + max(8.0, 0.15 * (hi - lo))
    rows = np.flatnonzero(mask.mean(1) > 0.03)
    cols = np.flatnonzero(mask.mean(0) > 0.03)
    h, w = arr.shape
    if rows.size == 0 or (rows[-1] - rows[0]) < h // 8 or (cols[-1] - cols[0]) < w // 8:
        return 0, h, 0, w
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def descriptor(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length descriptor of a grayscale image and of its mirror image."""
    from scipy.stats import rankdata

    arr = np.asarray(img.convert("L"))
    if max(arr.shape) > 256:  # speed: the descriptor only needs a coarse picture
        img = img.convert("L")
        img.thumbnail((256, 256), Image.BILINEAR)
        arr = np.asarray(img)
    t, b, l, r = foreground_box(arr)
    crop = Image.fromarray(np.ascontiguousarray(arr[t:b, l:r]))
    v = np.asarray(crop.resize((THUMB, THUMB), Image.BILINEAR, reducing_gap=2.0), dtype=np.float32)
    # ranks instead of values: any monotonic intensity change (gain, offset, gamma) leaves them be
    v = rankdata(v.ravel()).reshape(v.shape).astype(np.float32)
    out = []
    for x in (v, v[:, ::-1]):
        x = x - x.mean()
        n = float(np.linalg.norm(x))
        out.append((x / n if n > 1e-6 else x).ravel())
    return out[0], out[1]


def fingerprint_files(paths: list[str | Path], progress=None) -> Fingerprints:
    """Fingerprints of files; unreadable ones are listed with their reason, not raised."""
    ok_paths, shas, vecs, flips, bad, sizes, modes = [], [], [], [], [], [], []
    it = progress(paths, desc="fingerprint") if progress else paths
    for p in it:
        try:
            data = Path(p).read_bytes()
            with Image.open(Path(p)) as raw:
                sizes.append(raw.size)
                modes.append(raw.mode)
            img = load_image(data, str(p))
        except (ImageError, OSError) as exc:
            if len(sizes) > len(ok_paths):
                sizes.pop(), modes.pop()
            bad.append((str(p), str(exc)))
            continue
        v, f = descriptor(img)
        ok_paths.append(str(p))
        shas.append(hashlib.sha256(data).hexdigest())
        vecs.append(v)
        flips.append(f)
    dim = THUMB * THUMB
    return Fingerprints(
        ok_paths, shas,
        np.array(vecs, dtype=np.float32).reshape(-1, dim),
        np.array(flips, dtype=np.float32).reshape(-1, dim),
        bad, sizes, modes,
    )


def _projection(vectors: np.ndarray, dims: int = PCA_DIMS) -> np.ndarray:
    """Orthonormal PCA basis (dims x D) of the vectors."""
    if len(vectors) < 2:
        return np.eye(vectors.shape[1], dtype=np.float32)[:dims]
    centred = vectors - vectors.mean(0)
    _, _, vt = np.linalg.svd(centred[: min(len(centred), 4000)], full_matrices=False)
    return vt[:dims].astype(np.float32)


def _similar_pairs(a: np.ndarray, a_flip: np.ndarray, b: np.ndarray | None,
                   threshold: float) -> dict[tuple[int, int], float]:
    """Pairs (i in a, j in b or a) with cosine similarity >= threshold, directly or mirrored.

    Returns {(i, j): similarity}; within one set, i < j."""
    from scipy.spatial import cKDTree

    same = b is None
    if same:
        b = a
    if len(a) == 0 or len(b) == 0:
        return {}
    radius = float(np.sqrt(max(0.0, 2.0 - 2.0 * threshold))) + 1e-6
    proj = _projection(np.concatenate([a, b]))
    tree_b = cKDTree(b @ proj.T)
    found: dict[tuple[int, int], float] = {}
    for queries in (a, a_flip):
        q = queries @ proj.T
        tree_q = cKDTree(q)
        for i, js in enumerate(tree_q.query_ball_tree(tree_b, radius)):
            if not js:
                continue
            js = np.array([j for j in js if not (same and j == i)], dtype=np.int64)
            if js.size == 0:
                continue
            sims = b[js] @ queries[i]
            for j, s in zip(js[sims >= threshold], sims[sims >= threshold]):
                key = (min(i, int(j)), max(i, int(j))) if same else (i, int(j))
                if found.get(key, -1.0) < s:
                    found[key] = float(s)
    return found


def near_pairs(fp: Fingerprints, threshold: float = DEFAULT_THRESHOLD) -> dict[tuple[int, int], float]:
    """Near-duplicate pairs within one set, exact copies included (similarity 1)."""
    pairs = _similar_pairs(fp.vectors, fp.flipped, None, threshold)
    by_sha: dict[str, list[int]] = {}
    for i, s in enumerate(fp.sha256):
        by_sha.setdefault(s, []).append(i)
    for idx in by_sha.values():
        for k in idx[1:]:
            pairs[(idx[0], k)] = 1.0
    return pairs


def cross_pairs(a: Fingerprints, b: Fingerprints,
                threshold: float = DEFAULT_THRESHOLD) -> list[tuple[int, int, str, float]]:
    """(i in a, j in b, "exact" | "near", similarity) for every matching pair between two sets."""
    out = {}
    for (i, j), s in _similar_pairs(b.vectors, b.flipped, a.vectors, threshold).items():
        out[(j, i)] = ("near", s)
    sha_a: dict[str, list[int]] = {}
    for i, s in enumerate(a.sha256):
        sha_a.setdefault(s, []).append(i)
    for j, s in enumerate(b.sha256):
        for i in sha_a.get(s, []):
            out[(i, j)] = ("exact", 1.0)
    return sorted((i, j, kind, s) for (i, j), (kind, s) in out.items())


def groups_from_pairs(n: int, pairs) -> np.ndarray:
    """Connected components (union-find) of n items under the given pairs; group id per item."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)])
    _, ids = np.unique(roots, return_inverse=True)
    return ids
