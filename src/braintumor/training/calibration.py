"""Fitting, offline, what every answer's decision reads (:mod:`braintumor.inference.decision`).

Four things are fitted on the validation split after training and stored in the checkpoint's
metadata (:func:`calibrate`, ``braintumor calibrate``):

- a **temperature** T (logits / T before the softmax) that minimises the negative log-likelihood of
  the validation labels (a bounded 1-D search on log T);
- **split-conformal** scores (LAC: ``1 - p(true class)`` under the calibrated probabilities), so
  that for any coverage 1 - alpha the prediction set ``{c : p_c >= 1 - q}``, with q the
  ceil((n+1)(1-alpha))-th smallest score, holds the true class at least 1 - alpha of the time on
  scans like the validation ones;
- the out-of-distribution gate of :mod:`braintumor.inference.ood`;
- the no-tumour rule (:func:`fit_notumor_rule`): when "no tumour" may be answered as classified.

Every number is computed by :meth:`braintumor.Predictor.outputs`, the same forward pass that
serves answers, on the backend asked for (the served one by default).

What ``coverage`` guarantees: the conformal set holds the true class with probability at least
``coverage`` on scans like the validation ones, so at most ``1 - coverage`` of such scans get a
single-class answer that is wrong. The share of scans referred is *not* monotone in ``coverage``
(empty sets are frequent at low coverage, sets of two at high coverage); the measured table is in
``docs/calibration.md``.

Measured numbers (cross-fitted, never in-sample) come from ``benchmarks/calibration_report.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import CLASSES
from ..errors import DataError
from ..inference.decision import (DEFAULT_COVERAGE, NO_TUMOUR, DecisionPolicy, conformal_threshold, decide, prediction_sets,
                       softmax, tumour_evidence)
T_BOUNDS = (0.05, 20.0)  # search range of the temperature
SCORE_DECIMALS = 6  # conformal scores are stored rounded (JSON in the checkpoint)


# ----------------------------------------------------------------------------------- temperature


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    m = z.max(axis=1, keepdims=True)
    log_norm = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(log_norm - z[np.arange(len(z)), np.asarray(labels)]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The temperature that minimises the NLL: a bounded search on log T (the NLL is smooth and
    unimodal in log T for a fixed model, so a 1-D search finds the optimum)."""
    from scipy.optimize import minimize_scalar

    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    if len(logits) == 0:
        raise ValueError("no logits to fit a temperature on")
    res = minimize_scalar(lambda u: nll(logits, labels, math.exp(u)),
                          bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-5})
    return float(math.exp(res.x))


# ----------------------------------------------------------------------------------- conformal


