"""One training epoch and one evaluation pass; everything comes in as arguments, numbers go out."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..progress import progress
from .transforms import Augment, Preprocessing, center_crop


def pick_device(name: str = "auto") -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("--device mps: Apple MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def cpu_has_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), so autocast pays."""
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((probe and probe()) or (amx and amx()))


def _autocast(device: torch.device, enabled: bool, cpu: bool = False):
    """bfloat16 mixed precision on CUDA; on the CPU only for training (``cpu=True``) and only where
    the CPU has native bfloat16. Evaluation on the CPU stays float32."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and enabled and cpu and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def classification_loss(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0,
                        soft: torch.Tensor | None = None) -> torch.Tensor:
    """Mean loss of a batch. Labels >= 0: cross-entropy (with label smoothing). A label of
    :data:`braintumor.data.sources.TUMOUR` (a tumour of unknown type) is a partial label, "one of the
    tumour classes": minus the log of their summed probability. ``soft`` (N, K) targets (CutMix)
    replace the labels."""
    from ..data.sources import TUMOUR_CLASSES

    logits = logits.float()
    if soft is not None:
        return F.cross_entropy(logits, soft, label_smoothing=label_smoothing)
    known = y >= 0
    total = logits.new_zeros(())
    if bool(known.any()):
        total = total + F.cross_entropy(logits[known], y[known], label_smoothing=label_smoothing, reduction="sum")
    if not bool(known.all()):
        logp = F.log_softmax(logits[~known], dim=1)
        total = total - torch.logsumexp(logp[:, list(TUMOUR_CLASSES)], dim=1).sum()
    return total / max(1, len(y))


def answered_right(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image: the class is right, or for a tumour of unknown type, a tumour class was named."""
    from ..data.sources import NOTUMOR

    pred = logits.argmax(1)
    return torch.where(y >= 0, pred == y, pred != NOTUMOR)


def _batch_tensor(images, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        return images[torch.as_tensor(idx, device=images.device)]
    return torch.from_numpy(np.ascontiguousarray(images[idx])).to(device)


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, images, labels,
                    order: np.ndarray, batch_size: int, augment: Augment, prep: Preprocessing,
                    device: torch.device, gen: torch.Generator, label_smoothing: float = 0.0,
                    amp: bool = True, channels_last: bool = True, ema=None, mixup: float = 0.0,
                    epoch: int = 0, show_progress: bool = True, supervision=None) -> dict:
    """Train over ``order`` (indices into ``images``) once. Returns mean loss and accuracy.

    With ``supervision`` (a :class:`braintumor.training.box_supervision.BoxSupervision`), ``model`` is a
    :class:`braintumor.training.localize.LocalizingNet`: batches go through source-breaking augmentation and
    the loss adds the CAM-in-box and box-head terms."""
    model.train()
    labels_t = torch.as_tensor(labels, device=device) if not isinstance(labels, torch.Tensor) else labels
    n_batches = len(order) // batch_size if len(order) >= batch_size else 1
    total_loss, correct, seen = 0.0, 0, 0
    extra_cam = extra_box = 0.0
    bar = progress(range(n_batches), desc=f"epoch {epoch}", unit="batch", disable=not show_progress or None)
    for b in bar:
        idx = order[b * batch_size:(b + 1) * batch_size]
        y = labels_t[torch.as_tensor(idx, device=labels_t.device)]
        if supervision is not None:
            x, y, boxes, has = supervision.batch(_batch_tensor(images, idx, device), y, idx, augment, gen)
        else:
            x = augment(_batch_tensor(images, idx, device), gen)
        x = prep.normalize(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y_soft = None
        if mixup > 0 and supervision is None and bool((y >= 0).all()) \
                and torch.rand(1, generator=gen).item() < mixup:
            x, y_soft = _cutmix(x, F.one_hot(y, model_classes(model)).float(), gen)
        with _autocast(device, amp, cpu=True):
            out = model(x)
            logits = out[0] if supervision is not None else out
            loss = classification_loss(logits, y, label_smoothing, soft=y_soft)
            if supervision is not None:
                parts = supervision.loss(model, out, y, boxes, has)
                loss = loss + parts["total"]
                extra_cam += float(parts["cam"].detach()) * len(idx)
                extra_box += float(parts["box"].detach()) * len(idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        total_loss += float(loss.detach()) * len(idx)
        correct += int(answered_right(logits.detach(), y).sum())
        seen += len(idx)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    stats = {"loss": total_loss / max(seen, 1), "acc": correct / max(seen, 1), "seen": seen}
    if supervision is not None:
        stats.update(cam_loss=extra_cam / max(seen, 1), box_loss=extra_box / max(seen, 1))
    return stats


def model_classes(model: nn.Module) -> int:
    m = getattr(model, "module", model)
    for mod in reversed(list(m.modules())):
        if isinstance(mod, nn.Linear):
            return mod.out_features
    raise ValueError("model has no linear head")


def _cutmix(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """CutMix: paste a box from a shuffled batch; labels mixed by area."""
    n, _, h, w = x.shape
    perm = torch.randperm(n, generator=gen).to(x.device)
    lam = float(torch.distributions.Beta(1.0, 1.0).sample())
    cut = math.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, lam * y + (1 - lam) * y[perm]


@torch.no_grad()
def predict_logits(model: nn.Module, images, prep: Preprocessing, device: torch.device,
                   batch_size: int = 128, amp: bool = True, channels_last: bool = True,
                   show_progress: bool = False, desc: str = "evaluate") -> torch.Tensor:
    """Logits (float32, CPU) for prepared uint8 images (N, S, S): centre crop, normalise, forward."""
    model.eval()
    out = []
    n = len(images)
    for start in progress(range(0, n, batch_size), desc=desc, unit="batch",
                          disable=not show_progress or None):
        idx = np.arange(start, min(start + batch_size, n))
        x = prep.normalize(center_crop(_batch_tensor(images, idx, device), prep.img_size))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp):
            out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
