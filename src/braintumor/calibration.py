"""Calibrated probabilities, conformal referral and the decision every result carries.

Three things are fitted on the validation split after training and stored in the checkpoint's
metadata (:func:`calibrate`):

- a **temperature** T (logits / T before the softmax) that minimises the negative log-likelihood of
  the validation labels (a bounded 1-D search on log T);
- **split-conformal** scores (LAC: ``1 - p(true class)`` under the calibrated probabilities), so
  that for any coverage 1 - alpha the prediction set ``{c : p_c >= 1 - q}``, with q the
  ceil((n+1)(1-alpha))-th smallest score, holds the true class at least 1 - alpha of the time on
  scans like the validation ones;
- the out-of-distribution gate of :mod:`braintumor.ood`.

Every result then carries a decision (:class:`Decider`):

- ``"rejected"``: the input failed the out-of-distribution gate (not a brain MRI slice the model can
  judge); ``"prediction_set"`` is empty;
- ``"uncertain"``: the conformal set holds several classes, or none (no class is as probable as the
  true class is on ``coverage`` of the validation scans); ``"prediction_set"`` lists the plausible
  classes, most probable first (for an empty conformal set: the fewest top classes that together
  hold ``coverage`` of the probability); refer to a radiologist;
- ``"classified"``: the conformal set is exactly the predicted class.

What ``coverage`` guarantees: the conformal set holds the true class with probability at least
``coverage`` on scans like the validation ones, so at most ``1 - coverage`` of such scans get a
single-class answer that is wrong. The share of scans referred is *not* monotone in ``coverage``
(empty sets are frequent at low coverage, sets of two at high coverage); the measured table is in
``docs/calibration.md``. With a confidence threshold instead (``DecisionPolicy(min_confidence=0.9)``)
a result is classified when its top calibrated probability reaches the threshold.

Measured numbers (cross-fitted, never in-sample) come from ``benchmarks/calibration_report.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_COVERAGE = 0.95
T_BOUNDS = (0.05, 20.0)  # search range of the temperature
SCORE_DECIMALS = 6  # conformal scores are stored rounded (JSON in the checkpoint)


# ----------------------------------------------------------------------------------- temperature


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


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


def conformal_threshold(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile: the ceil((n+1) * coverage)-th smallest score (1.0, i.e. every
    class, when there are too few scores for that coverage)."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be between 0 and 1, got {coverage}")
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = math.ceil((len(s) + 1) * coverage)
    return 1.0 if k > len(s) else float(s[k - 1])


def prediction_sets(probs: np.ndarray, threshold: float) -> np.ndarray:
    """(N, C) boolean: class c is in the set of image i when 1 - p_ic <= threshold."""
    return 1.0 - np.asarray(probs, dtype=np.float64) <= threshold + 1e-12


def top_mass_set(probs: np.ndarray, mass: float) -> list[int]:
    """The fewest most probable classes whose probabilities add up to ``mass``, most probable first."""
    order = np.argsort(-np.asarray(probs))
    cum = np.cumsum(np.asarray(probs)[order])
    k = int(np.searchsorted(cum, mass - 1e-12) + 1)
    return [int(i) for i in order[: min(max(k, 1), len(order))]]


# ----------------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class DecisionPolicy:
    """How a Predictor decides between classified, uncertain and rejected.

    ``coverage`` (default 0.95): conformal coverage of the prediction sets, using the scores stored in
    the checkpoint. ``min_confidence``: when set, used instead: classified when the top calibrated
    probability reaches it. ``ood``: whether the out-of-distribution gate may reject inputs."""

    coverage: float = DEFAULT_COVERAGE
    min_confidence: float | None = None
    ood: bool = True

    def __post_init__(self):
        if not 0.0 < float(self.coverage) < 1.0:
            raise ValueError(f"coverage must be between 0 and 1 (e.g. 0.95), got {self.coverage}")
        if self.min_confidence is not None and not 0.0 < float(self.min_confidence) <= 1.0:
            raise ValueError(f"min_confidence must be in (0, 1], got {self.min_confidence}")


def _names(classes: Sequence[str], idx: Sequence[int]) -> list[str]:
    return [classes[i] for i in idx]


def _fields(decision: str, reason: str, prediction_set: list[str]) -> dict:
    return {"decision": decision, "reason": reason, "prediction_set": prediction_set}


NO_TUMOUR = "notumor"
NOTUMOR_REFERRAL = (0.05, 0.10)  # share of validation no-tumour answers the rule refers: at least, at most


def tumour_evidence(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """The largest calibrated probability of any tumour class, per row of (N, C) ``probs``."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    cols = [i for i, c in enumerate(classes) if c != NO_TUMOUR]
    return probs[:, cols].max(1)


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