def conformal_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LAC non-conformity scores: 1 - probability of the true class."""
    probs = np.asarray(probs, dtype=np.float64)
    return 1.0 - probs[np.arange(len(probs)), np.asarray(labels)]


NOTUMOR_REFERRAL = (0.05, 0.10)  # share of validation no-tumour answers the rule refers: at least, at most


def fit_notumor_rule(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                     box_scores: np.ndarray | None = None,
                     referral: tuple[float, float] = NOTUMOR_REFERRAL) -> dict:
    """When may "no tumour" be answered as classified? Only when the evidence for every tumour class
    is low: the largest tumour-class probability at most ``max_tumour_probability`` and (with a box
    head) the box head's score at most ``max_box_score``.

    Both thresholds are quantiles of the no-tumour validation scans, between ``1 - referral[1]``
    and ``1 - referral[0]``: the rule always refers some of the no-tumour answers (a validation
    split with no missed tumour says little about scans from elsewhere), at most ``referral[1]``.
    Of those pairs, the one that lets the fewest validation tumours through as a classified
    "no tumour" is kept (ties: the one that refers the fewest)."""
    lo, hi = referral
    labels = np.asarray(labels)
    nt = list(classes).index(NO_TUMOUR)
    ev = tumour_evidence(probs, classes)
    bs = np.zeros(len(labels)) if box_scores is None else np.asarray(box_scores, dtype=np.float64)
    healthy = labels == nt
    said_none = np.asarray(probs).argmax(1) == nt
    missed = ~healthy & said_none
    if not healthy.any():  # nothing to fit on: "no tumour" is never classified, always referred
        rule = {"method": "no no-tumour scans to fit on: a 'no tumour' answer is always referred",
                "max_tumour_probability": 0.0,
                "fitted_on": f"validation split, {len(labels)} images, none without a tumour",
                "val_missed_tumours": int(missed.sum()), "val_missed_tumours_classified": 0,
                "val_notumor_referred": 1.0}
        if box_scores is not None:
            rule["max_box_score"] = 0.0
        return rule
    qs = np.linspace(1 - hi, 1 - lo, 11)
    best = None
    for qp in qs:
        tp = float(np.quantile(ev[healthy], qp))
        for qb in (qs if box_scores is not None else [None]):
            tb = float(np.quantile(bs[healthy], qb)) if box_scores is not None else 1.0
            ok = (ev <= tp) & (bs <= tb)
            referral = float((healthy & said_none & ~ok).sum() / max(1, (healthy & said_none).sum()))
            if referral > hi + 1e-9:
                continue
            key = (int((missed & ok).sum()), referral)
            if best is None or key < best[0]:
                best = (key, tp, tb)
    if best is None:  # every pair refers too many: the loosest one
        tp = float(np.quantile(ev[healthy], 1 - lo))
        tb = float(np.quantile(bs[healthy], 1 - lo)) if box_scores is not None else 1.0
        ok = (ev <= tp) & (bs <= tb)
        referral = float((healthy & said_none & ~ok).sum() / max(1, (healthy & said_none).sum()))
        best = ((int((missed & ok).sum()), referral), tp, tb)
    (n_through, referred), tp, tb = best
    rule = {"method": "no tumour is classified only when max tumour-class probability <= "
                      "max_tumour_probability" + (" and box score <= max_box_score" if box_scores is not None else ""),
            "max_tumour_probability": round(tp, 6),
            "fitted_on": f"validation split, {len(labels)} images (in sample)",
            "val_missed_tumours": int(missed.sum()),
            "val_missed_tumours_classified": n_through,
            "val_notumor_referred": round(referred, 5)}
    if box_scores is not None:
        rule["max_box_score"] = round(tb, 6)
    return rule


# ----------------------------------------------------------------------------------- fitting


def network_outputs(checkpoint, files: Sequence[str | Path], batch_size: int = 32, desc: str = "outputs",
                    keep_pixels: bool = False, backend: str = "auto") -> dict[str, np.ndarray]:
    """What the served code computes for image files (:meth:`braintumor.Predictor.outputs` of a
    Predictor on ``checkpoint`` and ``backend``, or of ``checkpoint`` when it is a Predictor): ``logits`` (N, C), pooled penultimate
    ``features`` (N, D), the out-of-distribution ``stats`` (N, 43) and pixel ``std`` (N,) of the
    network's pixels, the original ``sizes`` (N, 2) as (width, height), the served
    ``probabilities`` (N, C) and ``answers``, the ``backend`` that ran, the box head's ``box_score`` where there is one, and
    with ``keep_pixels`` the network's ``pixels`` (N, S, S)."""
    from ..inference.predictor import Predictor

    predictor = checkpoint if isinstance(checkpoint, Predictor) else Predictor([checkpoint], backend=backend)
    out = predictor.outputs(list(files), batch_size, keep_pixels=keep_pixels, show_progress=True, desc=desc)
    res = {k: out[k][0] for k in ("logits", "features", "stats", "std", "pixels") if k in out}
    res["backend"] = predictor.backend
    res.update({k: out[k] for k in ("sizes", "probabilities", "answers", "box_score") if k in out})
    return res


