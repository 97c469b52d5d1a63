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

import argparse
import json
import time
from pathlib import Path

import numpy as np

TUMOUR_MISSED = "missed tumours"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="the site's scans: one sub-folder per class")
    p.add_argument("--model", default=None, metavar="FILE", help="checkpoint to start from (default: the shipped model)")
    p.add_argument("--epochs", type=int, default=8, help="passes over the site's training part (default: 8)")
    p.add_argument("--out", default=None, help="run folder (default: runs/finetune-<data folder name>)")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default: 3e-4)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the site's images kept for validation and calibration (default: 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--json", action="store_true", help="print the before/after figures as JSON")


def site_figures(checkpoint_path: str | Path, root: Path, rels: list[str], desc: str) -> dict:
    """Accuracy, macro-F1, missed tumours and decisions of a checkpoint on ``rels`` (paths under
    ``root`` whose first part is the class), through the same decision step as a Predictor."""
    from .calibration import Decider, network_outputs, softmax
    from .checkpoint import load_checkpoint
    from .metrics import summarize

    ck = load_checkpoint(checkpoint_path)
    labels = np.array([ck.classes.index(r.split("/")[0]) for r in rels])
    out = network_outputs(ck, [root / r for r in rels], desc=desc, keep_pixels=True)
    probs = softmax(out["logits"], float(ck.meta.get("temperature", 1.0)))
    decisions = Decider([ck.meta], ck.classes)(
        [tuple(x) for x in out["sizes"]], probs, [out["pixels"]], [out["features"]], out.get("box_score"))
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


def run(args: argparse.Namespace) -> int:
    from . import shipped
    from .calibration import calibrate
    from .checkpoint import load_checkpoint
    from .errors import UsageError
    from .config import TrainConfig
    from .data import list_samples, resolve_root
    from .train import main as train

    if not Path(args.data).is_dir():
        raise UsageError(f"no such folder: {args.data}")
    data = resolve_root(args.data, "Training")
    if args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if not 0.05 <= args.val_fraction <= 0.5:
        raise UsageError("--val-fraction must be between 0.05 and 0.5")
    start = Path(args.model) if args.model else shipped.default_model_path()
    ck = load_checkpoint(start)
    samples = list_samples(data, tuple(ck.classes), require_all=False)
    if len(samples) < 20:
        raise UsageError(f"{data} holds {len(samples)} images of the classes {', '.join(ck.classes)}; "
                         "fine-tuning needs at least 20 (a few hundred to adapt well)")
    out = Path(args.out or f"runs/finetune-{data.resolve().name}")
    prep = ck.preprocessing
    cfg = TrainConfig(
        data=str(data), out=str(out), arch=ck.arch, img_size=prep.img_size, resize_ratio=prep.resize_ratio,
        mean=tuple(prep.mean), std=tuple(prep.std), classes=tuple(ck.classes), init=str(start),
        freeze_early=True, epochs=args.epochs, lr=args.lr, warmup_epochs=0, batch_size=args.batch_size,
        weight_decay=1e-4, label_smoothing=0.1, ema_decay=0.0, mixup=0.0, val_fraction=args.val_fraction,
        seed=args.seed, device=args.device,
        extra={"finetuned_from": {"file": start.name, "name": ck.name, "sha256": ck.sha256}},
    )
    t0 = time.perf_counter()
    train(cfg)
    train_s = time.perf_counter() - t0
    split_file = out / "split.json"
    val = json.loads(split_file.read_text())["val"]
    adapted = out / "last.safetensors"
    calibrate(adapted, data, split_file)
    total_s = time.perf_counter() - t0
    before = site_figures(start, data, val, "before")
    after = site_figures(adapted, data, val, "after")
    report = {"model": str(adapted), "started_from": str(start), "site_images": len(samples),
              "validation_images": len(val), "train_seconds": round(train_s, 1),
              "seconds": round(total_s, 1), "before": before, "after": after}
    (out / "finetune.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


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
