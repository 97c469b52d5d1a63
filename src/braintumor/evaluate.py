"""``braintumor evaluate``: metrics of a checkpoint on a labelled folder."""

from __future__ import annotations

import numpy as np
import torch

from . import shipped
from .calibration import softmax
from .data import build_cache, list_samples, resolve_root
from .engine import pick_device, predict_logits
from .metrics import summarize


def evaluate(data: str, model: str | None = None, device: str = "auto", batch_size: int = 64,
             show_progress: bool = True) -> dict:
    """Evaluate a checkpoint (the shipped one by default) on ``data`` (class folders or Testing/)."""
    ck = shipped.load(model)
    root = resolve_root(data, "Testing")
    samples = list_samples(root, ck.classes, require_all=False)
    cache = build_cache(samples, ck.preprocessing.resize_size, None, desc="read")
    dev = pick_device(device)
    net = ck.build().to(dev).to(memory_format=torch.channels_last)
    images = torch.from_numpy(np.asarray(cache.images)).to(dev) if dev.type != "cpu" else cache.images
    logits = predict_logits(net, images, ck.preprocessing, dev, batch_size, show_progress=show_progress)
    temperature = float(ck.meta.get("temperature", 1.0))
    probs = softmax(logits.numpy(), temperature)
    report = summarize(probs, cache.labels, ck.classes)
    report["model"] = {"name": ck.name, "arch": ck.arch, "sha256": ck.sha256, "temperature": temperature}
    report["data"] = str(root)
    report["skipped"] = [{"file": p, "error": e} for p, e in cache.skipped]
    return report


def format_report(r: dict) -> str:
    classes = r["classes"]
    w = max(len(c) for c in classes) + 2
    lines = [f"model {r['model']['name']} ({r['model']['arch']}) on {r['data']}: {r['n']} images", ""]
    lines.append(f"{'class':<{w}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for c in classes:
        pc = r["per_class"][c]
        lines.append(f"{c:<{w}}{pc['precision']:>10.4f}{pc['recall']:>10.4f}{pc['f1']:>10.4f}{pc['support']:>10d}")
    lines += ["", f"accuracy  {r['accuracy']:.4f}", f"macro-F1  {r['macro_f1']:.4f}",
              f"ECE (15 bins)  {r['ece']:.4f}", "", "confusion matrix (rows: true, columns: predicted)"]
    lines.append(" " * w + "".join(f"{c[:10]:>12}" for c in classes))
    for c, row in zip(classes, r["confusion_matrix"]):
        lines.append(f"{c:<{w}}" + "".join(f"{v:>12d}" for v in row))
    if r["skipped"]:
        lines += ["", f"{len(r['skipped'])} unreadable images skipped"]
    return "\n".join(lines)
