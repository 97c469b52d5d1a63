"""The out-of-distribution gate: is an input a brain MRI slice this model can judge?

An input is rejected, instead of being given a tumour label, when any of these holds:

1. **too small**: its shorter side is under :data:`MIN_SIDE` pixels (tiny images and thumbnails);
2. **blank**: the pixels the network sees are (nearly) one grey level (:data:`BLANK_STD`);
3. **atypical**: it is far from the training scans in either of two spaces, each modelled by one
   Gaussian fitted on the *training* split:

   - the network's own penultimate features (the 512 averages of ResNet18's last block, which every
     prediction computes anyway): Mahalanobis distance (Lee et al., 2018) -- what the model "sees";
   - 43 cheap image statistics of the same pixels (:func:`image_statistics`: intensity histogram,
     how much of the image has edges of each strength at three scales, Laplacian energy, the
     darkness of the border) -- what the image looks like, which a classifier trained only on
     MRI can be blind to (documents, noise, radiographs land among MRI in its feature space).

   Each distance is divided by its 99th percentile on the validation split, the larger of the two
   is the input's score, and the threshold is the split-conformal quantile of the validation
   scores at 99% (halfway to the next score): at most 1% of the validation MRI slices are
   rejected, and the expected share of new scans from the same distribution that are rejected is
   at most 1% as well. Nothing about the threshold comes from out-of-distribution images.

Why this method: it needs no second model and no out-of-distribution training data (so the gate
is not fitted to one particular idea of "bad" images), the features are a by-product of the
prediction, and the whole gate costs about 2 ms per image next to the 25-60 ms of a ResNet18
forward pass on 2 CPU cores. A single Gaussian (not one per class) is used for the features because
it separated better on our checks, and each part can veto on its own (``docs/ood.md``).

The statistics (means, whitening matrices, thresholds) live in the checkpoint's metadata as JSON
(arrays as base64 little-endian float32), written by :func:`braintumor.calibration.calibrate`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import DataError

MIN_SIDE = 64  # pixels: a shorter side below this is a thumbnail, not a scan
BLANK_STD = 2.0  # grey levels (0-255): a standard deviation below this is a blank image
FALSE_REJECTION = 0.01  # share of validation MRI slices the threshold may reject
GRAD_LEVELS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)  # edge strengths (fraction of full range)
SCALES = (1, 2, 4)  # image statistics at full, half and quarter resolution
BORDER = 12 / 224  # width of the border band, as a fraction of the side
DARK = 0.08  # "dark" border pixel: below this fraction of full intensity
SHRINK_FEATURES = 1e-4  # ridge added to the covariances, as a fraction of the mean variance
SHRINK_STATS = 1e-2

TOO_SMALL = "the image is only {w}x{h} pixels; a scan needs at least {m} pixels a side"
BLANK = "the image is blank (nearly a single grey level); there is nothing to classify"
ATYPICAL = "unlike the scans the model was trained on"
FAILED_FEATURES = ("the network's features for this image are far from those of every training scan "
                   "(feature check, {score:.1f}x the threshold)")
FAILED_STATS = ("its intensity and edge statistics are far from those of the training scans "
                "(image-statistics check, {score:.1f}x the threshold)")
ATYPICAL_END = ("; it may still be a brain MRI (another sequence, scanner or view), but the model "
                "gives no tumour label for it: have it read by a radiologist")


def atypical_reason(feature_score: float, stats_score: float) -> str:
    """Why an image is rejected as atypical, naming the check that failed (scores relative to the
    threshold: above 1 fails)."""
    parts = []
    if feature_score > 1.0:
        parts.append(FAILED_FEATURES.format(score=feature_score))
    if stats_score > 1.0:
        parts.append(FAILED_STATS.format(score=stats_score))
    return f"{ATYPICAL}: " + " and ".join(parts or [FAILED_FEATURES.format(score=feature_score)]) + ATYPICAL_END


# ----------------------------------------------------------------------------------- image statistics


def image_statistics(pixels: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 network pixels -> (N, 43) statistics: the square root of a 16-bin intensity
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


def pooled_features(body_output) -> np.ndarray:
    """(N, D, H, W) output of the last convolutional block -> (N, D) float64 averages (what the
    classifier's average pooling computes)."""
    a = body_output.detach().double().numpy() if hasattr(body_output, "detach") else np.asarray(body_output, dtype=np.float64)
    return a.mean(axis=(2, 3)) if a.ndim == 4 else a


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


def conformal_quantile(scores: np.ndarray, rate: float, midpoint: bool = False) -> float:
    """The threshold above which at most ``rate`` of ``scores`` lie, as a split-conformal bound
    (:func:`braintumor.metrics.conformal_quantile` at level ``1 - rate``; the largest score when
    there are too few)."""
    from ..metrics import conformal_quantile as bound

    return bound(scores, 1.0 - rate, midpoint=midpoint)


# ----------------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class OodGate:
    """The gate of one checkpoint. Without fitted statistics (``features is None``) only the size and
    blank checks run."""

    features: Gaussian | None = None
    stats: Gaussian | None = None
    scale_features: float = 1.0  # 99th percentile of the validation feature distances
    scale_stats: float = 1.0  # 99th percentile of the validation statistics distances
    threshold: float = 1.0  # on max(features / scale_features, stats / scale_stats)
    min_side: int = MIN_SIDE
    blank_std: float = BLANK_STD
    info: dict = field(default_factory=dict)

    @property
    def fitted(self) -> bool:
        return self.features is not None and self.stats is not None

    def part_scores(self, pixels: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(feature distance / its scale, statistics distance / its scale), per image."""
        f = self.features.distance(features) / self.scale_features
        s = self.stats.distance(image_statistics(pixels)) / self.scale_stats
        return f, s

    def raw_scores(self, pixels: np.ndarray, features: np.ndarray) -> np.ndarray:
        """max(feature distance / its scale, statistics distance / its scale), per image."""
        return np.maximum(*self.part_scores(pixels, features))

    def scores(self, pixels: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Scores relative to the threshold: above 1 is out of distribution."""
        return self.raw_scores(pixels, features) / self.threshold

    def check(self, sizes: Sequence[tuple[int, int]], pixels: np.ndarray,
              features: np.ndarray) -> list[tuple[str | None, float | None]]:
        """(reason to reject or None, score or None) for each image, from its original (width,
        height), the network's (N, S, S) uint8 pixels and its (N, D) pooled features."""
        pixels = np.asarray(pixels)
        if self.fitted:
            fs, ss = (a / self.threshold for a in self.part_scores(pixels, features))
        else:
            fs = ss = [None] * len(pixels)
        stds = pixels.reshape(len(pixels), -1).std(axis=1)
        out = []
        for (w, h), std, f, st in zip(sizes, stds, fs, ss):
            score = None if f is None else float(max(f, st))
            if min(w, h) < self.min_side:
                out.append((TOO_SMALL.format(w=w, h=h, m=self.min_side), score))
            elif std < self.blank_std:
                out.append((BLANK, score))
            elif score is not None and score > 1.0:
                out.append((atypical_reason(float(f), float(st)), score))
            else:
                out.append((None, score))
        return out

    # ------------------------------------------------------------------ storage
    def to_meta(self) -> dict:
        if not self.fitted:
            raise ValueError("an unfitted gate has nothing to store")
        return {
            "method": "reject if too small, blank, or max(Mahalanobis distance of the penultimate "
                      "features / its val p99, Mahalanobis distance of 43 image statistics / its "
                      "val p99) is above the split-conformal 99% quantile of the validation scores",
            "min_side": self.min_side,
            "blank_std": self.blank_std,
            "scale_features": self.scale_features,
            "scale_stats": self.scale_stats,
            "threshold": self.threshold,
            "info": self.info,
            "features": self.features.to_meta(),
            "stats": self.stats.to_meta(),
        }

    @classmethod
    def from_meta(cls, d: dict | None) -> "OodGate":
        if not d:
            return cls()
        return cls(
            features=Gaussian.from_meta(d["features"]),
            stats=Gaussian.from_meta(d["stats"]),
            scale_features=float(d["scale_features"]),
            scale_stats=float(d["scale_stats"]),
            threshold=float(d["threshold"]),
            min_side=int(d.get("min_side", MIN_SIDE)),
            blank_std=float(d.get("blank_std", BLANK_STD)),
            info=dict(d.get("info", {})),
        )

    def describe(self) -> dict:
        """The stored entry without its arrays (for reports)."""
        return {k: v for k, v in self.to_meta().items() if k not in ("features", "stats")}


def fit_gate(train_features: np.ndarray, train_stats: np.ndarray, val_features: np.ndarray,
             val_stats: np.ndarray, val_failed: np.ndarray | None = None,
             rate: float = FALSE_REJECTION, val_labels: np.ndarray | None = None) -> OodGate:
    """Fit the Gaussians on training-split images and the scales and threshold on validation-split
    images, so that at most ``rate`` of the validation slices are rejected by the whole gate; with
    ``val_labels``, at most ``rate`` of each class (the threshold is the largest of the per-class
    quantiles), so that no kind of tumour is refused more often than the others.

    ``*_stats`` are :func:`image_statistics`; ``val_failed`` marks validation slices that the size or
    blank check already rejects (they use up part of the budget)."""
    feats = Gaussian.fit(train_features, SHRINK_FEATURES)
    stats = Gaussian.fit(train_stats, SHRINK_STATS)
    df = feats.distance(val_features)
    ds = stats.distance(val_stats)
    sf, ss = float(np.quantile(df, 0.99)), float(np.quantile(ds, 0.99))
    raw = np.maximum(df / sf, ds / ss)
    if val_failed is not None:
        raw = np.where(np.asarray(val_failed, bool), np.inf, raw)
    threshold = conformal_quantile(raw, rate, midpoint=True)
    per_class = {}
    if val_labels is not None:
        val_labels = np.asarray(val_labels)
        for c in np.unique(val_labels):
            q = conformal_quantile(raw[val_labels == c], rate, midpoint=True)
            per_class[int(c)] = q
            threshold = max(threshold, q)
    if not np.isfinite(threshold):
        raise DataError("the size and blank checks reject more than the allowed share of validation slices")
    return OodGate(feats, stats, sf, ss, threshold, info={
        "fitted_on": {"gaussians": f"training split, {len(train_features)} images",
                      "threshold": f"validation split, {len(val_features)} images"},
        "false_rejection_target": rate,
        "val_rejected": round(float((raw > threshold).mean()), 5),
        **({"val_rejected_per_class": {str(c): round(float((raw[val_labels == c] > threshold).mean()), 5)
                                       for c in per_class}} if per_class else {}),
    })


def failed_checks(sizes: Sequence[tuple[int, int]], stds: np.ndarray) -> np.ndarray:
    """Which images the size and blank checks reject."""
    return np.array([min(s) < MIN_SIDE for s in sizes], bool) | (np.asarray(stds) < BLANK_STD)
