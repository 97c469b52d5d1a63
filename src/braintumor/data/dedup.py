"""Exact and near-duplicate detection: the one method used by the audit and by the training split.

Each image gets a *fingerprint*: the SHA-256 of its bytes, and a small descriptor that survives
re-encoding, resizing, shifts, intensity changes and horizontal flips:

1. grayscale; the foreground (the head) is the pixels above half-way between the darkest pixels and
   the Otsu threshold;
2. a square window, ``WINDOW`` standard deviations of the foreground either side of its centroid
   (separately in x and y), is resampled to ``THUMB`` x ``THUMB`` pixels (black outside the image),
   so that a shift, a black border or a change of scale or aspect changes little; the window lies
   mostly inside the head, so that the head's outline, alike in all scans, weighs little;
3. pixel values are replaced by their ranks (any monotonic change of intensity, such as gain,
   offset or gamma, leaves them be) and smoothed with a Gaussian of ``BLUR`` pixels (so a
   misalignment of a pixel or so costs little);
4. centred and scaled to unit length.

Two images are near-duplicates when the cosine similarity of their descriptors, or of one and
the other's mirror image, reaches ``threshold``. Candidate pairs are those within the threshold's
distance on the descriptors' ``PROJECTION_DIMS`` lowest spatial frequencies (an orthonormal
projection never lengthens a distance, so no pair within the threshold is missed), found by blocks
of NumPy distances, and are then checked on the full descriptors: about 17 candidates per image on
the Training half, far fewer than all pairs.

Measured with ``benchmarks/audit_quality.py`` (Training half, 300 altered copies per kind): at the
default threshold 0.93, 100% of JPEG re-encodes (quality 30-90), resizes (0.5x-2x) and flips, 98% of
2-6 % shifts with black padding, 97% of gain/offset changes, 96% of all of these at once, and 0.04%
of images flagged against the classes they do not belong to (different pictures). docs/audit.md has
the figures and the comparison with the first descriptor (a bounding-box crop, no smoothing).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..imaging import ImageError, load_image

THUMB = 24  # side of the descriptor thumbnail
WINDOW = 1.8  # half-side of the sampled window, in standard deviations of the foreground
BLUR = 1.0  # sigma of the Gaussian that smooths the ranked thumbnail, in thumbnail pixels
DEFAULT_THRESHOLD = 0.93  # cosine similarity from which two images count as near-duplicates
PROJECTION_DIMS = 32  # dimensions of the projection that proposes candidate pairs


@dataclass
class Fingerprints:
    paths: list[str]
    sha256: list[str]
    vectors: np.ndarray  # (N, THUMB*THUMB) float32, unit length
    flipped: np.ndarray  # the same for the mirror images
    unreadable: list[tuple[str, str]]  # (path, reason)
    sizes: list[tuple[int, int]]
    modes: list[str]


def otsu_threshold(hist: np.ndarray) -> int:
    """Otsu's threshold of a 256-bin grey-level histogram: the level that best splits it in two."""
    p = hist.astype(np.float64) / max(float(hist.sum()), 1.0)
    w = np.cumsum(p)
    m = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m[-1] * w - m) ** 2 / (w * (1.0 - w))
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between))


