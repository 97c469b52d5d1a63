"""The model card's figures, measured on the leakage-free validation split.

For a model (the shipped one by default) on the validation images listed in a split file: accuracy,
macro-F1, per-class precision/recall/F1 with 95% bootstrap intervals, ECE (15 bins), the confusion
matrix and a reliability diagram; what test-time augmentation and an ensemble add; and a sheet of
Grad-CAM overlays of the errors. Writes ``report.json`` and PNGs to --out. Run from the repo root:

    python benchmarks/model_report.py [--data ../shared/data/brain-tumor-mri/Training]
        [--split model/split.json] [--model FILE] [--ensemble-with FILE ...] [--out docs/model]

Skips (exit 0, one line on stderr) when the Training folder is missing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import REPO, SPLIT, TRAINING, require  # noqa: E402


def probabilities(predictor, paths: list[Path], tta: bool) -> np.ndarray:
    from braintumor.progress import progress

    out = []
    for i in progress(range(0, len(paths), 64), desc="predict" + (" tta" if tta else ""), unit="batch"):
        res = predictor.predict_batch(paths[i:i + 64], batch_size=64, tta=tta)
        out += [[r["probabilities"][c] for c in predictor.classes] for r in res]
    return np.array(out)


def describe(probs: np.ndarray, y: np.ndarray, classes, boot: bool = False) -> dict:
    from braintumor.metrics import bootstrap_ci, summarize

    s = summarize(probs, y, classes)
    if boot:
        s["ci95"] = bootstrap_ci(probs, y, classes)
    return s


def error_sheet(predictor, paths, y, probs, classes, out: Path, limit: int = 24) -> list[dict]:
    """Grad-CAM overlays of misclassified images, most confident errors first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]])][:limit]
    rows = []
    if len(wrong) == 0:
        return rows
    cols = 4
    n_rows = int(np.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(n_rows, cols * 2, figsize=(cols * 4.2, n_rows * 2.3))
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.axis("off")
    for k, i in enumerate(wrong):
        e_pred = predictor.explain(paths[i])
        e_true = predictor.explain(paths[i], target=classes[y[i]])
        r, c = divmod(k, cols)
        axes[r, 2 * c].imshow(e_pred["overlay"])
        axes[r, 2 * c].set_title(f"said {classes[pred[i]]} {probs[i, pred[i]]:.0%}", fontsize=8)
        axes[r, 2 * c + 1].imshow(e_true["overlay"])
        axes[r, 2 * c + 1].set_title(f"true {classes[y[i]]}: its map", fontsize=8)
        rows.append({"file": paths[i].name, "true": classes[y[i]], "predicted": classes[pred[i]],
                     "confidence": float(probs[i, pred[i]])})
    fig.suptitle("Validation errors: Grad-CAM for the predicted class (left) and the true class (right)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=TRAINING)
    ap.add_argument("--split", type=Path, default=SPLIT)
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--ensemble-with", nargs="*", default=[], help="more checkpoints for the ensemble row")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "model")
    args = ap.parse_args()
    require(args.data, TRAINING, option="--data")
    from braintumor import Predictor
    from braintumor.training import plots
    from braintumor.config import CLASSES
    from braintumor.metrics import reliability

    split = json.loads(args.split.read_text())
    paths = [args.data / p for p in split["val"]]
    y = np.array([CLASSES.index(p.split("/")[0]) for p in split["val"]])
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": f"{platform.machine()} {platform.processor()}".strip(), "n": len(paths),
              "split": str(args.split.relative_to(REPO) if args.split.is_relative_to(REPO) else args.split)}

    p = Predictor.load(args.model, backend=args.backend)
    report["model"] = p.info()
    t = time.perf_counter()
    probs = probabilities(p, paths, tta=False)
    report["seconds_single"] = round(time.perf_counter() - t, 1)
    report["single"] = describe(probs, y, CLASSES, boot=True)
    probs_tta = probabilities(p, paths, tta=True)
    report["tta"] = describe(probs_tta, y, CLASSES)
    if args.backend != "torch":
        ref = Predictor.load(args.model, backend="torch")
        probs_ref = probabilities(ref, paths, tta=False)
        report["torch_float32"] = describe(probs_ref, y, CLASSES)
        report["max_abs_prob_diff_vs_torch"] = float(np.abs(probs_ref - probs).max())
        report["label_agreement_vs_torch"] = float((probs_ref.argmax(1) == probs.argmax(1)).mean())
    if args.ensemble_with:
        members = [args.model] if args.model else [str(Predictor.load(None, backend="torch").checkpoints[0].path)]
        ens = Predictor.load(members + args.ensemble_with, backend=args.backend)
        report["ensemble"] = {"members": ens.name, **describe(probabilities(ens, paths, False), y, CLASSES)}
        report["ensemble_tta"] = describe(probabilities(ens, paths, True), y, CLASSES)

    plots.confusion(np.array(report["single"]["confusion_matrix"]), CLASSES, args.out / "confusion_matrix.png",
                    "Validation confusion matrix (leakage-free split)")
    centres, acc, conf, count = reliability(probs, y)
    plots.reliability_diagram({p.name: (centres, acc, conf, count, report["single"]["ece"])},
                              args.out / "reliability.png")
    report["errors"] = error_sheet(p, paths, y, probs, CLASSES, args.out / "errors.png")
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")

    s = report["single"]
    print(f"model {p.name} ({p.backend}) on {len(paths)} validation images ({report['machine']})")
    lo, hi = s["ci95"]["accuracy"]
    print(f"accuracy {s['accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f})  macro-F1 {s['macro_f1']:.4f}  ECE {s['ece']:.4f}")
    for c in CLASSES:
        pc, ci = s["per_class"][c], s["ci95"]["per_class"][c]
        print(f"  {c:<11} P {pc['precision']:.3f} [{ci['precision'][0]:.3f}-{ci['precision'][1]:.3f}]"
              f"  R {pc['recall']:.3f} [{ci['recall'][0]:.3f}-{ci['recall'][1]:.3f}]"
              f"  F1 {pc['f1']:.3f} [{ci['f1'][0]:.3f}-{ci['f1'][1]:.3f}]  n={pc['support']}")
    print(f"with TTA: accuracy {report['tta']['accuracy']:.4f}  macro-F1 {report['tta']['macro_f1']:.4f}")
    lines = []
    if "torch_float32" in report:
        lines.append(f"eager float32 reference: accuracy {report['torch_float32']['accuracy']:.4f}; "
                     f"max |p - p_ref| {report['max_abs_prob_diff_vs_torch']:.4f}; "
                     f"labels agree {report['label_agreement_vs_torch']:.4f}")
    if "ensemble" in report:
        lines.append(f"ensemble ({report['ensemble']['members']}): accuracy {report['ensemble']['accuracy']:.4f}, "
                     f"with TTA {report['ensemble_tta']['accuracy']:.4f}")
    lines.append(f"{len(report['errors'])} errors; figures in {args.out}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
