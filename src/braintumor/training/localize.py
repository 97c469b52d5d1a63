"""Where the tumour is: a small box head on the last block's features, and the losses that teach the
network to put its class evidence inside radiologist boxes.

The box head reads the same (N, C, h, w) features as the classifier (ResNet18 at 224 px: 512 x 7 x 7).
Each cell predicts a *centre score* (is the tumour's centre in this cell?) and the distances from the
cell's centre to the box's four sides, as fractions of the input side (FCOS-style). The answer is the
box of the cell with the highest centre score. It adds 0.6 M parameters and well under a millisecond.

The CAM loss acts on the class activation map of the true class, ``w_c . f`` over the cells. For a
network that ends in global average pooling and one linear layer this map is, up to a positive factor,
what Grad-CAM computes (the gradient of the logit with respect to each feature map is ``w_c / hw``),
so training it trains the explanation that users see.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POINTING_TOLERANCE = 15 / 224  # the pointing game's tolerance, as a fraction of the input side


class BoxHead(nn.Module):
    """Features (N, C, h, w) -> centre logits (N, h, w) and side distances (N, 4, h, w) in [0, 1]."""

    def __init__(self, in_channels: int = 512, hidden: int = 128):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, 5, 1)
        nn.init.constant_(self.out.bias[:1], -4.0)  # few cells hold a centre: start near "none"

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.out(F.relu(self.conv(features)))
        return y[:, 0], torch.sigmoid(y[:, 1:])


def cell_centres(h: int, w: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres as fractions of the input side: (h, 1) rows and (1, w) columns."""
    cy = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    cx = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    return cy.view(h, 1), cx.view(1, w)


