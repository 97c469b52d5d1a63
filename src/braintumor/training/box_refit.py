"""Fitting the tumour-box parts of a checkpoint after training: ``braintumor fit-boxes`` refits the
box head on the features of the frozen network, ``braintumor fit-refiner`` fits the box refiner
(:mod:`braintumor.training.box_refine`) on the training split's pixels and boxes.

Training with boxes teaches the whole network where tumours are, but on a CPU it runs for few
epochs, and the box head (0.6 M parameters) learns more slowly than the classifier. This command
keeps every other weight as it is: it computes the last block's features of the training images once
per augmented pass (flips, crops, small rotations), then trains only the box head on those cached
features for many epochs, which takes seconds a epoch. Labels, probabilities and heat maps do not
change; the box head is written back into the checkpoint with its validation figures
(``localization`` in the metadata).

    braintumor fit-boxes --model runs/r18/best.safetensors --data Training/ --boxes boxes.tsv \\
        --split runs/r18/split.json [--passes 3] [--epochs 60] [--out FILE]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch


def _features(body, images: np.ndarray, boxes: torch.Tensor, prep, augment, gen, batch: int = 64):
    """Features (float16) and boxes after augmentation for all images, one pass."""
    from . import localize
    from ..progress import progress
    from .source_aug import hard_box
    from .transforms import center_crop

    feats, out_boxes, has = [], [], []
    for start in progress(range(0, len(images), batch), desc="features", unit="batch"):
        idx = np.arange(start, min(start + batch, len(images)))
        raw = torch.from_numpy(np.ascontiguousarray(images[idx]))
        b = boxes[torch.as_tensor(idx)]
        h = ~torch.isnan(b[:, 0])
        if augment is None:
            x = center_crop(raw, prep.img_size).float().div(255.0).unsqueeze(1)
            bb = b
        else:
            x, masks = augment(raw, gen, masks=hard_box(torch.nan_to_num(b, nan=-1.0), raw.shape[-1]))
            bb, visible = localize.boxes_from_masks(masks)
            h = h & visible
        with torch.inference_mode():
            feats.append(body(prep.normalize(x)).half())
        out_boxes.append(torch.nan_to_num(bb, nan=0.0))
        has.append(h)
    return torch.cat(feats), torch.cat(out_boxes), torch.cat(has)


def _network_and_images(checkpoint, data, boxes_file, split_file):
    """What both fits start from: the checkpoint; its network in eval mode with a box head (a fresh
    one where it has none) and its refiner if any, all float32; the network's body; the split; and
    ``cache(rels)`` -> (uint8 images at the resize size, (N, 4) boxes in input fractions, NaN: none)."""
    from .box_supervision import box_table, read_boxes
    from .network_parts import split_network
    from .checkpoint import load_checkpoint
    from ..config import CLASSES
    from ..data.folders import Sample
    from .image_cache import build_cache
    from .models import build_model

    ck = load_checkpoint(checkpoint)
    model = build_model(ck.arch, len(ck.classes), box_head=True, box_refiner=ck.refiner_stages)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ck.state_dict.items()}
    model.load_state_dict({**model.state_dict(), **state})
    model.eval()
    body, _ = split_network(model, ck.arch)
    prep = ck.preprocessing
    split = json.loads(Path(split_file).read_text())
    root, table = Path(data), read_boxes(boxes_file)
    classes = tuple(ck.classes) or CLASSES

    def cache(rels):
        c = build_cache([Sample(root / r, classes.index(r.split("/")[0])) for r in rels], prep.resize_size)
        return np.asarray(c.images), torch.from_numpy(box_table(c.paths, root, table))

    return ck, model, body, split, cache


def refit_box_head(checkpoint: str | Path, data: str | Path, boxes_file: str | Path, split_file: str | Path,
                   passes: int = 3, epochs: int = 60, lr: float = 1e-3, seed: int = 0,
                   out: str | Path | None = None) -> dict:
    """Refit the box head of ``checkpoint`` (one with a box head, or one without: a head is added)
    and save it to ``out`` (default: in place). Returns the validation figures before and after."""
    from . import localize
    from .checkpoint import save_checkpoint
    from ..progress import progress
    from .localize import BoxHead
    from .transforms import Augment

    torch.manual_seed(seed)
    ck, model, body, split, cache = _network_and_images(checkpoint, data, boxes_file, split_file)
    prep = ck.preprocessing

    tr_img, tr_box = cache(split["train"])
    va_img, va_box = cache(split["val"])
    gen = torch.Generator().manual_seed(seed)
    augment = Augment(prep.img_size, (0.7, 1.0), rotation=10.0, jitter=0.0)
    t0 = time.perf_counter()
    parts = [_features(body, tr_img, tr_box, prep, None if p == 0 else augment, gen) for p in range(passes)]
    f_tr = torch.cat([p[0] for p in parts])
    b_tr = torch.cat([p[1] for p in parts])
    h_tr = torch.cat([p[2] for p in parts])
    f_va, b_va, h_va = _features(body, va_img, va_box, prep, None, gen)

    def score(head) -> dict:
        with torch.no_grad():
            centre, sides = head(f_va[h_va].float())
            pred, _ = localize.decode_boxes(centre, sides)
            iou = localize.box_iou(pred, b_va[h_va])
        return {"n": int(h_va.sum()), "mean_iou": round(float(iou.mean()), 4),
                "iou_at_least_0.5": round(float((iou >= 0.5).float().mean()), 4)}

    before = score(model.box_head)
    head = BoxHead(f_tr.shape[1])
    head.load_state_dict(model.box_head.state_dict())
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    n, batch = len(f_tr), 256
    steps = epochs * max(1, n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    head.train()
    best, best_state = None, None
    for epoch in progress(range(epochs), desc="box head", unit="epoch"):
        perm = torch.randperm(n, generator=gen)
        for i in range(max(1, n // batch)):
            idx = perm[i * batch:(i + 1) * batch]
            loss = localize.box_loss(*head(f_tr[idx].float()), b_tr[idx], h_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            head.eval()
            s = score(head)
            head.train()
            if best is None or s["mean_iou"] > best["mean_iou"]:
                best, best_state = s, {k: v.clone() for k, v in head.state_dict().items()}
    model.box_head.load_state_dict(best_state)
    meta = dict(ck.meta)
    meta["localization"] = {
        "method": "box head refitted on cached last-block features of the frozen network "
                  f"({passes} passes over the training split, {epochs} epochs)",
        "val_before": before, "val": best, "seconds": round(time.perf_counter() - t0, 1),
    }
    half = any(v.dtype == torch.float16 for v in ck.state_dict.values())
    target = Path(out) if out else Path(checkpoint)
    digest = save_checkpoint(target, model, ck.arch, prep, ck.classes, meta, half=half)
    return {"checkpoint": str(target), "sha256": digest, **meta["localization"]}


def train_refiner(pixels: torch.Tensor, boxes: torch.Tensor, epochs: int = 15, lr: float = 2e-3,
                  batch: int = 128, seed: int = 0, stages: int = 2) -> torch.nn.Module:
    """A refiner fitted on (N, H, W) uint8 input pixels and their (N, 4) radiologist boxes: each
    stage in turn, ``epochs`` epochs each, on boxes disturbed as that stage's input errs."""
    from .box_refine import BoxRefiner, disturb, mirror, refiner_loss
    from ..progress import progress

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    refiner = BoxRefiner(stages)
    per_epoch = max(1, len(pixels) // batch)
    for k, stage in enumerate(refiner.stages):
        opt = torch.optim.AdamW(stage.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * per_epoch)
        stage.train()
        bar = progress(range(epochs), desc=f"box refiner, stage {k + 1} of {stages}", unit="epoch")
        for _ in bar:
            perm = torch.randperm(len(pixels), generator=gen)
            for i in range(per_epoch):
                idx = perm[i * batch:(i + 1) * batch]
                px, target = mirror(pixels[idx], boxes[idx], torch.rand(len(idx), generator=gen) < 0.5)
                loss = refiner_loss(stage(px, disturb(target, gen, k)), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        stage.eval()
    return refiner.eval()


def _iou_figures(pred: torch.Tensor, target: torch.Tensor) -> dict:
    from .localize import box_iou

    iou = box_iou(pred, target)
    return {"n": len(iou), "mean_iou": round(float(iou.mean()), 4),
            "iou_at_least_0.5": round(float((iou >= 0.5).float().mean()), 4)}


def fit_refiner(checkpoint: str | Path, data: str | Path, boxes_file: str | Path, split_file: str | Path,
                epochs: int = 15, seed: int = 0, out: str | Path | None = None,
                reuse: str | Path | None = None, stages: int = 2) -> dict:
    """Fit a refiner on the training split's boxed images, add it to ``checkpoint`` (which needs a box
    head) and save to ``out`` (default: in place). Returns the validation figures of the box head
    alone and with the refiner.

    With ``reuse`` (a checkpoint that has a refiner, with the same preprocessing), its refiner is
    taken as it is instead of fitting one: the refiner reads pixels, not features, so one fitted on
    the training split serves every network trained on that split; only the scoring runs."""
    from . import localize
    from .box_refine import CROP
    from .checkpoint import load_checkpoint, save_checkpoint
    from ..errors import CheckpointError
    from .transforms import center_crop

    ck, model, body, split, cache = _network_and_images(checkpoint, data, boxes_file, split_file)
    if not ck.has_box_head:
        raise CheckpointError(f"{checkpoint}: no box head to refine; train with --boxes or run fit-boxes first")
    prep = ck.preprocessing

    def boxed(rels):
        images, b = cache(rels)
        has = ~torch.isnan(b[:, 0])
        px = center_crop(images[has.numpy()], prep.img_size)
        return torch.from_numpy(np.ascontiguousarray(px)), b[has]

    t0 = time.perf_counter()
    va_px, va_box = boxed(split["val"])
    if reuse is not None:
        donor = load_checkpoint(reuse)
        if not donor.has_box_refiner or donor.preprocessing != prep:
            raise CheckpointError(f"{reuse}: no box refiner, or another preprocessing than {checkpoint}")
        refiner = donor.build().box_refiner
        method = donor.meta.get("box_refiner", {}).get("method", "") + f"; taken from {Path(reuse).name}"
    else:
        tr_px, tr_box = boxed(split["train"])
        if len(tr_px) == 0:
            raise CheckpointError("fit-refiner: the split has no boxed images in train")
        refiner = train_refiner(tr_px, tr_box, epochs=epochs, seed=seed, stages=stages)
        method = (f"{stages} stages, each a {CROP} px crop around the box before it and side corrections; "
                  f"fitted on the training split's {len(tr_px)} boxed images, {epochs} epochs a stage")
    if len(va_px) == 0:
        raise CheckpointError("fit-refiner: the split has no boxed images in val")
    first, refined = [], []
    with torch.inference_mode():
        for s in range(0, len(va_px), 64):
            px = va_px[s:s + 64]
            centre, sides = model.box_head(body(prep.normalize(px)))
            b, _ = localize.decode_boxes(centre, sides)
            first.append(b)
            refined.append(refiner(px, b))
    model.box_refiner = refiner
    meta = dict(ck.meta)
    meta["box_refiner"] = {
        "method": method,
        "val_box_head": _iou_figures(torch.cat(first), va_box),
        "val": _iou_figures(torch.cat(refined), va_box),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    half = any(v.dtype == torch.float16 for v in ck.state_dict.values())
    target = Path(out) if out else Path(checkpoint)
    digest = save_checkpoint(target, model, ck.arch, prep, ck.classes, meta, half=half)
    return {"checkpoint": str(target), "sha256": digest, **meta["box_refiner"]}
