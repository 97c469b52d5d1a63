"""``braintumor finetune``: adapt a model to a site's labelled scans on this machine (the
training part of :mod:`braintumor.training.finetune`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


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


def run(args: argparse.Namespace) -> int:
    from ..inference import shipped
    from ..training.calibration import calibrate
    from ..training.checkpoint import load_checkpoint
    from ..errors import UsageError
    from ..config import TrainConfig
    from ..data.folders import list_samples, resolve_root
    from ..training.finetune import format_report, site_figures
    from ..training.train import main as train

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
    calibrate(adapted, data, split_file, backend="torch")  # eager: no int8 conversion of new weights
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