def decide(probs: np.ndarray, classes: Sequence[str], threshold: float | None,
           policy: DecisionPolicy, rejection: str | None = None, notumor_rule: dict | None = None,
           box_score: float | None = None) -> dict:
    """The decision fields of one result from its (C,) calibrated probabilities.

    ``threshold``: the conformal quantile for ``policy.coverage`` (None when the checkpoint has no
    conformal scores); ``rejection``: why the out-of-distribution gate refused the input, if it did;
    ``notumor_rule``: when a "no tumour" answer may stand (:func:`fit_notumor_rule`), with the box
    head's ``box_score``."""
    d = _decide(probs, classes, threshold, policy, rejection)
    if d["decision"] != "classified" or not notumor_rule or NO_TUMOUR not in classes:
        return d
    probs = np.asarray(probs, dtype=np.float64)
    if classes[int(probs.argmax())] != NO_TUMOUR:
        return d
    cols = [i for i, c in enumerate(classes) if c != NO_TUMOUR]
    strongest = max(cols, key=lambda i: probs[i])
    tp = float(notumor_rule.get("max_tumour_probability", 1.0))
    tb = notumor_rule.get("max_box_score")
    if probs[strongest] > tp:
        why = (f"{classes[strongest]} has {probs[strongest]:.1%}, more than the model gives any tumour "
               f"on most scans without one ({tp:.1%})")
    elif tb is not None and box_score is not None and box_score > float(tb):
        why = f"the tumour locator's score is {box_score:.2f}, above {float(tb):.2f}"
    else:
        return d
    return _fields("uncertain", f"no tumour is the most probable answer, but a missed tumour costs more "
                                f"than a referral: {why}; refer to a radiologist",
                   [NO_TUMOUR, classes[strongest]])


def _decide(probs: np.ndarray, classes: Sequence[str], threshold: float | None,
            policy: DecisionPolicy, rejection: str | None = None) -> dict:
    probs = np.asarray(probs, dtype=np.float64)
    top = int(probs.argmax())
    if rejection:
        return _fields("rejected", rejection, [])
    if policy.min_confidence is not None:
        c = float(policy.min_confidence)
        if probs[top] >= c:
            return _fields("classified", f"{classes[top]} with probability {probs[top]:.0%}, at or above "
                                         f"the confidence threshold of {c:.0%}", [classes[top]])
        return _fields("uncertain", f"the most probable class, {classes[top]}, has {probs[top]:.0%}, below "
                                    f"the confidence threshold of {c:.0%}; refer to a radiologist",
                       _names(classes, top_mass_set(probs, c)))
    if threshold is None:
        return _fields("classified", "this model carries no conformal calibration, so every scan it "
                                     "accepts is classified (calibrate it to get referrals)", [classes[top]])
    cov = f"{policy.coverage:.0%}"
    in_set = [int(i) for i in np.argsort(-probs) if 1.0 - probs[i] <= threshold + 1e-12]
    if len(in_set) == 1:
        return _fields("classified", f"only {classes[top]} is plausible at {cov} coverage", [classes[top]])
    if len(in_set) > 1:
        return _fields("uncertain", f"{len(in_set)} classes are plausible at {cov} coverage; refer to a "
                                    "radiologist", _names(classes, in_set))
    return _fields("uncertain", f"no class is probable enough at {cov} coverage (the most probable, "
                                f"{classes[top]}, has {probs[top]:.0%}); refer to a radiologist",
                   _names(classes, top_mass_set(probs, policy.coverage)))


