"""Classification metrics from labels and probabilities; plain numpy, no hidden state."""

from __future__ import annotations

import math

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """Rows are the true class, columns the predicted class."""
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined)."""
    tp = np.diag(cm).astype(float)
    pred, support = cm.sum(0).astype(float), cm.sum(1).astype(float)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support.astype(np.int64)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (15 by default, as in Guo et al. 2017)."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def reliability(probs: np.ndarray, y_true: np.ndarray, bins: int = 15):
    """(bin centres, accuracy per bin, confidence per bin, count per bin) for a reliability diagram."""
    conf = probs.max(1)
    correct = (probs.argmax(1) == y_true).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    acc, cf, cnt = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        cnt.append(int(m.sum()))
        acc.append(float(correct[m].mean()) if m.any() else float("nan"))
        cf.append(float(conf[m].mean()) if m.any() else float("nan"))
    return (edges[:-1] + edges[1:]) / 2, np.array(acc), np.array(cf), np.array(cnt)


def summarize(probs: np.ndarray, y_true: np.ndarray, classes: tuple[str, ...]) -> dict:
    """The evaluation report as a JSON-ready dict."""
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(1)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    p, r, f1, s = per_class(cm)
    return {
        "n": int(len(y_true)),
        "classes": list(classes),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f1[i]), "support": int(s[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": cm.tolist(),
        "ece": expected_calibration_error(probs, y_true),
    }


def bootstrap_ci(probs: np.ndarray, y_true: np.ndarray, classes: tuple[str, ...], n_boot: int = 2000,
                 seed: int = 0, alpha: float = 0.05) -> dict:
    """Percentile bootstrap 95% intervals for accuracy, macro-F1 and per-class P/R/F1."""
    rng = np.random.default_rng(seed)
    y_true = np.asarray(y_true)
    y_pred = probs.argmax(1)
    k = len(classes)
    acc, mf1, prf = [], [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_true), len(y_true))
        cm = confusion_matrix(y_true[idx], y_pred[idx], k)
        p, r, f1, _ = per_class(cm)
        acc.append(np.trace(cm) / len(idx))
        mf1.append(f1.mean())
        prf.append(np.stack([p, r, f1]))
    prf = np.array(prf)  # (B, 3, k)
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)

    def ci(x):
        return [float(np.percentile(x, lo)), float(np.percentile(x, hi))]

    return {
        "accuracy": ci(acc),
        "macro_f1": ci(mf1),
        "per_class": {
            c: {m: ci(prf[:, j, i]) for j, m in enumerate(("precision", "recall", "f1"))}
            for i, c in enumerate(classes)
        },
    }


def conformal_quantile(scores: np.ndarray, level: float, too_few: float | None = None,
                       midpoint: bool = False) -> float:
    """The split-conformal bound at ``level``: the ceil(level * (n + 1))-th smallest score, which a
    new score like these stays at or below with probability at least ``level``.

    When n is too small for that rank, ``too_few`` is returned (None: the largest score).
    ``midpoint``: halfway to the next score instead, so that the same scores fall below it but
    rounding differences (ONNX Runtime, int8, float32 storage) do not flip the score that defines
    it."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = math.ceil(level * (len(s) + 1))
    if k > len(s):
        if too_few is not None or len(s) == 0:
            return float(too_few if too_few is not None else np.inf)
        k = len(s)
    t = float(s[k - 1])
    if midpoint and k < len(s) and np.isfinite(s[k]):
        t = (t + float(s[k])) / 2
    return t
