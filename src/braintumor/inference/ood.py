"""The out-of-distribution gate: is an input a brain MRI slice this model can judge?

Before a label is given, every input passes these checks in order; the first that fails rejects it
with a reason in plain words (:data:`REASONS`), and the answer is ``"rejected"``:

1. **too small**: its shorter side is under :data:`MIN_SIDE` pixels;
2. **blank**: the pixels the network sees, less the black bars of padding, are (nearly) one grey
   level (:data:`BLANK_STD`);
3. **colour**: more than :data:`COLOUR_MAX` of the picture is in colour (brain MRI slices are grey);
4. **what it looks like**: a small classifier (:class:`KindClassifier`, one hidden layer, run in
   NumPy) that reads :func:`gate_inputs` -- intensity and edge statistics, the shape of the bright
   region (a head on a dark ground, a bright skull ring around a flat grey brain), symmetry,
   saturation, grey-level structure, colour and aspect -- says the image is more likely a
   photograph, a document, a chart or logo or drawing, a CT slice, an X-ray, an ultrasound image
   or a pattern than a brain MRI slice; the reason names what it looks like;
5. **atypical**: the larger of three scores is above the threshold: the classifier's evidence
   against "brain MRI", the Mahalanobis distance (Lee et al., 2018) of the network's penultimate
   features to those of the training slices (what the model "sees"), and the Mahalanobis distance
   of the gate's image statistics to those of the training slices; each is divided by its 99th
   percentile on validation slices. The threshold is the largest split-conformal 99% quantile of
   the validation scores over the groups (each class of each source), so that at most 1% of the
   validation slices of any class and any source are rejected by the whole gate.

The classifier is fitted on the training slices of every source against negatives made here
(:mod:`braintumor.training.gate_negatives`) and the CT slices the dataset holds; the Gaussians on the training
slices; scales and threshold on the validation slices (:mod:`braintumor.training.gate_fit`, ``braintumor
fit-gate``). Everything lives in the checkpoint's metadata under ``"ood"`` as JSON (arrays as
base64 little-endian float32). A checkpoint without it still gets the size and blank checks; one
fitted by an earlier version (no ``"version"``) gets its two Gaussians on the network's pixels.
The gate costs about 2-3 ms an image on two CPU cores (``docs/ood.md``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import DataError
from ..imaging import COLOUR_KEY

VERSION = 2  # of the stored gate; entries without a version are the earlier two-Gaussian gate
MIN_SIDE = 64  # pixels: a shorter side below this is a thumbnail, not a scan
BLANK_STD = 2.0  # grey levels (0-255): a standard deviation below this is a blank image
COLOUR_MAX = 0.15  # share of the picture in colour above which it is not an MRI slice
FALSE_REJECTION = 0.01  # share of validation MRI slices of any group the gate may reject
GATE_SIDE = 128  # the gate looks at the whole image, padded square, at this size
GRAD_LEVELS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)  # edge strengths (fraction of full range)
SCALES = (1, 2, 4)  # image statistics at full, half and quarter resolution
BORDER = 12 / 224  # width of the border band, as a fraction of the side
DARK = 0.08  # "dark" border pixel: below this fraction of full intensity
SHRINK_FEATURES = 1e-4  # ridge added to the covariances, as a fraction of the mean variance
SHRINK_STATS = 1e-2
MRI = "mri"  # the classifier's first kind

TOO_SMALL = "The image is only {w} x {h} pixels. A scan needs at least {m} pixels a side."
BLANK = "The image is blank: it is nearly one grey level."
COLOUR = "This is a colour picture. Brain MRI slices are grey."
NOT_MRI = "This does not look like a brain MRI slice."
KIND_SURE = 0.9  # the classifier names what an image looks like only when it gives that kind this much
ATYPICAL = ("This image is unlike the brain MRI slices the model was trained on. It may be another kind "
            "of scan, another view or another part of the body.")
REASONS = {
    "photograph": "This looks like a photograph, not a brain MRI slice.",
    "document": "This looks like a document or a page of text, not a brain MRI slice.",
    "graphic": "This looks like a chart, a logo or a drawing, not a brain MRI slice.",
    "ct": "This looks like a CT slice. The model reads MRI only.",
    "xray": "This looks like an X-ray. The model reads MRI slices only.",
    "ultrasound": "This looks like an ultrasound image. The model reads MRI slices only.",
    "pattern": "This looks like noise or a pattern, not a brain MRI slice.",
}


# ----------------------------------------------------------------------------------- image statistics


def image_statistics(pixels: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 pixels -> (N, 43) statistics: the square root of a 16-bin intensity
    histogram; at full, half and quarter resolution the square root of the share of pixels whose
    gradient is stronger than each of :data:`GRAD_LEVELS`, and the log Laplacian energy; the mean,
    dark share and standard deviation of a band along the border. About 1.5 ms per image."""
    p = np.asarray(pixels)
    if p.ndim == 2:
        p = p[None]
    n, h, w = p.shape
    hist = np.stack([np.bincount(r, minlength=16) for r in (p.astype(np.uint8) >> 4).reshape(n, -1)]) / (h * w)
    out = [np.sqrt(hist)]
    x = p.astype(np.float32) * np.float32(1 / 255)
    levels2 = np.square(np.asarray(GRAD_LEVELS, dtype=np.float32))
    y = x
    for s in SCALES:  # 1, 2, 4: each a 2 x 2 mean of the one before
        if s > 1:
            y = y[:, : y.shape[1] // 2 * 2, : y.shape[2] // 2 * 2]
            y = (y[:, ::2, ::2] + y[:, 1::2, ::2] + y[:, ::2, 1::2] + y[:, 1::2, 1::2]) * np.float32(0.25)
        corner = y[:, :-1, :-1]
        gx, gy = y[:, :-1, 1:] - corner, y[:, 1:, :-1] - corner
        g2 = (gx * gx + gy * gy).reshape(n, -1)
        out.append(np.sqrt(np.stack([(g2 > t).mean(axis=1) for t in levels2], axis=1)))
        lap = 4 * y[:, 1:-1, 1:-1] - y[:, 2:, 1:-1] - y[:, :-2, 1:-1] - y[:, 1:-1, 2:] - y[:, 1:-1, :-2]
        out.append(10 * np.log1p(np.abs(lap).mean(axis=(1, 2), dtype=np.float64))[:, None])
    b = max(1, round(BORDER * min(h, w)))
    band = np.concatenate([x[:, :b, :].reshape(n, -1), x[:, -b:, :].reshape(n, -1),
                           x[:, :, :b].reshape(n, -1), x[:, :, -b:].reshape(n, -1)], axis=1)
    out.append(np.stack([band.mean(1), (band < DARK).mean(1), band.std(1)], axis=1))
    return np.concatenate(out, axis=1).astype(np.float64)


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    """(N, H, W) boolean masks eroded ``steps`` times by a 3 x 3 cross."""
    for _ in range(steps):
        e = mask.copy()
        e[:, 1:] &= mask[:, :-1]
        e[:, :-1] &= mask[:, 1:]
        e[:, :, 1:] &= mask[:, :, :-1]
        e[:, :, :-1] &= mask[:, :, 1:]
        mask = e
    return mask


def _span(any_on: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last True index of each row of (N, L) booleans (0, 0 where there is none)."""
    first = np.where(any_on.any(1), any_on.argmax(1), 0)
    last = np.where(any_on.any(1), any_on.shape[1] - 1 - any_on[:, ::-1].argmax(1), 0)
    return first, last


def shape_statistics(pixels: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 pixels of the whole image, padded square -> (N, 16): where the bright region
    (the head) is and how much of its bounding box it fills; the border's brightness; left-right
    symmetry about the region's centre; the saturated share; the brightness of the region's rim
    against its inside (a CT skull) and how flat the inside is; how concentrated the grey levels
    are (flat graphics) and how many are used."""
    p = np.asarray(pixels)
    n, h, w = p.shape
    x = p.astype(np.float32) * np.float32(1 / 255)
    top = np.percentile(x.reshape(n, -1), 99, axis=1)
    fg = x > np.maximum(0.08, 0.15 * top)[:, None, None]
    share = fg.mean((1, 2))
    r0, r1 = _span(fg.mean(2) > 0.02)
    c0, c1 = _span(fg.mean(1) > 0.02)
    bh, bw = (r1 - r0 + 1) / h, (c1 - c0 + 1) / w
    fill = share / np.maximum(bh * bw, 1e-3)
    cy, cx = (r0 + r1 + 1) / (2 * h) - 0.5, (c0 + c1 + 1) / (2 * w) - 0.5
    frame = np.concatenate([x[:, :3].reshape(n, -1), x[:, -3:].reshape(n, -1),
                            x[:, :, :3].reshape(n, -1), x[:, :, -3:].reshape(n, -1)], 1)
    sym = np.zeros(n)
    for i in range(n):
        a = np.roll(x[i], int(round(w / 2 - (c0[i] + c1[i] + 1) / 2)), axis=1)
        a = a - a.mean()
        b = a[:, ::-1]
        sym[i] = float((a * b).sum() / max(float((a * a).sum()), 1e-6))
    mx = x.reshape(n, -1).max(1)[:, None, None]
    sat = (x >= 0.97 * mx).mean((1, 2))
    inner = _erode(fg, 6)
    band, inside = fg & ~inner, _erode(inner, 6)
    nb, ni = band.sum((1, 2)), inside.sum((1, 2))
    band_mean = (x * band).sum((1, 2)) / np.maximum(nb, 1)
    in_mean = (x * inside).sum((1, 2)) / np.maximum(ni, 1)
    in_sd = np.sqrt(np.maximum((x * x * inside).sum((1, 2)) / np.maximum(ni, 1) - in_mean ** 2, 0))
    ring_sat = ((x >= 0.9 * mx) & band).sum((1, 2)) / np.maximum(nb, 1)
    hist = np.stack([np.bincount(r, minlength=64) for r in (p >> 2).reshape(n, -1)]) / (h * w)
    conc = -np.sort(-hist, axis=1)[:, :4].sum(1)
    return np.stack([share, bh, bw, fill, cy, cx, frame.mean(1), (frame > 0.1).mean(1), sym, sat,
                     band_mean - in_mean, ring_sat, in_sd, in_mean, conc, (hist > 0.0005).mean(1)],
                    axis=1).astype(np.float64)


def gate_pixels(gray: Image.Image) -> np.ndarray:
    """The whole image as the gate sees it: longer side :data:`GATE_SIDE`, padded square with black."""
    from .preprocess import prepare

    return prepare(gray, GATE_SIDE, "pad")


def gate_inputs(grays: Sequence[Image.Image]) -> np.ndarray:
    """(N, 61) what the gate's classifier and image-statistics check read, per decoded image: the
    43 :func:`image_statistics` and 16 :func:`shape_statistics` of :func:`gate_pixels`, the square
    root of the colour share that :mod:`braintumor.imaging` measured, and |log(width / height)|."""
    pixels = np.stack([gate_pixels(g) for g in grays])
    colour = np.array([float(g.info.get(COLOUR_KEY, 0.0)) for g in grays])
    aspect = np.array([abs(np.log(max(g.size[0], 1) / max(g.size[1], 1))) for g in grays])
    return np.concatenate([image_statistics(pixels), shape_statistics(pixels),
                           np.sqrt(colour)[:, None], aspect[:, None]], axis=1)


def colours_of(inputs: np.ndarray) -> np.ndarray:
    """The colour shares inside :func:`gate_inputs`."""
    return np.square(np.asarray(inputs)[:, -2])


# ----------------------------------------------------------------------------------- Gaussians


def _encode(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"dtype": "float32", "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def _decode(d: dict) -> np.ndarray:
    raw = base64.b64decode(d["base64"])
    return np.frombuffer(raw, dtype="<f4").reshape(d["shape"]).astype(np.float64)


@dataclass(frozen=True)
class Gaussian:
    """One Gaussian: ``distance(x) = |W (x - mean)|^2``, W the whitening matrix (the Mahalanobis
    distance, squared)."""

    mean: np.ndarray  # (D,)
    whitening: np.ndarray  # (D, D): Lambda^-1/2 V^T of the covariance's eigen-decomposition

    @classmethod
    def fit(cls, x: np.ndarray, shrink: float) -> "Gaussian":
        x = np.asarray(x, dtype=np.float64)
        if len(x) < 2:
            raise DataError("a Gaussian needs at least two samples (too few training or validation images)")
        mean = x.mean(axis=0)
        r = x - mean
        cov = r.T @ r / len(x)
        cov += shrink * max(float(np.trace(cov)) / cov.shape[0], 1e-12) * np.eye(cov.shape[0])
        lam, vec = np.linalg.eigh(cov)
        whitening = (vec / np.sqrt(np.maximum(lam, 1e-12))).T
        # kept at the float32 precision they are stored in, so that fitted and loaded gates agree
        return cls(mean.astype(np.float32).astype(np.float64), whitening.astype(np.float32).astype(np.float64))

    def distance(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) @ self.whitening.T
        return np.einsum("nd,nd->n", z, z)

    def to_meta(self) -> dict:
        return {"mean": _encode(self.mean), "whitening": _encode(self.whitening)}

    @classmethod
    def from_meta(cls, d: dict) -> "Gaussian":
        return cls(_decode(d["mean"]), _decode(d["whitening"]))



@dataclass(frozen=True)
class KindClassifier:
    """What an image looks like: brain MRI or one of the other kinds. Standardised inputs, one
    hidden ReLU layer, a softmax over ``kinds`` (``kinds[0]`` is :data:`MRI`)."""

    kinds: tuple[str, ...]
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    w1: np.ndarray  # (D, H)
    b1: np.ndarray  # (H,)
    w2: np.ndarray  # (H, K)
    b2: np.ndarray  # (K,)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        z = (np.asarray(inputs, dtype=np.float64) - self.mean) / self.std
        h = np.maximum(z @ self.w1 + self.b1, 0.0)
        logits = h @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def to_meta(self) -> dict:
        return {"kinds": list(self.kinds), **{k: _encode(getattr(self, k)) for k in ("mean", "std", "w1", "b1", "w2", "b2")}}

    @classmethod
    def from_meta(cls, d: dict) -> "KindClassifier":
        return cls(tuple(d["kinds"]), *(_decode(d[k]) for k in ("mean", "std", "w1", "b1", "w2", "b2")))


def kind_score(probs: np.ndarray) -> np.ndarray:
    """The classifier's evidence against "brain MRI": log((1 - p_mri) / p_mri)."""
    p = np.clip(np.asarray(probs)[:, 0], 1e-9, 1 - 1e-9)
    return np.log1p(-p) - np.log(p)


def conformal_quantile(scores: np.ndarray, rate: float, midpoint: bool = False) -> float:
    """The threshold above which at most ``rate`` of ``scores`` lie, as a split-conformal bound
    (:func:`braintumor.metrics.conformal_quantile` at level ``1 - rate``; the largest score when
    there are too few)."""
    from ..metrics import conformal_quantile as bound

    return bound(scores, 1.0 - rate, midpoint=midpoint)


# ----------------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one image: ``reason`` (None when it passes), ``rejection`` (which
    check failed: ``too small``, ``blank``, ``colour``, a kind of :data:`REASONS` (named when the
    classifier gives it at least :data:`KIND_SURE`), ``not brain MRI`` (another kind, none of them
    sure), or ``atypical``)
    and ``score`` (the atypical score relative to the threshold, None without fitted statistics)."""

    reason: str | None
    rejection: str | None
    score: float | None


def content_std(pixels: np.ndarray) -> float:
    """The grey-level spread of an (S, S) image without the black bars that padding to a square
    adds: a white page padded with black is still blank. Black rows and columns are cut from the
    edges only, so a slice's own dark background inside the picture counts."""
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    if not len(rows):
        return 0.0
    return float(pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].std())


def largest_score(parts: dict[str, np.ndarray]) -> np.ndarray:
    """The largest of an :meth:`OodGate.part_scores` answer's scaled scores, per image."""
    return np.max(np.stack([parts[k] for k in ("features", "stats", "kind") if k in parts]), axis=0)


@dataclass(frozen=True)
class OodGate:
    """The gate of one checkpoint. Without fitted statistics (``features is None``) only the size and
    blank checks run; ``legacy`` gates (fitted by an earlier version) have no classifier and their
    image statistics are those of the network's pixels."""

    features: Gaussian | None = None
    stats: Gaussian | None = None
    kinds: KindClassifier | None = None
    scale_features: float = 1.0  # 99th percentile of the validation feature distances
    scale_stats: float = 1.0  # 99th percentile of the validation statistics distances
    scale_kind: tuple[float, float] = (0.0, 1.0)  # median and 99th percentile of the validation kind scores
    threshold: float = 1.0  # on the largest of the scaled scores
    colour_max: float = COLOUR_MAX
    min_side: int = MIN_SIDE
    blank_std: float = BLANK_STD
    legacy: bool = False
    info: dict = field(default_factory=dict)

    @property
    def fitted(self) -> bool:
        return self.features is not None and self.stats is not None

    @property
    def needs_inputs(self) -> bool:
        """Whether :meth:`check` needs the :func:`gate_inputs` of the images."""
        return self.fitted and not self.legacy

    def part_scores(self, pixels: np.ndarray, features: np.ndarray, inputs: np.ndarray | None = None
                    ) -> dict[str, np.ndarray]:
        """Each check's score, scaled by its 99th percentile on validation slices: ``features``,
        ``stats`` and (with a classifier) ``kind``, and the classifier's ``probabilities``."""
        out = {"features": self.features.distance(features) / self.scale_features}
        if self.legacy:
            out["stats"] = self.stats.distance(image_statistics(pixels)) / self.scale_stats
            return out
        out["stats"] = self.stats.distance(inputs) / self.scale_stats
        if self.kinds is not None:
            probs = self.kinds.probabilities(inputs)
            mid, top = self.scale_kind
            out["kind"] = (kind_score(probs) - mid) / max(top - mid, 1e-9)
            out["probabilities"] = probs
        return out

    def raw_scores(self, pixels: np.ndarray, features: np.ndarray, inputs: np.ndarray | None = None) -> np.ndarray:
        """The largest scaled score of each image (the atypical check compares it with the threshold)."""
        return largest_score(self.part_scores(pixels, features, inputs))

    def scores(self, pixels: np.ndarray, features: np.ndarray, inputs: np.ndarray | None = None) -> np.ndarray:
        """Scores relative to the threshold: above 1 is out of distribution."""
        return self.raw_scores(pixels, features, inputs) / self.threshold

    def check(self, sizes: Sequence[tuple[int, int]], pixels: np.ndarray, features: np.ndarray,
              inputs: np.ndarray | None = None) -> list[Verdict]:
        """The verdict on each image, from its original (width, height), the network's (N, S, S)
        uint8 pixels, its (N, D) pooled features and (for a fitted gate) its :func:`gate_inputs`."""
        pixels = np.asarray(pixels)
        n = len(pixels)
        scores: list[float | None] = [None] * n
        kinds: list[str | None] = [None] * n
        colours = np.zeros(n)
        if self.fitted:
            if self.needs_inputs and inputs is None:
                raise ValueError("this gate needs the gate inputs of the images (ood.gate_inputs)")
            parts = self.part_scores(pixels, features, inputs)  # once: the scores and the kinds read it
            scores = list(largest_score(parts) / self.threshold)  # what scores() gives
            if not self.legacy:
                colours = colours_of(inputs)
                if self.kinds is not None:
                    probs = parts["probabilities"]
                    top = probs.argmax(1)
                    sure = probs.max(1) >= KIND_SURE
                    kinds = [None if t == 0 else (self.kinds.kinds[t] if ok else "not brain MRI")
                             for t, ok in zip(top, sure)]
        stds = [content_std(px) for px in pixels]
        out = []
        for (w, h), std, score, kind, colour in zip(sizes, stds, scores, kinds, colours):
            score = None if score is None else float(score)
            likely = kind
            if min(w, h) < self.min_side:
                out.append(Verdict(TOO_SMALL.format(w=w, h=h, m=self.min_side), "too small", score))
            elif std < self.blank_std:
                out.append(Verdict(BLANK, "blank", score))
            elif colour > self.colour_max:
                named = likely in REASONS
                out.append(Verdict(REASONS[likely] if named else COLOUR, likely if named else "colour", score))
            elif likely is not None:
                out.append(Verdict(REASONS.get(likely, NOT_MRI), likely, score))
            elif score is not None and score > 1.0:
                out.append(Verdict(ATYPICAL, "atypical", score))
            else:
                out.append(Verdict(None, None, score))
        return out

    # ------------------------------------------------------------------ storage
    def to_meta(self) -> dict:
        if not self.fitted:
            raise ValueError("an unfitted gate has nothing to store")
        meta = {
            "method": "reject if too small, blank, in colour, classified as another kind of image, or if the "
                      "largest of (the classifier's evidence against brain MRI, the Mahalanobis distance of the "
                      "penultimate features, the Mahalanobis distance of the gate's image statistics), each over "
                      "its validation 99th percentile, is above the largest per-group split-conformal 99% quantile "
                      "of the validation scores",
            "min_side": self.min_side,
            "blank_std": self.blank_std,
            "colour_max": self.colour_max,
            "scale_features": self.scale_features,
            "scale_stats": self.scale_stats,
            "scale_kind": list(self.scale_kind),
            "threshold": self.threshold,
            "info": self.info,
            "features": self.features.to_meta(),
            "stats": self.stats.to_meta(),
        }
        if self.legacy:
            meta.pop("colour_max"), meta.pop("scale_kind")
        else:
            meta["version"] = VERSION
            if self.kinds is not None:
                meta["kinds"] = self.kinds.to_meta()
        return meta

    @classmethod
    def from_meta(cls, d: dict | None) -> "OodGate":
        if not d:
            return cls()
        legacy = "version" not in d
        return cls(
            features=Gaussian.from_meta(d["features"]),
            stats=Gaussian.from_meta(d["stats"]),
            kinds=KindClassifier.from_meta(d["kinds"]) if d.get("kinds") else None,
            scale_features=float(d["scale_features"]),
            scale_stats=float(d["scale_stats"]),
            scale_kind=tuple(float(v) for v in d.get("scale_kind", (0.0, 1.0))),
            threshold=float(d["threshold"]),
            colour_max=float(d.get("colour_max", COLOUR_MAX)),
            min_side=int(d.get("min_side", MIN_SIDE)),
            blank_std=float(d.get("blank_std", BLANK_STD)),
            legacy=legacy,
            info=dict(d.get("info", {})),
        )

    def describe(self) -> dict:
        """The stored entry without its arrays (for reports)."""
        return {k: v for k, v in self.to_meta().items() if k not in ("features", "stats", "kinds")}
