"""Do the ONNX graphs answer as PyTorch does? Labels, decisions and tumour boxes on the validation
split, for each backend of the training install, and from the light install (a virtual environment
without PyTorch) against the training install.

    python benchmarks/onnx_parity.py [--model FILE] [--light-python .venv-light/bin/python]

Backends compared: ``torch`` (eager float32, the reference), ``onnx`` (the float32 graph) and
``int8`` (what the light install serves: the int8 graph, and the float32 graph again for the answers
int8 leaves too close to a decision boundary, :mod:`braintumor.inference.recheck`; their number is
printed). With ``--light-python``, the int8 answers are computed
again by that interpreter (the light install; PyTorch must be missing there) and compared with the
training install's. With ``--no-recheck``, int8 alone, and how far its numbers lie from eager
float32's against the re-check's margins (rerun after the model changes). Needs the Training folder (../shared/data/brain-tumor-mri/Training) and the
model's split (model/split.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: _common and siblings
from _common import SPLIT, TRAINING, require  # noqa: E402

ANSWER_KEYS = ("label", "decision", "box")
LIGHT_RUN = """
import json, sys
from braintumor import Predictor
files, model = json.load(sys.stdin)
p = Predictor.load(model, backend="int8")
out = p.outputs(files, batch_size=32, arrays=False)["answers"]
print(json.dumps({"torch": "torch" in sys.modules,
                  "answers": [{k: a.get(k) for k in ("label", "decision", "box")} for a in out]}))
"""


def answers(p, files: list[str], raw: dict) -> list[dict]:
    """The answers' labels, decisions and boxes; ``raw`` gets the calibrated logits and the
    out-of-distribution scores (what the re-check's margins are measured on)."""
    import numpy as np

    out = p.outputs(files, batch_size=32, show_progress=True, desc=p.backend)
    raw[p.backend] = (out["logits"][0] / p.checkpoints[0].temperature,
                      np.array([a.get("ood_score") or np.nan for a in out["answers"]], dtype=float))
    return [{k: a.get(k) for k in ANSWER_KEYS} for a in out["answers"]]


def int8_error(raw: dict) -> dict:
    """How far the int8 network's numbers lie from eager float32's, against the re-check's margins."""
    import numpy as np

    from braintumor.inference import recheck

    (li, si), (lt, st) = raw["int8"], raw["torch"]
    per_slice = np.abs(li - lt).max(axis=1)  # the largest class difference of each slice
    logit, p99, mean = float(per_slice.max()), float(np.percentile(per_slice, 99)), float(np.abs(li - lt).mean())
    ratio = float(np.nanmax(np.maximum(si / st, st / si)))
    print(f"int8 against eager: calibrated logits within {logit:.3f} (99% of slices within {p99:.3f}, "
          f"mean difference {mean:.3f}; re-check margin {recheck.LOGIT_MARGIN}), "
          f"out-of-distribution score within a factor {ratio:.3f} (margin {recheck.OOD_RATIO})")
    return {"max_logit_error": logit, "p99_logit_error": p99, "mean_logit_error": mean, "max_ood_ratio": ratio}


def iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


def compare(name: str, a: list[dict], b: list[dict]) -> dict:
    n = len(a)
    boxes = [(x["box"], y["box"]) for x, y in zip(a, b) if x["box"] is not None or y["box"] is not None]
    both = [(x, y) for x, y in boxes if x is not None and y is not None]
    out = {"n": n,
           "labels_same": sum(x["label"] == y["label"] for x, y in zip(a, b)),
           "decisions_same": sum(x["decision"] == y["decision"] for x, y in zip(a, b)),
           "boxes": len(boxes),
           "boxes_same": sum(x == y for x, y in boxes),
           "box_max_px": max((max(abs(u - v) for u, v in zip(x, y)) for x, y in both), default=0),
           "box_min_iou": min((iou(x, y) for x, y in both), default=1.0)}
    print(f"{name:28} labels {out['labels_same']}/{n} the same, decisions {out['decisions_same']}/{n}, "
          f"boxes {out['boxes_same']}/{out['boxes']} the same (largest difference {out['box_max_px']} px, "
          f"lowest IoU {out['box_min_iou']:.3f})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--data", default=str(TRAINING), help="the Training folder the split refers to")
    ap.add_argument("--split", default=str(SPLIT), help="the model's split.json (its 'val' images)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N validation images (0: all)")
    ap.add_argument("--light-python", default=None, metavar="PYTHON",
                    help="the python of a light install (no PyTorch), e.g. .venv-light/bin/python")
    ap.add_argument("--no-recheck", action="store_true",
                    help="int8 alone: no answer is read again in float32 (what the re-check is for)")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args(argv)
    root = require(args.data, TRAINING, option="--data")
    split = require(args.split, SPLIT, file=True, option="--split")

    from braintumor import Predictor
    from braintumor.inference import recheck

    rechecked = []
    plain = recheck.borderline
    recheck.borderline = lambda *a, **k: rechecked.append(not args.no_recheck and plain(*a, **k)) or rechecked[-1]

    files = [str(root / rel) for rel in json.loads(split.read_text())["val"]]
    files = files[:args.limit] if args.limit else files
    got, figures, raw = {}, {}, {}
    for backend in ("torch", "onnx", "int8"):
        t = time.perf_counter()
        p = Predictor.load(args.model, backend=backend)
        got[backend] = answers(p, files, raw)
        print(f"{backend}: {len(files)} validation images in {time.perf_counter() - t:.0f} s ({p.name})"
              + (f"; {sum(rechecked)} answers read again in float32" if backend == "int8" else ""))
    figures["rechecked"] = sum(rechecked)
    print()
    if args.no_recheck:
        figures["int8_error"] = int8_error(raw)
    figures["int8_vs_onnx"] = compare("int8 vs float32 graph", got["int8"], got["onnx"])
    figures["int8_vs_torch"] = compare("int8 vs eager PyTorch", got["int8"], got["torch"])
    figures["onnx_vs_torch"] = compare("float32 graph vs PyTorch", got["onnx"], got["torch"])
    if args.light_python:
        r = subprocess.run([args.light_python, "-c", LIGHT_RUN], input=json.dumps([files, args.model]),
                           capture_output=True, text=True, check=True)
        light = json.loads(r.stdout.strip().splitlines()[-1])
        if light["torch"]:
            print(f"{args.light_python} imported PyTorch: not a light install")
            return 1
        figures["light_vs_training"] = compare("light vs training install", light["answers"], got["int8"])
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
