"""``braintumor evaluate``: metrics of a model on a labelled folder, through the served code.

The images go through :meth:`braintumor.Predictor.outputs`, the batch forward pass that answers web
and CLI requests, on the backend asked for (``auto``, as served, by default), so the accuracy it
prints is the accuracy users get, decisions included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.folders import list_samples, resolve_root
from ..metrics import summarize

DECISIONS = ("classified", "uncertain", "rejected")


def evaluate(data: str, model: str | list[str] | None = None, *, backend: str = "auto", device: str = "auto",
             batch_size: int = 32, tta: bool = False, show_progress: bool = True, split: str | None = None) -> dict:
    """Evaluate a model (the shipped one by default; a list: an ensemble) on ``data`` (class folders
    or a root with Testing/). ``device`` is where the torch backend runs the body (auto: a GPU when
    there is one). ``split``: a split.json whose ``val`` images (paths under ``data``) are the ones
    evaluated, e.g. a model's own validation split. Besides the metrics of :func:`braintumor.metrics.summarize`: the share
    of each decision per class, the accuracy of the classified answers, the missed tumours, and each
    image's answer (``predictions``: file, true class, label, probabilities, decision, box)."""
    from .predictor import Predictor

    predictor = Predictor.load(model, backend=backend, device=device)
    if split:
        import json

        from ..data.folders import Sample
        from ..errors import DataError

        root = Path(data)
        if not root.is_dir():
            raise DataError(f"no such folder: {data}")
        try:
            rels = list(json.loads(Path(split).read_text())["val"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{split}: not a split file with a 'val' list ({exc})") from None
        unknown = sorted({r.split("/")[0] for r in rels} - set(predictor.classes))
        if unknown:
            raise DataError(f"{split}: classes {unknown} are not the model's ({', '.join(predictor.classes)})")
        missing = [r for r in rels if not (root / r).is_file()]
        if missing:
            raise DataError(f"{len(missing)} of the split's {len(rels)} validation images are not under {root} "
                            f"(first: {missing[0]}); --data must be the folder the split refers to")
        samples = [Sample(root / r, predictor.classes.index(r.split("/")[0])) for r in rels]
    else:
        root = resolve_root(data, "Testing")
        samples = list_samples(root, predictor.classes, require_all=False)
    # the answers alone: the per-member arrays of Predictor.outputs are not needed here
    out = predictor.outputs([s.path for s in samples], batch_size=batch_size, tta=tta, errors="return",
                            show_progress=show_progress, desc="evaluate", arrays=False)
    idx = np.array([i for i, a in enumerate(out["answers"]) if "error" not in a], dtype=np.int64)
    answers = [out["answers"][i] for i in idx]
    labels = np.array([samples[i].label for i in idx], dtype=np.int64)
    probs = np.array([[a["probabilities"][c] for c in predictor.classes] for a in answers]).reshape(
        len(answers), len(predictor.classes))
    report = summarize(probs, labels, predictor.classes)
    kinds = np.array([a["decision"] for a in answers])
    report["decisions"] = {
        c: {k: float(np.mean(kinds[labels == j] == k)) if (labels == j).any() else 0.0 for k in DECISIONS}
        for j, c in enumerate(predictor.classes)}
    classified = kinds == "classified"
    pred = probs.argmax(1) if len(probs) else np.zeros(0, dtype=np.int64)
    report["classified_accuracy"] = float((pred[classified] == labels[classified]).mean()) if classified.any() else None
    if "notumor" in predictor.classes:
        nt = predictor.classes.index("notumor")
        missed = (labels != nt) & (pred == nt)
        report["missed_tumours"] = {"answered_no_tumour": int(missed.sum()),
                                    "of_them_classified": int((missed & classified).sum()),
                                    "tumours": int((labels != nt).sum())}
    report["model"] = {"name": predictor.name, "arch": predictor.arch, "sha256": predictor.sha256,
                       "version": predictor.version, "backend": predictor.backend, "tta": tta,
                       "temperature": [ck.temperature for ck in predictor.checkpoints]
                       if len(predictor.checkpoints) > 1 else predictor.checkpoints[0].temperature}
    report["data"] = str(root)
    report["skipped"] = [{"file": str(samples[i].path), "error": a["error"]}
                         for i, a in enumerate(out["answers"]) if "error" in a]
    # every image's served answer, for error analysis (``--json``)
    report["predictions"] = [
        {"file": samples[i].rel(root), "true": predictor.classes[samples[i].label], "label": a["label"],
         "probabilities": a["probabilities"], "decision": a["decision"], "box": a.get("box")}
        for i, a in zip(idx, answers)]
    return report


def format_report(r: dict) -> str:
    classes = r["classes"]
    w = max(len(c) for c in classes) + 2
    m = r["model"]
    lines = [f"model {m['name']} ({m['arch']}, backend {m['backend']}{', TTA' if m.get('tta') else ''}) "
             f"on {r['data']}: {r['n']} images", ""]
    lines.append(f"{'class':<{w}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"
                 f"{'classified':>12}{'uncertain':>11}{'rejected':>10}")
    for c in classes:
        pc, d = r["per_class"][c], r["decisions"][c]
        lines.append(f"{c:<{w}}{pc['precision']:>10.4f}{pc['recall']:>10.4f}{pc['f1']:>10.4f}{pc['support']:>10d}"
                     f"{d['classified']:>12.1%}{d['uncertain']:>11.1%}{d['rejected']:>10.1%}")
    lines += ["", f"accuracy  {r['accuracy']:.4f}", f"macro-F1  {r['macro_f1']:.4f}",
              f"ECE (15 bins)  {r['ece']:.4f}"]
    if r.get("classified_accuracy") is not None:
        lines.append(f"accuracy of the classified answers  {r['classified_accuracy']:.4f}")
    if r.get("missed_tumours"):
        mt = r["missed_tumours"]
        lines.append(f"tumours answered no tumour  {mt['answered_no_tumour']} of {mt['tumours']} "
                     f"({mt['of_them_classified']} of them classified)")
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    lines.append(" " * w + "".join(f"{c[:10]:>12}" for c in classes))
    for c, row in zip(classes, r["confusion_matrix"]):
        lines.append(f"{c:<{w}}" + "".join(f"{v:>12d}" for v in row))
    if r["skipped"]:
        lines += ["", f"{len(r['skipped'])} unreadable images skipped"]
    return "\n".join(lines)