def calibration_entries(val_logits: np.ndarray, val_labels: np.ndarray, coverage: float = DEFAULT_COVERAGE,
                        note: str = "") -> dict:
    """The ``temperature``, ``calibration`` and ``conformal`` metadata entries (in-sample summary
    numbers; cross-fitted ones come from :func:`crossfit`)."""
    from ..metrics import expected_calibration_error

    t = fit_temperature(val_logits, val_labels)
    probs = softmax(val_logits, t)
    scores = conformal_scores(probs, val_labels)
    raw = softmax(val_logits)
    return {
        "temperature": round(t, 6),
        "calibration": {
            "method": "temperature scaling: NLL minimised over log T by a bounded 1-D search",
            "fitted_on": note or f"validation split, {len(val_labels)} images",
            "nll_before": round(nll(val_logits, val_labels), 5),
            "nll_after": round(nll(val_logits, val_labels, t), 5),
            "ece_before": round(expected_calibration_error(raw, val_labels), 5),
        },
        "conformal": {
            "method": "split conformal, LAC score 1 - p(true class) on calibrated probabilities",
            "coverage": coverage,
            "threshold": round(conformal_threshold(scores, coverage), SCORE_DECIMALS),
            "n": int(len(scores)),
            "scores": [round(float(s), SCORE_DECIMALS) for s in np.sort(scores)],
        },
    }


def crossfit(logits: np.ndarray, labels: np.ndarray, coverage: float = DEFAULT_COVERAGE,
             repeats: int = 50, seed: int = 0) -> dict:
    """Out-of-sample numbers: ``repeats`` random halvings of the validation split; the temperature
    and the conformal quantile are fitted on one half and measured on the other. Returns means and
    standard deviations over the repeats, and the 2-fold cross-fitted probabilities of the first
    halving (each image calibrated by the half it was not in), for a reliability diagram."""
    from ..metrics import expected_calibration_error

    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = len(labels)
    rows: dict[str, list[float]] = {k: [] for k in (
        "temperature", "ece_before", "ece_after", "nll_before", "nll_after", "coverage_lac",
        "coverage_shown", "referral_rate", "accuracy_classified", "accuracy_all", "set_size_uncertain")}
    oof = np.zeros((n, logits.shape[1]))
    for r in range(repeats):
        perm = rng.permutation(n)
        halves = (perm[: n // 2], perm[n // 2:])
        for fit, test in (halves, halves[::-1]):
            t = fit_temperature(logits[fit], labels[fit])
            q = conformal_threshold(conformal_scores(softmax(logits[fit], t), labels[fit]), coverage)
            p = softmax(logits[test], t)
            if r == 0:
                oof[test] = p
            y = labels[test]
            sets = prediction_sets(p, q)
            dec = [decide(pi, tuple(range(p.shape[1])), q, DecisionPolicy(coverage=coverage)) for pi in p]
            referred = np.array([d["decision"] != "classified" for d in dec])
            shown = np.array([yi in d["prediction_set"] for yi, d in zip(y, dec)])
            rows["temperature"].append(t)
            rows["ece_before"].append(expected_calibration_error(softmax(logits[test]), y))
            rows["ece_after"].append(expected_calibration_error(p, y))
            rows["nll_before"].append(nll(logits[test], y))
            rows["nll_after"].append(nll(logits[test], y, t))
            rows["coverage_lac"].append(float(sets[np.arange(len(y)), y].mean()))
            rows["coverage_shown"].append(float(shown.mean()))
            rows["referral_rate"].append(float(referred.mean()))
            keep = ~referred
            rows["accuracy_classified"].append(float((p[keep].argmax(1) == y[keep]).mean()) if keep.any() else float("nan"))
            rows["accuracy_all"].append(float((p.argmax(1) == y).mean()))
            if referred.any():
                rows["set_size_uncertain"].append(float(np.mean([len(d["prediction_set"]) for d, k in zip(dec, referred) if k])))
    summary = {k: {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v))} for k, v in rows.items() if v}
    summary["repeats"] = repeats
    summary["coverage_target"] = coverage
    summary["n"] = int(n)
    return {"summary": summary, "oof_probs": oof}