class Decider:
    """The decision step of a Predictor, built once from its checkpoints' metadata and a policy.

    The conformal scores and the out-of-distribution gate of the first checkpoint that has them are
    used; for an ensemble this is an approximation (its averaged probabilities were not calibrated
    as a whole), and every member's own gate must accept an input."""

    def __init__(self, metas: Sequence[dict], classes: Sequence[str], policy: DecisionPolicy | None = None):
        from .ood import OodGate

        self.policy = policy or DecisionPolicy()
        self.classes = tuple(classes)
        self.threshold: float | None = None
        for meta in metas:
            conf = meta.get("conformal") or {}
            if conf.get("scores"):
                self.threshold = conformal_threshold(np.asarray(conf["scores"]), self.policy.coverage)
                break
        self.gates = [OodGate.from_meta(m.get("ood")) for m in metas]
        self.notumor_rule = next((m["notumor_rule"] for m in metas if m.get("notumor_rule")), None)

    def __call__(self, sizes: Sequence[tuple[int, int]], probs: np.ndarray,
                 pixels: Sequence[np.ndarray], features: Sequence[np.ndarray],
                 box_scores: Sequence[float | None] | None = None) -> list[dict]:
        """Decision fields for N images: their original (width, height), (N, C) probabilities, and
        per checkpoint the network's (N, S, S) uint8 pixels and (N, D) pooled features; the box
        head's scores where there is one."""
        n = len(probs)
        reasons: list[str | None] = [None] * n
        scores: list[float | None] = [None] * n
        if self.policy.ood:
            for gate, px, feats in zip(self.gates, pixels, features):
                for i, (reason, score) in enumerate(gate.check(sizes, px, feats)):
                    if score is not None:
                        scores[i] = score if scores[i] is None else max(scores[i], score)
                    reasons[i] = reasons[i] or reason
        out = []
        for i in range(n):
            d = decide(probs[i], self.classes, self.threshold, self.policy, reasons[i], self.notumor_rule,
                       None if box_scores is None else box_scores[i])
            d["ood_score"] = None if scores[i] is None else float(scores[i])  # > 1: out of distribution
            out.append(d)
        return out


# ----------------------------------------------------------------------------------- fitting


def network_outputs(checkpoint, files: Sequence[str | Path], batch_size: int = 32,
                    desc: str = "outputs", keep_pixels: bool = False) -> dict[str, np.ndarray]:
    """What a Predictor computes for image files, in batches: ``logits`` (N, C), pooled penultimate
    ``features`` (N, D), the out-of-distribution ``stats`` (N, 43) and pixel ``std`` (N,) of the
    network's pixels, the original ``sizes`` (N, 2) as (width, height), the box head's
    ``box_score`` where there is one, and with ``keep_pixels`` the network's ``pixels`` (N, S, S)."""
    import torch

    from .cam import split_network
    from .data import progress
    from .imaging import load_image
    from .ood import image_statistics, pooled_features

    model = checkpoint.build()
    body, head = split_network(model, checkpoint.arch)
    prep = checkpoint.preprocessing
    parts: dict[str, list] = {"logits": [], "features": [], "stats": [], "std": [], "sizes": []}
    if hasattr(model, "box_head"):
        parts["box_score"] = []
    if keep_pixels:
        parts["pixels"] = []
    bar = progress(total=len(files), desc=desc)
    for start in range(0, len(files), batch_size):
        grays = [load_image(f) for f in files[start:start + batch_size]]
        px = np.stack([prep.pixels(g) for g in grays])
        with torch.inference_mode():
            f = body(prep.normalize(torch.from_numpy(px)))
            parts["logits"].append(head(f).double().numpy())
            if "box_score" in parts:
                from .localize import decode_boxes

                parts["box_score"].append(decode_boxes(*model.box_head(f))[1].double().numpy())
        parts["features"].append(pooled_features(f))
        parts["stats"].append(image_statistics(px))
        parts["std"].append(px.reshape(len(px), -1).std(axis=1))
        parts["sizes"].append(np.array([g.size for g in grays]))
        if keep_pixels:
            parts["pixels"].append(px)
        bar.update(len(grays))
    bar.close()
    return {k: np.concatenate(v) for k, v in parts.items()}


