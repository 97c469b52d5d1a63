"""``braintumor train``: wires data, split, model, optimiser and logging together.

Single process by default; under ``torchrun`` each process trains on its share of every batch with
DistributedDataParallel (NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import plots
from .checkpoint import save_checkpoint
from ..config import TrainConfig, cache_dir
from ..data.folders import DataError, Sample, list_samples, resolve_root
from .image_cache import build_cache
from .engine import classification_loss, pick_device, predict_logits, train_one_epoch, warmup_cosine
from ..metrics import summarize
from ..progress import progress
from .models import build_model, freeze_for_finetune, load_pretrained, param_groups
from ..data.split import Split, make_split
from .transforms import Augment, Preprocessing

STATE_FILE = "state.pt"  # optimiser, scheduler, RNG and history: everything --resume needs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def _log(msg: str, rank: int = 0) -> None:
    if rank == 0:
        print(msg, file=sys.stderr, flush=True)


def prepare_split(cfg: TrainConfig, root: Path, samples: list[Sample], out: Path, rank: int) -> Split:
    """Compute (rank 0) or read the leakage-free split; always recorded as out/split.json."""
    split_path = out / "split.json"
    if cfg.split_file:
        split = Split.load(cfg.split_file)
    elif split_path.is_file() and (cfg.resume or rank != 0):
        split = Split.load(split_path)
    else:
        split = make_split(samples, root, cfg.val_fraction, cfg.seed, progress=progress)
    if rank == 0:
        split.save(split_path)
        for path, why in split.unreadable:
            _log(f"warning: skipped unreadable image {root / path}: {why}")
    return split


def build_optimizer(model, cfg: TrainConfig, steps_per_epoch: int):
    """AdamW with warm-up + cosine; the schedule reads ``cfg.epochs`` at each step, so a time
    budget that shortens the run also shortens the schedule."""
    pretrained = cfg.pretrained != "none"
    groups = param_groups(model, cfg.arch, cfg.lr, cfg.head_lr, pretrained, cfg.weight_decay)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = cfg.warmup_epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: warmup_cosine(s, cfg.epochs * steps_per_epoch, warm))
    return opt, sched


def fit_time_budget(cfg: TrainConfig, done: int, elapsed: float, epoch_seconds: float, out: Path) -> None:
    """After ``done`` epochs (the first is slow: warm-up of kernels and caches), lower ``cfg.epochs``
    so that the run ends within ``cfg.time_budget`` seconds at the latest epoch's pace."""
    fits = done + int(max(0.0, cfg.time_budget - elapsed) / max(epoch_seconds, 1e-3))
    fits = max(cfg.warmup_epochs + 1, fits)
    if fits < cfg.epochs:
        _log(f"time budget {cfg.time_budget:.0f}s: {fits} epochs instead of {cfg.epochs}")
        cfg.epochs = fits
        cfg.save(out / "config.json")


def make_model(cfg: TrainConfig, device: torch.device):
    start = None
    if cfg.init:
        from .checkpoint import load_checkpoint

        start = load_checkpoint(cfg.init)
    # A box head the starting checkpoint has is kept (unchanged where no boxes train it), and so is
    # a box refiner (it reads pixels, not features, so training the network leaves it valid).
    box_head = bool(cfg.boxes) or (start is not None and start.has_box_head)
    refiner = start.refiner_stages if start is not None else 0
    model = build_model(cfg.arch, len(cfg.classes), box_head=box_head, box_refiner=refiner)
    if start is not None:
        init_from_checkpoint(model, cfg, start)
        if cfg.freeze_early:
            freeze_for_finetune(model, cfg.arch)
    elif cfg.pretrained != "none":
        load_pretrained(model, cfg.arch, cfg.pretrained)
        if cfg.freeze_early:  # the specification's recipe; --no-freeze-early trains the whole network
            freeze_for_finetune(model, cfg.arch)
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def init_from_checkpoint(model, cfg: TrainConfig, ck=None) -> None:
    """Every tensor of ``cfg.init`` (a braintumor checkpoint, or ``ck`` already loaded from it) that
    the model has; a box head the checkpoint lacks keeps its fresh initialisation."""
    from .checkpoint import load_checkpoint

    ck = ck or load_checkpoint(cfg.init)
    if ck.arch != cfg.arch or tuple(ck.classes) != tuple(cfg.classes):
        raise DataError(f"--init {cfg.init}: a {ck.arch} checkpoint for {list(ck.classes)}, "
                        f"not {cfg.arch} for {list(cfg.classes)}")
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) for k, v in ck.state_dict.items() if k in own}
    missing = [k for k in own if k not in state and not k.startswith("box_head.")]
    if missing:
        raise DataError(f"--init {cfg.init}: {len(missing)} tensors missing, e.g. {missing[0]}")
    own.update(state)
    model.load_state_dict(own)


