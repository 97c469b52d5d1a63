"""A second look at the tumour box: a small network that reads the scan around the box head's box
and moves its sides.

The box head works on the last block's 7 x 7 grid (32 px cells at 224 px), and 356 of the 594 boxed
validation slices have a radiologist box smaller than one cell (``benchmarks/explain_quality.py``),
so a few pixels of error cost much of the overlap. The refiner crops a square window around the
first box (2.5 times its longer side, at least 48 px) from the network's input pixels with
:func:`torchvision.ops.roi_align`, resamples it to 64 x 64, and predicts the correction of the four
sides in window units (a two-stage detector's box refinement); a second stage does the same around
the corrected box, trained on smaller errors. It reads pixels only, so it does not depend on the
classifier's weights: a refiner fitted once keeps working when the network is trained further. 1.5 M parameters; on one thread of the 2-core
development machine it costs about 13.5 ms an image at batch 1 (``benchmarks/inference.py`` prints it).

It is trained on the training split's boxed images, with the radiologist box disturbed the way the
box head errs (shifted by about a third of its size, scaled by about +/-25%, a little too large on
average), and scored on the validation split from the box head's own boxes
(:func:`braintumor.training.box_refit.fit_refiner`):

    braintumor fit-refiner --model M --data Training/ --boxes boxes.tsv --split split.json
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

WINDOW_SCALE = 2.5  # the window's side, in units of the first box's longer side
MIN_WINDOW = 48 / 224  # ... and at least this much of the input side
CROP = 64  # the window is resampled to CROP x CROP pixels


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2)]


class RefineStage(nn.Module):
    """One look: input pixels and boxes -> corrected boxes (x0, y0, x1, y1 input fractions)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(*_block(1, w), *_block(w, 2 * w), *_block(2 * w, 4 * w), *_block(4 * w, 4 * w),
                                 nn.Flatten(), nn.Linear(4 * w * (CROP // 16) ** 2, 256), nn.ReLU(inplace=True),
                                 nn.Linear(256, 4))
        nn.init.zeros_(self.net[-1].weight)  # starts as "keep the box"
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        win = windows(boxes)
        correction = self.net(crops(pixels, win))
        return from_window(to_window(boxes, win) + correction, win).clamp(0, 1)


class BoxRefiner(nn.Module):
    """A cascade of :class:`RefineStage`: the first corrects the box head's box, each later one
    the box before it, from a window around that box (a cascade of box refinements)."""

    def __init__(self, stages: int = 2):
        super().__init__()
        self.stages = nn.ModuleList(RefineStage() for _ in range(stages))

    def forward(self, pixels: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """``pixels`` (N, H, W) uint8 or (N, 1, H, W) float in [0, 1]; ``boxes`` (N, 4) fractions."""
        for stage in self.stages:
            boxes = stage(pixels, boxes)
        return boxes


def windows(boxes: torch.Tensor) -> torch.Tensor:
    """The square window around each box (N, 4) that the refiner reads, in input fractions."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = ((boxes[:, 2:] - boxes[:, :2]).amax(1) * WINDOW_SCALE).clamp(min=MIN_WINDOW, max=1.0)
    half = side[:, None] / 2
    return torch.cat([centre - half, centre + half], 1)


def crops(pixels: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """The windows resampled to (N, 1, CROP, CROP) floats in [0, 1]; outside the image reads 0."""
    from torchvision.ops import roi_align

    x = pixels.unsqueeze(1) if pixels.dim() == 3 else pixels
    x = x.float().div(255.0) if pixels.dtype == torch.uint8 else x.float()
    h, w = x.shape[-2:]
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=x.device)
    rois = torch.cat([torch.arange(win.shape[0], device=x.device).float()[:, None],
                      win.float() * scale], 1)
    return roi_align(x, rois, (CROP, CROP), spatial_scale=1.0, sampling_ratio=2, aligned=True)


def to_window(boxes: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    side = (win[:, 2:] - win[:, :2]).repeat(1, 2)
    return (boxes - win[:, :2].repeat(1, 2)) / side


def from_window(boxes: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    side = (win[:, 2:] - win[:, :2]).repeat(1, 2)
    return boxes * side + win[:, :2].repeat(1, 2)


# How the boxes each stage learns from are disturbed: the centre moved by this share of the box's
# longer side (at least 20 px at 224), each side length scaled by a log-normal factor of this spread
# and median exp(bias). The first stage sees the box head's errors, later ones smaller errors.
DISTURBANCE = ((0.3, 0.25, 0.1), (0.15, 0.12, 0.0))


def disturb(boxes: torch.Tensor, gen: torch.Generator, stage: int = 0) -> torch.Tensor:
    """Radiologist boxes disturbed the way the boxes that ``stage`` receives err (:data:`DISTURBANCE`)."""
    shift, spread, bias = DISTURBANCE[min(stage, len(DISTURBANCE) - 1)]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = boxes[:, 2:] - boxes[:, :2]
    move = size.amax(1, keepdim=True).clamp(min=20 / 224) * shift
    centre = centre + torch.randn(centre.shape, generator=gen) * move
    size = size * torch.exp(torch.randn(size.shape, generator=gen) * spread + bias)
    return torch.cat([centre - size / 2, centre + size / 2], 1)


def mirror(pixels: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor):
    """Images (N, H, W) and their boxes, mirrored left-right where ``flip`` (N,) is true."""
    pixels = torch.where(flip[:, None, None], pixels.flip(-1), pixels)
    mirrored = torch.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1)
    return pixels, torch.where(flip[:, None], mirrored, boxes)


def refiner_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import generalized_box_iou_loss

    return generalized_box_iou_loss(pred, target, reduction="mean") + 5 * (pred - target).abs().sum(1).mean()


def refine_boxes(refiner: nn.Module, pixels: np.ndarray | torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The refiner's boxes for (N, H, W) uint8 input pixels and the box head's (N, 4) boxes."""
    px = torch.as_tensor(np.ascontiguousarray(pixels)) if isinstance(pixels, np.ndarray) else pixels
    with torch.inference_mode():
        return refiner(px, boxes.float())

