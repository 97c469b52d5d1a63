"""``braintumor finetune``: adapt a model to a site's own labelled scans, on the site's machine.

Starts from the shipped model (or any checkpoint), keeps a grouped validation part of the site's
data (near-copies of one picture stay on one side), trains the last blocks and the head (ResNet
layer3, layer4 and fc; the early blocks' weights stay fixed, which halves the cost on a CPU, while
their batch-norm statistics follow the site's scans; bfloat16 where the CPU has it natively), then refits the temperature, the conformal scores, the no-tumour rule and
the out-of-distribution gate on the site's data, and prints the figures of the starting and the
adapted model on the same validation part. The result is an ordinary checkpoint
(``OUT/last.safetensors``) that every command and ``serve --model`` take.

A box head, where the starting model has one, is carried over unchanged (the site's scans have no
tumour boxes to train it on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TUMOUR_MISSED = "missed tumours"


def site_figures(checkpoint_path: str | Path, root: Path, rels: list[str], desc: str) -> dict:
    """Accuracy, macro-F1, missed tumours and decisions of a checkpoint on ``rels`` (paths under
    ``root`` whose first part is the class), through the served code (:meth:`Predictor.outputs`,
    eager PyTorch: the int8 conversion of a new model would add half a minute here)."""
    from ..metrics import summarize
    from ..inference.predictor import Predictor

    p = Predictor.load(checkpoint_path, backend="torch")
    ck = p.checkpoints[0]
    labels = np.array([ck.classes.index(r.split("/")[0]) for r in rels])
    out = p.outputs([root / r for r in rels], show_progress=True, desc=desc)
    probs = out["probabilities"]
    decisions = out["answers"]
    s = summarize(probs, labels, tuple(ck.classes))
    notumor = ck.classes.index("notumor") if "notumor" in ck.classes else -1
    pred = probs.argmax(1)
    tumour = labels != notumor
    fig = {
        "n": int(len(labels)),
        "accuracy": s["accuracy"],
        "macro_f1": s["macro_f1"],
        "recall": {c: s["per_class"][c]["recall"] for c in ck.classes},
        TUMOUR_MISSED: int(np.sum(tumour & (pred == notumor))),
        "tumours": int(tumour.sum()),
    }
    kinds = np.array([d["decision"] for d in decisions])
    classified = kinds == "classified"
    fig["decisions"] = {k: int(np.sum(kinds == k)) for k in ("classified", "uncertain", "rejected")}
    fig["classified_accuracy"] = float((pred[classified] == labels[classified]).mean()) if classified.any() else None
    fig[TUMOUR_MISSED + " classified"] = int(np.sum(tumour & (pred == notumor) & classified))
    return fig


def format_report(r: dict) -> str:
    b, a = r["before"], r["after"]
    lines = [f"fine-tuned on {r['site_images'] - r['validation_images']} of the site's {r['site_images']} images "
             f"in {r['seconds']:.0f} s (training {r['train_seconds']:.0f} s); figures on the site's "
             f"{r['validation_images']} validation images:",
             f"  {'':<22}{'before':>10}{'after':>10}",
             f"  {'accuracy':<22}{100 * b['accuracy']:>9.1f}%{100 * a['accuracy']:>9.1f}%",
             f"  {'macro-F1':<22}{b['macro_f1']:>10.3f}{a['macro_f1']:>10.3f}",
             f"  {TUMOUR_MISSED + ' (of ' + str(b['tumours']) + ')':<22}{b[TUMOUR_MISSED]:>10d}{a[TUMOUR_MISSED]:>10d}"]
    for c in b["recall"]:
        lines.append(f"  {'recall ' + c:<22}{100 * b['recall'][c]:>9.1f}%{100 * a['recall'][c]:>9.1f}%")
    for k in ("classified", "uncertain", "rejected"):
        lines.append(f"  {'answers ' + k:<22}{b['decisions'][k]:>10d}{a['decisions'][k]:>10d}")
    key = TUMOUR_MISSED + " classified"
    lines.append(f"  {key:<22}{b[key]:>10d}{a[key]:>10d}")
    lines.append(f"adapted model: {r['model']} (serve it with: braintumor serve --model {r['model']})")
    return "\n".join(lines)
