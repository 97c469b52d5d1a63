"""What runs for every answer: calibrated probabilities, the conformal prediction set and the
decision (classified, uncertain or rejected).

The numbers these use (temperature, conformal scores, the out-of-distribution gate, the no-tumour
rule) are fitted offline by :mod:`braintumor.training.calibration` and stored in the checkpoint's metadata;
this module only reads them.

- ``"rejected"``: the input failed the out-of-distribution gate (:mod:`braintumor.inference.ood`), which says
  what is unusual about it; ``"prediction_set"`` is empty;
- ``"uncertain"``: the conformal set holds several classes, or none, or the answer is "no tumour"
  while some tumour class has more evidence than the no-tumour rule allows; ``"prediction_set"``
  lists the plausible classes, most probable first; refer to a radiologist;
- ``"classified"``: the conformal set is exactly the predicted class.

With a confidence threshold instead (``DecisionPolicy(min_confidence=0.9)``) a result is classified
when its top calibrated probability reaches the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ..metrics import conformal_quantile

DEFAULT_COVERAGE = 0.95


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def conformal_threshold(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile: the ceil((n+1) * coverage)-th smallest score (1.0, i.e. every
    class, when there are too few scores for that coverage)."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be between 0 and 1, got {coverage}")
    return conformal_quantile(scores, coverage, too_few=1.0)


def prediction_sets(probs: np.ndarray, threshold: float) -> np.ndarray:
    """(N, C) boolean: class c is in the set of image i when 1 - p_ic <= threshold."""
    return 1.0 - np.asarray(probs, dtype=np.float64) <= threshold + 1e-12


def top_mass_set(probs: np.ndarray, mass: float) -> list[int]:
    """The fewest most probable classes whose probabilities add up to ``mass``, most probable first."""
    order = np.argsort(-np.asarray(probs))
    cum = np.cumsum(np.asarray(probs)[order])
    k = int(np.searchsorted(cum, mass - 1e-12) + 1)
    return [int(i) for i in order[: min(max(k, 1), len(order))]]


@dataclass(frozen=True)
class DecisionPolicy:
    """How a Predictor decides between classified, uncertain and rejected.

    ``coverage``: conformal coverage of the prediction sets, using the scores stored in the
    checkpoint; None (the default) takes the coverage the checkpoint was calibrated for
    (``braintumor calibrate --coverage``), or 0.95 where it records none. ``min_confidence``: when set, used instead: classified when the top calibrated
    probability reaches it. ``ood``: whether the out-of-distribution gate may reject inputs."""

    coverage: float | None = None
    min_confidence: float | None = None
    ood: bool = True

    def __post_init__(self):
        if self.coverage is not None and not 0.0 < float(self.coverage) < 1.0:
            raise ValueError(f"coverage must be between 0 and 1 (e.g. 0.95), got {self.coverage}")
        if self.min_confidence is not None and not 0.0 < float(self.min_confidence) <= 1.0:
            raise ValueError(f"min_confidence must be in (0, 1], got {self.min_confidence}")


def _names(classes: Sequence[str], idx: Sequence[int]) -> list[str]:
    return [classes[i] for i in idx]


def _fields(decision: str, reason: str, prediction_set: list[str]) -> dict:
    return {"decision": decision, "reason": reason, "prediction_set": prediction_set}


NO_TUMOUR = "notumor"


def tumour_evidence(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """The largest calibrated probability of any tumour class, per row of (N, C) ``probs``."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    cols = [i for i, c in enumerate(classes) if c != NO_TUMOUR]
    return probs[:, cols].max(1)


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
        why = (f"{_name(classes[strongest])} has {probs[strongest]:.1%}, more than the model gives a tumour on "
               f"most scans without one ({tp:.1%}).")
    elif tb is not None and box_score is not None and box_score > float(tb):
        why = f"The tumour locator's score, {box_score:.2f}, is above {float(tb):.2f}."
    else:
        return d
    return _fields("uncertain", f"No tumour is the most likely answer, but a tumour cannot be ruled out. {why} "
                                "A missed tumour costs more than a referral.", [NO_TUMOUR, classes[strongest]])


def _name(label: str) -> str:
    """A class as a person reads it (``notumor`` -> ``No tumour``)."""
    from ..config import CLASS_NAMES

    return CLASS_NAMES.get(label, str(label))


def either(labels: Sequence[str]) -> str:
    """``Glioma``, ``Glioma or Meningioma``, ``Glioma, Meningioma or Pituitary tumour``."""
    names = [_name(c) for c in labels]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


HEADLINES = {"uncertain": "Uncertain: refer", "rejected": "Not analysed"}
# What an uncertain answer asks for, in the same words on the page and in the PDF report.
REFERRAL = "The model cannot tell with enough certainty. Have the scan read by a radiologist."