def foreground_frame(arr: np.ndarray) -> tuple[float, float, float, float]:
    """Centroid and spread (cy, cx, sy, sx) of the foreground of a uint8 image, in pixels.

    The foreground is the pixels above half-way between the darkest 1 % and Otsu's threshold.
    Moments of the whole foreground move little when a strip of it is cut off by a shift, unlike
    the edges of its bounding box; an image without a clear foreground gets its own frame."""
    h, w = arr.shape
    hist = np.bincount(arr.ravel(), minlength=256)
    lo = int(np.searchsorted(np.cumsum(hist), 0.01 * arr.size))  # 1st percentile
    mask = arr > lo + 0.5 * (otsu_threshold(hist) - lo)
    rows, cols = mask.sum(1, dtype=np.float64), mask.sum(0, dtype=np.float64)
    n = rows.sum()
    if n < 0.02 * arr.size:
        return h / 2, w / 2, h / 4, w / 4
    y, x = np.arange(h) + 0.5, np.arange(w) + 0.5  # pixel centres
    cy, cx = float(rows @ y / n), float(cols @ x / n)
    # + 1/12: the spread of a one-pixel-wide foreground is that of a pixel
    vy, vx = float(rows @ (y - cy) ** 2 / n), float(cols @ (x - cx) ** 2 / n)
    return cy, cx, float(np.sqrt(vy + 1 / 12)), float(np.sqrt(vx + 1 / 12))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (scipy.stats.rankdata's "average", faster)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse.ravel()]


def gaussian_blur(v: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """A 2-D Gaussian blur, edges mirrored (``scipy.ndimage.gaussian_filter`` with its defaults:
    reflect mode, kernel radius ``int(truncate * sigma + 0.5)``), axis by axis, float32 out."""
    r = int(truncate * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = np.asarray(v, dtype=np.float32)
    for axis in range(out.ndim):
        n = out.shape[axis]
        pad = [(r, r) if a == axis else (0, 0) for a in range(out.ndim)]
        padded = np.pad(out.astype(np.float64), pad, mode="symmetric")  # scipy's "reflect"
        acc = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
        out = acc.astype(np.float32)
    return out


def descriptor(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length descriptor of a grayscale image and of its mirror image."""
    if img.mode != "L":
        img = img.convert("L")
    if max(img.size) > 256:  # speed: the descriptor only needs a coarse picture
        img = img.copy()
        img.thumbnail((256, 256), Image.BILINEAR)
    arr = np.asarray(img)
    cy, cx, sy, sx = foreground_frame(arr)
    x0, y0, x1, y1 = cx - WINDOW * sx, cy - WINDOW * sy, cx + WINDOW * sx, cy + WINDOW * sy
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    crop = img.crop((ix0, iy0, int(np.ceil(x1)), int(np.ceil(y1))))  # black outside the image
    v = np.asarray(crop.resize((THUMB, THUMB), Image.BILINEAR, box=(x0 - ix0, y0 - iy0, x1 - ix0, y1 - iy0)),
                   dtype=np.float32)
    # ranks instead of values: any monotonic intensity change (gain, offset, gamma) leaves them be
    v = gaussian_blur(_ranks(v.ravel()).reshape(v.shape).astype(np.float32), BLUR)
    out = []
    for x in (v, v[:, ::-1]):
        x = x - x.mean()
        n = float(np.linalg.norm(x))
        out.append((x / n if n > 1e-6 else x).ravel())
    return out[0], out[1]


def _stored_size_mode(data: bytes, img: Image.Image, name: str) -> tuple[tuple[int, int], str]:
    """Size and mode of the file as stored (before grayscale conversion); DICOM and NIfTI, which
    PIL cannot open, report the size of the slice read and their format as mode."""
    import io

    from ..formats import DECODED

    try:
        with Image.open(io.BytesIO(data), formats=DECODED) as raw:
            return raw.size, raw.mode
    except Exception:  # not an image PIL knows: a medical file that load_image has read
        return img.size, "NIfTI" if name.lower().endswith((".nii", ".nii.gz")) else "DICOM"


def fingerprint_files(paths: list[str | Path], progress=None) -> Fingerprints:
    """Fingerprints of files; unreadable ones are listed with their reason, not raised."""
    ok_paths, shas, vecs, flips, bad, sizes, modes = [], [], [], [], [], [], []
    it = progress(paths, desc="fingerprint") if progress else paths
    for p in it:
        try:
            data = Path(p).read_bytes()
            img = load_image(data, str(p))
        except (ImageError, OSError) as exc:
            bad.append((str(p), str(exc)))
            continue
        size, mode = _stored_size_mode(data, img, str(p))
        v, f = descriptor(img)
        ok_paths.append(str(p))
        shas.append(hashlib.sha256(data).hexdigest())
        vecs.append(v)
        flips.append(f)
        sizes.append(size)
        modes.append(mode)
    dim = THUMB * THUMB
    return Fingerprints(
        ok_paths, shas,
        np.array(vecs, dtype=np.float32).reshape(-1, dim),
        np.array(flips, dtype=np.float32).reshape(-1, dim),
        bad, sizes, modes,
    )


def _projection(vectors: np.ndarray, dims: int = PROJECTION_DIMS) -> np.ndarray:
    """Orthonormal basis (dims x D): the ``dims`` lowest spatial frequencies of the 2-D DCT.

    The descriptors are smooth images, so these hold most of their differences (as many candidates
    as a PCA of the data gives with 24 dimensions); being fixed, the basis costs no eigen-solver,
    which a busy two-core machine makes slow, and is the same for every folder."""
    side = int(round(np.sqrt(vectors.shape[1])))
    return _dct_basis(side, min(dims, side * side - 1)).copy()


@functools.lru_cache(maxsize=4)
def _dct_basis(side: int, dims: int) -> np.ndarray:
    n = np.arange(side)
    c = np.sqrt(2.0 / side) * np.cos(np.pi * (n[None, :] + 0.5) * n[:, None] / side)
    c[0] /= np.sqrt(2.0)
    # the constant (0, 0) is left out: descriptors have zero mean
    order = sorted(((u, v) for u in range(side) for v in range(side) if u or v),
                   key=lambda uv: (uv[0] + uv[1], max(uv), uv[0]))
    return np.array([np.outer(c[u], c[v]).ravel() for u, v in order[:dims]], dtype=np.float32)


def _within(q: np.ndarray, b: np.ndarray, radius: float, block: int = 1024) -> list[np.ndarray]:
    """For each row of ``q``, the rows of ``b`` within ``radius`` (Euclidean), by blocks of rows."""
    out = []
    bb = (b.astype(np.float64) ** 2).sum(1)
    for k in range(0, len(q), block):
        qk = q[k:k + block].astype(np.float64)
        d2 = (qk ** 2).sum(1)[:, None] + bb[None, :] - 2.0 * qk @ b.T.astype(np.float64)
        out.extend(np.flatnonzero(row <= radius * radius) for row in d2)
    return out


def _similar_pairs(a: np.ndarray, a_flip: np.ndarray, b: np.ndarray | None,
                   threshold: float) -> dict[tuple[int, int], float]:
    """Pairs (i in a, j in b or a) with cosine similarity >= threshold, directly or mirrored.

    Returns {(i, j): similarity}; within one set, i < j."""
    same = b is None
    if same:
        b = a
    if len(a) == 0 or len(b) == 0:
        return {}
    radius = float(np.sqrt(max(0.0, 2.0 - 2.0 * threshold))) + 1e-6
    proj = _projection(np.concatenate([a, b]))
    pb = b @ proj.T
    found: dict[tuple[int, int], float] = {}
    for queries in (a, a_flip):
        lists = _within(queries @ proj.T, pb, radius)
        counts = np.fromiter((len(js) for js in lists), dtype=np.int64, count=len(lists))
        if counts.sum() == 0:
            continue
        qi = np.repeat(np.arange(len(lists)), counts)
        bj = np.fromiter((j for js in lists for j in js), dtype=np.int64, count=int(counts.sum()))
        if same:
            keep = qi != bj
            qi, bj = qi[keep], bj[keep]
        sims = np.empty(len(qi), dtype=np.float32)
        for k in range(0, len(qi), 65536):  # exact cosine of the candidates, in bounded memory
            e = slice(k, k + 65536)
            sims[e] = np.einsum("ij,ij->i", queries[qi[e]], b[bj[e]])
        hit = sims >= threshold
        for i, j, sim in zip(qi[hit].tolist(), bj[hit].tolist(), sims[hit].tolist()):
            key = (min(i, j), max(i, j)) if same else (i, j)
            if found.get(key, -1.0) < sim:
                found[key] = sim
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