def calibrate(checkpoint_path: str | Path, data: str | Path, split_file: str | Path,
              coverage: float = DEFAULT_COVERAGE, ood_train_limit: int = 0, batch_size: int = 32,
              backend: str = "auto", sources: Sequence[str | Path] = (), boxes: str | Path | None = None,
              not_mri: str | Path | None = None, notumor_referral: tuple[float, float] = NOTUMOR_REFERRAL) -> dict:
    """Fit temperature, conformal scores, the out-of-distribution gate and the no-tumour rule of a
    checkpoint on its split, from the outputs of ``backend`` (the served one by default), and write
    them into its metadata (the weights are kept). ``sources``: more collections whose validation
    images the split records (:mod:`braintumor.data.sources`); every source's validation slices then
    count, tumours of unknown type as "a tumour" (the no-tumour rule) and not for the temperature
    and the conformal scores, which need a class. ``boxes`` (the radiologist boxes file) only names
    the main folder's sources in the summary. When the checkpoint is the one that ships with the
    package, its manifest's SHA-256 is updated too. The gate is :func:`braintumor.training.gate_fit.fit`'s
    (``not_mri``: the images under ``data`` that are not MRI; ``ood_train_limit`` is not used).
    ``notumor_referral``: the least and most of the validation "no tumour" answers the no-tumour
    rule may refer (:func:`fit_notumor_rule`). Returns the new entries (without the bulky arrays) and the new SHA-256."""
    import json

    from . import gate_fit
    from .checkpoint import load_checkpoint
    from ..data.sources import split_images

    path = Path(checkpoint_path)
    ck = load_checkpoint(path)
    root = Path(data)

    from ..inference.predictor import Predictor

    try:
        split = json.loads(Path(split_file).read_text())
        split["val"], split["train"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{split_file}: not a split file with 'train' and 'val' lists ({exc})") from None
    if tuple(ck.classes) != CLASSES:
        raise DataError(f"the model's classes ({', '.join(ck.classes)}) are not {', '.join(CLASSES)}")
    box_rows = {}
    if boxes:
        from .box_supervision import read_boxes

        box_rows = read_boxes(boxes)
    val_images = split_images(split, root, box_rows, sources, "val")
    train_images = split_images(split, root, box_rows, sources, "train")
    if not val_images:
        raise DataError(f"{split_file}: the validation split is empty")
    val = [im.path for im in val_images]
    val_labels = np.array([im.label for im in val_images])
    known = val_labels >= 0
    predictor = Predictor([ck], backend=backend)  # one conversion for both parts
    v = network_outputs(predictor, val, batch_size, "validation")
    per_source = {}
    for im in val_images:
        per_source[im.source] = per_source.get(im.source, 0) + 1
    where = ", ".join(f"{k} {n}" for k, n in per_source.items())
    entries = calibration_entries(v["logits"][known], val_labels[known], coverage,
                                  note=f"validation split of {Path(split_file).name}, {int(known.sum())} images "
                                       f"of a known class ({where}), {v['backend']} backend")
    gate = gate_fit.fit(predictor, gate_fit.source_splits(root, split_file, sources),
                        gate_fit.read_not_mri(not_mri), batch_size=batch_size)
    entries["ood"] = gate.to_meta()
    entries["notumor_rule"] = fit_notumor_rule(softmax(v["logits"], entries["temperature"]), val_labels,
                                               ck.classes, v.get("box_score"), notumor_referral)
    stored = gate_fit.store(path, **entries)
    brief = {k: v for k, v in entries.items() if k not in ("conformal", "ood")}  # notumor_rule stays
    brief["conformal"] = {k: v for k, v in entries["conformal"].items() if k != "scores"}
    brief["ood"] = gate.describe()
    return {"entries": brief, **stored}