def headline(result: dict) -> str:
    """What an answer leads with, on the page, in the PDF, in the CLI and in the JSON: the class of a
    classified answer, "Uncertain: refer" or "Not analysed"."""
    decision = result.get("decision", "classified")
    return HEADLINES.get(decision) or _name(str(result["label"]))


def could_be(result: dict) -> str | None:
    """The classes an uncertain answer could be, in words ("Glioma or Meningioma"), else None."""
    if result.get("decision") != "uncertain" or not result.get("prediction_set"):
        return None
    return either(result["prediction_set"])


def _decide(probs: np.ndarray, classes: Sequence[str], threshold: float | None,
            policy: DecisionPolicy, rejection: str | None = None) -> dict:
    probs = np.asarray(probs, dtype=np.float64)
    top = int(probs.argmax())
    name = _name(classes[top])
    if rejection:
        return _fields("rejected", rejection, [])
    if policy.min_confidence is not None:
        c = float(policy.min_confidence)
        if probs[top] >= c:
            return _fields("classified", f"{name} has {probs[top]:.0%}, at or above the {c:.0%} this service asks for.",
                           [classes[top]])
        return _fields("uncertain", f"The most likely class, {name}, has {probs[top]:.0%}, below the {c:.0%} this "
                                    "service asks for.", _names(classes, top_mass_set(probs, c)))
    if threshold is None:
        return _fields("classified", "This model has no conformal calibration, so every scan it accepts is "
                                     "classified.", [classes[top]])
    in_set = [int(i) for i in np.argsort(-probs) if 1.0 - probs[i] <= threshold + 1e-12]
    if len(in_set) == 1:
        return _fields("classified", f"{name} is the only class that fits this scan.", [classes[top]])
    if len(in_set) > 1:
        return _fields("uncertain", f"More than one class fits this scan: {either(_names(classes, in_set))}.",
                       _names(classes, in_set))
    return _fields("uncertain", f"No class fits this scan well. The most likely, {name}, has {probs[top]:.0%}.",
                   _names(classes, top_mass_set(probs, policy.coverage or DEFAULT_COVERAGE)))


class Decider:
    """The decision step of a Predictor, built once from its checkpoints' metadata and a policy.

    The conformal scores and the out-of-distribution gate of the first checkpoint that has them are
    used; for an ensemble this is an approximation (its averaged probabilities were not calibrated
    as a whole), and every member's own gate must accept an input."""

    def __init__(self, metas: Sequence[dict], classes: Sequence[str], policy: DecisionPolicy | None = None):
        from .ood import OodGate

        self.policy = policy or DecisionPolicy()
        self.classes = tuple(classes)
        conf = next((m["conformal"] for m in metas if (m.get("conformal") or {}).get("scores")), None)
        if self.policy.coverage is None:  # the coverage the model was calibrated for, else the default
            self.policy = replace(self.policy, coverage=float((conf or {}).get("coverage") or DEFAULT_COVERAGE))
        self.threshold: float | None = (
            conformal_threshold(np.asarray(conf["scores"]), self.policy.coverage) if conf else None)
        self.gates = [OodGate.from_meta(m.get("ood")) for m in metas]
        self.notumor_rule = next((m["notumor_rule"] for m in metas if m.get("notumor_rule")), None)

    @property
    def needs_inputs(self) -> bool:
        """Whether a gate reads :func:`braintumor.inference.ood.gate_inputs` (a fitted gate)."""
        return self.policy.ood and any(g.needs_inputs for g in self.gates)

    def __call__(self, sizes: Sequence[tuple[int, int]], probs: np.ndarray,
                 pixels: Sequence[np.ndarray], features: Sequence[np.ndarray],
                 box_scores: Sequence[float | None] | None = None, inputs: np.ndarray | None = None) -> list[dict]:
        """Decision fields for N images: their original (width, height), (N, C) probabilities, and
        per checkpoint the network's (N, S, S) uint8 pixels and (N, D) pooled features; the box
        head's scores where there is one; the gate's ``inputs`` (:func:`~.ood.gate_inputs`) when
        :attr:`needs_inputs`. A rejected answer says which check failed in ``rejection``."""
        n = len(probs)
        reasons: list[str | None] = [None] * n
        rejections: list[str | None] = [None] * n
        scores: list[float | None] = [None] * n
        if self.policy.ood:
            for gate, px, feats in zip(self.gates, pixels, features):
                for i, v in enumerate(gate.check(sizes, px, feats, inputs)):
                    if v.score is not None:
                        scores[i] = v.score if scores[i] is None else max(scores[i], v.score)
                    if reasons[i] is None and v.reason:
                        reasons[i], rejections[i] = v.reason, v.rejection
        out = []
        for i in range(n):
            d = decide(probs[i], self.classes, self.threshold, self.policy, reasons[i], self.notumor_rule,
                       None if box_scores is None else box_scores[i])
            d["ood_score"] = None if scores[i] is None else float(scores[i])  # > 1: out of distribution
            if rejections[i]:
                d["rejection"] = rejections[i]
            out.append(d)
        return out