def decode_boxes(centre: torch.Tensor, sides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The box of each image's best cell: (N, 4) as x0, y0, x1, y1 fractions, and its score (N,)."""
    n, h, w = centre.shape
    flat = centre.reshape(n, -1)
    score, best = flat.max(1)
    iy, ix = best // w, best % w
    cy, cx = cell_centres(h, w, centre.device)
    yc, xc = cy.view(-1)[iy], cx.view(-1)[ix]
    d = sides.reshape(n, 4, -1).gather(2, best.view(n, 1, 1).expand(n, 4, 1)).squeeze(2)
    boxes = torch.stack([xc - d[:, 0], yc - d[:, 1], xc + d[:, 2], yc + d[:, 3]], dim=1).clamp(0, 1)
    return boxes, torch.sigmoid(score)


def boxes_from_masks(masks: torch.Tensor, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounding boxes (N, 4, fractions of the side) of masks (N, H, W) and whether each has any pixel."""
    n, h, w = masks.shape
    on = masks > threshold
    rows, cols = on.any(2), on.any(1)
    has = rows.any(1)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    big = h + w
    y0 = torch.where(rows, ar_h, big).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values + 1
    x0 = torch.where(cols, ar_w, big).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values + 1
    boxes = torch.stack([x0 / w, y0 / h, x1 / w, y1 / h], dim=1).float()
    return torch.where(has.view(n, 1), boxes, torch.zeros_like(boxes)), has


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows of two (N, 4) x0, y0, x1, y1 tensors."""
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    area = lambda t: (t[:, 2] - t[:, 0]).clamp(min=0) * (t[:, 3] - t[:, 1]).clamp(min=0)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-9)


def _giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import generalized_box_iou_loss

    return generalized_box_iou_loss(pred, target, reduction="none")


def box_loss(centre: torch.Tensor, sides: torch.Tensor, boxes: torch.Tensor,
             has_box: torch.Tensor) -> torch.Tensor:
    """Centre-score and box-regression loss for a batch; ``boxes`` (N, 4) fractions, ``has_box`` (N,).

    Images without a tumour teach every cell to say "no centre here". The regression is trained on
    every cell whose centre lies in the box, weighted towards the box's centre."""
    n, h, w = centre.shape
    cy, cx = cell_centres(h, w, centre.device)
    bx0, by0, bx1, by1 = (boxes[:, i].view(n, 1, 1) for i in range(4))
    inside = (cx >= bx0) & (cx <= bx1) & (cy >= by0) & (cy <= by1) & has_box.view(n, 1, 1)
    mx, my = (bx0 + bx1) / 2, (by0 + by1) / 2
    # The centre cell: the one that holds the box's centre.
    iy = (my.view(n) * h).long().clamp(0, h - 1)
    ix = (mx.view(n) * w).long().clamp(0, w - 1)
    target = torch.zeros_like(centre)
    target[torch.arange(n, device=centre.device)[has_box], iy[has_box], ix[has_box]] = 1.0
    # Balanced: the one centre cell weighs as much as all the other cells together.
    cls_loss = F.binary_cross_entropy_with_logits(
        centre, target, pos_weight=torch.tensor(float(h * w - 1), device=centre.device))
    inside = inside | target.bool()
    if not bool(inside.any()):
        return cls_loss
    # predicted box at each inside cell
    cxs, cys = cx.expand(h, w), cy.expand(h, w)
    d = sides.permute(0, 2, 3, 1)[inside]  # (M, 4)
    idx = inside.nonzero(as_tuple=True)
    pcx, pcy = cxs[idx[1], idx[2]], cys[idx[1], idx[2]]
    pred = torch.stack([pcx - d[:, 0], pcy - d[:, 1], pcx + d[:, 2], pcy + d[:, 3]], dim=1)
    tgt = boxes[idx[0]]
    # weight: how close the cell is to the box centre (1 at the centre, ~0 at the border)
    bw = (tgt[:, 2] - tgt[:, 0]).clamp(min=1e-3)
    bh = (tgt[:, 3] - tgt[:, 1]).clamp(min=1e-3)
    wgt = (1 - (2 * (pcx - (tgt[:, 0] + tgt[:, 2]) / 2) / bw).abs().clamp(max=1)) * \
          (1 - (2 * (pcy - (tgt[:, 1] + tgt[:, 3]) / 2) / bh).abs().clamp(max=1))
    wgt = wgt + target[idx] * 1.0  # the centre cell counts most
    reg = (_giou_loss(pred.float(), tgt.float()) + 4 * (pred - tgt).abs().sum(1)) * wgt
    return cls_loss + reg.sum() / wgt.sum().clamp(min=1e-6)


def cell_targets(boxes: torch.Tensor, has_box: torch.Tensor, h: int, w: int,
                 tolerance: float = POINTING_TOLERANCE) -> torch.Tensor:
    """Which cells count as "on the tumour" (N, h, w): the cell's centre lies within ``tolerance``
    of the box (``boxes`` (N, 4) fractions). A box that holds no cell centre gets its nearest cell."""
    n = boxes.shape[0]
    cy, cx = cell_centres(h, w, boxes.device)
    x0, y0, x1, y1 = (boxes[:, i].view(n, 1, 1) for i in range(4))
    dx = torch.clamp(torch.maximum(x0 - cx, cx - x1), min=0)
    dy = torch.clamp(torch.maximum(y0 - cy, cy - y1), min=0)
    dist = (dx ** 2 + dy ** 2).sqrt()
    nearest = dist.flatten(1).min(1).values.view(n, 1, 1)
    cells = (dist <= tolerance) | (dist <= nearest)
    return cells & has_box.view(n, 1, 1)


def cam_loss(features: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
             cells: torch.Tensor, has_box: torch.Tensor) -> torch.Tensor:
    """Keep the true class's evidence on the tumour: for each boxed image, the share of the class
    activation map's positive mass inside the box, and a softmax over cells (where its peak is),
    both pushed towards 1. ``weight`` is the classifier's (K, C) matrix."""
    if not bool(has_box.any()):
        return features.new_zeros(())
    f = features[has_box].float()
    cam = torch.einsum("nchw,nc->nhw", f, weight[targets[has_box]].float())
    inside = cells[has_box].float()
    pos = F.relu(cam).flatten(1)
    inside = inside.flatten(1)
    share = (pos * inside).sum(1) / pos.sum(1).clamp(min=1e-6)
    flat = cam.flatten(1)
    scale = flat.std(1, keepdim=True).clamp(min=1e-3)
    peak = (torch.softmax(flat / scale * 2.0, dim=1) * inside).sum(1)
    eps = 1e-4
    return (-(share + eps).log() - (peak + eps).log()).mean()


class LocalizingNet(nn.Module):
    """A classifier split into body and head, with a box head: the training view of the network.

    ``forward`` returns logits, the last block's features, and the box head's outputs."""

    def __init__(self, model: nn.Module, arch: str):
        super().__init__()
        from .network_parts import split_network

        self.model = model
        self.body, self.head = split_network(model, arch)

    def forward(self, x: torch.Tensor):
        feats = self.body(x)
        logits = self.head(feats)
        centre, sides = self.model.box_head(feats)
        return logits, feats, centre, sides