def calibration_entries(val_logits: np.ndarray, val_labels: np.ndarray, coverage: float = DEFAULT_COVERAGE,
                        note: str = "") -> dict:
    """The ``temperature``, ``calibration`` and ``conformal`` metadata entries (in-sample summary
    numbers; cross-fitted ones come from :func:`crossfit`)."""
    from .metrics import expected_calibration_error

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
    from .metrics import expected_calibration_error

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
              coverage: float = DEFAULT_COVERAGE, ood_train_limit: int = 0, batch_size: int = 32) -> dict:
    """Fit temperature, conformal scores and the out-of-distribution gate of a checkpoint on its
    split, and write them into its metadata (the weights are kept). When the checkpoint is the one
    that ships with the package, its manifest's SHA-256 is updated too. Returns the new entries
    (without the bulky arrays) and the new SHA-256."""
    import json

    from . import ood, shipped
    from .checkpoint import load_checkpoint, update_meta

    path = Path(checkpoint_path)
    ck = load_checkpoint(path)
    split = json.loads(Path(split_file).read_text())
    root = Path(data)
    val = split["val"]
    train = split["train"]
    if ood_train_limit and len(train) > ood_train_limit:
        rng = np.random.default_rng(0)
        train = sorted(rng.choice(train, ood_train_limit, replace=False).tolist())

    def labels_of(rels):
        return np.array([ck.classes.index(r.split("/")[0]) for r in rels])

    v = network_outputs(ck, [root / r for r in val], batch_size, "validation")
    t = network_outputs(ck, [root / r for r in train], batch_size, "training")
    entries = calibration_entries(v["logits"], labels_of(val), coverage,
                                  note=f"validation split of {Path(split_file).name}, {len(val)} images")
    val_labels = labels_of(val)
    gate = ood.fit_gate(t["features"], t["stats"], v["features"], v["stats"],
                        ood.failed_checks(v["sizes"], v["std"]), val_labels=val_labels)
    entries["ood"] = gate.to_meta()
    entries["notumor_rule"] = fit_notumor_rule(softmax(v["logits"], entries["temperature"]), val_labels,
                                               ck.classes, v.get("box_score"))
    mode = path.stat().st_mode & 0o777
    digest = update_meta(path, **entries)
    path.chmod(mode | 0o444)  # the rewritten file keeps (at least readable) permissions
    try:
        is_shipped = path.resolve() == shipped.default_model_path().resolve()
    except Exception:
        is_shipped = False
    if is_shipped:
        mpath = shipped.weights_dir() / shipped.MANIFEST
        manifest = json.loads(mpath.read_text())
        manifest["sha256"] = digest
        mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    brief = {k: v for k, v in entries.items() if k not in ("conformal", "ood")}  # notumor_rule stays
    brief["conformal"] = {k: v for k, v in entries["conformal"].items() if k != "scores"}
    brief["ood"] = gate.describe()
    return {"entries": brief, "sha256": digest, "shipped": is_shipped}


# ----------------------------------------------------------------------------------- command line


def configure(p) -> None:
    """``braintumor calibrate``: the command's arguments."""
    p.add_argument("--model", default=None, metavar="FILE", help="checkpoint to calibrate in place "
                   "(default: the shipped model, whose manifest SHA-256 is then updated)")
    p.add_argument("--data", required=True, help="the Training folder the split refers to")
    p.add_argument("--split", required=True, metavar="FILE", help="split.json with 'train' and 'val'")
    p.add_argument("--coverage", type=float, default=DEFAULT_COVERAGE, help="default 0.95")
    p.add_argument("--ood-train-limit", type=int, default=0, metavar="N",
                   help="fit the OOD statistics on at most N training images (0: all)")


def run(args) -> int:
    import json

    from . import shipped
    from .errors import UsageError

    if not 0 < args.coverage < 1:
        raise UsageError("--coverage must be between 0 and 1")
    if not Path(args.split).is_file():
        raise UsageError(f"no such split file: {args.split}")
    if not Path(args.data).is_dir():
        raise UsageError(f"no such folder: {args.data}")
    path = args.model or shipped.default_model_path()
    out = calibrate(path, args.data, args.split, args.coverage, args.ood_train_limit)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m braintumor.calibration", description=__doc__.splitlines()[0])
    configure(parser)
    raise SystemExit(run(parser.parse_args()))
