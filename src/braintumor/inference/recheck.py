"""Which int8 answers are read again by the float32 graph, so that the served answers are those of
float32 while most scans cost the int8 price (80% of the validation slices with 3.1).

The int8 network's numbers differ a little from float32 (``benchmarks/onnx_parity.py --no-recheck``
on the shipped 3.1's 861 validation slices, EfficientNet-Lite0 with its first block kept in
float32: calibrated logits by 0.65 at most; the out-of-distribution score by a factor of at most
1.25), so an answer that lies that close to a decision boundary could come out otherwise in
float32. An answer is *borderline* when moving any one class's calibrated logit by
:data:`LOGIT_MARGIN` either way would change its label, decision or prediction set; when its
out-of-distribution score is within a factor :data:`OOD_RATIO` of the gate's limit (1); or when
its box score is within :data:`BOX_MARGIN` of the no-tumour rule's limit. Borderline answers are
computed again, heat map and box included, from the float32 graph (``benchmarks/onnx_parity.py``
counts them and checks the answers against eager PyTorch).
"""

from __future__ import annotations

import numpy as np

from .decision import Decider, decide

LOGIT_MARGIN = 0.5  # calibrated logits (logit / temperature): above 99% of the int8 errors measured
OOD_RATIO = 1.35  # the out-of-distribution score: 2 x the largest relative int8 error measured
BOX_MARGIN = 0.05  # the box head's score


def _key(probs: np.ndarray, d: dict) -> tuple:
    return int(np.argmax(probs)), d["decision"], tuple(d.get("prediction_set") or ())


def borderline(decider: Decider, probs: np.ndarray, answer: dict, member_probs=(),
               box_score: float | None = None) -> bool:
    """Whether the int8 answer ``answer`` (from calibrated ``probs``, (C,), and each ensemble
    member's own ``member_probs``) could be another in float32 (see the module's docstring)."""
    score = answer.get("ood_score")
    if score is not None and 1 / OOD_RATIO <= score <= OOD_RATIO:
        return True
    if answer.get("decision") == "rejected":
        return False  # by the gate, far from its limit, or by a check of the image itself
    rule = decider.notumor_rule
    if box_score is not None and rule and rule.get("max_box_score") is not None \
            and abs(box_score - float(rule["max_box_score"])) <= BOX_MARGIN:
        return True

    def fields(p: np.ndarray) -> tuple:
        return _key(p, decide(p, decider.classes, decider.threshold, decider.policy, None, rule, box_score))

    z = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None))
    base = fields(np.asarray(probs, dtype=np.float64))
    for c in range(len(z)):
        for step in (-LOGIT_MARGIN, LOGIT_MARGIN):
            shifted = z.copy()
            shifted[c] += step
            e = np.exp(shifted - shifted.max())
            if fields(e / e.sum()) != base:
                return True
    for p in member_probs:  # an ensemble member's vote that could change
        top2 = np.sort(np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-300, None)))[-2:]
        if top2[1] - top2[0] <= 2 * LOGIT_MARGIN:
            return True
    return False
