"""Training with tumour boxes: a batch's images, labels and boxes through source-breaking
augmentation, and the extra losses (CAM in the box, box head). Used by :mod:`braintumor.training.engine`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import localize, source_aug
from ..errors import BoxesError  # noqa: F401 (re-exported: what read_boxes raises)
from ..formats import DECODED
from ..data.sources import read_boxes  # noqa: F401 (the one reader of boxes files, here for training)
from .transforms import Augment


def boxes_in_prepared(box: tuple[float, float, float, float], width: int, height: int,
                      fit: str = "crop") -> tuple[float, ...]:
    """A box in fractions of the stored image -> fractions of the prepared square (see
    :func:`braintumor.inference.preprocess.prepare`: centre crop of the shorter side, or the longer side padded)."""
    side = max(width, height) if fit == "pad" else min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    x0, y0, x1, y1 = box
    out = ((x0 * width - left) / side, (y0 * height - top) / side,
           (x1 * width - left) / side, (y1 * height - top) / side)
    return tuple(min(1.0, max(0.0, v)) for v in out)


def prepared_boxes(paths: list[str], box_of: dict, fit: str = "crop") -> np.ndarray:
    """(N, 4) float32 boxes in prepared-image fractions for ``paths``, from ``box_of`` ({path: box in
    fractions of the stored image}), NaN where an image has none."""
    from PIL import Image

    out = np.full((len(paths), 4), np.nan, dtype=np.float32)
    for i, p in enumerate(paths):
        box = box_of.get(str(p))
        if box is not None:
            with Image.open(p, formats=DECODED) as im:
                w, h = im.size
            out[i] = boxes_in_prepared(box, w, h, fit)
    return out


def box_table(paths: list[str], root: Path, boxes: dict, fit: str = "crop") -> np.ndarray:
    """(N, 4) float32 boxes in prepared-image fractions for ``paths`` (absolute, under ``root``;
    ``boxes`` keyed by the path relative to it), NaN where none."""
    box_of = {str(p): boxes[Path(p).relative_to(root).as_posix()] for p in paths
              if Path(p).relative_to(root).as_posix() in boxes}
    return prepared_boxes(paths, box_of, fit)


@dataclass
class BoxSupervision:
    """What a batch needs beyond images and labels, and the weights of the extra losses."""

    boxes: torch.Tensor  # (N, 4) fractions of the prepared image, NaN: no box
    source: torch.Tensor  # (N,) int: which collection each image came from (style mixing crosses them)
    cam_weight: float = 1.0
    box_weight: float = 1.0
    paste: float = 0.3
    erase: float = 0.12
    erase_fill: float = 0.0
    erase_mirror: float = 0.0
    style: float = 0.3
    artefacts: float = 0.3
    head: str = "fc"  # attribute path of the classifier's Linear layer (models.Architecture.head)

    def __post_init__(self):
        self._artefacts = source_aug.MriArtefacts(self.artefacts) if self.artefacts > 0 else None

    def batch(self, raw: torch.Tensor, labels: torch.Tensor, idx: np.ndarray, augment: Augment,
              gen: torch.Generator):
        """uint8 (N, S, S) -> augmented (N, 1, s, s) in [0, 1], labels, boxes and has-box after it all."""
        i = torch.as_tensor(idx)
        x = raw.float().div(255.0)
        boxes = self.boxes[i].to(x.device)
        x, labels, boxes = source_aug.copy_paste(x, labels, boxes, gen, self.paste, self.erase,
                                                  fill=self.erase_fill, mirror=self.erase_mirror)
        if self.style > 0:
            x = source_aug.style_mix(x, self.source[i].to(x.device), gen, self.style)
        has = ~torch.isnan(boxes[:, 0])
        masks = source_aug.hard_box(torch.nan_to_num(boxes, nan=-1.0), x.shape[-1])
        x, masks = augment(x, gen, masks=masks)
        if self._artefacts is not None:
            x = self._artefacts(x)
        boxes, visible = localize.boxes_from_masks(masks)
        return x, labels, boxes, has & visible

    def loss(self, model: torch.nn.Module, logits_feats_box, labels, boxes, has) -> dict:
        _, feats, centre, sides = logits_feats_box
        fc = _classifier_weight(model, self.head)
        cells = localize.cell_targets(boxes, has, feats.shape[-2], feats.shape[-1])
        lc = localize.cam_loss(feats, fc, labels, cells, has)
        lb = localize.box_loss(centre.float(), sides.float(), boxes, has)
        return {"cam": lc, "box": lb, "total": self.cam_weight * lc + self.box_weight * lb}


def _classifier_weight(model: torch.nn.Module, head: str) -> torch.Tensor:
    m = getattr(model, "module", model)  # DDP
    m = getattr(m, "model", m)  # localize.LocalizingNet
    return m.get_submodule(head).weight


@torch.no_grad()
def evaluate_localization(net, images, prep, device, boxes: torch.Tensor, batch_size: int = 128,
                          channels_last: bool = True, head: str = "fc") -> tuple[torch.Tensor, dict]:
    """One pass over prepared validation images: logits, and for the boxed ones the share whose
    class activation map (predicted class) peaks within the pointing tolerance of the box, and the
    box head's mean IoU and share with IoU >= 0.5. A quick per-epoch view; the full report (Grad-CAM
    through the Predictor, every method) is ``benchmarks/explain_quality.py``."""
    from .transforms import center_crop

    net.eval()
    logits_all, hits, ious = [], [], []
    n = len(images)
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        raw = torch.from_numpy(np.ascontiguousarray(center_crop(images[idx], prep.img_size))).to(device)
        x = prep.normalize(raw)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits, feats, centre, sides = net(x)
        logits_all.append(logits.float().cpu())
        b = boxes[torch.as_tensor(idx)]
        has = ~torch.isnan(b[:, 0])
        if not bool(has.any()):
            continue
        weight = _classifier_weight(net, head)
        pred = logits.argmax(1)
        f = feats[has].float()
        cam = torch.einsum("nchw,nc->nhw", f, weight[pred[has]].float())
        h, w = cam.shape[-2:]
        best = cam.flatten(1).argmax(1)
        cy, cx = (best // w + 0.5) / h, (best % w + 0.5) / w
        bb = b[has].to(cam.device)
        t = localize.POINTING_TOLERANCE
        dx = torch.clamp(torch.maximum(bb[:, 0] - cx, cx - bb[:, 2]), min=0)
        dy = torch.clamp(torch.maximum(bb[:, 1] - cy, cy - bb[:, 3]), min=0)
        hits.append(((dx ** 2 + dy ** 2).sqrt() <= t).cpu())
        pb, _ = localize.decode_boxes(centre[has].float(), sides[has].float())
        ious.append(localize.box_iou(pb, bb).cpu())
    logits = torch.cat(logits_all)
    if not hits:
        return logits, {}
    hits_t, ious_t = torch.cat(hits).float(), torch.cat(ious)
    return logits, {"cam_pointing": float(hits_t.mean()), "box_iou": float(ious_t.mean()),
                    "box_iou50": float((ious_t >= 0.5).float().mean())}