def make_supervision(cfg: TrainConfig, data: "TrainingData", paths: list[str]):
    """Box supervision for the training images, or None without ``cfg.boxes``."""
    if not cfg.boxes:
        return None
    from .box_supervision import BoxSupervision, prepared_boxes
    from .models import get_arch

    table = torch.from_numpy(prepared_boxes(paths, data.box_of, cfg.fit))
    names = sorted(set(data.source_of.values()))
    source = torch.tensor([names.index(data.source_of[p]) for p in paths])
    return BoxSupervision(boxes=table, source=source, cam_weight=cfg.cam_loss,
                          box_weight=cfg.box_loss, paste=cfg.paste, erase=cfg.erase, erase_fill=cfg.erase_fill,
                          erase_mirror=cfg.erase_mirror, style=cfg.style_mix, artefacts=cfg.artefacts,
                          head=get_arch(cfg.arch).head)


class TrainingData:
    """The training and validation images of every source, with each image's source and box
    (keyed by the image's path as the cache records it)."""

    def __init__(self, cfg: TrainConfig, root: Path, samples: list[Sample], split: Split):
        from .box_supervision import read_boxes
        from ..data.sources import list_source, main_folder_sources, split_source

        label_of = {s.rel(root): s.label for s in samples}
        subset = bool(cfg.max_images)  # a debugging subset: keep what the split lists of it
        for part in ("train", "val"):
            missing = [p for p in getattr(split, part) if p not in label_of]
            if missing and subset:
                setattr(split, part, [p for p in getattr(split, part) if p in label_of])
            elif missing:
                raise DataError(f"split lists {len(missing)} images not in {root}, e.g. {missing[0]}")
        boxes = read_boxes(cfg.boxes) if cfg.boxes else {}
        self.train = [Sample(root / p, label_of[p]) for p in split.train]
        self.val = [Sample(root / p, label_of[p]) for p in split.val]
        rels = split.train + split.val
        self.source_of = {str(root / r): s for r, s in zip(rels, main_folder_sources(rels, boxes))}
        self.box_of = {str(root / r): boxes[r] for r in rels if r in boxes}
        self.added: dict[str, dict[str, int]] = {}
        for folder in cfg.sources:
            images = list_source(folder)
            name = images[0].source
            if name in split.sources:
                train_rel, val_rel = split.sources[name]["train"], split.sources[name]["val"]
            else:  # a split of its own, by patient, recorded with the main folder's
                train_rel, val_rel = split_source(images, cfg.val_fraction, cfg.seed)
                split.sources[name] = {"train": train_rel, "val": val_rel}
            by_rel = {im.rel: im for im in images}
            unknown = [r for r in train_rel + val_rel if r not in by_rel]
            if unknown:
                raise DataError(f"the split lists {len(unknown)} images not in {folder}, e.g. {unknown[0]}")
            self.added[name] = {}
            for part, rel_list in (("train", train_rel), ("val", val_rel)):
                if subset:
                    rel_list = rel_list[:: max(1, len(rel_list) * 10 // cfg.max_images)]
                for r in rel_list:
                    im = by_rel[r]
                    getattr(self, part).append(Sample(im.path, im.label))
                    self.source_of[str(im.path)] = name
                    if im.box is not None:
                        self.box_of[str(im.path)] = im.box
                self.added[name][part] = len(rel_list)

    def sources(self, paths: list[str]) -> list[str]:
        return [self.source_of[p] for p in paths]


def parameters_digest(model) -> str:
    """SHA-256 of the learnable parameters (DDP replicas must agree on it)."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def source_scores(probs: np.ndarray, labels: np.ndarray, sources: list[str]) -> dict[str, float]:
    """Per source and class ("tcga-lgg/notumor"): the share answered right on "tumour or not"
    (a tumour class for a tumour, no tumour for none), the question the source confound corrupts."""
    from ..data.sources import NOTUMOR, label_name

    said_tumour = probs.argmax(1) != NOTUMOR
    is_tumour = labels != NOTUMOR
    src = np.asarray(sources)
    out = {}
    for name in sorted(set(sources)):
        for lab in sorted(set(labels[src == name].tolist())):
            sel = (src == name) & (labels == lab)
            out[f"{name}/{label_name(lab)}"] = float((said_tumour[sel] == is_tumour[sel]).mean())
    return out


def write_outputs(out: Path, rows: list[dict], cm, classes) -> None:
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plots.training_curves(rows, out / "curves.png")
    plots.confusion(np.array(cm), classes, out / "confusion_matrix.png", "Validation confusion matrix")


def main(cfg: TrainConfig) -> dict:
    rank, world = _dist_info()
    distributed = world > 1
    device = pick_device(cfg.device)
    if distributed:
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    seed_everything(cfg.seed)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    root = resolve_root(cfg.data, "Training")
    # Fine-tuning a checkpoint that knows every class may use data that lacks one.
    samples = list_samples(root, cfg.classes, require_all=not cfg.init)
    if cfg.max_images:
        rng = np.random.default_rng(cfg.seed)
        samples = [samples[i] for i in sorted(rng.permutation(len(samples))[: cfg.max_images])]
    model = make_model(cfg, device)  # before the split: missing weights fail fast
    if distributed and rank != 0:
        dist.barrier()  # rank 0 computes the split first
    split = prepare_split(cfg, root, samples, out, rank)
    if distributed and rank == 0:
        dist.barrier()
    if rank == 0:
        cfg.save(out / "config.json")
    prep = Preprocessing(cfg.img_size, cfg.resize_ratio, tuple(cfg.mean), tuple(cfg.std), fit=cfg.fit)
    data = TrainingData(cfg, root, samples, split)
    if rank == 0 and data.added:
        split.save(out / "split.json")
    train_s, val_s = data.train, data.val
    if not train_s or not val_s:
        raise DataError("the split left no training or no validation images; add more images")
    _log(f"data: {len(train_s)} train, {len(val_s)} validation images in {split.groups} near-duplicate "
         f"groups; {len(split.conflicts_removed)} label-conflicting images removed"
         + "".join(f"; {k}: {v['train']} train, {v['val']} validation" for k, v in data.added.items()), rank)
    tr = build_cache(train_s, prep.resize_size, cache_dir(), cfg.workers, desc="cache train", fit=cfg.fit)
    va = build_cache(val_s, prep.resize_size, cache_dir(), cfg.workers, desc="cache val", fit=cfg.fit)
    tr_sources, va_sources = data.sources(tr.paths), data.sources(va.paths)
    draw_weights = None
    if cfg.source_balance > 0:
        from ..data.sources import sampling_weights

        draw_weights = torch.as_tensor(sampling_weights(tr.labels, tr_sources, cfg.source_balance))
    train_images = torch.from_numpy(np.asarray(tr.images)).to(device) if device.type != "cpu" else tr.images
    val_images = torch.from_numpy(np.asarray(va.images)).to(device) if device.type != "cpu" else va.images

    supervision = make_supervision(cfg, data, tr.paths)
    if supervision is not None:
        from .localize import LocalizingNet

        n_boxed = int((~torch.isnan(supervision.boxes[:, 0])).sum())
        _log(f"boxes: {n_boxed} of {len(tr.paths)} training images have a tumour box", rank)
        net = LocalizingNet(model, cfg.arch)
    else:
        net = model
    ddp_model = torch.nn.parallel.DistributedDataParallel(net) if distributed else net
    per_rank = cfg.batch_size // world if distributed else cfg.batch_size
    steps = max(1, len(tr.labels) // cfg.batch_size)
    opt, sched = build_optimizer(model, cfg, steps)
    ema = None
    if cfg.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    augment = Augment(cfg.img_size, tuple(cfg.crop_scale), rotation=cfg.rotation, hflip=cfg.hflip,
                      jitter=cfg.jitter)
    gen = torch.Generator().manual_seed(cfg.seed)
    rows: list[dict] = []
    start_epoch, best_loss, bad_epochs = 1, float("inf"), 0
    state_path = out / STATE_FILE
    if cfg.resume and state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        if ema is not None and "ema" in st:
            ema.load_state_dict(st["ema"])
        gen.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        rows, best_loss, bad_epochs = st["rows"], st["best_loss"], st["bad_epochs"]
        start_epoch = st["epoch"] + 1
        _log(f"resumed from {state_path} after epoch {st['epoch']}", rank)
    writer = None
    if rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            _log("tensorboard is not installed: no event files", rank)
    val_labels = torch.as_tensor(va.labels)
    if supervision is not None:
        from .box_supervision import prepared_boxes

        val_boxes = torch.from_numpy(prepared_boxes(va.paths, data.box_of, cfg.fit))
    last_cm = None
    epoch = start_epoch - 1
    run_start = time.perf_counter()
    while epoch < cfg.epochs:  # cfg.epochs may shrink under a time budget
        epoch += 1
        t0 = time.perf_counter()
        if draw_weights is not None:  # each source of a class drawn as often as --source-balance says
            order = torch.multinomial(draw_weights, len(tr.labels), replacement=True, generator=gen).numpy()
        else:
            order = torch.randperm(len(tr.labels), generator=gen).numpy()
        if distributed:  # each rank takes its share of every global batch
            n = (len(order) // cfg.batch_size) * cfg.batch_size or len(order)
            order = order[:n].reshape(-1, world, per_rank)[:, rank].reshape(-1) if n >= cfg.batch_size \
                else order[rank::world]
        tr_stats = train_one_epoch(
            ddp_model, opt, sched, train_images, tr.labels, order, per_rank, augment, prep, device, gen,
            label_smoothing=cfg.label_smoothing, amp=cfg.amp, channels_last=cfg.channels_last, ema=ema,
            mixup=cfg.mixup, epoch=epoch, show_progress=rank == 0, supervision=supervision,
        )
        eval_model = ema.module if ema is not None else model
        loc = {}
        if supervision is not None:
            from .box_supervision import evaluate_localization
            from .localize import LocalizingNet

            logits, loc = evaluate_localization(LocalizingNet(eval_model, cfg.arch), val_images, prep, device,
                                                val_boxes, channels_last=cfg.channels_last,
                                                head=supervision.head)
        else:
            logits = predict_logits(eval_model, val_images, prep, device, amp=cfg.amp,
                                    channels_last=cfg.channels_last)
        val_loss = float(classification_loss(logits, val_labels))
        probs = logits.softmax(1).numpy()
        known = va.labels >= 0
        summary = summarize(probs[known], va.labels[known], cfg.classes)
        by_source = source_scores(probs, va.labels, va_sources)
        last_cm = summary["confusion_matrix"]
        secs = time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": round(tr_stats["loss"], 5), "train_acc": round(tr_stats["acc"], 5),
               "val_loss": round(val_loss, 5), "val_acc": round(summary["accuracy"], 5),
               "val_macro_f1": round(summary["macro_f1"], 5), "lr": opt.param_groups[0]["lr"],
               "seconds": round(secs, 1)}
        for k in ("cam_loss", "box_loss"):
            if k in tr_stats:
                row[k] = round(tr_stats[k], 5)
        row.update({f"val_{k}": round(v, 5) for k, v in loc.items()})
        if len(set(va_sources)) > 1:
            row.update({f"val_detect_{k}": round(v, 5) for k, v in by_source.items()})
        rows.append(row)
        if cfg.time_budget and epoch == start_epoch + 1 and not distributed:
            fit_time_budget(cfg, epoch, time.perf_counter() - run_start, secs, out)
        improved = val_loss < best_loss
        if improved:
            best_loss, bad_epochs = val_loss, 0
        else:
            bad_epochs += 1
        if rank == 0:
            _log(f"epoch {epoch:3d}/{cfg.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}"
                 f"  val loss {val_loss:.4f} acc {row['val_acc']:.4f} macro-F1 {row['val_macro_f1']:.4f}"
                 + "".join(f"  {k} {v:.3f}" for k, v in loc.items())
                 + (f"  worst source {min(by_source, key=by_source.get)} {min(by_source.values()):.3f}"
                    if len(set(va_sources)) > 1 else "")
                 + f"  {secs:.0f}s" + ("  *best" if improved else ""))
            meta = {"name": out.name, "epoch": epoch, "val": {k: summary[k] for k in ("n", "accuracy", "macro_f1", "ece")},
                    "val_tumour_or_not": by_source,
                    "val_loss": val_loss, "train_images": len(tr.labels), "config": json.loads(cfg.to_json())}
            save_checkpoint(out / "last.safetensors", eval_model, cfg.arch, prep, cfg.classes, meta)
            if cfg.keep_epochs:
                save_checkpoint(out / f"epoch-{epoch:03d}.safetensors", eval_model, cfg.arch, prep, cfg.classes, meta)
            if improved:
                save_checkpoint(out / "best.safetensors", eval_model, cfg.arch, prep, cfg.classes, meta)
                (out / "best_val_probs.json").write_text(json.dumps(
                    {"paths": split.val, "labels": va.labels.tolist(), "logits": logits.tolist()}))
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "rows": rows,
                     "best_loss": best_loss, "bad_epochs": bad_epochs, "epoch": epoch}
            if ema is not None:
                state["ema"] = ema.state_dict()
            torch.save(state, out / (STATE_FILE + ".tmp"))
            os.replace(out / (STATE_FILE + ".tmp"), state_path)
            if writer is not None:
                for k, v in row.items():
                    if k != "epoch":
                        writer.add_scalar(k, v, epoch)
                writer.flush()
            write_outputs(out, rows, last_cm, cfg.classes)
        if cfg.patience and bad_epochs >= cfg.patience:
            _log(f"early stop: validation loss has not improved for {cfg.patience} epochs", rank)
            break
    result = {}
    if rank == 0:
        if writer is not None:
            writer.close()
        best = min(rows, key=lambda r: r["val_loss"]) if rows else {}
        result = {"run": str(out), "best_epoch": best.get("epoch"), "best_val_loss": best.get("val_loss"),
                  "best_val_acc": best.get("val_acc"), "best_val_macro_f1": best.get("val_macro_f1"),
                  "epochs_run": len(rows), "train_images": len(tr.labels), "val_images": len(va.labels),
                  "groups": split.groups, "conflicts_removed": len(split.conflicts_removed),
                  "skipped_unreadable": [p for p, _ in tr.skipped + va.skipped],
                  "device": str(device), "world_size": world,
                  "seconds": round(sum(r["seconds"] for r in rows), 1)}
        (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    if distributed:  # each rank records its final weights, so that replicas can be compared
        (out / f"ddp-rank{rank}.json").write_text(json.dumps({"rank": rank, "world_size": world,
                                                             "parameters_sha256": parameters_digest(model)}))
        dist.barrier()
        dist.destroy_process_group()
    return result
